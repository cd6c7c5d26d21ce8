"""The TLS record engine: `ssl.SSLObject` over `ssl.MemoryBIO`, safe for duplex threads.

Theory of operation
-------------------
CPython's `ssl.SSLSocket` is not safe for one thread reading while another
writes: both calls drive the same OpenSSL ``SSL`` object, which OpenSSL forbids
(python/cpython#143756 data races; the lock added for #134698 made a blocked
reader stall the writer, #137583). inetkit therefore keeps the TLS engine
off the socket: an `ssl.SSLObject` encrypts into an outgoing `ssl.MemoryBIO`
and decrypts from an incoming one, and this module moves bytes between the
BIOs and the non-blocking socket (`PlainTransport`).

Two locks make that safe:

* the *engine lock*, held only around calls into the `SSLObject` and writes
  into the incoming BIO (OpenSSL runs without the GIL there), never while
  waiting on the socket;
* the *send lock*, held while the outgoing bytes are written to the socket,
  so that records leave in the order the engine made them.

A writer encrypts under the engine lock, then drains under the send lock
(blocking on a full socket if it must). A reader never blocks on the send
lock: records the engine produced while reading (alerts, key-update
replies) are drained opportunistically, without blocking, and what does not
fit stays queued for the next drainer. Every drainer re-checks the queue
after releasing the send lock, so nothing is stranded. Readers among
themselves and writers among themselves are serialized one level up, by the
`Connection`'s direction locks.

Owner-thread handles take the same path; their locks are never contended.

The handshake, for implicit TLS and for `enable_security` alike, is
`start_tls`: one wrap-and-verify path, so verification cannot diverge.
"""

from __future__ import annotations

import logging
import math
import select
import ssl
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from ._errors import ErrorCode, InetError, InetTimeoutError, SecurityError
from ._hostname import check_host, sni_name
from ._options import Option
from ._tls import (
    SESSION_CACHE,
    CertificateInfo,
    SecurityInfo,
    check_pins,
    get_context,
    map_ssl_error,
    session_key,
)

if TYPE_CHECKING:
    from ._credentials import SecurityCredentials
    from ._transport import PlainTransport

__all__ = ["Negotiated", "TLSTransport", "prepare_tls", "start_tls"]

logger = logging.getLogger("inetkit")

#: Bytes taken from the socket per receive: four full TLS records, so bulk
#: reads need few system calls. Kept below glibc's 128 KiB mmap threshold:
#: a larger buffer is mapped and unmapped (and page-faulted in) per handle.
RECV_CHUNK = 65536
#: Largest TLS record payload; the most one SSLObject.read returns.
MAX_RECORD = 16384
#: Bounds of the wait for a TLS 1.3 session ticket at close (see
#: `TLSTransport._keep_tls13_session`): at least 2 ms (loopback round trips are
#: shorter than a timer tick), at most 50 ms (close must stay fast).
TICKET_WAIT_MIN = 0.002
TICKET_WAIT_MAX = 0.05


def prepare_tls(credentials: SecurityCredentials | None, options: Option, target: str) -> ssl.SSLContext:
    """Load and check credentials and build (or fetch) the context, before any I/O.

    Weakening options (`Option.TRUSTEDSITE`, `Option.SECURE_FALLBACK`) are
    logged here, naming ``target``; pass the result to `start_tls`.
    """
    return get_context(credentials, options, target=target)


