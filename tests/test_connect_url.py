"""`inetkit.connect_url` end to end: plain and secure schemes, literals, errors, no user-info leaks."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from certs import PKI
from conftest import Server, free_port
from test_tls_engine import tls_echo

import inetkit
from inetkit import ErrorCode, Option, SecurityCredentials


def test_plain_scheme_with_port(echo_server: Server) -> None:
    with inetkit.connect_url(f"http://127.0.0.1:{echo_server.port}/index.html?q=1", timeout=5) as conn:
        assert not conn.is_secure
        assert conn.port == echo_server.port
        conn.write_line("ping")
        assert conn.read_line() == b"ping\r\n"


def test_ipv6_literal_in_brackets(make_server: Callable[..., Server]) -> None:
    server = make_server(host="::1")
    with inetkit.connect_url(f"telnet://[::1]:{server.port}", timeout=5) as conn:
        assert conn.remote_address == ("::1", server.port)
        assert conn.protocol == inetkit.Protocol.TCP


def test_secure_scheme_turns_on_tls(pki: PKI, make_server: Callable[..., Server]) -> None:
    server = make_server(tls_echo(pki.servers["valid"].context()))
    creds = SecurityCredentials(ca_file=str(pki.ca_file))
    with inetkit.connect_url(f"https://localhost:{server.port}/", credentials=creds, timeout=5) as conn:
        assert conn.is_secure
        assert conn.options & Option.SECURE
        conn.write(b"tls")
        assert conn.read_exactly(3) == b"tls"


def test_secure_scheme_verifies(pki: PKI, make_server: Callable[..., Server]) -> None:
    server = make_server(tls_echo(pki.servers["valid"].context()))
    with pytest.raises(inetkit.CertificateError) as info:  # certifi roots do not know the test CA
        inetkit.connect_url(f"wss://localhost:{server.port}/socket", timeout=5)
    assert info.value.code is ErrorCode.CERTIFICATE_UNTRUSTED


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("", ErrorCode.INVALID_ARGUMENT),
        ("localhost:80", ErrorCode.INVALID_ARGUMENT),
        ("http://", ErrorCode.INVALID_ARGUMENT),
        ("gopher2://example.test/", ErrorCode.INVALID_ARGUMENT),
        ("http://example.test:0/", ErrorCode.INVALID_PORT),
        ("http://example.test:99999/", ErrorCode.INVALID_PORT),
        ("http://exa mple.test/", ErrorCode.INVALID_ARGUMENT),
    ],
)
def test_bad_urls_refused_before_io(url: str, code: ErrorCode) -> None:
    with pytest.raises(inetkit.InvalidArgumentError) as info:
        inetkit.connect_url(url)
    assert info.value.code in (code, ErrorCode.INVALID_HOST_NAME)


def test_user_information_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"ftp://alice:s3cret-pass@127.0.0.1:{port}/pub"
    with caplog.at_level(logging.DEBUG, logger="inetkit"):
        with pytest.raises(inetkit.InetConnectionRefusedError) as info:
            inetkit.connect_url(url, timeout=5)
    assert "s3cret-pass" not in str(info.value)
    assert "s3cret-pass" not in caplog.text
    assert info.value.trace is not None
    assert "s3cret-pass" not in info.value.trace.format()
    with pytest.raises(inetkit.InvalidArgumentError) as bad:
        inetkit.connect_url("ftp://alice:s3cret-pass@exa mple.test/")
    assert "s3cret-pass" not in str(bad.value)


def test_url_type_checked() -> None:
    with pytest.raises(TypeError):
        inetkit.connect_url(b"http://127.0.0.1/")  # type: ignore[arg-type]


def test_unknown_scheme_with_explicit_port_is_plain(echo_server: Server) -> None:
    with inetkit.connect_url(f"myproto://127.0.0.1:{echo_server.port}", timeout=5) as conn:
        assert not conn.is_secure
        assert conn.remote_address == ("127.0.0.1", echo_server.port)
