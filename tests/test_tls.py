"""TLS end to end against real servers on loopback: names and SNI, IP literals, plaintext peers,
`security_info`, pins, warnings, descriptors, the connect deadline, and `enable_security`.

The bad-certificate matrix lives in ``test_tls_matrix.py``; the servers in ``tls_servers.py``.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable

import certs
import pytest
from conftest import Server, open_fds
from cryptography.hazmat.primitives import serialization
from tls_servers import PythonTLSServer, Servers, open_sockets, sockets_left_open

import inetkit
from inetkit import (
    CertificateError,
    Connection,
    ErrorCode,
    InetConnectionResetError,
    InetError,
    InetTimeoutError,
    Option,
    SecurityCredentials,
    SecurityError,
)
from inetkit._tls import public_key_pin

#: Connect timeout for handshakes that should succeed or fail quickly (loopback).
TIMEOUT = 5.0
#: Connect timeout of the deadline test: short, so the test is quick.
SHORT_TIMEOUT = 0.5
#: What the deadline may overshoot by (scheduling on a busy 2-core machine).
DEADLINE_SLACK = 0.5
#: How long a test waits for a server to have sent bytes that are on their way.
ARRIVAL_TIMEOUT = 5.0

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")


def trust(pki: certs.PKI, **fields: object) -> SecurityCredentials:
    """Credentials that trust the test root (and whatever else ``fields`` set)."""
    return SecurityCredentials(ca_file=pki.ca_file, **fields)  # type: ignore[arg-type]


def secure(
    host: str, port: int, credentials: SecurityCredentials, options: Option = Option.NONE
) -> Connection:
    return inetkit.connect(
        host, port, options=Option.SECURE | options, credentials=credentials, timeout=TIMEOUT
    )


def round_trip(conn: Connection, text: bytes = b"ping") -> None:
    """One line through the reversing server; it also takes in post-handshake TLS messages."""
    conn.write(text + b"\n")
    assert conn.read_line() == text[::-1] + b"\n"


def der(cert: certs.CertKey) -> bytes:
    return cert.cert.public_bytes(serialization.Encoding.DER)


def is_secure(conn: Connection) -> bool:
    """``conn.is_secure``, read through a call so that type checkers do not pin it across upgrades."""
    return conn.is_secure


# -- names, SNI and IP literals -----------------------------------------------------------


def test_sni_is_the_normalized_name_without_trailing_dot(pki: certs.PKI, servers: Servers) -> None:
    server = servers.python(pki.servers["valid"].context())
    with secure("LOCALHOST.", server.port, trust(pki)) as conn:
        assert conn.host_name == "localhost."  # kept for resolution
        round_trip(conn)
    server.wait_idle()
    (seen,) = server.seen
    assert seen.sni_called
    assert seen.server_name == "localhost"
    assert seen.error is None


@pytest.mark.parametrize(("host", "listen"), [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("[::1]", "::1")])
def test_ip_literal_gets_no_sni_and_is_checked_against_ip_sans(
    pki: certs.PKI, servers: Servers, host: str, listen: str
) -> None:
    server = servers.python(pki.servers["valid"].context(), host=listen)
    with secure(host, server.port, trust(pki)) as conn:
        assert conn.remote_address[0] == listen
        round_trip(conn)
    server.wait_idle()
    (seen,) = server.seen
    assert seen.sni_called  # the server asked ...
    assert seen.server_name is None  # ... and the client sent no name (RFC 6066 section 3)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_ip_literal_missing_from_the_certificate_is_a_name_mismatch(
    pki: certs.PKI, servers: Servers, host: str
) -> None:
    # The wrong-host certificate lists only DNS:wrong.example, no IP addresses.
    server = servers.python(pki.servers["wrong_host"].context(), host=host)
    with pytest.raises(CertificateError) as info:
        secure(host, server.port, trust(pki))
    assert info.value.code is ErrorCode.CERTIFICATE_NAME_MISMATCH
    assert "IP address" in str(info.value)


def test_a_name_the_certificate_lists_passes_where_another_fails(pki: certs.PKI, servers: Servers) -> None:
    server = servers.python(pki.servers["wrong_host"].context())
    resolver = inetkit.Resolver(overrides={"wrong.example": ["127.0.0.1"]})
    with inetkit.connect(
        "wrong.example",
        server.port,
        options=Option.SECURE,
        credentials=trust(pki),
        timeout=TIMEOUT,
        resolver=resolver,
    ) as conn:
        round_trip(conn)
        assert conn.security_info is not None
        assert conn.security_info.peer_certificate is not None
        assert conn.security_info.peer_certificate.subject_alt_names == ["DNS:wrong.example"]
    with pytest.raises(CertificateError) as info:
        secure("localhost", server.port, trust(pki))
    assert info.value.code is ErrorCode.CERTIFICATE_NAME_MISMATCH
    assert "localhost" in str(info.value)


# -- plaintext on one side ------------------------------------------------------------------


@pytest.mark.parametrize(
    "greeting", [b"220 mail.example ESMTP ready\r\n", b"* OK IMAP4rev1 ready\r\n", b"+OK POP3 ready\r\n"]
)
def test_secure_to_a_plaintext_server_that_speaks_first(
    pki: certs.PKI, servers: Servers, greeting: bytes
) -> None:
    server = servers.python(None, reply=[greeting])
    before = open_fds()
    with pytest.raises(SecurityError) as info:
        secure("localhost", server.port, trust(pki))
    assert type(info.value) is SecurityError
    assert info.value.code is ErrorCode.HANDSHAKE_FAILED
    message = str(info.value)
    assert "wrong version number" in message
    assert "starttls" in message  # the hint: the port speaks plaintext first
    assert f"port {server.port}" in message
    server.wait_idle()
    assert open_fds() == before


def test_plaintext_to_a_tls_port(pki: certs.PKI, servers: Servers) -> None:
    """The reverse: a plain client's bytes are no TLS record; the server says so and hangs up."""
    server = servers.python(pki.servers["valid"].context())
    with inetkit.connect("localhost", server.port, timeout=TIMEOUT) as conn:
        conn.write(b"hello\r\n")
        try:
            reply = conn.read()
        except InetConnectionResetError:
            reply = b""  # the server closed with our bytes unread: a reset
        # Nothing that looks like an answer: at most a TLS alert record (type 21).
        assert reply == b"" or reply[:1] == b"\x15"
    server.wait_idle()
    (seen,) = server.seen
    assert isinstance(seen.error, ssl.SSLError)
    assert seen.error.reason == "WRONG_VERSION_NUMBER"
    assert seen.protocol is None


