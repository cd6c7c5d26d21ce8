"""Loopback servers for ``inetkit demo``: TCP lines, UDP datagrams, TLS lines, SMTP with STARTTLS.

Theory of operation
-------------------
`DemoServer` listens on ``127.0.0.1`` (and on ``::1`` with the same port
numbers when the machine has IPv6 loopback) and serves each service from
threads of its own, so one process can demonstrate inetkit against real
kernel sockets with nothing installed but Python and inetkit's dependencies.
Nothing listens beyond loopback and nothing is sent anywhere else.

Every blocking call uses a short socket timeout (`POLL_INTERVAL`) and
re-checks the stop flag, so `DemoServer.close` ends all threads within about
one interval without closing a socket under a thread that still uses it (a
closed descriptor number can be reused at once by another thread's socket).
A connection that stays idle for `IDLE_LIMIT` seconds is dropped, so no
thread can outlive a stuck client for long.

TLS: `make_certificates` makes a throwaway CA and a leaf certificate for
``localhost``, ``127.0.0.1`` and ``::1`` at run time. The server's private
key reaches OpenSSL encrypted under a random one-time password, through the
same path inetkit uses for client keys (an anonymous in-memory file,
``os.memfd_create`` opened as ``/proc/self/fd/N``; where that does not exist,
a private temporary file that holds only the encrypted key). The decrypted
key is never written to a file.
The client side trusts the CA through ``SecurityCredentials(ca_data=...)``.

SMTP: `DemoServer` also answers as a minimal mail server, enough of
RFC 5321 and RFC 3207 for ``inetkit.starttls.smtp`` and a person typing:
a 220 greeting, EHLO/HELO (EHLO offers STARTTLS while the session is
plain), STARTTLS (220, then a TLS handshake with the demo certificate;
anything the client pipelined after the command is discarded, as RFC 3207
§4.2 asks), EHLO again over TLS, NOOP, RSET and QUIT (221, then close).
It accepts no mail: other commands get 502.
"""

from __future__ import annotations

import datetime
import errno
import functools
import ipaddress
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DemoCertificates", "DemoServer", "make_certificates", "server_context"]

logger = logging.getLogger("inetkit")

#: Socket timeout of every blocking server call: the longest `close` waits
#: for a thread to notice the stop flag.
POLL_INTERVAL = 0.05
#: A connection idle this long (seconds) is dropped: bounds a stuck client.
IDLE_LIMIT = 30.0
#: Seconds a client has to finish the TLS handshake.
HANDSHAKE_LIMIT = 10.0
#: Seconds `close` waits for each server thread to end.
JOIN_LIMIT = 5.0
#: Tries to find one port number free on both 127.0.0.1 and ::1.
BIND_TRIES = 8
#: Longest line the echo keeps before sending it back unterminated (bounds memory).
MAX_LINE = 65536
#: Longest SMTP command line (RFC 5321 §4.5.3.1.4: 512 octets with CRLF).
SMTP_MAX_LINE = 512
#: What the SMTP responder calls itself in its greeting and EHLO reply.
SMTP_NAME = "localhost"
#: Largest UDP payload (65535 minus the 8-byte UDP header).
MAX_DATAGRAM = 65527
#: Connections waiting to be accepted.
BACKLOG = 16
#: The certificates are valid from a few minutes ago (tolerates clock skew
#: between the moment they are made and the handshake)...
NOT_BEFORE_SLACK = datetime.timedelta(minutes=5)
#: ...for one day: a run of the demo needs seconds.
VALIDITY = datetime.timedelta(days=1)
#: Bytes of randomness in the one-time key password.
PASSWORD_BYTES = 32

LOOPBACK_V4 = "127.0.0.1"
LOOPBACK_V6 = "::1"
#: The name the demo certificate is issued for.
CERT_HOST = "localhost"


# -- certificates -------------------------------------------------------------


