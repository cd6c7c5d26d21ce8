"""``inetkit.aio.connect(proxy=...)`` against the real proxies of the blocking tests, on every loop.

The proxies are ``test_proxy_servers``'s (``proxy_peers``: squid, dante,
``ssh -D``), the targets the same echo and Python TLS servers. Each proxy
kind carries a plain and a TLS target; an ``https://`` proxy carries TLS
inside TLS, full duplex; each failure a real server produces is produced
through both drivers and must read the same (class, code, message, trace
attempts); a cancellation in the middle of the proxy's TLS or its dialog
leaves no descriptor, task or loop callback behind. Scripted peers only
for a proxy that never answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, urlsplit

import certs
import proxy_peers
import pytest
import test_proxy_servers as blocking_tests
from aio_connect_support import Run, loop_fixture
from conftest import Server, free_port, silent_listener
from peers import Peer
from test_aio_connect import (
    AsyncResolver,
    assert_same_error,
    async_error,
    blocking_error,
    cancelled_after,
    counted,
)
from test_proxy_servers import KINDS, TIMEOUT, proxy_port, socks_auth_url, squid_auth_url, trust
from tls_servers import Servers

import inetkit
import inetkit.aio
from inetkit import CertificateError, ErrorCode, InetTimeoutError, Option, ProxyError

arun = loop_fixture()

# The real proxies and their URLs: the blocking tests' own fixtures (module-scoped here too).
squid = blocking_tests.squid
dante = blocking_tests.dante
dante_auth = blocking_tests.dante_auth
ssh_socks = blocking_tests.ssh_socks
blocked_target = blocking_tests.blocked_target
url_of = blocking_tests.url_of

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")


# -- each kind carries a plain and a TLS target ----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_plain_target_through_each_proxy(
    kind: str, url_of: Callable[[str], str], echo_server: Server, pki: certs.PKI, arun: Run[Any]
) -> None:
    url = url_of(kind)

    async def main() -> inetkit.ConnectTrace:
        conn = await inetkit.aio.connect(
            "localhost", echo_server.port, timeout=TIMEOUT, proxy=url, credentials=trust(pki)
        )
        async with conn:
            await conn.write(b"through the proxy\n")
            assert await conn.read_line() == b"through the proxy\n"
            assert conn.host_name == "localhost" and conn.port == echo_server.port
            assert conn.remote_address == ("127.0.0.1", proxy_port(url))  # the socket's real peer
            assert not conn.is_secure
            return conn.trace

    trace = arun(main())
    assert trace.proxy is not None
    parts = urlsplit(url)
    assert trace.proxy.endpoint == f"{parts.scheme}://{parts.hostname}:{parts.port}"
    assert trace.proxy.dialog is not None and trace.proxy.dialog > 0
    assert (trace.proxy.tls_handshake is not None) == (kind == "https")
    assert (trace.proxy.target_address is not None) == (kind == "socks5")
    assert [attempt.port for attempt in trace.attempts] == [proxy_port(url)]
    assert trace.total is not None and trace.total >= trace.proxy.dialog
    assert "proxy:" in trace.format()


@pytest.mark.parametrize("kind", KINDS)
def test_tls_target_through_each_proxy_verifies_the_target(
    kind: str, url_of: Callable[[str], str], servers: Servers, pki: certs.PKI, arun: Run[Any]
) -> None:
    url = url_of(kind)
    server = servers.python(pki.servers["valid"].context())

    async def main() -> inetkit.ConnectTrace:
        async with await inetkit.aio.connect(
            "localhost",
            server.port,
            options=Option.SECURE,
            credentials=trust(pki),
            timeout=TIMEOUT,
            proxy=url,
        ) as conn:
            await conn.write(b"ping\n")
            assert await conn.read_line() == b"gnip\n"
            assert conn.is_secure
            info = conn.security_info
            assert info is not None and info.peer_certificate is not None
            assert "localhost" in str(info.peer_certificate.subject)
            return conn.trace

    trace = arun(main())
    assert trace.tls_handshake is not None and trace.proxy is not None
    assert (trace.proxy.tls_handshake is not None) == (kind == "https")
    server.wait_idle()
    (seen,) = server.seen
    assert seen.server_name == "localhost"  # SNI is the target's, through the tunnel


def test_connect_url_takes_a_proxy(squid: Peer, servers: Servers, pki: certs.PKI, arun: Run[Any]) -> None:
    server = servers.python(pki.servers["valid"].context())

    async def main() -> None:
        async with await inetkit.aio.connect_url(
            f"https://localhost:{server.port}/",
            credentials=trust(pki),
            timeout=TIMEOUT,
            proxy=f"https://localhost:{squid.ports['tls']}",
        ) as conn:
            assert conn.is_secure
            await conn.write(b"abc\n")
            assert await conn.read_line() == b"cba\n"

    arun(main())


def test_tls_in_tls_reads_while_writing(
    squid: Peer, servers: Servers, pki: certs.PKI, arun: Run[Any]
) -> None:
    """TLS inside TLS keeps the duplex promise: one task reads while another writes, 2 MB each way."""
    server = servers.python(pki.servers["valid"].context())
    lines = [f"line {n} ".encode() * 100 for n in range(2000)]  # about 1.6 MB: many records, both layers

    async def main() -> list[bytes]:
        async with await inetkit.aio.connect(
            "localhost",
            server.port,
            options=Option.SECURE,
            credentials=trust(pki),
            timeout=TIMEOUT,
            proxy=f"https://localhost:{squid.ports['tls']}",
        ) as conn:

            async def reader() -> list[bytes]:
                return [await conn.read_line(65536) for _ in lines]

            async def writer() -> None:
                for line in lines:
                    await conn.write(line + b"\n")

            got, _ = await asyncio.gather(reader(), writer())
            assert not await conn.is_readable()
            return got

    assert arun(main()) == [line[::-1] + b"\n" for line in lines]


def test_is_readable_through_tls_in_tls(
    squid: Peer, servers: Servers, pki: certs.PKI, arun: Run[Any]
) -> None:
    server = servers.python(pki.servers["valid"].context())

    async def main() -> None:
        async with await inetkit.aio.connect(
            "localhost",
            server.port,
            options=Option.SECURE,
            credentials=trust(pki),
            timeout=TIMEOUT,
            proxy=f"https://localhost:{squid.ports['tls']}",
        ) as conn:
            assert not await conn.is_readable()
            await conn.write(b"one\ntwo\n")
            assert await conn.is_readable(TIMEOUT)
            assert await conn.read_line() == b"eno\n"
            assert await conn.is_readable(TIMEOUT)  # the second line: buffered, or in a layer below
            assert await conn.read_line() == b"owt\n"

    arun(main())


def test_is_readable_sees_what_the_proxy_layer_holds(
    squid: Peer, servers: Servers, pki: certs.PKI, arun: Run[Any]
) -> None:
    """Small reads of a large answer through TLS inside TLS: whenever bytes are left, is_readable says so.

    Part of what is left often sits decrypted in the proxy's layer while
    the socket is empty: only the layer below can tell.
    """
    size = 400_000  # many records of both layers, more than one receive of each
    body = bytes(range(256)) * (size // 256)

    def bulk(tls: socket.socket, seen: object) -> None:
        tls.recv(16)  # the request
        tls.sendall(body)
        tls.recv(16)  # until the client has read it all and closes

    server = servers.python(pki.servers["valid"].context(), app=bulk)

    async def main() -> bytes:
        got = bytearray()
        async with await inetkit.aio.connect(
            "localhost",
            server.port,
            options=Option.SECURE,
            credentials=trust(pki),
            timeout=TIMEOUT,
            proxy=f"https://localhost:{squid.ports['tls']}",
        ) as conn:
            await conn.write(b"go\n")
            for _ in range(size):  # bounded: each turn reads at least one byte
                if len(got) == len(body):
                    break
                assert await conn.is_readable(5.0), f"not readable after {len(got)} of {len(body)} bytes"
                got += await conn.read(1000)
        return bytes(got)

    assert arun(main()) == body


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_enable_security_through_the_proxy_after_a_plain_exchange(
    scheme: str, squid: Peer, servers: Servers, pki: certs.PKI, arun: Run[Any]
) -> None:
    """An in-band upgrade through the tunnel: over an https:// proxy that is TLS inside TLS."""
    server = servers.python(pki.servers["valid"].context(), expect=b"STARTTLS\n", reply=[b"GO\n"])
    port = squid.ports["open" if scheme == "http" else "tls"]

    async def main() -> None:
        async with await inetkit.aio.connect(
            "localhost",
            server.port,
            timeout=TIMEOUT,
            credentials=trust(pki),
            proxy=f"{scheme}://localhost:{port}",
        ) as conn:
            await conn.write(b"STARTTLS\n")
            assert await conn.read_line() == b"GO\n"
            assert not conn.is_secure  # the hop to an https:// proxy is not the target's TLS
            await conn.enable_security()
            assert conn.is_secure
            await conn.write(b"inner\n")
            assert await conn.read_line() == b"renni\n"

    arun(main())
    server.wait_idle()
    (seen,) = server.seen
    assert seen.server_name == "localhost"