# -- what a secure connection reports -------------------------------------------------------


@pytest.mark.parametrize(
    ("max_version", "protocol", "cipher", "bits"),
    [
        (None, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256),
        (ssl.TLSVersion.TLSv1_2, "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384", 256),
    ],
)
def test_security_info_fields(
    pki: certs.PKI,
    servers: Servers,
    max_version: ssl.TLSVersion | None,
    protocol: str,
    cipher: str,
    bits: int,
) -> None:
    valid = pki.servers["valid"]
    server = servers.python(valid.context(max_version=max_version, alpn=["http/1.1"]))
    with secure("localhost", server.port, trust(pki, alpn_protocols=["h2", "http/1.1"])) as conn:
        assert conn.is_secure
        info = conn.security_info
        assert info is not None
        assert info.protocol == protocol
        assert info.cipher == cipher
        assert info.cipher_bits == bits
        assert info.alpn_protocol == "http/1.1"  # the server's pick among ours
        assert info.session_reused is False
        peer = info.peer_certificate
        assert peer is not None
        leaf = valid.leaf.cert
        assert peer.subject == "CN=localhost,O=inetkit tests"
        assert peer.issuer == pki.intermediate.cert.subject.rfc4514_string()
        assert peer.common_name == "localhost"
        assert peer.subject_alt_names == ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
        assert peer.not_before == leaf.not_valid_before_utc
        assert peer.not_after == leaf.not_valid_after_utc
        assert peer.not_before.tzinfo is not None
        assert peer.serial_number == leaf.serial_number
        assert peer.fingerprint_sha256 == hashlib.sha256(der(valid.leaf)).hexdigest()
        assert conn.trace.tls_handshake is not None and conn.trace.tls_handshake > 0
        assert "TLSv1" in repr(conn)
        round_trip(conn)


def test_security_info_without_alpn(pki: certs.PKI, servers: Servers) -> None:
    server = servers.python(pki.servers["valid"].context())  # no ALPN on the server
    with secure("localhost", server.port, trust(pki, alpn_protocols=["h2"])) as conn:
        assert conn.security_info is not None
        assert conn.security_info.alpn_protocol is None
        round_trip(conn)


def test_plain_connection_has_no_security_info(servers: Servers) -> None:
    server = servers.python(None, reply=[b"hi\n"])
    with inetkit.connect("localhost", server.port, timeout=TIMEOUT) as conn:
        assert not is_secure(conn)
        assert conn.security_info is None
        assert conn.trace.tls_handshake is None


