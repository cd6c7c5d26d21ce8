"""SMTP STARTTLS against a real SMTP server on loopback (aiosmtpd), then mail over TLS.

The server is aiosmtpd's threaded `Controller`: with a ``tls_context`` it
offers STARTTLS (and with ``require_starttls`` refuses mail before it);
without one it does not offer STARTTLS at all, which inetkit must refuse
rather than carry on in plaintext.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import certs
import pytest
from conftest import Server, free_port, require_module
from tls_servers import Servers, open_sockets, sockets_left_open

import inetkit
import inetkit.starttls
from inetkit import (
    CertificateError,
    Connection,
    ErrorCode,
    InetTimeoutError,
    SecurityCredentials,
    SecurityError,
)

#: Connect timeout: the whole dialog and handshake on loopback take milliseconds.
TIMEOUT = 5.0
#: Connect timeout of the deadline test: short, so the test is quick.
SHORT_TIMEOUT = 0.5
#: What the deadline may overshoot by (scheduling on a busy 2-core machine).
DEADLINE_SLACK = 0.5
#: Seconds aiosmtpd may take to start (it starts in well under one).
READY_TIMEOUT = 10.0
#: Tries to start the server on a free port (another process may take the port meanwhile).
START_TRIES = 3
#: Most lines of one SMTP reply the helper reads (aiosmtpd's EHLO reply has about ten).
MAX_REPLY_LINES = 64

SENDER = "alice@example.org"
RECIPIENT = "bob@example.net"
MESSAGE = (
    b"From: alice@example.org\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: over TLS\r\n"
    b"\r\n"
    b"This message travelled after STARTTLS.\r\n"
)

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")


@dataclass
class Delivery:
    """What the SMTP server received in one DATA command."""

    mail_from: str | None
    rcpt_tos: list[str]
    content: bytes
    tls_cipher: tuple[str, str, int] | None


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps every message."""

    deliveries: list[Delivery] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        extra = session.ssl or {}
        content = envelope.original_content or b""
        self.deliveries.append(
            Delivery(envelope.mail_from, list(envelope.rcpt_tos), content, extra.get("cipher"))
        )
        return "250 OK"


@dataclass
class SMTPServer:
    port: int
    recorder: Recorder


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SMTPServer]]:
    """Start aiosmtpd on 127.0.0.1: ``tls`` a server context (or None), ``require_starttls``."""
    require_module("aiosmtpd")
    from aiosmtpd.controller import Controller

    started: list[Any] = []

    def start(tls: ssl.SSLContext | None, *, require_starttls: bool = False) -> SMTPServer:
        recorder = Recorder()
        for attempt in range(START_TRIES):
            controller = Controller(
                recorder,
                hostname="127.0.0.1",
                port=free_port(),
                ready_timeout=READY_TIMEOUT,
                tls_context=tls,
                require_starttls=require_starttls,
            )
            try:
                controller.start()
            except OSError:
                controller.stop(no_assert=True)
                if attempt == START_TRIES - 1:
                    raise
                continue
            started.append(controller)
            return SMTPServer(controller.port, recorder)
        raise AssertionError("unreachable")  # pragma: no cover

    yield start
    for controller in started:
        controller.stop()


def trust(pki: certs.PKI) -> SecurityCredentials:
    return SecurityCredentials(ca_data=pki.root.cert_pem)


def is_secure(conn: Connection) -> bool:
    """``conn.is_secure``, read through a call so that type checkers do not pin it across upgrades."""
    return conn.is_secure


def command(conn: Connection, line: str | bytes | None) -> tuple[int, str]:
    """Send one SMTP command (None: only read) and return the reply's code and last line."""
    if line is not None:
        conn.write_line(line)
    for _ in range(MAX_REPLY_LINES):
        reply = conn.read_line().decode("utf-8", "replace").rstrip("\r\n")
        assert len(reply) >= 3, f"malformed SMTP reply {reply!r}"
        if len(reply) == 3 or reply[3] == " ":
            return int(reply[:3]), reply[4:]
    raise AssertionError("an SMTP reply without end")


