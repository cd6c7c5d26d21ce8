"""The asyncio TLS driver: the sans-I/O `TLSEngine` over an `AsyncConnection`'s `Channel`.

Theory of operation
-------------------
The engine (``_core.tls_engine``: an `ssl.SSLObject` over memory BIOs) does
every TLS step; this module only moves its bytes, as the blocking driver
``_tls_io`` does, but waiting on the event loop. The handshake's policy
steps (context, session key, pins, `SecurityInfo`, keeping sessions) are
the blocking driver's own functions (``_tls_io.new_engine``, ``verified``,
``session_wanted``, ``ticket_wait``, ``keep_session``), so both drivers
verify alike and share one session cache.

Full duplex without locks: everything runs on one thread, and no call into
the engine spans an ``await``, so one task may read while another writes.
What the engine produces goes into one queue of outgoing chunks, taken from
the engine right after the step that made it: records therefore leave in
the order the engine made them, whoever sends them. A writer encrypts one
slice (`SEND_SLICE`), queues its records and drains the queue, waiting for
room as needed; a reader never waits to send: output its reads produced
(alerts, key-update replies) is sent as far as the socket takes it at once,
and the rest is left for the next drain. Chunks are sent as they came from
the engine (a partial send keeps a view of the rest): no copy beyond the
engine's.

Cancellation: a reader is cancelled only while it waits for the socket,
when nothing was taken from it; received bytes are in the engine before the
next wait. A writer cancelled after encrypting a slice leaves the stream
unusable (its records may be half sent), which is recorded as for a failed
write.

Closing is bounded: the session is kept (a TLS 1.3 ticket may be waited for
briefly, as by the blocking driver), then our close_notify is sent within
`CLOSE_NOTIFY_LIMIT` (or the handle's timeout if shorter). The server's
close_notify is never waited for: a peer that never answers cannot hang
``aclose`` (compare cpython#101317, aiohttp#11091).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from .._core.tls_engine import WANT_READ, TLSEngine
from .._errors import (
    CancelledError,
    ErrorCode,
    InetError,
    InetTimeoutError,
    SecurityError,
    translate_os_error,
)
from .._log import logger
from .._tls_io import (
    HANDSHAKE_RECV_SIZE,
    RECV_SIZE,
    handshake_timeout,
    keep_session,
    new_engine,
    session_wanted,
    ticket_wait,
    verified,
)

if TYPE_CHECKING:
    import ssl

    from .._credentials import SecurityCredentials
    from .._tls import SecurityInfo, SessionKey
    from .._types import Option
    from ._connection import Channel

__all__ = ["CLOSE_NOTIFY_LIMIT", "AsyncTLS", "start_tls"]

#: Longest time `AsyncTLS.close` spends sending our close_notify when the
#: socket does not take it at once (a peer that stopped reading): the
#: handle's timeout when that is shorter. A few kilobytes at most are
#: queued, so a live peer takes them in well under this.
CLOSE_NOTIFY_LIMIT = 2.0

_monotonic = time.monotonic


class AsyncTLS:
    """TLS over a `Channel`: the engine's bytes moved on the event loop."""

    __slots__ = ("_outq", "broken", "engine", "raw", "session_key")

    def __init__(self, raw: Channel, engine: TLSEngine, session_key: SessionKey | None) -> None:
        self.raw = raw
        self.engine = engine
        self.session_key = session_key
        # Engine output taken, not yet sent: rarely more than one chunk (a
        # list, not a deque: an empty deque costs every idle handle 600 bytes).
        self._outq: list[bytes | memoryview] = []
        self.broken: InetError | None = None

    @property
    def target(self) -> str:
        return self.raw.target

    # -- sending the engine's output ---------------------------------

    def _take_output(self) -> None:
        """Queue what the engine produced (call right after each engine step that may produce)."""
        if self.engine.output_pending:
            self._outq.append(self.engine.data_to_send())

    def _send_queued(self) -> bool:
        """Send queued chunks as far as the socket takes them now; True when the queue is empty.

        Raises `OSError` (not `BlockingIOError`: a full socket just stops it).
        """
        queue = self._outq
        send = self.raw.sock.send
        while queue:  # bounded: each turn sends a chunk whole or stops
            head = queue[0]
            try:
                sent = send(head)
            except BlockingIOError:
                return False
            if sent < len(head):
                queue[0] = memoryview(head)[sent:]
                return False
            del queue[0]
        return True

    async def _drain(self, deadline: float | None) -> None:
        """Send everything queued, waiting for room within ``deadline``."""
        raw = self.raw
        while True:  # bounded by the deadline: each turn sends or waits
            try:
                if self._send_queued():
                    return
            except OSError as exc:
                raise translate_os_error(exc, action="write to", target=self.target) from exc
            if not await raw.wait_writable(deadline):
                raise raw.timed_out("write to")

    def _flush_opportunistic(self) -> None:
        """The reader's way: send what the socket takes now, never wait; errors show on the next write."""
        self._take_output()
        if self._outq:
            try:
                self._send_queued()
            except OSError:
                logger.debug("sending TLS records to %s failed", self.target, exc_info=True)

    # -- handshake -----------------------------------------------------

    async def handshake(self, deadline: float | None) -> None:
        """Run the handshake to its end within ``deadline`` (the handle holds both directions)."""
        engine = self.engine
        raw = self.raw
        while True:  # bounded by the deadline: each turn sends, waits and receives
            try:
                done = engine.handshake(_monotonic())
            except SecurityError:
                self._take_output()
                try:
                    self._send_queued()  # best effort: our alert tells the server why
                except OSError:
                    pass
                raise
            self._take_output()
            try:
                await self._drain(deadline)
                if done:
                    return
                # The answer is a round trip away: wait first (a receive would only fail now).
                if not await raw.wait_readable(deadline):
                    raise handshake_timeout(self.target)
                data = await raw.recv(HANDSHAKE_RECV_SIZE, deadline)
            except InetTimeoutError as exc:
                raise handshake_timeout(self.target) from exc
            if data:
                engine.receive(data)
            else:
                engine.receive_eof()

    # -- what the handle asks of its transport ------------------------

    async def recv(self, max_bytes: int, deadline: float | None) -> bytes:
        engine = self.engine
        data = engine.read(max_bytes)
        while data is None:  # bounded by the deadline: each turn receives
            self._flush_opportunistic()
            received = await self.raw.recv(RECV_SIZE, deadline)
            if received:
                engine.receive(received)
            else:
                engine.receive_eof()
            data = engine.read(max_bytes)
        self._flush_opportunistic()
        return data

    async def recv_into(self, view: memoryview, deadline: float | None) -> int:
        engine = self.engine
        count = engine.read_into(view)
        while count == WANT_READ:  # bounded by the deadline: each turn receives
            self._flush_opportunistic()
            received = await self.raw.recv(RECV_SIZE, deadline)
            if received:
                engine.receive(received)
            else:
                engine.receive_eof()
            count = engine.read_into(view)
        self._flush_opportunistic()
        return count

    async def sendall(self, data: memoryview, deadline: float | None) -> None:
        """Encrypt and send all of ``data``, a slice at a time.

        A failure part-way raises with ``bytes_sent`` = the plaintext of the
        slices whose records were all sent; the handle is then unusable, and
        so it is after a cancellation part-way.
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
        total = len(data)
        done = 0
        try:
            while done < total:
                taken = engine.write(data, done)
                self._take_output()
                await self._drain(deadline)
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
        except asyncio.CancelledError:
            self.broken = CancelledError(
                f"write to {self.target} was cancelled after {done} of {total} bytes", ErrorCode.CANCELLED
            )
            raise

    def _alert_waiting(self) -> InetError | None:
        """The server's alert, if one already arrived (TLS 1.3 client-certificate verdicts)."""
        self._feed_nowait()
        self.engine.take_records()
        failure = self.engine.failure
        return failure if isinstance(failure, SecurityError) else None

    def _feed_nowait(self) -> bool:
        """Move what the kernel already holds into the engine; True if anything came."""
        try:
            data = self.raw.sock.recv(RECV_SIZE)
        except OSError:  # BlockingIOError (nothing there) included
            return False
        if data:
            self.engine.receive(data)
        else:
            self.engine.receive_eof()
        return True

    def pending(self) -> int:
        return self.engine.pending()

    def ready_to_read(self) -> bool:
        """The socket polled readable: is there something for `read` (not only tickets)?"""
        self._feed_nowait()
        ready = self.engine.take_records()
        self._flush_opportunistic()
        return ready

    async def shutdown_write(self, deadline: float | None) -> None:
        self.engine.close_notify()
        self._take_output()
        await self._drain(deadline)
        await self.raw.shutdown_write(deadline)

    async def close(self, timeout: float | None) -> None:
        """Keep the session, send close_notify within a bound; the caller closes the socket."""
        if self.broken is not None:
            return
        key = self.session_key
        if key is not None:
            try:
                await self._keep_session(key)
            except (InetError, OSError, ValueError):
                logger.debug("keeping the TLS session of %s failed", self.target, exc_info=True)
        self.engine.close_notify()
        self._take_output()
        limit = CLOSE_NOTIFY_LIMIT if timeout is None else min(timeout, CLOSE_NOTIFY_LIMIT)
        try:
            await self._drain(_monotonic() + limit)
        except InetError:
            logger.debug("close_notify to %s was not sent within %.1f s", self.target, limit, exc_info=True)

    async def _keep_session(self, key: SessionKey) -> None:
        """Keep a TLS 1.3 session (``_tls_io.keep_session``), waiting briefly for its ticket."""
        engine = self.engine
        if not session_wanted(engine, key):
            return
        self._feed_nowait()
        engine.take_records()
        waited = False
        if not engine.heard_since_handshake:
            limit = ticket_wait(engine, key)
            if limit is None:
                return
            waited = True
            end = _monotonic() + limit
            for _ in range(8):  # bounded: each pass waits or takes bytes (as the blocking driver)
                if not await self.raw.wait_readable(end) or self._took_ticket():
                    break
        keep_session(engine, key, waited=waited)

    def _took_ticket(self) -> bool:
        """Take what arrived (the socket polled readable); True when the wait is over."""
        if not self._feed_nowait():
            return True
        self.engine.take_records()
        return self.engine.heard_since_handshake

    def peer_der(self) -> bytes | None:
        """The server's certificate (DER), for `SecurityInfo` when first asked for."""
        return self.engine.peer_der()


async def start_tls(
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
) -> tuple[AsyncTLS, SecurityInfo]:
    """Wrap and verify on the event loop: the same steps as ``_tls_io.start_tls``."""
    engine, key = new_engine(
        host=host,
        port=port,
        options=options,
        credentials=credentials,
        server_name=server_name,
        session_cache=session_cache,
        context=context,
        target=raw.target,
    )
    transport = AsyncTLS(raw, engine, key)
    started = _monotonic()
    await transport.handshake(deadline)
    return transport, verified(engine, key, credentials, transport, started)