@dataclass(frozen=True)
class DemoCertificates:
    """A throwaway CA and a server certificate signed by it (PEM), plus the server key."""

    ca_pem: bytes
    """The CA certificate: what the client trusts (``SecurityCredentials(ca_data=...)``)."""
    cert_pem: bytes
    """The server's certificate for ``localhost``, ``127.0.0.1`` and ``::1``."""
    key: ec.EllipticCurvePrivateKey
    """The server's private key; it stays in memory."""


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "inetkit demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate_builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    *,
    ca: bool,
) -> x509.CertificateBuilder:
    """What the CA and the server certificate have in common; ``ca`` says which one it is.

    Both are valid from `NOT_BEFORE_SLACK` before ``now`` for `VALIDITY`,
    carry critical basic constraints (a CA that signs only end entities, or
    no CA) and critical key usage: signatures, plus certificate and CRL
    signing for the CA.
    """
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - NOT_BEFORE_SLACK)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def make_certificates() -> DemoCertificates:
    """Make a CA and a server certificate for ``localhost``, ``127.0.0.1`` and ``::1``.

    P-256 keys: quick to make, and accepted at OpenSSL security level 2.
    """
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("inetkit demo CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        _certificate_builder(ca_name, ca_name, ca_key, now, ca=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        _certificate_builder(_name(CERT_HOST), ca_name, key, now, ca=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(CERT_HOST),
                    x509.IPAddress(ipaddress.ip_address(LOOPBACK_V4)),
                    x509.IPAddress(ipaddress.ip_address(LOOPBACK_V6)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return DemoCertificates(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=leaf.public_bytes(serialization.Encoding.PEM),
        key=key,
    )


def server_context(certs: DemoCertificates) -> ssl.SSLContext:
    """A TLS server context holding the demo certificate and key.

    The key leaves this process's memory only encrypted, under a random
    one-time password, and reaches OpenSSL the way inetkit hands over client
    keys (``_credentials.apply_identity``: an anonymous in-memory file).
    """
    from ._credentials import SecurityCredentials, apply_identity

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    password = secrets.token_hex(PASSWORD_BYTES).encode("ascii")
    encrypted_key = certs.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    apply_identity(context, SecurityCredentials(cert_store=certs.cert_pem + encrypted_key, password=password))
    return context


# -- the servers ----------------------------------------------------------------


def _bind_v4(kind: int) -> socket.socket:
    """A socket of ``kind`` bound to 127.0.0.1 on a port the kernel picks (closed if that fails)."""
    v4 = socket.socket(socket.AF_INET, kind)
    try:
        v4.bind((LOOPBACK_V4, 0))
    except BaseException:
        v4.close()
        raise
    return v4


def _bind(kind: int) -> list[socket.socket]:
    """Sockets of ``kind`` bound to 127.0.0.1 and, with the same port, ::1 when possible."""
    for _ in range(BIND_TRIES):
        v4 = _bind_v4(kind)
        port = v4.getsockname()[1]
        try:
            v6 = socket.socket(socket.AF_INET6, kind)
        except OSError:
            return [v4]  # no IPv6 on this machine
        try:
            v6.bind((LOOPBACK_V6, port))
        except OSError as exc:
            v6.close()
            if exc.errno == errno.EADDRINUSE:
                v4.close()
                continue  # that port is taken on ::1; try another one
            return [v4]  # no IPv6 loopback address
        except BaseException:
            v6.close()
            v4.close()
            raise
        return [v4, v6]
    return [_bind_v4(kind)]


class DemoServer:
    """TCP line echo, UDP echo and (optionally) TLS line echo on loopback, in threads.

    Use it as a context manager. ``tcp_port``, ``udp_port``, ``tls_port`` and
    ``smtp_port`` (these two None without TLS) are the same on every address
    in ``addresses``.
    """

    def __init__(self, *, tls: bool = True) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.certificates: DemoCertificates | None = None
        self._context: ssl.SSLContext | None = None
        self.tls_port: int | None = None
        self.smtp_port: int | None = None
        try:
            tcp = self._listen("tcp", _bind(socket.SOCK_STREAM), self._serve_lines)
            self.tcp_port = tcp[0].getsockname()[1]
            self.addresses = [sock.getsockname()[0] for sock in tcp]
            udp = _bind(socket.SOCK_DGRAM)
            self._sockets.extend(udp)
            self.udp_port = udp[0].getsockname()[1]
            for sock in udp:
                sock.settimeout(POLL_INTERVAL)
                self._start("udp", self._serve_datagrams, sock)
            if tls:
                self.certificates = make_certificates()
                self._context = server_context(self.certificates)
                secure = self._listen("tls", _bind(socket.SOCK_STREAM), self._serve_tls)
                self.tls_port = secure[0].getsockname()[1]
                smtp = self._listen("smtp", _bind(socket.SOCK_STREAM), self._serve_smtp)
                self.smtp_port = smtp[0].getsockname()[1]
        except BaseException:
            self.close()
            raise

    # -- life cycle -------------------------------------------------------

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every thread, then close the listening sockets (idempotent)."""
        self._stop.set()
        with self._threads_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(JOIN_LIMIT)
            if thread.is_alive():  # pragma: no cover - a thread outside its timeouts
                logger.debug("demo server thread %s did not stop", thread.name)
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    def _start(self, name: str, target: Callable[[socket.socket], None], sock: socket.socket) -> None:
        thread = threading.Thread(target=target, args=(sock,), name=f"inetkit-demo-{name}")
        thread.daemon = True  # never keeps the interpreter alive
        with self._threads_lock:
            if self._stop.is_set():
                sock.close()
                return
            self._threads.append(thread)
        thread.start()

    def _listen(
        self, name: str, sockets: list[socket.socket], serve: Callable[[socket.socket], None]
    ) -> list[socket.socket]:
        self._sockets.extend(sockets)
        for sock in sockets:
            sock.listen(BACKLOG)
            sock.settimeout(POLL_INTERVAL)
            self._start(f"{name}-accept", functools.partial(self._accept, name=name, serve=serve), sock)
        return sockets

    # -- serving ------------------------------------------------------------

    def _accept(self, listener: socket.socket, *, name: str, serve: Callable[[socket.socket], None]) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                logger.debug("demo server: accept failed: %s", exc)
                return
            sock.settimeout(POLL_INTERVAL)
            # Replies are small and follow requests: without NODELAY a reply
            # written right after TLS 1.3 session tickets waits for the
            # client's delayed ACK (Nagle's algorithm, about 40 ms on Linux).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._start(name, serve, sock)

    def _serve_lines(self, sock: socket.socket) -> None:
        with sock:
            try:
                self._echo_lines(sock)
            except OSError as exc:
                logger.debug("demo server: TCP connection ended: %s", exc)

    def _serve_tls(self, sock: socket.socket) -> None:
        assert self._context is not None
        with sock:
            try:
                sock.settimeout(HANDSHAKE_LIMIT)
                with self._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False) as tls:
                    tls.do_handshake()
                    tls.settimeout(POLL_INTERVAL)
                    self._echo_lines(tls)
                    # End with close_notify (SSLSocket.close sends none): a bare
                    # FIN is a truncation, which inetkit reports (TLS_TRUNCATED).
                    tls.unwrap()
            except OSError as exc:  # ssl.SSLError is an OSError
                logger.debug("demo server: TLS connection ended: %s", exc)

    def _echo_lines(self, sock: socket.socket) -> None:
        """Send back every complete line; at the end of the stream, what is left."""
        pending = bytearray()
        idle_since = time.monotonic()
        while not self._stop.is_set():
            try:
                data = sock.recv(MAX_LINE)
            except TimeoutError:
                if time.monotonic() - idle_since > IDLE_LIMIT:
                    return
                continue
            if not data:
                if pending:
                    sock.sendall(pending)
                return
            idle_since = time.monotonic()
            pending += data
            end = pending.rfind(b"\n")
            if end >= 0:
                sock.sendall(pending[: end + 1])
                del pending[: end + 1]
            if len(pending) > MAX_LINE:
                sock.sendall(pending)
                pending.clear()

    def _serve_smtp(self, sock: socket.socket) -> None:
        session = _SmtpSession(self, sock)
        try:
            session.run()
        except OSError as exc:  # ssl.SSLError is an OSError
            logger.debug("demo server: SMTP connection ended: %s", exc)
        finally:
            # After STARTTLS the TLS socket owns the descriptor; close whichever holds it.
            session.sock.close()
            sock.close()

    def _serve_datagrams(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data, peer = sock.recvfrom(MAX_DATAGRAM)
            except (TimeoutError, ConnectionRefusedError):
                # A refused earlier reply (ICMP) is reported here on some systems.
                continue
            except OSError as exc:
                logger.debug("demo server: UDP receive failed: %s", exc)
                return
            try:
                sock.sendto(data, peer)
            except OSError as exc:
                logger.debug("demo server: UDP reply to %s failed: %s", peer, exc)


class _SmtpSession:
    """One SMTP conversation: plain until STARTTLS, then over TLS."""

    def __init__(self, server: DemoServer, sock: socket.socket) -> None:
        self.server = server
        self.sock: socket.socket = sock
        self.secure = False
        self.greeted = False
        self.pending = bytearray()

    def reply(self, *lines: str) -> None:
        """One reply: "250-..." continuation lines, the last one "250 ..."."""
        text = "".join(
            f"{line[:3]}{'-' if index < len(lines) - 1 else ' '}{line[4:]}\r\n"
            for index, line in enumerate(lines)
        )
        self.sock.sendall(text.encode("ascii"))

    def read_command(self) -> str | None:
        """The next command line without CRLF; None at the end of the stream or on shutdown."""
        idle_since = time.monotonic()
        while not self.server._stop.is_set():
            end = self.pending.find(b"\n")
            if end >= 0:
                line = bytes(self.pending[:end]).rstrip(b"\r")
                del self.pending[: end + 1]
                return line.decode("ascii", errors="replace")
            if len(self.pending) > SMTP_MAX_LINE:
                self.reply("500 5.5.2 line too long")
                return None
            try:
                data = self.sock.recv(SMTP_MAX_LINE)
            except TimeoutError:
                if time.monotonic() - idle_since > IDLE_LIMIT:
                    return None
                continue
            if not data:
                return None
            idle_since = time.monotonic()
            self.pending += data
        return None

    def run(self) -> None:
        self.reply(f"220 {SMTP_NAME} ESMTP inetkit demo")
        while (line := self.read_command()) is not None:
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.greeted = True
                offers = ["8BITMIME"] if self.secure else ["8BITMIME", "STARTTLS"]
                self.reply(f"250 {SMTP_NAME} greets you", *(f"250 {offer}" for offer in offers))
            elif verb == "HELO":
                self.greeted = True
                self.reply(f"250 {SMTP_NAME}")
            elif verb == "STARTTLS":
                if self.secure:
                    self.reply("503 5.5.1 TLS is already active")
                elif not self.greeted:
                    self.reply("503 5.5.1 EHLO first")
                else:
                    self.reply("220 2.0.0 ready to start TLS")
                    self.start_tls()
            elif verb in {"NOOP", "RSET"}:
                self.reply("250 2.0.0 OK")
            elif verb == "QUIT":
                self.reply("221 2.0.0 bye")
                return
            else:
                self.reply("502 5.5.2 this demo server accepts no mail")

    def start_tls(self) -> None:
        context = self.server._context
        assert context is not None
        self.pending.clear()  # RFC 3207 §4.2: nothing sent before the handshake counts
        self.sock.settimeout(HANDSHAKE_LIMIT)
        tls = context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
        self.sock = tls  # from here on the TLS socket holds the descriptor
        tls.do_handshake()
        tls.settimeout(POLL_INTERVAL)
        self.secure = True
        # RFC 3207 §4.2: the client starts over with EHLO.
        self.greeted = False