def send_mail(conn: Connection) -> None:
    assert command(conn, f"MAIL FROM:<{SENDER}>")[0] == 250
    assert command(conn, f"RCPT TO:<{RECIPIENT}>")[0] == 250
    assert command(conn, "DATA")[0] == 354
    conn.write(MESSAGE + b".\r\n")
    assert command(conn, None)[0] == 250
    assert command(conn, "QUIT")[0] == 221


def check_delivered(server: SMTPServer) -> None:
    (delivery,) = server.recorder.deliveries
    assert delivery.mail_from == SENDER
    assert delivery.rcpt_tos == [RECIPIENT]
    assert delivery.content.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")
    assert delivery.tls_cipher is not None  # the server received it over TLS


def test_connect_with_starttls_smtp_then_send_mail(
    pki: certs.PKI, smtp_server: Callable[..., SMTPServer]
) -> None:
    server = smtp_server(pki.servers["valid"].context(), require_starttls=True)
    with inetkit.connect(
        "localhost", server.port, starttls="smtp", credentials=trust(pki), timeout=TIMEOUT
    ) as conn:
        assert conn.is_secure
        info = conn.security_info
        assert info is not None
        assert info.protocol == "TLSv1.3"
        assert info.peer_certificate is not None
        assert info.peer_certificate.common_name == "localhost"
        trace = conn.trace
        assert trace.starttls is not None and trace.starttls > 0
        assert trace.tls_handshake is not None and trace.tls_handshake > 0
        assert trace.total is not None and trace.total >= trace.starttls + trace.tls_handshake
        assert "starttls dialog" in trace.format()
        assert "tls handshake" in trace.format()
        # The dialog's EHLO over TLS, with parameters: no third EHLO needed to see them.
        extensions = conn.starttls_extensions
        assert extensions is not None
        assert "8BITMIME" in extensions and "STARTTLS" not in extensions
        assert any(line.startswith("SIZE ") for line in extensions)  # aiosmtpd announces its limit
        # The dialog already said EHLO again over TLS; mail can go right away.
        send_mail(conn)
    check_delivered(server)


def test_starttls_smtp_on_a_plain_connection(pki: certs.PKI, smtp_server: Callable[..., SMTPServer]) -> None:
    server = smtp_server(pki.servers["valid"].context(), require_starttls=True)
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as conn:
        assert not is_secure(conn)
        assert conn.starttls_extensions is None
        keywords = inetkit.starttls.smtp(conn, trust(pki))  # 127.0.0.1 is checked against IP SANs
        assert conn.is_secure
        extensions = conn.starttls_extensions
        assert extensions is not None
        assert [line.split(" ", 1)[0].upper() for line in extensions] == keywords
        assert "STARTTLS" not in keywords  # not offered again over TLS
        assert "8BITMIME" in keywords
        send_mail(conn)
    check_delivered(server)


def test_server_requiring_starttls_refuses_mail_in_plaintext(
    pki: certs.PKI, smtp_server: Callable[..., SMTPServer]
) -> None:
    """The twin: the same server takes no mail before STARTTLS, so the mail above went over TLS."""
    server = smtp_server(pki.servers["valid"].context(), require_starttls=True)
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as conn:
        assert command(conn, None)[0] == 220
        assert command(conn, "EHLO [127.0.0.1]")[0] == 250
        code, text = command(conn, f"MAIL FROM:<{SENDER}>")
        assert code == 530
        assert "STARTTLS" in text
        assert command(conn, "QUIT")[0] == 221
    assert server.recorder.deliveries == []


def test_starttls_refused_when_the_server_has_no_tls(
    pki: certs.PKI, smtp_server: Callable[..., SMTPServer]
) -> None:
    server = smtp_server(None)
    before = open_sockets()
    with pytest.raises(SecurityError) as info:
        inetkit.connect("localhost", server.port, starttls="smtp", credentials=trust(pki), timeout=TIMEOUT)
    assert type(info.value) is SecurityError
    assert info.value.code is ErrorCode.STARTTLS_REFUSED
    assert "does not offer STARTTLS" in str(info.value)
    assert f"port {server.port}" in str(info.value)
    assert info.value.trace is not None
    assert info.value.trace.tls_handshake is None  # no handshake was even tried
    assert sockets_left_open(before) == set()  # the connection was closed
    assert server.recorder.deliveries == []