def test_pins_apply_to_the_target_only(squid: Peer, servers: Servers, pki: certs.PKI, arun: Run[Any]) -> None:
    from cryptography.hazmat.primitives import serialization

    from inetkit._tls import public_key_pin

    server = servers.python(pki.servers["valid"].context())
    leaf = pki.servers["valid"].leaf.cert.public_bytes(serialization.Encoding.DER)
    credentials = trust(pki, pinned_public_keys=[public_key_pin(leaf)])

    async def main() -> None:
        async with await inetkit.aio.connect(
            "localhost",
            server.port,
            options=Option.SECURE,
            credentials=credentials,
            timeout=TIMEOUT,
            proxy=f"https://localhost:{squid.ports['tls']}",
        ) as conn:
            await conn.write(b"pin\n")
            assert await conn.read_line() == b"nip\n"

    arun(main())


def test_a_custom_aresolve_resolves_the_proxy_and_the_socks5_target(
    dante: Peer, echo_server: Server, arun: Run[Any]
) -> None:
    """socks5://: the proxy's name and the target's both go through the resolver's ``aresolve``."""
    resolver = AsyncResolver([(socket.AF_INET, ("127.0.0.1", dante.port))], delay=0.01)

    async def main() -> inetkit.ConnectTrace:
        async with await inetkit.aio.connect(
            "target.test",
            echo_server.port,
            timeout=TIMEOUT,
            resolver=resolver,
            proxy=f"socks5://proxy.test:{dante.port}",
        ) as conn:
            await conn.write(b"resolved here\n")
            assert await conn.read_line() == b"resolved here\n"
            return conn.trace

    trace = arun(main())
    assert [(host, port) for host, port, _, _ in resolver.calls] == [
        ("proxy.test", dante.port),
        ("target.test", echo_server.port),
    ]
    assert all(deadline is not None for _, _, _, deadline in resolver.calls)  # the one deadline
    assert trace.proxy is not None and trace.proxy.target_address == "127.0.0.1"
    assert trace.resolution is not None and trace.resolution.addresses == ["127.0.0.1"]


