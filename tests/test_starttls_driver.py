"""The blocking STARTTLS driver (inetkit.starttls) over real loopback sockets with scripted peers.

What the made-up-bytes tests cannot show: that the driver leaves bytes the
server pipelined behind its go-ahead where ``enable_security`` finds them
(``UNEXPECTED_PLAINTEXT``), that its reads are bounded, that every dialog
counts against the connect deadline, and that a failed dialog closes the
handle. The peers here are scripts: each exchange is "expect these bytes from
the client, then send those".
"""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import Callable

import certs
import pytest
from conftest import Server, silent_listener
from tls_servers import Servers, open_sockets, sockets_left_open

import inetkit
import inetkit.starttls
from inetkit import (
    ErrorCode,
    InetTimeoutError,
    InvalidArgumentError,
    Option,
    Protocol,
    SecurityCredentials,
    SecurityError,
)
from inetkit._connect import STARTTLS_DIALOGS
from inetkit._core.dialogs import NAMES
from inetkit._core.dialogs.ldap import STARTTLS_REQUEST
from inetkit._core.dialogs.postgres import SSL_REQUEST
from inetkit._core.dialogs.xmpp import STARTTLS_ELEMENT, stream_header

#: Connect timeout of the tests that expect an answer (loopback answers in milliseconds).
TIMEOUT = 5.0
#: Connect timeout of the deadline tests: short, so they are quick.
SHORT_TIMEOUT = 0.3
#: What a deadline may overshoot by (scheduling on a busy 2-core machine).
DEADLINE_SLACK = 0.5
#: Most bytes a scripted peer reads for one expected request.
MAX_REQUEST = 4096

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")

Exchange = tuple[bytes, bytes]  # (what the client must send, what the server answers)


def scripted(exchanges: list[Exchange]) -> Callable[[socket.socket], None]:
    """A peer that, for each exchange, reads exactly the expected bytes and sends the answer."""

    def serve(sock: socket.socket) -> None:
        for expected, answer in exchanges:
            got = b""
            while len(got) < len(expected):
                chunk = sock.recv(min(MAX_REQUEST, len(expected) - len(got)))
                if not chunk:
                    return
                got += chunk
            if got != expected:
                return  # the client said something else: hang up, the test fails on its side
            if answer:
                sock.sendall(answer)
        while sock.recv(MAX_REQUEST):  # until the client hangs up
            pass

    return serve


def trust(pki: certs.PKI) -> SecurityCredentials:
    return SecurityCredentials(ca_data=pki.root.cert_pem)


XMPP_UNTIL_FEATURES = (
    b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
    b"version='1.0' xmlns='jabber:client' from='localhost' id='1'>"
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"
)
LDAP_SUCCESS = bytes.fromhex("300c02010178070a010004000400")

