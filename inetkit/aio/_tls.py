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

TLS inside TLS (a secure target through an ``https://`` proxy): the layer
below an `AsyncTLS` is a `Channel` (the socket) or another `AsyncTLS` (the
hop to the proxy), which offers the same calls, as in the blocking driver:
the waiting ones (`recv`, `wait_readable`, `wait_writable`, `flush`) and
the ones that never wait (`recv_nowait`: plaintext there now, decrypted or
decryptable from what the kernel holds; `send_nowait`: encrypted and
queued at once, sent as far as the socket takes it; 0 while the layer's
own queue has not drained, which is the backpressure). Full duplex holds
through both layers for the same reason as through one: no engine call
spans an ``await``. Closing the upper layer closes the lower one too.

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

    __slots__ = ("_outq", "broken", "engine", "layered", "raw", "session_key", "target")

    def __init__(
        self,
        raw: Channel | AsyncTLS,
        engine: TLSEngine,
        session_key: SessionKey | None,
        target: str | None = None,
    ) -> None:
        self.raw = raw
        #: TLS inside TLS: the layer below is the TLS hop to a proxy.
        self.layered = isinstance(raw, AsyncTLS)
        self.engine = engine
        self.session_key = session_key
        #: How messages name the peer of this layer.
        self.target: str = raw.target if target is None else target
        # Engine output taken, not yet sent: rarely more than one chunk (a
        # list, not a deque: an empty deque costs every idle handle 600 bytes).
        self._outq: list[bytes | memoryview] = []
        self.broken: InetError | None = None

    def timed_out(self, action: str) -> InetTimeoutError:
        return InetTimeoutError(f"{action} {self.target}: timed out", ErrorCode.TIMED_OUT)

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
        send = self.raw.send_nowait
        while queue:  # bounded: each turn sends a chunk whole or stops
            head = queue[0]
            sent = send(head)
            if sent < len(head):
                queue[0] = memoryview(head)[sent:]
                return False
            del queue[0]
        return True

    async def _drain(self, deadline: float | None) -> None:
        """Send everything queued, waiting for room within ``deadline`` (through the layer below too)."""
        raw = self.raw
        while True:  # bounded by the deadline: each turn sends or waits
            try:
                if self._send_queued():
                    break
            except OSError as exc:
                raise translate_os_error(exc, action="write to", target=self.target) from exc
            if not await raw.wait_writable(deadline):
                raise self.timed_out("write to")
        if self.layered:
            await raw.flush(deadline)

    def _flush_opportunistic(self) -> None:
        """The reader's way: send what the socket takes now, never wait; errors show on the next write."""
        self._take_output()
        if self._outq:
            try:
                self._send_queued()
            except (OSError, InetError):  # InetError: the TLS layer below (a proxy's) failed
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
                except (OSError, InetError):
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
        data = self.raw.recv_nowait(RECV_SIZE)
        if data is None:  # nothing there (or a failure the next waiting read reports)
            return False
        if data:
            self.engine.receive(data)
        else:
            self.engine.receive_eof()
        return True

    def pending(self) -> int:
        count = self.engine.pending()
        if not count and self.layered and self.raw.pending():
            # TLS inside TLS: this layer's records may wait, decrypted, in the
            # layer below, where no socket wait would see them. Take them in.
            self._feed_nowait()
            count = self.engine.pending()
        return count

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
        """Keep the session, send close_notify within a bound; the caller closes the socket.

        TLS inside TLS: the layer below (the proxy's) then says goodbye too,
        within what is left of the same bound.
        """
        started = _monotonic()
        await self._close(timeout)
        raw = self.raw
        if isinstance(raw, AsyncTLS):
            limit = CLOSE_NOTIFY_LIMIT if timeout is None else min(timeout, CLOSE_NOTIFY_LIMIT)
            await raw.close(max(limit - (_monotonic() - started), 0.0))

    async def _close(self, timeout: float | None) -> None:
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

    # -- Channel: a TLS layer runs over this one (TLS inside TLS) ----------

    def recv_nowait(self, max_bytes: int) -> bytes | None:
        """Plaintext there now (decrypted already, or from what the kernel holds); None when there is none.

        A failure (an alert, a cut) counts as none: the next waiting read reports it.
        """
        engine = self.engine
        try:
            data = engine.read(max_bytes)
            if data is None and self._feed_nowait():
                data = engine.read(max_bytes)
        except InetError:
            return None
        self._flush_opportunistic()  # what reading made (a key update's answer) goes out
        return data

    def send_nowait(self, data: bytes | memoryview) -> int:
        """Encrypt all of ``data`` and send what fits now; 0 while earlier records still wait.

        The rest of what was encrypted goes out with this layer's next
        drain (`flush`, `wait_writable`): at most one chunk of the layer
        above is ever queued here. Raises `OSError` from the socket.
        """
        broken = self.broken
        if broken is not None:
            raise broken
        if self._outq and not self._send_queued():
            return 0
        view = memoryview(data)
        total = len(view)
        done = 0
        engine = self.engine
        while done < total:  # bounded: each step takes up to SEND_SLICE bytes
            done += engine.write(view, done)
        self._take_output()
        self._send_queued()
        return total

    async def wait_writable(self, deadline: float | None) -> bool:
        """Wait until this layer's queue has gone to the socket; False when ``deadline`` passed first."""
        raw = self.raw
        while True:  # bounded by the deadline: each turn sends or waits
            try:
                if self._send_queued():
                    return True
            except OSError as exc:
                raise translate_os_error(exc, action="write to", target=self.target) from exc
            if not await raw.wait_writable(deadline):
                return False

    async def flush(self, deadline: float | None) -> None:
        """Send everything this layer holds, within ``deadline``."""
        await self._drain(deadline)

    async def wait_readable(self, deadline: float | None) -> bool:
        """At once when the engine can answer a read (data, an end, an alert), else when the socket can."""
        if self.engine.take_records():
            return True
        return await self.raw.wait_readable(deadline)


async def start_tls(
    raw: Channel | AsyncTLS,
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
) -> tuple[AsyncTLS, SecurityInfo]:
    """Wrap and verify on the event loop: the same steps as ``_tls_io.start_tls``.

    ``raw`` is the socket's `Channel`, or the TLS layer to an ``https://``
    proxy (TLS inside TLS); ``target`` names the peer in messages (the
    layer below's name by default).
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
    transport = AsyncTLS(raw, engine, key, target)
    started = _monotonic()
    await transport.handshake(deadline)
    return transport, verified(engine, key, credentials, transport, started)