# -- the same failure through both drivers reads the same ----------------------------------------


def same_failure(arun: Run[Any], *args: Any, **kwargs: Any) -> BaseException:
    """Fail the connect through both drivers; assert equal class, code, message and attempts; the error."""
    blocking = blocking_error(*args, **kwargs)
    ours = arun(async_error(*args, **kwargs))
    assert_same_error(ours, blocking)
    assert isinstance(ours, inetkit.InetError) and ours.trace is not None
    assert ours.trace.proxy is not None and blocking.trace is not None  # type: ignore[attr-defined]
    assert ours.trace.proxy.endpoint == blocking.trace.proxy.endpoint  # type: ignore[attr-defined]
    assert (ours.trace.proxy.dialog is None) == (blocking.trace.proxy.dialog is None)  # type: ignore[attr-defined]
    return ours


def test_squid_403_for_a_denied_port(squid: Peer, arun: Run[Any]) -> None:
    error = same_failure(
        arun, "127.0.0.1", 25, timeout=TIMEOUT, proxy=f"http://127.0.0.1:{squid.ports['open']}"
    )
    assert isinstance(error, ProxyError) and error.code is ErrorCode.PROXY_REFUSED
    assert "'HTTP/1.1 403 Forbidden'" in str(error)


def test_squid_503_for_a_closed_target(squid: Peer, arun: Run[Any]) -> None:
    port = free_port()
    error = same_failure(
        arun, "127.0.0.1", port, timeout=TIMEOUT, proxy=f"http://127.0.0.1:{squid.ports['open']}"
    )
    assert isinstance(error, ProxyError) and error.code is ErrorCode.PROXY_REFUSED
    assert " 503 " in str(error)