def test_starttls_smtp_function_refuses_when_the_server_has_no_tls(
    pki: certs.PKI, smtp_server: Callable[..., SMTPServer]
) -> None:
    server = smtp_server(None)
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as conn:
        with pytest.raises(SecurityError) as info:
            inetkit.starttls.smtp(conn, trust(pki))
        assert info.value.code is ErrorCode.STARTTLS_REFUSED
        assert not is_secure(conn)


def test_starttls_smtp_function_closes_the_handle_it_refuses(
    pki: certs.PKI, smtp_server: Callable[..., SMTPServer]
) -> None:
    server = smtp_server(None)
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as conn:
        with pytest.raises(SecurityError) as info:
            inetkit.starttls.smtp(conn, trust(pki))
        assert "is closed" in str(info.value)
        assert conn.closed


@pytest.mark.parametrize(
    ("identity", "code"),
    [
        ("untrusted_root", ErrorCode.CERTIFICATE_UNTRUSTED),
        ("wrong_host", ErrorCode.CERTIFICATE_NAME_MISMATCH),
        ("expired", ErrorCode.CERTIFICATE_EXPIRED),
    ],
)
def test_starttls_verifies_the_certificate(
    pki: certs.PKI, smtp_server: Callable[..., SMTPServer], identity: str, code: ErrorCode
) -> None:
    server = smtp_server(pki.servers[identity].context(), require_starttls=True)
    before = open_sockets()
    with pytest.raises(CertificateError) as info:
        inetkit.connect("localhost", server.port, starttls="smtp", credentials=trust(pki), timeout=TIMEOUT)
    assert info.value.code is code
    trace = info.value.trace
    assert trace is not None and trace.tls_handshake is not None
    assert sockets_left_open(before) == set()
    assert server.recorder.deliveries == []


def test_starttls_dialog_counts_against_the_connect_deadline(pki: certs.PKI, servers: Servers) -> None:
    """A server that accepts and never greets: the dialog times out within the connect timeout."""
    silent = servers.python(None)
    before = open_sockets()
    started = time.monotonic()
    with pytest.raises(InetTimeoutError) as info:
        inetkit.connect(
            "localhost", silent.port, starttls="smtp", credentials=trust(pki), timeout=SHORT_TIMEOUT
        )
    elapsed = time.monotonic() - started
    assert SHORT_TIMEOUT * 0.9 <= elapsed < SHORT_TIMEOUT + DEADLINE_SLACK
    assert info.value.code is ErrorCode.TIMED_OUT
    assert sockets_left_open(before) == set()


def _injecting_smtp(sock: socket.socket) -> None:
    """A scripted SMTP peer that appends a forged reply to its "220 Ready to start TLS"."""
    reader = sock.makefile("rb")
    try:
        sock.sendall(b"220 mail.example ESMTP\r\n")
        reader.readline()  # EHLO
        sock.sendall(b"250-mail.example\r\n250 STARTTLS\r\n")
        reader.readline()  # STARTTLS
        sock.sendall(b"220 Ready to start TLS\r\n250 forged in plaintext\r\n")
        while reader.read(1):  # until the client hangs up
            pass
    finally:
        reader.close()


def test_starttls_refuses_plaintext_after_the_go_ahead(
    pki: certs.PKI, make_server: Callable[..., Server]
) -> None:
    """Bytes injected after "220 Ready" would pass for protected data: nothing is upgraded."""
    server = make_server(_injecting_smtp)
    before = open_sockets()
    with pytest.raises(SecurityError) as info:
        inetkit.connect("localhost", server.port, starttls="smtp", credentials=trust(pki), timeout=TIMEOUT)
    assert type(info.value) is SecurityError
    assert info.value.code is ErrorCode.UNEXPECTED_PLAINTEXT
    assert sockets_left_open(before) == set()