def test_security_info_under_trustedsite(pki: certs.PKI, servers: Servers) -> None:
    self_signed = pki.servers["self_signed"]
    server = servers.python(self_signed.context())
    with secure("localhost", server.port, trust(pki), Option.TRUSTEDSITE) as conn:
        info = conn.security_info
        assert info is not None
        assert info.protocol == "TLSv1.3"
        assert info.cipher_bits > 0
        peer = info.peer_certificate
        assert peer is not None  # read even though nothing was verified
        assert peer.subject == peer.issuer == "CN=localhost,O=inetkit tests"
        assert peer.fingerprint_sha256 == hashlib.sha256(der(self_signed.leaf)).hexdigest()
        round_trip(conn)


def test_client_certificate_reaches_the_server(pki: certs.PKI, servers: Servers) -> None:
    server = servers.python(pki.servers["valid"].context(client_ca=pki.ca_file))
    credentials = trust(pki, cert_store=pki.client.p12_modern, password=certs.PASSWORD)
    with secure("localhost", server.port, credentials) as conn:
        round_trip(conn)
    server.wait_idle()
    (seen,) = server.seen
    assert seen.client_subject == pki.client.subject
    assert seen.error is None


# -- pins -------------------------------------------------------------------------------------


def test_good_pin_passes(pki: certs.PKI, servers: Servers) -> None:
    server = servers.python(pki.servers["valid"].context())
    pin = public_key_pin(der(pki.servers["valid"].leaf))
    other = public_key_pin(der(pki.servers["self_signed"].leaf))
    with secure("localhost", server.port, trust(pki, pinned_public_keys=[other, pin])) as conn:
        round_trip(conn)


def test_good_pin_passes_under_trustedsite(pki: certs.PKI, servers: Servers) -> None:
    self_signed = pki.servers["self_signed"]
    server = servers.python(self_signed.context())
    pin = public_key_pin(der(self_signed.leaf))
    with secure("localhost", server.port, trust(pki, pinned_public_keys=[pin]), Option.TRUSTEDSITE) as conn:
        round_trip(conn)


@pytest.mark.parametrize(("row", "options"), [("valid", Option.NONE), ("self_signed", Option.TRUSTEDSITE)])
def test_bad_pin_fails_even_with_trustedsite(
    pki: certs.PKI, servers: Servers, row: str, options: Option
) -> None:
    server = servers.python(pki.servers[row].context())
    wrong = public_key_pin(der(pki.servers["untrusted_root"].leaf))
    actual = public_key_pin(der(pki.servers[row].leaf))
    before = open_fds()
    with pytest.raises(SecurityError) as info:
        secure("localhost", server.port, trust(pki, pinned_public_keys=[wrong]), options)
    assert type(info.value) is SecurityError
    assert info.value.code is ErrorCode.PIN_MISMATCH
    assert actual in str(info.value)  # the message gives the server's real pin
    server.wait_idle()
    assert open_fds() == before


# -- warnings for weakened checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "flag"),
    [(Option.TRUSTEDSITE, "Option.TRUSTEDSITE"), (Option.SECURE_FALLBACK, "Option.SECURE_FALLBACK")],
)
def test_weakened_checks_warn_every_time(
    pki: certs.PKI, servers: Servers, caplog: pytest.LogCaptureFixture, options: Option, flag: str
) -> None:
    server = servers.python(pki.servers["valid"].context())
    connects = 3
    with caplog.at_level(logging.WARNING, logger="inetkit"):
        for _ in range(connects):
            with secure("localhost", server.port, trust(pki), options) as conn:
                round_trip(conn)
    warnings = [r for r in caplog.records if r.name == "inetkit" and r.levelno == logging.WARNING]
    assert len(warnings) == connects  # one per connect, cached context or not
    for record in warnings:
        message = record.getMessage()
        assert flag in message
        assert f"port {server.port}" in message  # names the server