@pytest.mark.parametrize("password", [None, "not-the-password"])
def test_squid_407_without_or_with_wrong_credentials(
    squid: Peer, echo_server: Server, password: str | None, caplog: pytest.LogCaptureFixture, arun: Run[Any]
) -> None:
    caplog.set_level(logging.DEBUG, logger="inetkit")
    url = f"http://127.0.0.1:{squid.ports['auth']}" if password is None else squid_auth_url(squid, password)
    error = same_failure(arun, "127.0.0.1", echo_server.port, timeout=TIMEOUT, proxy=url)
    assert isinstance(error, ProxyError) and error.code is ErrorCode.PROXY_AUTH_REQUIRED
    assert " 407 " in str(error)
    if password is not None:
        assert error.trace is not None
        texts = [str(error), repr(error), error.trace.format(), repr(error.trace), caplog.text]
        assert all(password not in text and quote(password) not in text for text in texts)


def test_squid_https_port_with_a_foreign_certificate_names_the_proxy(
    squid: Peer, echo_server: Server, pki: certs.PKI, arun: Run[Any]
) -> None:
    for options in (Option.NONE, Option.TRUSTEDSITE):  # TRUSTEDSITE is the target's, not the proxy's
        error = same_failure(
            arun,
            "127.0.0.1",
            echo_server.port,
            options=options,
            credentials=trust(pki),
            timeout=TIMEOUT,
            proxy=f"https://localhost:{squid.ports['badtls']}",
        )
        assert isinstance(error, CertificateError) and error.code is ErrorCode.CERTIFICATE_UNTRUSTED
        assert f"proxy localhost port {squid.ports['badtls']}" in str(error)


@pytest.mark.parametrize("kind", ["http", "https", "socks5h", "socks4a"])
def test_a_wrong_target_certificate(
    kind: str, url_of: Callable[[str], str], servers: Servers, pki: certs.PKI, arun: Run[Any]
) -> None:
    server = servers.python(pki.servers["wrong_host"].context())
    error = same_failure(
        arun,
        "localhost",
        server.port,
        options=Option.SECURE,
        credentials=trust(pki),
        timeout=TIMEOUT,
        proxy=url_of(kind),
    )
    assert isinstance(error, CertificateError) and error.code is ErrorCode.CERTIFICATE_NAME_MISMATCH
    assert f"localhost port {server.port} through proxy" in str(error)


def test_a_wrong_pin_names_the_target_through_the_proxy(
    squid: Peer, servers: Servers, pki: certs.PKI, arun: Run[Any]
) -> None:
    server = servers.python(pki.servers["valid"].context())
    error = same_failure(
        arun,
        "localhost",
        server.port,
        options=Option.SECURE,
        credentials=trust(pki, pinned_public_keys=["sha256//" + "A" * 43 + "="]),
        timeout=TIMEOUT,
        proxy=f"https://localhost:{squid.ports['tls']}",
    )
    assert isinstance(error, inetkit.SecurityError) and error.code is ErrorCode.PIN_MISMATCH


