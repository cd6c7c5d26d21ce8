"""The asyncio STARTTLS driver (`AsyncConnection._run_dialog`, `enable_security`) against real servers:
SMTP (aiosmtpd) and FTP (pyftpdlib), the same dialogs and errors as the blocking driver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import certs
import peers
import pytest
from aio_io_support import LOOPS, TIMEOUT, open_handle, run
from conftest import Server
from test_starttls import (  # the SMTP server fixture and its helpers, shared with the blocking tests
    MESSAGE,
    RECIPIENT,
    SENDER,
    SMTPServer,
    _injecting_smtp,
    check_delivered,
    smtp_server,
)
from tls_servers import Servers, open_sockets, sockets_left_open

import inetkit
import inetkit.starttls
from inetkit import (
    CertificateError,
    ErrorCode,
    InetTimeoutError,
    InvalidArgumentError,
    SecurityCredentials,
    SecurityError,
)
from inetkit.aio import AsyncConnection

__all__ = ["smtp_server"]  # a fixture, used by `smtp`

pytestmark = [pytest.mark.parametrize("loop", LOOPS), pytest.mark.usefixtures("fresh_tls_caches")]

#: Most lines of one reply the helpers read (real replies have a few).
MAX_REPLY_LINES = 64


@pytest.fixture
def smtp(smtp_server: Callable[..., SMTPServer]) -> Iterator[Callable[..., SMTPServer]]:
    """The blocking tests' aiosmtpd fixture; at the end, every connection made since it started is closed.

    Both ends: ours when the handle closes, the server's shortly after (a
    server stopped before that would drop its socket unclosed).
    """
    listening: list[set[str]] = []

    def start(*args: object, **kw: object) -> SMTPServer:
        server = smtp_server(*args, **kw)
        listening.append(open_sockets())
        return server

    yield start
    if listening:
        assert sockets_left_open(listening[-1]) == set()


def trust(pki: certs.PKI) -> SecurityCredentials:
    return SecurityCredentials(ca_data=pki.root.cert_pem)


async def command(conn: AsyncConnection, line: str | bytes | None) -> tuple[int, str]:
    """One SMTP command (None: only read); the reply's code and last line."""
    if line is not None:
        await conn.write_line(line)
    for _ in range(MAX_REPLY_LINES):
        reply = (await conn.read_line()).decode("utf-8", "replace").rstrip("\r\n")
        assert len(reply) >= 3, f"malformed SMTP reply {reply!r}"
        if len(reply) == 3 or reply[3] == " ":
            return int(reply[:3]), reply[4:]
    raise AssertionError("an SMTP reply without end")


async def dialog_handle(
    host: str, port: int, credentials: SecurityCredentials | None, name: str, timeout: float = TIMEOUT
) -> tuple[AsyncConnection, object]:
    """A plain handle, then the dialog ``name`` under one deadline, as the connect driver runs it."""
    conn = await open_handle(host, port, credentials=credentials, timeout=timeout)
    deadline = time.monotonic() + timeout
    result = await conn._run_dialog(name, deadline)
    return conn, result


# -- SMTP: aiosmtpd -----------------------------------------------------------------------------