def test_verified_connect_does_not_warn(
    pki: certs.PKI, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    server = servers.python(pki.servers["valid"].context())
    with caplog.at_level(logging.WARNING, logger="inetkit"):
        with secure("localhost", server.port, trust(pki)) as conn:
            round_trip(conn)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- failures leave nothing open; the deadline covers the handshake ---------------------------


def _closing_handler(sock: socket.socket) -> None:
    sock.recv(4096)  # the ClientHello, then hang up without a word


@pytest.mark.parametrize(
    ("case", "code"),
    [
        pytest.param("expired", ErrorCode.CERTIFICATE_EXPIRED, id="expired"),
        pytest.param("wrong_host", ErrorCode.CERTIFICATE_NAME_MISMATCH, id="wrong_host"),
        pytest.param("tls13_only", ErrorCode.PROTOCOL_VERSION, id="tls13_only"),
        pytest.param("client_certificate_tls12", ErrorCode.HANDSHAKE_FAILED, id="client_certificate_tls12"),
        pytest.param("closes", ErrorCode.HANDSHAKE_FAILED, id="server_closes"),
        pytest.param("silent", ErrorCode.TIMED_OUT, id="server_silent"),
    ],
)
def test_handshake_failures_leave_no_socket_open(
    pki: certs.PKI,
    servers: Servers,
    make_server: Callable[..., Server],
    case: str,
    code: ErrorCode,
) -> None:
    credentials = trust(pki)
    python_server: PythonTLSServer | None = None
    timeout = TIMEOUT
    if case == "closes":
        port = make_server(_closing_handler).port
    elif case == "silent":
        python_server = servers.python(None)
        timeout = SHORT_TIMEOUT
    elif case == "tls13_only":
        python_server = servers.python(pki.servers["valid"].context(min_version=ssl.TLSVersion.TLSv1_3))
        credentials = trust(pki, max_version=ssl.TLSVersion.TLSv1_2)
    elif case == "client_certificate_tls12":
        python_server = servers.python(
            pki.servers["valid"].context(client_ca=pki.ca_file, max_version=ssl.TLSVersion.TLSv1_2)
        )
    else:
        python_server = servers.python(pki.servers[case].context())
    if python_server is not None:
        port = python_server.port
    before = open_sockets()
    with pytest.raises(InetError) as info:
        inetkit.connect("localhost", port, options=Option.SECURE, credentials=credentials, timeout=timeout)
    assert info.value.code is code
    assert info.value.trace is not None
    assert info.value.trace.tls_handshake is not None
    assert sockets_left_open(before) == set()


def test_client_certificate_required_message_names_the_cause(pki: certs.PKI, servers: Servers) -> None:
    server = servers.python(
        pki.servers["valid"].context(client_ca=pki.ca_file, max_version=ssl.TLSVersion.TLSv1_2)
    )
    with pytest.raises(SecurityError) as info:
        secure("localhost", server.port, trust(pki))
    assert type(info.value) is SecurityError
    assert info.value.code is ErrorCode.HANDSHAKE_FAILED
    assert "client certificate" in str(info.value)


def test_tls13_client_certificate_verdict_arrives_on_first_read(pki: certs.PKI, servers: Servers) -> None:
    server = servers.python(pki.servers["valid"].context(client_ca=pki.ca_file))
    before = open_fds()
    conn = secure("localhost", server.port, trust(pki))  # the handshake itself completes
    with conn:
        assert conn.security_info is not None
        assert conn.security_info.protocol == "TLSv1.3"
        with pytest.raises(SecurityError) as info:
            conn.read_line()
        assert info.value.code is ErrorCode.CLIENT_CERTIFICATE_REQUIRED
        # The handle stays broken: the next operation reports the same verdict.
        with pytest.raises(SecurityError) as again:
            conn.write(b"ping\n")
        assert again.value.code is ErrorCode.CLIENT_CERTIFICATE_REQUIRED
    server.wait_idle()
    assert open_fds() == before


def test_tls_handshake_counts_against_the_connect_deadline(pki: certs.PKI, servers: Servers) -> None:
    """A server that accepts TCP but never answers the ClientHello."""
    server = servers.python(None)
    before = open_fds()
    started = time.monotonic()
    with pytest.raises(InetTimeoutError) as info:
        inetkit.connect(
            "localhost", server.port, options=Option.SECURE, credentials=trust(pki), timeout=SHORT_TIMEOUT
        )
    elapsed = time.monotonic() - started
    assert SHORT_TIMEOUT * 0.9 <= elapsed < SHORT_TIMEOUT + DEADLINE_SLACK
    assert info.value.code is ErrorCode.TIMED_OUT
    assert isinstance(info.value, TimeoutError)
    assert "TLS handshake" in str(info.value)
    trace = info.value.trace
    assert trace is not None
    assert trace.tls_handshake is not None
    assert trace.total is not None and trace.total < SHORT_TIMEOUT + DEADLINE_SLACK
    server.wait_idle()
    assert open_fds() == before


def test_tls_failure_is_recorded_on_the_winning_attempt(pki: certs.PKI, servers: Servers) -> None:
    server = servers.python(pki.servers["expired"].context())
    with pytest.raises(CertificateError) as info:
        secure("localhost", server.port, trust(pki))
    trace = info.value.trace
    assert trace is not None
    attempt = trace.attempts[-1]
    assert attempt.address == "127.0.0.1"
    assert attempt.error is info.value
    assert attempt.outcome == "failed"


# -- enable_security on a live plain connection -----------------------------------------------


def _upgrade_server(servers: Servers, context: ssl.SSLContext | None, *reply: bytes | threading.Event) -> int:
    """The tiny in-band protocol: client "STARTTLS\\n", server ``reply`` (default "GO\\n"), then TLS."""
    server = servers.python(context, expect=b"STARTTLS\n", reply=reply or (b"GO\n",))
    return server.port


def _ask_for_tls(port: int, credentials: SecurityCredentials | None = None) -> Connection:
    conn = inetkit.connect("127.0.0.1", port, timeout=TIMEOUT, credentials=credentials)
    try:
        conn.write(b"STARTTLS\n")
        assert conn.read_line() == b"GO\n"
    except BaseException:
        conn.close()
        raise
    return conn


def test_enable_security_after_a_plain_exchange(pki: certs.PKI, servers: Servers) -> None:
    context = pki.servers["valid"].context()
    server = servers.python(context, expect=b"STARTTLS\n", reply=[b"GO\n"])
    with _ask_for_tls(server.port) as conn:
        assert not is_secure(conn)
        conn.enable_security(trust(pki), server_name="LOCALHOST.")
        assert conn.is_secure
        info = conn.security_info
        assert info is not None
        assert info.protocol == "TLSv1.3"
        assert info.peer_certificate is not None
        assert info.peer_certificate.common_name == "localhost"
        assert conn.trace.tls_handshake is not None and conn.trace.tls_handshake > 0
        round_trip(conn, b"over TLS")
        with pytest.raises(SecurityError) as info_again:
            conn.enable_security(trust(pki))
        assert type(info_again.value) is SecurityError
        assert info_again.value.code is ErrorCode.ALREADY_SECURE
        round_trip(conn, b"still fine")  # the refusal changed nothing
    server.wait_idle()
    (seen,) = server.seen
    assert seen.plaintext == b"STARTTLS\n"
    assert seen.server_name == "localhost"  # server_name normalized, trailing dot dropped
    assert seen.lines == [b"over TLS", b"still fine"]


def test_enable_security_uses_the_connect_credentials_and_ip_sans(pki: certs.PKI, servers: Servers) -> None:
    port = _upgrade_server(servers, pki.servers["valid"].context())
    with _ask_for_tls(port, trust(pki)) as conn:
        conn.enable_security()  # credentials from connect; the IP literal is checked against IP SANs
        assert conn.is_secure
        round_trip(conn)


def test_enable_security_verifies_like_implicit_tls(pki: certs.PKI, servers: Servers) -> None:
    port = _upgrade_server(servers, pki.servers["wrong_host"].context())
    with _ask_for_tls(port) as conn:
        with pytest.raises(CertificateError) as info:
            conn.enable_security(trust(pki), server_name="localhost")
        assert info.value.code is ErrorCode.CERTIFICATE_NAME_MISMATCH
        assert not is_secure(conn)


def test_enable_security_refuses_plaintext_already_buffered(pki: certs.PKI, servers: Servers) -> None:
    # "GO\nEXTRA" arrives in one segment: read_line leaves "EXTRA" in the handle's buffer.
    port = _upgrade_server(servers, pki.servers["valid"].context(), b"GO\nEXTRA")
    with _ask_for_tls(port) as conn:
        with pytest.raises(SecurityError) as info:
            conn.enable_security(trust(pki))
        assert type(info.value) is SecurityError
        assert info.value.code is ErrorCode.UNEXPECTED_PLAINTEXT
        assert not is_secure(conn)
        assert conn.security_info is None


def test_enable_security_refuses_plaintext_waiting_in_the_socket(pki: certs.PKI, servers: Servers) -> None:
    # "EXTRA" is sent only after the client has read "GO\n": it waits in the kernel, unread.
    gate = threading.Event()
    port = _upgrade_server(servers, pki.servers["valid"].context(), b"GO\n", gate, b"EXTRA")
    with _ask_for_tls(port) as conn:
        gate.set()
        assert conn.is_readable(ARRIVAL_TIMEOUT)
        with pytest.raises(SecurityError) as info:
            conn.enable_security(trust(pki))
        assert info.value.code is ErrorCode.UNEXPECTED_PLAINTEXT
        assert not is_secure(conn)