def test_an_https_url_pointed_at_a_plain_proxy_port(squid: Peer, arun: Run[Any]) -> None:
    error = same_failure(
        arun, "localhost", 443, timeout=TIMEOUT, proxy=f"https://localhost:{squid.ports['open']}"
    )
    assert isinstance(error, inetkit.SecurityError) and not isinstance(error, ProxyError)
    assert f"proxy localhost port {squid.ports['open']}" in str(error)


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_dante_reply_2_for_a_blocked_target(
    dante: Peer, blocked_target: int, scheme: str, arun: Run[Any]
) -> None:
    url = f"{scheme}://127.0.0.1:{dante.port}"
    error = same_failure(arun, "127.0.0.1", blocked_target, timeout=TIMEOUT, proxy=url)
    assert isinstance(error, ProxyError) and error.code is ErrorCode.PROXY_REFUSED
    assert "SOCKS5 reply 2 (connection not allowed by ruleset)" in str(error)


def test_dante_reply_5_for_a_closed_target(dante: Peer, arun: Run[Any]) -> None:
    error = same_failure(
        arun, "127.0.0.1", free_port(), timeout=TIMEOUT, proxy=f"socks5://127.0.0.1:{dante.port}"
    )
    assert isinstance(error, ProxyError) and error.code is ErrorCode.PROXY_REFUSED
    assert "SOCKS5 reply 5 (connection refused)" in str(error)


def test_dante_user_name_auth(
    dante_auth: Peer, echo_server: Server, caplog: pytest.LogCaptureFixture, arun: Run[Any]
) -> None:
    caplog.set_level(logging.DEBUG, logger="inetkit")
    wrong = "not-the-rabbit"
    url = socks_auth_url(dante_auth, "socks5", wrong)
    error = same_failure(arun, "127.0.0.1", echo_server.port, timeout=TIMEOUT, proxy=url)
    assert isinstance(error, ProxyError) and error.code is ErrorCode.PROXY_AUTH_REQUIRED
    assert "refused the user name and password" in str(error)
    assert error.trace is not None
    for text in (str(error), repr(error), error.trace.format(), repr(error.trace), caplog.text):
        assert wrong not in text and proxy_peers.SOCKS_USER + ":" not in text
    error = same_failure(
        arun, "127.0.0.1", echo_server.port, timeout=TIMEOUT, proxy=f"socks5://127.0.0.1:{dante_auth.port}"
    )
    assert isinstance(error, ProxyError) and error.code is ErrorCode.PROXY_AUTH_REQUIRED
    assert "reply 05 ff" in str(error)

    async def works() -> None:
        right = socks_auth_url(dante_auth, "socks5h")
        async with await inetkit.aio.connect(
            "localhost", echo_server.port, timeout=TIMEOUT, proxy=right
        ) as conn:
            await conn.write(b"ok\n")
            assert await conn.read_line() == b"ok\n"

    arun(works())
    assert proxy_peers.SOCKS_PASSWORD not in caplog.text


@pytest.mark.parametrize("scheme", ["socks4a", "socks5h"])
def test_ssh_closes_without_a_reply_for_a_closed_target(ssh_socks: Peer, scheme: str, arun: Run[Any]) -> None:
    url = f"{scheme}://127.0.0.1:{ssh_socks.port}"
    error = same_failure(arun, "localhost", free_port(), timeout=TIMEOUT, proxy=url)
    assert isinstance(error, ProxyError) and error.code is ErrorCode.PROXY_REFUSED
    assert "closed the connection instead of sending its reply" in str(error)


@pytest.mark.parametrize("scheme", ["http", "https", "socks5", "socks4a"])
def test_a_refused_connection_to_the_proxy_names_the_proxy(scheme: str, arun: Run[Any]) -> None:
    port = free_port()
    error = same_failure(
        arun,
        "example.invalid",
        443,
        timeout=TIMEOUT,
        proxy=f"{scheme}://127.0.0.1:{port}",
        resolver=inetkit.Resolver(overrides={"example.invalid": ["192.0.2.1"]}),
    )
    assert (
        isinstance(error, inetkit.InetConnectionRefusedError) and error.code is ErrorCode.CONNECTION_REFUSED
    )
    assert f"the proxy {scheme}://127.0.0.1:{port} for example.invalid port 443 was the peer" in str(error)