def test_smtp_dialog_then_mail_over_tls(loop: str, pki: certs.PKI, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(pki.servers["valid"].context(), require_starttls=True)

    async def main() -> object:
        conn, keywords = await dialog_handle("localhost", server.port, trust(pki), "smtp")
        async with conn:
            assert conn.is_secure
            info = conn.security_info
            assert info is not None and info.peer_certificate is not None
            assert info.peer_certificate.common_name == "localhost"
            trace = conn.trace
            assert trace.starttls is not None and trace.starttls > 0
            assert trace.tls_handshake is not None and trace.tls_handshake > 0
            assert conn.timeout == TIMEOUT  # the dialog's per-step timeouts are undone
            # The EHLO over TLS with its parameters, as on a blocking handle.
            extensions = conn.starttls_extensions
            assert extensions is not None
            assert [line.split(" ", 1)[0].upper() for line in extensions] == keywords
            assert any(line.startswith("SIZE ") for line in extensions)
            assert await command(conn, f"MAIL FROM:<{SENDER}>") == (250, "OK")
            assert (await command(conn, f"RCPT TO:<{RECIPIENT}>"))[0] == 250
            assert (await command(conn, "DATA"))[0] == 354
            await conn.write(MESSAGE + b".\r\n")
            assert (await command(conn, None))[0] == 250
            assert (await command(conn, "QUIT"))[0] == 221
        return keywords

    keywords = run(loop, main)
    check_delivered(server)
    with inetkit.connect("localhost", server.port, timeout=TIMEOUT) as blocking:
        assert inetkit.starttls.smtp(blocking, trust(pki)) == keywords  # the same dialog, the same result
    assert isinstance(keywords, list) and "8BITMIME" in keywords and "STARTTLS" not in keywords


def test_smtp_refused_as_blocking(loop: str, pki: certs.PKI, smtp: Callable[..., SMTPServer]) -> None:
    server = smtp(None)
    before = open_sockets()

    async def main() -> tuple[BaseException, AsyncConnection]:
        conn = await open_handle("127.0.0.1", server.port, credentials=trust(pki))
        with pytest.raises(SecurityError) as info:
            await conn._run_dialog("smtp", None)
        return info.value, conn

    mine, conn = run(loop, main)
    assert conn.closed  # fail closed
    assert sockets_left_open(before) == set()
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as blocking:
        with pytest.raises(SecurityError) as theirs:
            inetkit.starttls.smtp(blocking, trust(pki))
    assert isinstance(mine, SecurityError)
    assert mine.code is ErrorCode.STARTTLS_REFUSED
    assert mine.message == theirs.value.message
    assert "was not upgraded and is closed" in mine.message
    assert server.recorder.deliveries == []


@pytest.mark.parametrize(
    ("identity", "code"),
    [
        ("untrusted_root", ErrorCode.CERTIFICATE_UNTRUSTED),
        ("wrong_host", ErrorCode.CERTIFICATE_NAME_MISMATCH),
    ],
)
def test_smtp_dialog_verifies_the_certificate(
    loop: str, pki: certs.PKI, smtp: Callable[..., SMTPServer], identity: str, code: ErrorCode
) -> None:
    server = smtp(pki.servers[identity].context(), require_starttls=True)

    async def main() -> AsyncConnection:
        conn = await open_handle("localhost", server.port, credentials=trust(pki))
        with pytest.raises(CertificateError) as info:
            await conn._run_dialog("smtp", None)
        assert info.value.code is code
        assert conn.trace.tls_handshake is not None
        return conn

    assert run(loop, main).closed


def test_plaintext_after_the_go_ahead_is_refused(
    loop: str, pki: certs.PKI, make_server: Callable[..., Server]
) -> None:
    server = make_server(_injecting_smtp)

    async def main() -> AsyncConnection:
        conn = await open_handle("localhost", server.port, credentials=trust(pki))
        with pytest.raises(SecurityError) as info:
            await conn._run_dialog("smtp", None)
        assert info.value.code is ErrorCode.UNEXPECTED_PLAINTEXT
        return conn

    conn = run(loop, main)
    assert conn.closed and not conn.is_secure


def test_dialog_deadline_and_cancellation_close_the_handle(
    loop: str, pki: certs.PKI, servers: Servers
) -> None:
    silent = servers.python(None)  # accepts, never greets
    before = open_sockets()

    async def main() -> None:
        conn = await open_handle("localhost", silent.port, credentials=trust(pki), timeout=None)
        with pytest.raises(InetTimeoutError) as info:
            await asyncio.wait_for(conn._run_dialog("smtp", time.monotonic() + 0.3), TIMEOUT)
        assert info.value.code is ErrorCode.TIMED_OUT
        assert conn.closed
        other = await open_handle("localhost", silent.port, credentials=trust(pki), timeout=None)
        task = asyncio.create_task(other._run_dialog("smtp", None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert other.closed

    run(loop, main)
    assert sockets_left_open(before) == set()


def test_unknown_dialog_name(loop: str, servers: Servers) -> None:
    silent = servers.python(None)

    async def main() -> None:
        async with await open_handle("127.0.0.1", silent.port) as conn:
            with pytest.raises(InvalidArgumentError) as info:
                await conn._run_dialog("gopher", None)
            assert "unknown starttls dialog 'gopher'" in info.value.message
            assert not conn.closed  # refused before any I/O

    run(loop, main)


# -- FTP: pyftpdlib -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ftp_server(pki: certs.PKI) -> Iterator[peers.Peer]:
    (server,) = peers.start((peers.pyftpdlib, (pki.servers["valid"],)))
    try:
        yield server
    finally:
        server.stop()


async def ftp_reply(conn: AsyncConnection) -> str:
    first = (await conn.read_line()).decode().rstrip("\r\n")
    if first[3:4] == "-":
        for _ in range(MAX_REPLY_LINES):
            if (await conn.read_line()).decode().startswith(first[:3] + " "):
                break
    return first


def test_ftp_auth_tls_then_login(loop: str, pki: certs.PKI, ftp_server: peers.Peer) -> None:
    async def main() -> None:
        conn, result = await dialog_handle("localhost", ftp_server.port, trust(pki), "ftp")
        async with conn:
            assert result is None
            assert conn.is_secure and conn.trace.starttls is not None
            await conn.write_line(f"USER {peers.FTP_USER}")
            assert (await ftp_reply(conn)).startswith("331")
            await conn.write_line(f"PASS {peers.FTP_PASSWORD}")
            assert (await ftp_reply(conn)).startswith("230")
            await conn.write_line("PWD")
            assert (await ftp_reply(conn)).startswith('257 "/"')
            await conn.write_line("QUIT")
            assert (await ftp_reply(conn)).startswith("221")

    run(loop, main)
