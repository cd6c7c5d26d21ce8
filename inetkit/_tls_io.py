"""The blocking TLS driver: the sans-I/O `TLSEngine` over a `PlainTransport`, safe for duplex threads.

Theory of operation
-------------------
CPython's `ssl.SSLSocket` is not safe for one thread reading while another
writes: both calls drive the same OpenSSL ``SSL`` object, which OpenSSL forbids
(python/cpython#143756 data races; the lock added for #134698 made a blocked
reader stall the writer, #137583). inetkit therefore keeps the TLS engine
(``_core.tls_engine``: an `ssl.SSLObject` over memory BIOs, no I/O) off the
socket, and this module moves bytes between the engine and the non-blocking
socket (`PlainTransport`), waiting through its `Waiter` within each call's
deadline.

Two locks make that safe:

* the *engine lock*, held only around calls into the engine (OpenSSL runs
  without the GIL there), never while waiting on the socket;
* the *send lock*, held while the engine's output is written to the socket,
  so that records leave in the order the engine made them.

A writer encrypts one slice under the engine lock, then drains under the send
lock (blocking on a full socket if it must), slice after slice: the lock is
never held for long, and a failure part-way knows how much plaintext went
out (``bytes_sent``). A reader never blocks on the send lock: records the
engine produced while reading (alerts, key-update replies) are drained
opportunistically, without blocking, and what does not fit stays queued for
the next drainer. Every drainer re-checks the queue after releasing the send
lock, so nothing is stranded. Readers among themselves and writers among
themselves are serialized one level up, by the `Connection`'s direction
locks. The handshake runs before any other thread can reach the transport
(inside connect, or `enable_security` holding both directions), so it takes
neither lock.

Owner-thread handles take the same path; their locks are never contended.

Memory: no receive buffer per handle. Each receive takes what the kernel
has (up to `RECV_SIZE`) as a fresh ``bytes`` object, which the engine hands
to OpenSSL a record at a time and then drops; between calls an idle handle
holds nothing but OpenSSL's own state (and at most the start of a record
that has not fully arrived).

The handshake, for implicit TLS and for `enable_security` alike, is
`start_tls`: one wrap-and-verify path, so verification cannot diverge.

TLS inside TLS (a secure target through an HTTPS proxy): the layer below a
`TLSTransport` is a `Channel`, the socket's `PlainTransport` or another
`TLSTransport` (the one to the proxy), which offers the same calls: the
waiting ones (`recv`, `sendall`) and the ones that never wait
(`recv_nowait`: plaintext already decrypted or decryptable from what the
kernel holds; `send_nowait`: encrypted and queued at once, sent as far as
the socket takes it, the rest by the next drain of that layer). Each
layer's bytes pass through its own engine once, so the inner layer adds
its own record work and nothing else.
"""

from __future__ import annotations

import math
import select
import threading
import time
from typing import TYPE_CHECKING

from ._core.tls_engine import WANT_READ, TLSEngine
from ._errors import ErrorCode, InetError, InetTimeoutError, SecurityError
from ._hostname import check_host, sni_name
from ._log import DEBUG, logger
from ._tls.certinfo import DerSource, SecurityInfo, check_pins
from ._tls.context import get_context
from ._tls.sessions import SESSION_CACHE, SessionKey, session_key
from ._types import Option

if TYPE_CHECKING:
    import ssl

    from ._credentials import SecurityCredentials
    from ._transport import Channel

__all__ = [
    "TLSTransport",
    "handshake_timeout",
    "keep_session",
    "new_engine",
    "session_wanted",
    "start_tls",
    "ticket_wait",
    "verified",
]


#: Bytes taken from the kernel per receive: four full TLS records, so bulk
#: reads need one system call per 64 KiB (``SSLSocket`` makes two per
#: record). The ``bytes`` lives only until the engine has given its records
#: to OpenSSL, one at a time (see ``_core.tls_engine``); below glibc's
#: 128 KiB mmap threshold, so it is not mapped and unmapped per call.
RECV_SIZE = 65536
#: Bytes taken per receive during the handshake: one full record (16 KiB of
#: payload, 256 of expansion, the 5-byte header) holds a server's whole
#: first flight in practice. Smaller than `RECV_SIZE` because every thread
#: that connects would otherwise make its malloc arena grow by 64 KiB for a
#: flight of a few kilobytes (OpenSSL's own record buffer is this size too).
HANDSHAKE_RECV_SIZE = 16384 + 256 + 5
#: Bounds of the wait for a TLS 1.3 session ticket at close (see
#: `TLSTransport._keep_session`): at least 2 ms (loopback round trips are
#: shorter than a timer tick), at most 50 ms (close must stay fast).
TICKET_WAIT_MIN = 0.002
TICKET_WAIT_MAX = 0.05