def test_a_proxy_name_that_does_not_resolve_names_the_proxy(arun: Run[Any]) -> None:
    error = same_failure(arun, "localhost", 443, timeout=TIMEOUT, proxy="http://proxy.invalid:3128")
    assert isinstance(error, inetkit.HostNotFoundError)
    assert "the proxy http://proxy.invalid:3128 for localhost port 443 was the peer" in str(error)


@pytest.mark.parametrize("scheme", ["http", "https", "socks5h"])
def test_a_proxy_that_never_answers_times_out_at_the_deadline(scheme: str, arun: Run[Any]) -> None:
    """A scripted peer: a listener that never accepts (the kernel completes the handshake)."""
    with silent_listener(4) as port:
        error = same_failure(arun, "localhost", 443, timeout=0.3, proxy=f"{scheme}://127.0.0.1:{port}")
    assert isinstance(error, InetTimeoutError) and error.code is ErrorCode.TIMED_OUT
    assert "proxy" in str(error)


# -- cancellation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https", "socks5h", "socks4a"])
def test_cancelled_mid_dialog_closes_everything(scheme: str, arun: Run[Any]) -> None:
    """Cancelled while the proxy's TLS or dialog waits: the proxy socket is closed, nothing is left."""
    with silent_listener(4) as port:

        async def main() -> tuple[int, int, int]:
            connecting = inetkit.aio.connect(
                "localhost", 443, timeout=10, proxy=f"{scheme}://127.0.0.1:{port}"
            )
            return await counted(lambda: cancelled_after(0.1, connecting))

        assert arun(main()) == (0, 0, 0)


def test_cancelled_at_random_points_through_real_proxies(
    squid: Peer, dante: Peer, servers: Servers, pki: certs.PKI, arun: Run[Any]
) -> None:
    """Connects through squid (https, TLS target) and dante cancelled at random moments leak nothing."""
    server = servers.python(pki.servers["valid"].context())
    rng = random.Random(11)  # fixed: a failure replays
    urls = [f"https://localhost:{squid.ports['tls']}", f"socks5h://127.0.0.1:{dante.port}"]

    async def one(url: str, delay: float) -> None:
        task = asyncio.ensure_future(
            inetkit.aio.connect(
                "localhost",
                server.port,
                options=Option.SECURE,
                credentials=trust(pki),
                timeout=TIMEOUT,
                proxy=url,
            )
        )
        await asyncio.sleep(delay)
        task.cancel()
        try:
            conn = await task
        except asyncio.CancelledError:
            return
        await conn.aclose()  # finished before the cancel landed

    async def rounds() -> None:
        for n in range(40):  # bounded: 40 connects, each cancelled within 30 ms
            await one(urls[n % 2], rng.uniform(0.0, 0.03))

    async def main() -> tuple[int, int, int]:
        return await counted(rounds)

    assert arun(main()) == (0, 0, 0)


# -- the signature ---------------------------------------------------------------------------------


def test_bad_proxy_urls_fail_before_any_io_as_in_the_blocking_connect(arun: Run[Any]) -> None:
    for url in ("ftp://127.0.0.1:21", "http://", "socks5://127.0.0.1:notaport", "http://[::1"):
        blocking = blocking_error("localhost", 443, proxy=url)
        ours = arun(async_error("localhost", 443, proxy=url))
        assert type(ours) is type(blocking) and str(ours) == str(blocking)
        ours = arun(_url_error(url))
        assert type(ours) is type(blocking)


def _url_error(proxy: str) -> Coroutine[Any, Any, BaseException]:
    async def main() -> BaseException:
        try:
            await inetkit.aio.connect_url("https://localhost/", proxy=proxy)
        except BaseException as exc:
            return exc
        pytest.fail("connect_url did not fail")

    return main()
