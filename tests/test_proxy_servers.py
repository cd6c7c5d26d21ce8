"""``connect(proxy=...)`` against real proxies on loopback: squid, dante and ``ssh -D`` (``proxy_peers``).

Every proxy kind carries a plain target (an echo server) and a TLS target
(the reversing Python TLS server, verified for its own name), and each
failure code comes from a real server where one produces it: squid's 403
(a denied port), 503 (a closed target) and 407 (no or wrong credentials),
a foreign certificate on its ``https_port``; dante's reply 2 (``socks
block``), reply 5 (a closed target) and its user name check; ``ssh -D``
closing without a reply when the target refuses.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlsplit

import certs
import proxy_peers
import pytest
from conftest import Server, free_port
from peers import Peer, start
from tls_servers import Servers

import inetkit
from inetkit import (
    CertificateError,
    ErrorCode,
    InetConnectionRefusedError,
    Option,
    ProxyError,
    SecurityCredentials,
)

#: Connect timeout: loopback answers at once; a stuck proxy fails the test quickly.
TIMEOUT = 10.0

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")


def trust(pki: certs.PKI, **fields: object) -> SecurityCredentials:
    return SecurityCredentials(ca_file=pki.ca_file, **fields)  # type: ignore[arg-type]


def proxy_identity(pki: certs.PKI) -> certs.ServerCert:
    """A certificate for the HTTPS proxy, valid for localhost, with a key of its own (not the target's)."""
    if "proxy" not in pki.servers:
        # Issued by the root itself: squid 5.7 (GnuTLS) sends only the first certificate of tls-cert.
        leaf = certs.issue("localhost", certs.ec_key("proxy"), pki.root, sans=certs.LOCAL_SANS)
        pki._add_server("proxy", leaf)
    return pki.servers["proxy"]


@pytest.fixture(scope="module")
def squid(pki: certs.PKI) -> Iterator[Peer]:
    (peer,) = start((proxy_peers.squid, (proxy_identity(pki), pki.servers["untrusted_root"])))
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def blocked_target() -> Iterator[int]:
    """A port that listens (so a refusal for it comes from the proxy's rules, not from the target)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield int(listener.getsockname()[1])


@pytest.fixture(scope="module")
def dante(blocked_target: int) -> Iterator[Peer]:
    (peer,) = start((proxy_peers.danted, (blocked_target,)))
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def dante_auth(blocked_target: int) -> Iterator[Peer]:
    (peer,) = start((proxy_peers.danted, (blocked_target, True)))
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def ssh_socks() -> Iterator[Peer]:
    (peer,) = start((proxy_peers.ssh_socks, ()))
    yield peer
    peer.stop()


def squid_auth_url(squid: Peer, password: str = proxy_peers.SQUID_PASSWORD) -> str:
    return f"http://{proxy_peers.SQUID_USER}:{quote(password, safe='')}@127.0.0.1:{squid.ports['auth']}"


def socks_auth_url(dante_auth: Peer, scheme: str, password: str = proxy_peers.SOCKS_PASSWORD) -> str:
    return f"{scheme}://{proxy_peers.SOCKS_USER}:{quote(password, safe='')}@127.0.0.1:{dante_auth.port}"


def proxy_url(
    kind: str,
    squid: Callable[[], Peer],
    dante: Callable[[], Peer],
    dante_auth: Callable[[], Peer],
    ssh: Callable[[], Peer],
) -> str:
    """The URL of one proxy kind (each fixture is started only when its kind is asked for)."""
    if kind == "http":
        return f"http://127.0.0.1:{squid().ports['open']}"
    if kind == "http-auth":
        return squid_auth_url(squid())
    if kind == "https":
        return f"https://localhost:{squid().ports['tls']}"
    if kind in ("socks5", "socks5h"):
        return f"{kind}://127.0.0.1:{dante().port}"
    if kind == "socks5-auth":
        return socks_auth_url(dante_auth(), "socks5h")
    if kind == "socks4a":
        return f"socks4a://inetkit@127.0.0.1:{ssh().port}"
    assert kind == "ssh-socks5h"
    return f"socks5h://127.0.0.1:{ssh().port}"


KINDS = ["http", "http-auth", "https", "socks5", "socks5h", "socks5-auth", "socks4a", "ssh-socks5h"]


@pytest.fixture
def url_of(request: pytest.FixtureRequest) -> Callable[[str], str]:
    def url(kind: str) -> str:
        return proxy_url(
            kind,
            lambda: request.getfixturevalue("squid"),
            lambda: request.getfixturevalue("dante"),
            lambda: request.getfixturevalue("dante_auth"),
            lambda: request.getfixturevalue("ssh_socks"),
        )

    return url


def proxy_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# -- each kind carries a plain and a TLS target ----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_plain_target_through_each_proxy(
    kind: str, url_of: Callable[[str], str], echo_server: Server, pki: certs.PKI
) -> None:
    url = url_of(kind)
    # A name for the proxies that resolve it, so the name really travels; socks5 resolves it here.
    with inetkit.connect(
        "localhost", echo_server.port, timeout=TIMEOUT, proxy=url, credentials=trust(pki)
    ) as conn:
        conn.write(b"through the proxy\n")
        assert conn.read_line() == b"through the proxy\n"
        assert conn.host_name == "localhost" and conn.port == echo_server.port
        assert conn.remote_address == ("127.0.0.1", proxy_port(url))  # the socket's real peer
        assert not conn.is_secure
        trace = conn.trace
    assert trace.proxy is not None
    parts = urlsplit(url)
    assert trace.proxy.endpoint == f"{parts.scheme}://{parts.hostname}:{parts.port}"
    assert trace.proxy.dialog is not None and trace.proxy.dialog > 0
    assert (trace.proxy.tls_handshake is not None) == (kind == "https")
    assert (trace.proxy.target_address is not None) == (kind == "socks5")
    assert [attempt.port for attempt in trace.attempts] == [proxy_port(url)]
    assert "proxy:" in trace.format()


@pytest.mark.parametrize("kind", KINDS)
def test_tls_target_through_each_proxy_verifies_the_target(
    kind: str, url_of: Callable[[str], str], servers: Servers, pki: certs.PKI
) -> None:
    url = url_of(kind)
    server = servers.python(pki.servers["valid"].context())
    with inetkit.connect(
        "localhost", server.port, options=Option.SECURE, credentials=trust(pki), timeout=TIMEOUT, proxy=url
    ) as conn:
        conn.write(b"ping\n")
        assert conn.read_line() == b"gnip\n"
        assert conn.is_secure
        info = conn.security_info
        assert info is not None and info.peer_certificate is not None
        assert "localhost" in str(info.peer_certificate.subject)
        trace = conn.trace
    assert trace.tls_handshake is not None
    server.wait_idle()
    (seen,) = server.seen
    assert seen.server_name == "localhost"  # SNI is the target's, through the tunnel


@pytest.mark.parametrize("kind", ["http", "https", "socks5h", "socks4a"])
def test_a_wrong_target_certificate_fails_through_the_proxy(
    kind: str, url_of: Callable[[str], str], servers: Servers, pki: certs.PKI
) -> None:
    url = url_of(kind)
    server = servers.python(pki.servers["wrong_host"].context())
    with pytest.raises(CertificateError) as info:
        inetkit.connect(
            "localhost",
            server.port,
            options=Option.SECURE,
            credentials=trust(pki),
            timeout=TIMEOUT,
            proxy=url,
        )
    assert info.value.code is ErrorCode.CERTIFICATE_NAME_MISMATCH
    assert "localhost port" in str(info.value)  # the target is named, not the proxy's certificate
    assert info.value.trace.proxy is not None


def test_connect_url_takes_a_proxy(squid: Peer, servers: Servers, pki: certs.PKI) -> None:
    server = servers.python(pki.servers["valid"].context())
    with inetkit.connect_url(
        f"https://localhost:{server.port}/",
        credentials=trust(pki),
        timeout=TIMEOUT,
        proxy=f"https://localhost:{squid.ports['tls']}",
    ) as conn:
        conn.write(b"abc\n")
        assert conn.read_line() == b"cba\n"


def test_free_threaded_tls_in_tls_reads_while_writing(squid: Peer, servers: Servers, pki: certs.PKI) -> None:
    """TLS inside TLS keeps the duplex promise: one thread reads while another writes."""
    import threading

    server = servers.python(pki.servers["valid"].context())
    lines = [f"line {n}".encode() * 50 for n in range(200)]
    with inetkit.connect(
        "localhost",
        server.port,
        options=Option.SECURE | Option.FREETHREAD,
        credentials=trust(pki),
        timeout=TIMEOUT,
        proxy=f"https://localhost:{squid.ports['tls']}",
    ) as conn:
        got: list[bytes] = []

        def reader() -> None:
            for _ in lines:
                got.append(conn.read_line())

        thread = threading.Thread(target=reader)
        thread.start()
        for line in lines:
            conn.write(line + b"\n")
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert got == [line[::-1] + b"\n" for line in lines]


# -- squid's refusals -------------------------------------------------------------------------


def test_squid_denies_a_port_with_403(squid: Peer) -> None:
    with pytest.raises(ProxyError) as info:
        inetkit.connect("127.0.0.1", 25, timeout=TIMEOUT, proxy=f"http://127.0.0.1:{squid.ports['open']}")
    assert info.value.code is ErrorCode.PROXY_REFUSED
    assert "'HTTP/1.1 403 Forbidden'" in str(info.value)
    assert isinstance(info.value, ConnectionError)


def test_squid_answers_503_for_a_closed_target(squid: Peer) -> None:
    with pytest.raises(ProxyError) as info:
        inetkit.connect(
            "127.0.0.1", free_port(), timeout=TIMEOUT, proxy=f"http://127.0.0.1:{squid.ports['open']}"
        )
    assert info.value.code is ErrorCode.PROXY_REFUSED
    assert " 503 " in str(info.value)


@pytest.mark.parametrize("password", [None, "not-the-password"])
def test_squid_wants_credentials_407(
    squid: Peer, echo_server: Server, password: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="inetkit")
    url = f"http://127.0.0.1:{squid.ports['auth']}" if password is None else squid_auth_url(squid, password)
    with pytest.raises(ProxyError) as info:
        inetkit.connect("127.0.0.1", echo_server.port, timeout=TIMEOUT, proxy=url)
    assert info.value.code is ErrorCode.PROXY_AUTH_REQUIRED
    assert " 407 " in str(info.value)
    if password is not None:
        texts = [
            str(info.value),
            repr(info.value),
            info.value.trace.format(),
            repr(info.value.trace),
            caplog.text,
        ]
        assert all(password not in text and quote(password) not in text for text in texts)


def test_squid_https_port_with_a_foreign_certificate_names_the_proxy(
    squid: Peer, echo_server: Server, pki: certs.PKI
) -> None:
    for options in (Option.NONE, Option.TRUSTEDSITE):  # TRUSTEDSITE is the target's, not the proxy's
        with pytest.raises(CertificateError) as info:
            inetkit.connect(
                "127.0.0.1",
                echo_server.port,
                options=options,
                credentials=trust(pki),
                timeout=TIMEOUT,
                proxy=f"https://localhost:{squid.ports['badtls']}",
            )
        assert info.value.code is ErrorCode.CERTIFICATE_UNTRUSTED
        assert f"proxy localhost port {squid.ports['badtls']}" in str(info.value)


def test_pins_apply_to_the_target_only(squid: Peer, servers: Servers, pki: certs.PKI) -> None:
    from cryptography.hazmat.primitives import serialization

    from inetkit._tls import public_key_pin

    server = servers.python(pki.servers["valid"].context())
    leaf = pki.servers["valid"].leaf.cert.public_bytes(serialization.Encoding.DER)
    # The target's key pinned: the proxy's certificate (another key) is not held to it.
    credentials = trust(pki, pinned_public_keys=[public_key_pin(leaf)])
    with inetkit.connect(
        "localhost",
        server.port,
        options=Option.SECURE,
        credentials=credentials,
        timeout=TIMEOUT,
        proxy=f"https://localhost:{squid.ports['tls']}",
    ) as conn:
        conn.write(b"pin\n")
        assert conn.read_line() == b"nip\n"
    wrong = trust(pki, pinned_public_keys=["sha256//" + "A" * 43 + "="])
    with pytest.raises(inetkit.SecurityError) as info:
        inetkit.connect(
            "localhost",
            server.port,
            options=Option.SECURE,
            credentials=wrong,
            timeout=TIMEOUT,
            proxy=f"https://localhost:{squid.ports['tls']}",
        )
    assert info.value.code is ErrorCode.PIN_MISMATCH
    assert f"localhost port {server.port} through proxy" in str(info.value)


# -- dante's refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_dante_blocks_a_target_with_reply_2(dante: Peer, blocked_target: int, scheme: str) -> None:
    with pytest.raises(ProxyError) as info:
        inetkit.connect(
            "127.0.0.1", blocked_target, timeout=TIMEOUT, proxy=f"{scheme}://127.0.0.1:{dante.port}"
        )
    assert info.value.code is ErrorCode.PROXY_REFUSED
    assert "SOCKS5 reply 2 (connection not allowed by ruleset)" in str(info.value)


def test_dante_reports_a_closed_target_with_reply_5(dante: Peer) -> None:
    with pytest.raises(ProxyError) as info:
        inetkit.connect("127.0.0.1", free_port(), timeout=TIMEOUT, proxy=f"socks5://127.0.0.1:{dante.port}")
    assert info.value.code is ErrorCode.PROXY_REFUSED
    assert "SOCKS5 reply 5 (connection refused)" in str(info.value)


def test_dante_username_auth_refuses_a_wrong_password_and_none(
    dante_auth: Peer, echo_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="inetkit")
    wrong = "not-the-rabbit"
    with pytest.raises(ProxyError) as info:
        inetkit.connect(
            "127.0.0.1", echo_server.port, timeout=TIMEOUT, proxy=socks_auth_url(dante_auth, "socks5", wrong)
        )
    assert info.value.code is ErrorCode.PROXY_AUTH_REQUIRED
    assert "refused the user name and password" in str(info.value)
    for text in (
        str(info.value),
        repr(info.value),
        info.value.trace.format(),
        repr(info.value.trace),
        caplog.text,
    ):
        assert wrong not in text and proxy_peers.SOCKS_USER + ":" not in text
    with pytest.raises(ProxyError) as info:
        inetkit.connect(
            "127.0.0.1", echo_server.port, timeout=TIMEOUT, proxy=f"socks5://127.0.0.1:{dante_auth.port}"
        )
    assert info.value.code is ErrorCode.PROXY_AUTH_REQUIRED
    assert "reply 05 ff" in str(info.value)


# -- ssh -D ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["socks4a", "socks5h"])
def test_ssh_closes_without_a_reply_for_a_closed_target(ssh_socks: Peer, scheme: str) -> None:
    with pytest.raises(ProxyError) as info:
        inetkit.connect(
            "localhost", free_port(), timeout=TIMEOUT, proxy=f"{scheme}://127.0.0.1:{ssh_socks.port}"
        )
    assert info.value.code is ErrorCode.PROXY_REFUSED
    assert "closed the connection instead of sending its reply" in str(info.value)


# -- reaching the proxy ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https", "socks5", "socks4a"])
def test_a_refused_connection_to_the_proxy_keeps_its_code_and_names_the_proxy(scheme: str) -> None:
    port = free_port()
    with pytest.raises(InetConnectionRefusedError) as info:
        inetkit.connect(
            "example.invalid",
            443,
            timeout=TIMEOUT,
            proxy=f"{scheme}://127.0.0.1:{port}",
            # socks5:// resolves the target here first; the other schemes never look it up.
            resolver=inetkit.Resolver(overrides={"example.invalid": ["192.0.2.1"]}),
        )
    assert info.value.code is ErrorCode.CONNECTION_REFUSED
    assert f"the proxy {scheme}://127.0.0.1:{port} for example.invalid port 443 was the peer" in str(
        info.value
    )
    assert info.value.trace.proxy is not None and info.value.trace.proxy.dialog is None


# -- the command line ------------------------------------------------------------------------------


def test_probe_shows_the_proxy_phase_in_text_and_json(
    squid: Peer, servers: Servers, pki: certs.PKI, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from inetkit.cli import main

    server = servers.python(pki.servers["valid"].context())
    proxy = f"https://localhost:{squid.ports['tls']}"
    argv = [
        "probe",
        "localhost",
        str(server.port),
        "--secure",
        "--ca-file",
        str(pki.ca_file),
        "--proxy",
        proxy,
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"connect localhost port {server.port} through {proxy}" in out
    assert f"  proxy: {proxy}, tls handshake " in out and ", dialog " in out
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["tls"]["protocol"].startswith("TLS")
    assert list(report["proxy"]) == ["endpoint", "tls_handshake_ms", "dialog_ms", "target_address"]
    assert report["proxy"]["endpoint"] == proxy and report["proxy"]["dialog_ms"] > 0
    assert [attempt["address"] for attempt in report["attempts"]] == ["127.0.0.1"]


def test_probe_json_reports_a_proxy_refusal(squid: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from inetkit.cli import main

    argv = ["probe", "127.0.0.1", "25", "--proxy", f"http://127.0.0.1:{squid.ports['open']}", "--json"]
    assert main(argv) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error"]["code"] == "PROXY_REFUSED" and "403" in report["error"]["message"]
    assert report["proxy"]["dialog_ms"] is None


def test_connect_command_through_dante(dante: Peer, echo_server: Server) -> None:
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inetkit",
            "connect",
            "localhost",
            str(echo_server.port),
            "--proxy",
            f"socks5h://127.0.0.1:{dante.port}",
        ],
        input=b"hello\n",
        capture_output=True,
        timeout=30,
        env=dict(os.environ, PYTHONWARNINGS="error"),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello\r\n"
    assert f"-> 127.0.0.1:{dante.port} (localhost)" in result.stderr.decode()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_enable_security_through_the_proxy_after_a_plain_exchange(
    scheme: str, squid: Peer, servers: Servers, pki: certs.PKI
) -> None:
    """An in-band upgrade through the tunnel: over an https:// proxy that is TLS inside TLS."""
    server = servers.python(pki.servers["valid"].context(), expect=b"STARTTLS\n", reply=[b"GO\n"])
    port = squid.ports["open" if scheme == "http" else "tls"]
    with inetkit.connect(
        "localhost",
        server.port,
        timeout=TIMEOUT,
        credentials=trust(pki),
        proxy=f"{scheme}://localhost:{port}",
    ) as conn:
        conn.write(b"STARTTLS\n")
        assert conn.read_line() == b"GO\n"
        assert not conn.is_secure  # the hop to an https:// proxy is not the target's TLS
        conn.enable_security()
        assert conn.is_secure
        conn.write(b"inner\n")
        assert conn.read_line() == b"renni\n"
    server.wait_idle()
    (seen,) = server.seen
    assert seen.server_name == "localhost"


def test_a_proxy_url_pointed_at_a_mail_server_is_a_protocol_error() -> None:
    """Exim greets first (SMTP): a real server whose answer to CONNECT is not HTTP."""
    import peers

    (exim,) = start((peers.exim, (None,)))
    try:
        with pytest.raises(ProxyError) as info:
            inetkit.connect("localhost", 443, timeout=TIMEOUT, proxy=f"http://127.0.0.1:{exim.port}")
    finally:
        exim.stop()
    assert info.value.code is ErrorCode.PROXY_PROTOCOL
    assert "the proxy's answer is not HTTP/1.x: '220 " in str(info.value)


def test_an_https_url_pointed_at_a_plain_proxy_port_fails_the_proxy_handshake(squid: Peer) -> None:
    with pytest.raises(inetkit.SecurityError) as info:
        inetkit.connect("localhost", 443, timeout=TIMEOUT, proxy=f"https://localhost:{squid.ports['open']}")
    assert f"proxy localhost port {squid.ports['open']}" in str(info.value)
    assert not isinstance(info.value, ProxyError)