_monotonic = time.monotonic


class TLSTransport:
    """A `Transport` that speaks TLS over a `Channel` (a `PlainTransport`, or TLS to a proxy), and is one."""

    __slots__ = ("_lock", "_outq", "_send", "broken", "engine", "raw", "session_key", "target")

    def __init__(
        self, raw: Channel, engine: TLSEngine, session_key: SessionKey | None, target: str | None = None
    ) -> None:
        self.raw = raw
        self.engine = engine
        self.target = raw.target if target is None else target
        self.session_key = session_key
        self._lock = threading.Lock()  # the engine lock
        self._send = threading.Lock()  # the send lock
        self._outq: bytearray | None = None  # engine output taken, not yet sent (send lock)
        self.broken: InetError | None = None

    # -- moving bytes between the socket and the engine ----------------

    def _feed_nowait(self) -> bool:
        """Move what the kernel already holds into the engine; True if anything came."""
        data = self.raw.recv_nowait(RECV_SIZE)
        if data is None:  # nothing there (or a failure the next waiting read reports)
            return False
        with self._lock:
            if data:
                self.engine.receive(data)
            else:
                self.engine.receive_eof()
        return True

    def _drain(self, deadline: float | None) -> None:
        """Send everything queued, waiting as needed (caller holds the send lock)."""
        raw = self.raw
        outq = self._outq
        if outq:
            with memoryview(outq) as view:
                raw.sendall(view, deadline)
            outq.clear()
        engine = self.engine
        while True:
            with self._lock:
                data = engine.data_to_send()
            if not data:
                return
            raw.sendall(memoryview(data), deadline)
            if not engine.output_pending:
                # Read without the engine lock, as a hint: a record another
                # thread adds meanwhile is sent by its own flush or ours.
                return

    def _drain_nowait(self) -> None:
        """Send what fits now, never waiting (caller holds the send lock)."""
        with self._lock:
            data = self.engine.data_to_send()
        outq = self._outq
        raw = self.raw
        if not outq:
            if not data:
                return
            sent = raw.send_nowait(
                data
            )  # the common case: all of it fits (0: full, the next drainer goes on)
            if sent < len(data):
                self._outq = bytearray(data[sent:])
            return
        outq += data
        while outq:
            sent = raw.send_nowait(outq)
            if not sent:
                break
            del outq[:sent]
        self._outq = outq or None

    def _flush_opportunistic(self) -> None:
        """Drain without ever blocking on the send lock (the reader's way)."""
        for _ in range(2):  # bounded: the second pass catches output added meanwhile
            if not self.engine.output_pending and not self._outq:
                # The common case, checked without the engine lock: the BIO's
                # size is one word, and the GIL orders it after the last
                # engine step of any thread that has returned.
                return
            if not self._send.acquire(blocking=False):
                return  # the holder re-checks after it releases
            try:
                self._drain_nowait()
            finally:
                self._send.release()

    # -- handshake -----------------------------------------------------

    def handshake(self, deadline: float | None) -> None:
        """Run the handshake to its end within ``deadline``.

        No other thread has the transport yet (connect or `enable_security`
        holds it), so the engine is driven without its locks and its output
        goes straight to the layer below.
        """
        engine = self.engine
        raw = self.raw
        try:
            while True:
                try:
                    done = engine.handshake(_monotonic())
                except SecurityError:
                    self._drain_nowait()  # best effort: our alert tells the server why
                    raise
                data = engine.data_to_send()
                if data:
                    raw.sendall(memoryview(data), deadline)
                if done:
                    return
                # The answer is a round trip away: wait first instead of a
                # receive that would only fail with EAGAIN (an exception and
                # a system call, and with many threads a trip through the GIL).
                if not raw.wait_readable(deadline):
                    break
                data = raw.recv(HANDSHAKE_RECV_SIZE, deadline)
                if data:
                    engine.receive(data)
                else:
                    engine.receive_eof()
        except InetTimeoutError as exc:  # a send or receive below ran out of time
            raise self._handshake_timeout() from exc
        raise self._handshake_timeout()  # the server's answer did not come in time

    def _handshake_timeout(self) -> InetTimeoutError:
        return handshake_timeout(self.target)

    # -- Transport -----------------------------------------------------

    def recv_into(self, view: memoryview, deadline: float | None) -> int:
        engine = self.engine
        lock = self._lock
        with lock:
            count = engine.read_into(view)
        while count == WANT_READ:
            self._flush_opportunistic()
            data = self.raw.recv(RECV_SIZE, deadline)
            with lock:
                if data:
                    engine.receive(data)
                else:
                    engine.receive_eof()
                count = engine.read_into(view)
        return count

    def recv(self, max_bytes: int, deadline: float | None) -> bytes:
        engine = self.engine
        lock = self._lock
        with lock:
            data = engine.read(max_bytes)
        while data is None:
            self._flush_opportunistic()
            received = self.raw.recv(RECV_SIZE, deadline)
            # One engine-lock round per receive: the bytes go in and the
            # records they complete come out together.
            with lock:
                if received:
                    engine.receive(received)
                else:
                    engine.receive_eof()
                data = engine.read(max_bytes)
        return data

    def sendall(self, data: memoryview, deadline: float | None) -> None:
        """Encrypt and send all of ``data``, a slice at a time.

        A failure part-way raises with ``bytes_sent`` = the plaintext of the
        slices whose records were all sent; the handle is then unusable (the
        stream may end inside a record).
        """
        broken = self.broken
        if broken is not None:
            # A fresh error each time: the first one belongs to the write that failed.
            raise type(broken)(
                f"write to {self.target}: the TLS stream is unusable after an earlier write failed "
                f"({broken.message})",
                broken.code,
                bytes_sent=0,
            ) from broken
        engine = self.engine
        lock = self._lock
        send = self._send
        raw = self.raw
        total = len(data)
        done = 0
        try:
            while done < total:
                # Send lock first, then the engine lock (the order every
                # drainer takes them): records leave in the order made.
                with send:
                    with lock:
                        taken = engine.write(data, done)
                        records = engine.data_to_send()
                    if self._outq:
                        self._drain(deadline)  # older records first
                    raw.sendall(memoryview(records), deadline)
                    if engine.output_pending:  # what a reader added meanwhile (a hint, see _drain)
                        self._drain(deadline)
                done += taken
        except InetError as exc:
            alert = None
            if exc.code in (ErrorCode.CONNECTION_RESET, ErrorCode.CONNECTION_ABORTED):
                # A server that rejected our certificate (TLS 1.3) sends its
                # alert and closes; report the alert, not the reset.
                alert = self._alert_waiting()
            error = exc if alert is None else alert
            error.bytes_sent = done
            self.broken = error
            if alert is None:
                raise
            raise alert from exc
        # Output the reader made while we held the send lock.
        self._flush_opportunistic()

    def _alert_waiting(self) -> InetError | None:
        """The server's alert, if one already arrived (TLS 1.3 client-certificate verdicts)."""
        self._feed_nowait()
        with self._lock:
            self.engine.take_records()
            failure = self.engine.failure
        return failure if isinstance(failure, SecurityError) else None

    def pending(self) -> int:
        with self._lock:
            count = self.engine.pending()
        raw = self.raw
        if not count and isinstance(raw, TLSTransport) and raw.pending():
            # TLS inside TLS: this layer's records may wait, decrypted, in the
            # layer below, where no socket wait would see them. Take them in.
            self._feed_nowait()
            with self._lock:
                count = self.engine.pending()
        return count

    def ready_to_read(self) -> bool:
        """Called once the socket polled readable: is there something for `read`?

        Readable bytes may be only TLS housekeeping (session tickets, key
        updates), after which a read would block. Take them without waiting;
        application data found is kept for the next read.
        """
        self._feed_nowait()
        with self._lock:
            return self.engine.take_records()

    def shutdown_write(self, deadline: float | None) -> None:
        with self._lock:
            self.engine.close_notify()
        with self._send:
            self._drain(deadline)
        self.raw.shutdown_write(deadline)

    def close(self) -> None:
        """Keep the session for resumption, send close_notify, never block; then close a TLS layer below."""
        try:
            self._close()
        finally:
            if isinstance(self.raw, TLSTransport):  # TLS inside TLS: the proxy's layer says goodbye too
                self.raw.close()

    def _close(self) -> None:
        if self.broken is not None:
            return
        if self.session_key is not None:
            try:
                self._keep_session(self.session_key)
            except (InetError, OSError, ValueError):
                logger.debug("keeping the TLS session of %s failed", self.target, exc_info=True)
        with self._lock:
            self.engine.close_notify()
        with self._send:
            self._drain_nowait()

    def _keep_session(self, key: SessionKey) -> None:
        """Keep a TLS 1.3 session, whose tickets arrive after the handshake (see `keep_session`)."""
        engine = self.engine
        if not session_wanted(engine, key):
            return
        self._feed_nowait()
        with self._lock:
            engine.take_records()
        waited = False
        if not engine.heard_since_handshake:
            limit = ticket_wait(engine, key)
            if limit is None:
                return
            waited = True
            self._wait_for_ticket(limit)
        with self._lock:
            keep_session(engine, key, waited=waited)

    def _wait_for_ticket(self, limit: float) -> None:
        """Wait up to ``limit`` seconds for the server's first bytes after the handshake."""
        poller = select.poll()
        poller.register(self.raw.fileno(), select.POLLIN)
        end = _monotonic() + limit
        for _ in range(8):  # bounded: each pass waits or takes bytes
            remaining = end - _monotonic()
            if remaining <= 0 or not poller.poll(math.ceil(remaining * 1000)):
                return
            if not self._feed_nowait():
                return
            with self._lock:
                self.engine.take_records()
            if self.engine.heard_since_handshake:
                return

    def peer_der(self) -> bytes | None:
        """The server's certificate (DER), read under the engine lock (any thread)."""
        with self._lock:
            return self.engine.peer_der()

    # -- Channel: a TLS layer runs over this one (TLS inside TLS) ----------

    def recv_nowait(self, max_bytes: int) -> bytes | None:
        """Plaintext there now (decrypted already, or from what the kernel holds); None when there is none.

        A failure (an alert, a cut) counts as none: the next waiting read reports it.
        """
        try:
            with self._lock:
                data = self.engine.read(max_bytes)
            if data is None and self._feed_nowait():
                with self._lock:
                    data = self.engine.read(max_bytes)
        except InetError:
            return None
        self._flush_opportunistic()  # what reading made (a key update's answer) goes out
        return data

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt all of ``data`` now and send what fits; the rest goes with this layer's next drain.

        Takes everything (encryption into memory never blocks) unless the
        stream is unusable: then 0, and the next waiting call reports why.
        """
        if self.broken is not None:
            return 0
        view = memoryview(data)
        total = len(view)
        done = 0
        try:
            with self._send:
                with self._lock:
                    while done < total:
                        done += self.engine.write(view, done)
                self._drain_nowait()
        except InetError:
            return 0
        return total

    def wait_readable(self, deadline: float | None) -> bool:
        """At once when the engine can answer a read (data, an end, an alert), else when the socket can."""
        with self._lock:
            if self.engine.take_records():
                return True
        return self.raw.wait_readable(deadline)

    def fileno(self) -> int:
        return self.raw.fileno()


def start_tls(
    raw: Channel,
    *,
    host: str,
    port: int,
    options: Option,
    credentials: SecurityCredentials | None,
    server_name: str | None,
    deadline: float | None,
    session_cache: bool = True,
    context: ssl.SSLContext | None = None,
    target: str | None = None,
) -> tuple[TLSTransport, SecurityInfo]:
    """Wrap and verify: the TLS handshake for implicit TLS and `enable_security` alike.

    SNI and verification use the normalized name without its trailing dot
    (an IP literal gets no SNI and is checked against IP SANs). Returns the
    new transport and what was negotiated. ``context`` is the one `connect`
    got from `get_context` for this connect (credentials are checked before
    any I/O there), when there was one. ``target`` names the peer in
    messages (default: as ``raw`` does; through a proxy the driver names
    the proxy for its own hop and the target for the target's). The steps
    around the handshake are `new_engine` and `verified`, which the asyncio
    driver (``aio._tls``) calls too.
    """
    if target is None:
        target = raw.target
    engine, key = new_engine(
        host=host,
        port=port,
        options=options,
        credentials=credentials,
        server_name=server_name,
        session_cache=session_cache,
        context=context,
        target=target,
    )
    transport = TLSTransport(raw, engine, key, target)
    started = _monotonic()
    transport.handshake(deadline)
    return transport, verified(engine, key, credentials, transport, started)


# -- the steps of a handshake that do no I/O, shared with the asyncio driver --


def new_engine(
    *,
    host: str,
    port: int,
    options: Option,
    credentials: SecurityCredentials | None,
    server_name: str | None,
    session_cache: bool,
    context: ssl.SSLContext | None,
    target: str,
) -> tuple[TLSEngine, SessionKey | None]:
    """The engine for a handshake with ``host``, and its session cache key (None: no resumption).

    The context is the one given, or the one `get_context` builds for the
    credentials and options. SNI and verification use the normalized name
    without its trailing dot (an IP literal gets no SNI and is checked
    against IP SANs). A cached session for the key is offered.
    """
    if context is None:
        context = get_context(credentials, options, target=target)
    wanted = host if server_name is None else check_host(server_name)
    # An IP literal has no SNI name; ssl then checks it against IP SANs.
    name = sni_name(wanted)
    check_name = name if name is not None else wanted
    key = session_key(check_name, port, context) if session_cache else None
    session = SESSION_CACHE.get(key) if key is not None else None
    engine = TLSEngine(
        context,
        check_name,
        session=session,
        target=target,
        credentials_given=bool(credentials is not None and credentials.cert_store),
    )
    return engine, key


def verified(
    engine: TLSEngine,
    key: SessionKey | None,
    credentials: SecurityCredentials | None,
    der_source: DerSource,
    started: float,
) -> SecurityInfo:
    """After the handshake: check the pins, build `SecurityInfo`, keep a TLS 1.2 session.

    ``der_source`` fetches the certificate when `SecurityInfo` is first
    asked for it (the driver's transport); ``started`` is when the handshake
    began (for the log).
    """
    target = engine.target
    pins = credentials.pinned_public_keys if credentials is not None else None
    if pins:
        der = engine.peer_der()
        check_pins(der or b"", tuple(pins), target=target)
        info = engine.security_info(der)
    else:
        info = engine.security_info(der_source)  # the certificate is read when asked for
    if key is not None and info.protocol != "TLSv1.3" and not info.session_reused:
        # TLS 1.2 sessions are complete at the end of the handshake (a
        # resumed one is the session already cached).
        SESSION_CACHE.put(key, engine.session())
    if logger.isEnabledFor(DEBUG):
        logger.debug(
            "TLS with %s: %s %s in %.1f ms%s",
            target,
            info.protocol,
            info.cipher,
            (_monotonic() - started) * 1000,
            " (session resumed)" if info.session_reused else "",
        )
    return info


def handshake_timeout(target: str) -> InetTimeoutError:
    """The error of a handshake that ran out of time (both drivers)."""
    return InetTimeoutError(
        f"TLS handshake with {target}: timed out (the server may not speak TLS on this port; "
        "if it expects plaintext first, use starttls=)",
        ErrorCode.TIMED_OUT,
    )


# Keeping a TLS 1.3 session at close. The server sends tickets once it has
# our Finished, about one round trip after the handshake ended on our side.
# A driver takes what has arrived (without waiting), then asks these three:
# `session_wanted` first (False: nothing to do), `ticket_wait` when nothing
# arrived since the handshake (how long to wait for the ticket, or None: do
# not), and `keep_session` last.


def session_wanted(engine: TLSEngine, key: SessionKey) -> bool:
    """Is there a session to keep at close? Only TLS 1.3's (1.2 kept it after the handshake).

    A handle that resumed a cached session keeps that one: nothing to read or copy.
    """
    if engine.version != "TLSv1.3":
        return False
    return not (engine.session_reused and SESSION_CACHE.get(key) is not None)


def ticket_wait(engine: TLSEngine, key: SessionKey) -> float | None:
    """Seconds to wait for a ticket from a server that sent nothing since the handshake, or None.

    Reading ``SSLObject.session`` (which copies the session) is skipped for
    such a handle; only while the cache has nothing for this server, and no
    earlier wait came back empty, wait: about two round trips as measured
    during the handshake, within `TICKET_WAIT_MIN`..`TICKET_WAIT_MAX`
    (closing must stay fast).
    """
    if engine.rtt is None or not SESSION_CACHE.worth_waiting(key):
        return None
    return min(max(2 * engine.rtt, TICKET_WAIT_MIN), TICKET_WAIT_MAX)


def keep_session(engine: TLSEngine, key: SessionKey, *, waited: bool) -> None:
    """Put the session in the cache if it has a ticket; remember a wait that came back empty."""
    if not engine.heard_since_handshake:
        if waited:
            SESSION_CACHE.note_no_ticket(key)
        return
    session = engine.session()
    if session is not None and session.has_ticket:
        SESSION_CACHE.put(key, session)
    elif waited:
        SESSION_CACHE.note_no_ticket(key)