#: Per dialog: the exchanges up to the go-ahead, which is the last answer.
UNTIL_GO_AHEAD: dict[str, list[Exchange]] = {
    "smtp": [
        (b"", b"220 mail.example ESMTP\r\n"),
        (b"EHLO [127.0.0.1]\r\n", b"250-mail.example\r\n250 STARTTLS\r\n"),
        (b"STARTTLS\r\n", b"220 go ahead\r\n"),
    ],
    "imap": [
        (b"", b"* OK ready\r\n"),
        (b"A1 CAPABILITY\r\n", b"* CAPABILITY IMAP4rev1 STARTTLS\r\nA1 OK\r\n"),
        (b"A2 STARTTLS\r\n", b"A2 OK begin TLS\r\n"),
    ],
    "pop3": [
        (b"", b"+OK ready\r\n"),
        (b"CAPA\r\n", b"-ERR no CAPA\r\n"),
        (b"STLS\r\n", b"+OK begin TLS\r\n"),
    ],
    "ftp": [(b"", b"220 ready\r\n"), (b"AUTH TLS\r\n", b"234 go\r\n")],
    "postgres": [(SSL_REQUEST, b"S")],
    "ldap": [(STARTTLS_REQUEST, LDAP_SUCCESS)],
    "xmpp": [
        (stream_header("127.0.0.1"), XMPP_UNTIL_FEATURES),
        (STARTTLS_ELEMENT, b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
    ],
}

#: Per dialog: plaintext a forging server appends to its go-ahead, in the protocol's own form.
FORGED = {
    "smtp": b"250 forged\r\n",
    "imap": b"* OK forged\r\n",
    "pop3": b"+OK forged\r\n",
    "ftp": b"230 forged\r\n",
    "postgres": b"R\x00\x00\x00\x08\x00\x00\x00\x00",
    "ldap": bytes.fromhex("300c02010278070a010004000400"),
    "xmpp": b"<message>forged</message>",
}


def test_the_registry_is_what_connect_accepts() -> None:
    assert tuple(inetkit.starttls.DIALOGS) == NAMES == STARTTLS_DIALOGS
    for name, function in inetkit.starttls.DIALOGS.items():
        assert function is getattr(inetkit.starttls, name)
        parameters = inspect.signature(function).parameters
        assert list(parameters)[:2] == ["conn", "credentials"]
        assert parameters["credentials"].default is None
        assert parameters["deadline"].kind is inspect.Parameter.KEYWORD_ONLY


def test_an_unknown_dialog_is_refused_before_any_io(make_server: Callable[..., Server]) -> None:
    server = make_server(scripted([]))
    with pytest.raises(InvalidArgumentError, match=r"unknown starttls dialog 'gopher'.*smtp, imap, pop3"):
        inetkit.connect("127.0.0.1", server.port, starttls="gopher", timeout=TIMEOUT)
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as conn:
        with pytest.raises(InvalidArgumentError, match="unknown starttls dialog"):
            inetkit.starttls.run_dialog("gopher", conn, None)
        assert not conn.closed


@pytest.mark.parametrize("name", NAMES)
def test_plaintext_after_the_go_ahead_is_refused(
    pki: certs.PKI, make_server: Callable[..., Server], name: str
) -> None:
    """The forged bytes arrive with the go-ahead: the driver must not swallow them."""
    exchanges = list(UNTIL_GO_AHEAD[name])
    request, answer = exchanges[-1]
    exchanges[-1] = (request, answer + FORGED[name])
    server = make_server(scripted(exchanges))
    before = open_sockets()
    with pytest.raises(SecurityError) as info:
        inetkit.connect("127.0.0.1", server.port, starttls=name, credentials=trust(pki), timeout=TIMEOUT)
    assert type(info.value) is SecurityError
    assert info.value.code is ErrorCode.UNEXPECTED_PLAINTEXT
    assert info.value.trace is not None and info.value.trace.tls_handshake is None
    assert sockets_left_open(before) == set()


@pytest.mark.parametrize("name", NAMES)
def test_a_server_that_hangs_up_is_a_refusal_and_the_function_closes_the_handle(
    make_server: Callable[..., Server], name: str
) -> None:
    # Everything but the go-ahead: the server reads the last request, then closes (a clean FIN:
    # nothing of the client's is left unread, which would make the close a reset).
    exchanges = [*UNTIL_GO_AHEAD[name][:-1], (UNTIL_GO_AHEAD[name][-1][0], b"")]
    server = make_server(lambda sock: _run_then_close(sock, exchanges))
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as conn:
        with pytest.raises(SecurityError) as info:
            inetkit.starttls.DIALOGS[name](conn)
        assert info.value.code is ErrorCode.STARTTLS_REFUSED
        assert "closed the connection" in str(info.value)
        assert f"STARTTLS ({name}) with 127.0.0.1 port {server.port} refused" in str(info.value)
        assert "was not upgraded and is closed" in str(info.value)
        assert conn.closed


def _run_then_close(sock: socket.socket, exchanges: list[Exchange]) -> None:
    """Play the exchanges, then close (no draining)."""
    for expected, answer in exchanges:
        got = b""
        while len(got) < len(expected):
            chunk = sock.recv(len(expected) - len(got))
            if not chunk:
                return
            got += chunk
        if answer:
            sock.sendall(answer)


@pytest.mark.parametrize("name", NAMES)
def test_every_dialog_counts_against_the_connect_deadline(pki: certs.PKI, name: str) -> None:
    """A server that accepts and never answers: the connect fails with TIMED_OUT within its timeout."""
    with silent_listener(4) as port:
        before = open_sockets()
        started = time.monotonic()
        with pytest.raises(InetTimeoutError) as info:
            inetkit.connect("127.0.0.1", port, starttls=name, credentials=trust(pki), timeout=SHORT_TIMEOUT)
        elapsed = time.monotonic() - started
        assert SHORT_TIMEOUT * 0.9 <= elapsed < SHORT_TIMEOUT + DEADLINE_SLACK
        assert info.value.code is ErrorCode.TIMED_OUT
        assert sockets_left_open(before) == set()


def test_an_endless_reply_line_is_cut_at_the_limit(make_server: Callable[..., Server]) -> None:
    """A greeting that never ends: the driver's read stops at the dialog's line limit."""

    def endless(sock: socket.socket) -> None:
        chunk = b"220 " + b"x" * 1024
        try:
            for _ in range(1024):  # 1 MiB at most, far past the 4 KiB limit
                sock.sendall(chunk)
        except OSError:
            pass  # the client hung up, as it should

    server = make_server(endless)
    with pytest.raises(SecurityError) as info:
        inetkit.connect("127.0.0.1", server.port, starttls="smtp", timeout=TIMEOUT)
    assert info.value.code is ErrorCode.STARTTLS_REFUSED
    assert "a reply line longer than 4096 bytes" in str(info.value)


def test_an_endless_xmpp_stream_is_cut_at_the_limit(make_server: Callable[..., Server]) -> None:
    header = XMPP_UNTIL_FEATURES.split(b"<stream:features>")[0] + b"<stream:features>"

    def endless(sock: socket.socket) -> None:
        sock.recv(MAX_REQUEST)
        try:
            sock.sendall(header)
            for _ in range(1024):
                sock.sendall(b"<x/>" * 256)
        except OSError:
            pass

    server = make_server(endless)
    with pytest.raises(SecurityError) as info:
        inetkit.connect("127.0.0.1", server.port, starttls="xmpp", timeout=TIMEOUT)
    assert info.value.code is ErrorCode.STARTTLS_REFUSED
    assert "more than 65536 bytes" in str(info.value)


def test_ftp_refusing_prot_p_after_tls_closes_the_handle(
    pki: certs.PKI, make_server: Callable[..., Server]
) -> None:
    """The handshake worked but data connections would be in the clear: that fails closed too."""
    context = pki.servers["valid"].context()

    def serve(sock: socket.socket) -> None:
        sock.sendall(b"220 ready\r\n")
        assert sock.recv(MAX_REQUEST) == b"AUTH TLS\r\n"
        sock.sendall(b"234 go\r\n")
        with context.wrap_socket(sock, server_side=True) as tls:
            reader = tls.makefile("rb")
            assert reader.readline() == b"PBSZ 0\r\n"
            tls.sendall(b"200 ok\r\n")
            assert reader.readline() == b"PROT P\r\n"
            tls.sendall(b"534 not here\r\n")
            reader.read()
            reader.close()

    server = make_server(serve)
    before = open_sockets()
    with pytest.raises(SecurityError) as info:
        inetkit.connect("localhost", server.port, starttls="ftp", credentials=trust(pki), timeout=TIMEOUT)
    assert info.value.code is ErrorCode.STARTTLS_REFUSED
    assert "PROT P over TLS answered 534 'not here'" in str(info.value)
    assert str(info.value).endswith("the connection is closed")
    assert info.value.trace is not None and info.value.trace.tls_handshake is not None
    assert sockets_left_open(before) == set()


def test_the_driver_restores_the_io_timeout(pki: certs.PKI, make_server: Callable[..., Server]) -> None:
    context = pki.servers["valid"].context()

    def serve(sock: socket.socket) -> None:
        assert sock.recv(MAX_REQUEST) == SSL_REQUEST
        sock.sendall(b"S")
        with context.wrap_socket(sock, server_side=True) as tls:
            tls.recv(1)

    server = make_server(serve)
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as conn:
        conn.timeout = 7.5
        inetkit.starttls.postgres(conn, trust(pki), deadline=time.monotonic() + TIMEOUT)
        assert conn.is_secure
        assert conn.timeout == 7.5


def test_misuse_is_refused_before_any_io(
    pki: certs.PKI, make_server: Callable[..., Server], udp_echo: tuple[str, int], servers: Servers
) -> None:
    """Wrong types and wrong handles raise at once, and the handle stays as it was."""
    with pytest.raises(TypeError, match=r"starttls.imap\(\) needs an inetkit.Connection, not str"):
        inetkit.starttls.imap("localhost")  # type: ignore[arg-type]
    server = make_server(scripted([]))
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as conn:
        with pytest.raises(TypeError, match="deadline"):
            inetkit.starttls.pop3(conn, deadline="soon")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="client_name"):
            inetkit.starttls.smtp(conn, client_name=b"me")  # type: ignore[arg-type]
        for bad in ("", "two words", "me\r\nRCPT TO:<x@y>"):
            with pytest.raises(InvalidArgumentError, match="client_name must be one word"):
                inetkit.starttls.smtp(conn, client_name=bad)
        assert not conn.closed
    with inetkit.connect(udp_echo[0], udp_echo[1], Protocol.UDP, timeout=TIMEOUT) as udp:
        with pytest.raises(InvalidArgumentError, match="STARTTLS needs TCP"):
            inetkit.starttls.ldap(udp)
        assert not udp.closed
    tls = servers.python(pki.servers["valid"].context())
    with inetkit.connect(
        "localhost", tls.port, options=Option.SECURE, credentials=trust(pki), timeout=TIMEOUT
    ) as conn:
        with pytest.raises(SecurityError) as info:
            inetkit.starttls.xmpp(conn)
        assert info.value.code is ErrorCode.ALREADY_SECURE
        assert not conn.closed
        conn.write_line("ping")
        assert conn.read_line() == b"gnip\n"