class TLSTransport:
    """A `Transport` that speaks TLS over a `PlainTransport`."""

    __slots__ = (
        "_ended",
        "_engine",
        "_outq",
        "_rbuf",
        "_send",
        "_session_key",
        "_stash",
        "broken",
        "cache_sessions",
        "incoming",
        "obj",
        "outgoing",
        "raw",
        "rtt",
        "target",
    )

    def __init__(
        self,
        raw: PlainTransport,
        obj: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        *,
        session_key: object | None,
    ) -> None:
        self.raw = raw
        self.obj = obj
        self.incoming = incoming
        self.outgoing = outgoing
        self.target = raw.target
        self._engine = threading.Lock()
        self._send = threading.Lock()
        self._outq = bytearray()  # encrypted bytes taken from the BIO, not yet sent
        self._rbuf = memoryview(bytearray(RECV_CHUNK))
        self._stash = b""  # plaintext decrypted while checking for alerts
        self._ended = False  # the peer's close_notify (or a bare EOF) was seen
        self._session_key = session_key
        self.cache_sessions = session_key is not None
        self.broken: InetError | None = None
        self.rtt: float | None = None  # ClientHello sent -> first answer, seconds

    # -- moving bytes between the socket and the BIOs ------------------

    def _feed(self, deadline: float | None) -> bool:
        """Receive from the socket into the incoming BIO; False at end of stream."""
        count = self.raw.recv_into(self._rbuf, deadline)
        with self._engine:
            if count:
                self.incoming.write(self._rbuf[:count])
            else:
                self.incoming.write_eof()
        return bool(count)

    def _feed_nowait(self) -> bool:
        """Move what the kernel already holds into the incoming BIO; True if anything came."""
        try:
            count = self.raw.sock.recv_into(self._rbuf)
        except BlockingIOError:
            return False
        except OSError:
            return False
        with self._engine:
            if count:
                self.incoming.write(self._rbuf[:count])
            else:
                self.incoming.write_eof()
        return True

    def _take_output(self) -> None:
        """Move the engine's output into the send queue (caller holds the send lock)."""
        with self._engine:
            if self.outgoing.pending:
                self._outq += self.outgoing.read()

    def _drain(self, deadline: float | None) -> None:
        """Send everything queued, waiting as needed (caller holds the send lock)."""
        while True:
            self._take_output()
            if not self._outq:
                return
            data = memoryview(self._outq)
            try:
                self.raw.sendall(data, deadline)
            finally:
                data.release()
            self._outq.clear()

    def _drain_nowait(self) -> None:
        """Send what fits now, never waiting (caller holds the send lock)."""
        self._take_output()
        while self._outq:
            try:
                sent = self.raw.sock.send(self._outq)
            except (BlockingIOError, OSError):
                return
            del self._outq[:sent]

    def _flush_opportunistic(self) -> None:
        """Drain without ever blocking on the send lock (the reader's way)."""
        for _ in range(2):  # bounded: the second pass catches output added meanwhile
            with self._engine:
                pending = self.outgoing.pending
            if not pending and not self._outq:
                return
            if not self._send.acquire(blocking=False):
                return  # the holder re-checks after it releases
            try:
                self._drain_nowait()
            finally:
                self._send.release()

    # -- handshake -----------------------------------------------------

    def handshake(self, deadline: float | None, *, credentials_given: bool) -> None:
        hello_sent: float | None = None
        while True:
            error: ssl.SSLError | None = None
            done = False
            with self._engine:
                try:
                    self.obj.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as exc:
                    error = exc
            try:
                with self._send:
                    if error is not None:
                        self._drain_nowait()  # best effort: tell the server why (our alert)
                    else:
                        self._drain(deadline)
            except InetTimeoutError as exc:
                raise self._handshake_timeout() from exc
            if error is not None:
                raise map_ssl_error(error, target=self.target, credentials_given=credentials_given) from error
            if done:
                return
            if hello_sent is None:
                hello_sent = time.monotonic()
            try:
                more = self._feed(deadline)
            except InetTimeoutError as exc:
                raise self._handshake_timeout() from exc
            if self.rtt is None:
                self.rtt = time.monotonic() - hello_sent
            if not more:
                with self._engine:
                    try:
                        self.obj.do_handshake()
                    except ssl.SSLError as exc:
                        if not isinstance(exc, ssl.SSLEOFError | ssl.SSLWantReadError):
                            raise map_ssl_error(
                                exc, target=self.target, credentials_given=credentials_given
                            ) from exc
                raise SecurityError(
                    f"TLS handshake with {self.target}: the server closed the connection during the "
                    "handshake (it may not speak TLS on this port, refuse our TLS version or ciphers, "
                    "or require a client certificate)",
                    ErrorCode.HANDSHAKE_FAILED,
                )

    def _handshake_timeout(self) -> InetTimeoutError:
        return InetTimeoutError(
            f"TLS handshake with {self.target}: timed out (the server may not speak TLS on this port; "
            "if it expects plaintext first, use starttls=)",
            ErrorCode.TIMED_OUT,
        )

    # -- Transport -----------------------------------------------------

    def _map(self, exc: ssl.SSLError) -> InetError:
        err = map_ssl_error(exc, target=self.target, credentials_given=True)
        self.broken = err
        return err

    def recv_into(self, view: memoryview, deadline: float | None) -> int:
        if self._stash:
            count = min(len(view), len(self._stash))
            view[:count] = self._stash[:count]
            self._stash = self._stash[count:]
            return count
        obj = self.obj
        size = len(view)
        while True:
            with self._engine:
                try:
                    # With a buffer, SSLObject.read returns the count (typeshed says bytes).
                    count = cast(int, obj.read(size, view))
                    # Records already received fill the rest of the buffer
                    # without waiting: fewer calls (and lock rounds) per byte.
                    while count < size and self.incoming.pending:
                        try:
                            more = cast(int, obj.read(size - count, view[count:]))
                        except ssl.SSLError:
                            break  # a partial record, or an error the next call reports
                        if not more:
                            break
                        count += more
                    return count
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    return 0
                except ssl.SSLEOFError:
                    # The peer closed without close_notify (a "ragged" EOF), as
                    # many servers do; end of stream, as ssl's suppress_ragged_eofs.
                    return 0
                except ssl.SSLError as exc:
                    raise self._map(exc) from exc
            self._flush_opportunistic()
            self._feed(deadline)

    def recv(self, max_bytes: int, deadline: float | None) -> bytes:
        if self._stash:
            data = self._stash[:max_bytes]
            self._stash = self._stash[max_bytes:]
            return data
        buffer = bytearray(min(max_bytes, RECV_CHUNK))
        with memoryview(buffer) as view:
            count = self.recv_into(view, deadline)
        del buffer[count:]
        return bytes(buffer)

    def _check_alerts(self) -> None:
        """Surface an alert the server already sent (TLS 1.3 client-certificate verdicts).

        Decrypted application data found on the way is kept for the next read.
        """
        if not self._feed_nowait():
            return
        chunks: list[bytes] = []
        with self._engine:
            for _ in range(64):  # bounded: each pass consumes at least one record
                try:
                    data = self.obj.read(MAX_RECORD)
                except ssl.SSLWantReadError:
                    break
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    self._ended = True
                    break
                except ssl.SSLError as exc:
                    self._stash += b"".join(chunks)
                    raise self._map(exc) from exc
                if not data:
                    break
                chunks.append(data)
        self._stash += b"".join(chunks)

    def sendall(self, data: memoryview, deadline: float | None) -> None:
        if self.broken is not None:
            raise self.broken
        try:
            with self._engine:
                try:
                    self.obj.write(data)
                except ssl.SSLError as exc:
                    raise self._map(exc) from exc
            with self._send:
                self._drain(deadline)
        except InetError as exc:
            if exc.code in (ErrorCode.CONNECTION_RESET, ErrorCode.CONNECTION_ABORTED):
                # A server that rejected our certificate (TLS 1.3) sends its
                # alert and closes; report the alert, not the reset.
                self._check_alerts()
            self.broken = exc
            exc.bytes_sent = 0 if exc.bytes_sent is None else exc.bytes_sent
            raise
        # Output the reader made while we held the send lock.
        self._flush_opportunistic()

    def pending(self) -> int:
        with self._engine:
            return len(self._stash) + self.obj.pending()

    def ready_to_read(self) -> bool:
        """Called once the socket polled readable: is there something for `read`?

        Readable bytes may be only TLS housekeeping (session tickets, key
        updates), after which a read would block. Take them without waiting;
        application data found is kept for the next read.
        """
        try:
            self._check_alerts()
        except InetError:
            return True  # the next read reports it
        return bool(self._ended or self.pending())

    def shutdown_write(self, deadline: float | None) -> None:
        self._close_notify()
        with self._send:
            self._drain(deadline)
        self.raw.shutdown_write(deadline)

    def _close_notify(self) -> None:
        with self._engine:
            try:
                self.obj.unwrap()
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
                pass  # our close_notify is queued; we do not wait for the peer's
            except ssl.SSLError:
                logger.debug("close_notify to %s failed", self.target, exc_info=True)

    def close(self) -> None:
        """Keep the session for resumption, send close_notify, never block."""
        if self.broken is None:
            if self.cache_sessions:
                self._keep_tls13_session()
            self._close_notify()
            with self._send:
                self._drain_nowait()
        self._rbuf.release()

    def _keep_tls13_session(self) -> None:
        """Keep a TLS 1.3 session, whose tickets arrive after the handshake.

        (TLS 1.2 sessions are kept right after the handshake, in `start_tls`.)
        The server sends tickets once it has our Finished, about one round
        trip after the handshake ended on our side; a handle closed sooner
        has none yet. Take what has arrived; only while the cache holds no
        session for this server (its first connection) wait for a ticket, at
        most about two round trips as measured during the handshake (capped):
        closing must stay fast. A handle that resumed a cached session keeps
        that one (reading ``SSLObject.session`` copies the whole session,
        certificates included: about 0.1 ms that resumed handles need not pay).
        """
        try:
            self._check_alerts()
            if self.obj.version() != "TLSv1.3":
                return
            cached = SESSION_CACHE.get(self._session_key) is not None
            if cached and self.obj.session_reused:
                return
            session = self._session()
            if session is None or session.has_ticket or cached or self.rtt is None:
                self._save_session(session)
                return
            limit = min(max(2 * self.rtt, TICKET_WAIT_MIN), TICKET_WAIT_MAX)
            poller = select.poll()
            poller.register(self.raw.sock.fileno(), select.POLLIN)
            end = time.monotonic() + limit
            for _ in range(8):  # bounded: each pass waits or takes bytes
                remaining = end - time.monotonic()
                if remaining <= 0 or not poller.poll(math.ceil(remaining * 1000)):
                    return
                self._check_alerts()
                session = self._session()
                if session is not None and session.has_ticket:
                    self._save_session(session)
                    return
        except (InetError, OSError, ValueError):
            return

    def _session(self) -> ssl.SSLSession | None:
        with self._engine:
            return self.obj.session

    def _save_session(self, session: ssl.SSLSession | None) -> None:
        if session is None or self._session_key is None:
            return
        if not session.has_ticket and self.obj.version() == "TLSv1.3":
            # A TLS 1.3 session is resumable only with a ticket; do not let a
            # ticketless one replace a good cached session.
            return
        SESSION_CACHE.put(self._session_key, session)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the handshake settled, kept raw: `SecurityInfo` is built on first use.

    Parsing the peer certificate with ``cryptography`` costs tens of
    microseconds, a few per cent of a loopback handshake; most handles never
    look at it.
    """

    protocol: str
    cipher: str
    cipher_bits: int
    alpn_protocol: str | None
    session_reused: bool
    peer_der: bytes | None

    def info(self) -> SecurityInfo:
        return SecurityInfo(
            protocol=self.protocol,
            cipher=self.cipher,
            cipher_bits=self.cipher_bits,
            alpn_protocol=self.alpn_protocol,
            session_reused=self.session_reused,
            peer_certificate=CertificateInfo.from_der(self.peer_der) if self.peer_der else None,
        )


def start_tls(
    raw: PlainTransport,
    *,
    host: str,
    port: int,
    options: Option,
    credentials: SecurityCredentials | None,
    server_name: str | None,
    deadline: float | None,
    session_cache: bool = True,
    context: ssl.SSLContext | None = None,
) -> tuple[TLSTransport, Negotiated]:
    """Wrap and verify: the TLS handshake for implicit TLS and `enable_security` alike.

    SNI and verification use the normalized name without its trailing dot
    (an IP literal gets no SNI and is checked against IP SANs). Returns the
    new transport and what was negotiated. ``context`` is the one
    `prepare_tls` returned for this connect, when there was one.
    """
    if context is None:
        context = get_context(credentials, options, target=raw.target)
    wanted = host if server_name is None else check_host(server_name)
    # An IP literal has no SNI name; ssl then checks it against IP SANs.
    name = sni_name(wanted)
    check_name = name if name is not None else wanted
    key = session_key(check_name, port, context) if session_cache else None
    session = SESSION_CACHE.get(key) if key is not None else None
    incoming = ssl.MemoryBIO()
    outgoing = ssl.MemoryBIO()
    # server_hostname drives both SNI (names only) and hostname/IP checks.
    obj = context.wrap_bio(incoming, outgoing, server_hostname=check_name, session=session)
    transport = TLSTransport(raw, obj, incoming, outgoing, session_key=key)
    started = time.monotonic()
    transport.handshake(deadline, credentials_given=bool(credentials and credentials.cert_store))
    cipher = obj.cipher()
    info = Negotiated(
        protocol=obj.version() or "",
        cipher=cipher[0] if cipher else "",
        cipher_bits=int(cipher[2] or 0) if cipher else 0,
        alpn_protocol=obj.selected_alpn_protocol(),
        session_reused=bool(obj.session_reused),
        peer_der=obj.getpeercert(binary_form=True),
    )
    pins = credentials.pinned_public_keys if credentials is not None else None
    if pins:
        check_pins(info.peer_der or b"", tuple(pins), target=transport.target)
    if key is not None and obj.version() != "TLSv1.3":
        # TLS 1.2 sessions are complete at the end of the handshake.
        transport._save_session(transport._session())
    logger.debug(
        "TLS with %s: %s %s in %.1f ms%s",
        transport.target,
        info.protocol,
        info.cipher,
        (time.monotonic() - started) * 1000,
        " (session resumed)" if info.session_reused else "",
    )
    return transport, info
