"""The asyncio handle `AsyncConnection`: the blocking `Connection` as coroutines, on the same core.

Theory of operation
-------------------
The handle is the asyncio driver over the same sans-I/O pieces the blocking
handle drives: the receive buffer (``_core.buffer.ReceiveBuffer``) for
lines and byte counts, the TLS engine (``_core.tls_engine``, driven by
``aio._tls``) and the STARTTLS dialogs (``_core.dialogs``, driven by
``aio._starttls``). Only the waiting differs.

I/O without threads: the socket stays non-blocking. Every receive or send
first tries the system call; only when the kernel says "would block" does
the call wait, on a future that a one-shot ``add_reader``/``add_writer``
callback completes (and a ``call_later`` timer, for the call's deadline).
Rejected: ``loop.sock_recv_into``/``sock_sendall``. They hide the future,
so a close from another task could not wake a waiting call, and a timeout
would need ``wait_for`` (a task per call). Measured (128 MiB plain receive
in 64 KiB reads, 7 rounds): about equal on the default loop (a bare
``sock_recv_into`` loop 2.1-2.3 GB/s, `read_into` with its checks 1.7-2.2),
while on uvloop ``sock_recv_into`` reached 0.8-1.1 GB/s against 1.6-1.7 for
this way. Line reads rarely touch the socket at all (one receive serves
about 800 lines), so they do not tell the two apart.

Ownership: the handle belongs to the loop that made it (a loop runs on one
thread, so this also pins the thread). One reader and one writer may run at
once, from different tasks (full duplex, over TLS too); a second concurrent
reader (or writer) is refused with ``HANDLE_BUSY`` rather than queued, as
two interleaved readers would split the stream at random.

Cancellation: a call is cancelled only while it waits, and it waits only
when nothing was taken from the kernel: bytes received are in the buffer (or
the TLS engine) before the next wait, so a cancelled read loses nothing.
Every wait removes its reader/writer callback and its timer on the way out,
whatever ends it, so nothing outlives a cancelled call. A TLS write
cancelled part-way leaves the handle unusable (the stream may end inside a
record), as a failed write does.

Timeouts: `timeout` bounds each call as a whole; the deadline is fixed when
the call starts and overrunning it raises ``TIMED_OUT`` with the blocking
handle's messages.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
import warnings
from asyncio.events import _get_running_loop
from types import TracebackType
from typing import TYPE_CHECKING, Any, final

from .._core.buffer import EMPTY, NEED_MORE, TOO_LONG, ReceiveBuffer
from .._errors import (
    ErrorCode,
    InetError,
    InetTimeoutError,
    InvalidArgumentError,
    OwnershipError,
    translate_os_error,
)
from .._handle import DEFAULT_MAX_BYTES, HandleFace
from .._log import logger
from .._ownership import describe_handle
from .._types import Protocol, check_timeout

if TYPE_CHECKING:
    import ssl

    from .._core.plan import Plan
    from .._credentials import SecurityCredentials
    from .._handle import TraceSource
    from ._tls import AsyncTLS

__all__ = ["AsyncConnection"]

#: How much a buffered read asks the transport for at once (as the blocking
#: handle): one full TCP read on loopback, four of the largest TLS records.
READ_AHEAD = 65536
#: Readable-but-nothing-to-read rounds (TLS housekeeping records) that
#: `is_readable` sits through before it answers False (as the blocking handle).
MAX_READY_PASSES = 1000

_monotonic = time.monotonic
_UDP = Protocol.UDP


def _ready(waiter: asyncio.Future[bool]) -> None:
    """The reader/writer callback: the socket is ready (once; the wait removes the callback)."""
    if not waiter.done():
        waiter.set_result(True)


def _expired(waiter: asyncio.Future[bool]) -> None:
    """The deadline timer's callback."""
    if not waiter.done():
        waiter.set_result(False)


class Channel:
    """The non-blocking socket under an `AsyncConnection`: one try, then a wait on the loop.

    Plain TCP/UDP reads and writes, and the raw channel the TLS driver
    (``aio._tls``) runs its records over. At most one read wait and one
    write wait at a time (the handle's busy flags see to it); `abort`
    wakes both (a close from another task).
    """

    __slots__ = ("datagram", "fd", "host", "loop", "read_waiter", "remote", "sock", "via", "write_waiter")

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        datagram: bool,
        host: str,
        remote: tuple[str, int],
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = loop
        self.datagram = datagram
        # What messages name (`describe_handle`); no reference back to the
        # handle, so a dropped handle is freed at once (and warns at once).
        self.host = host
        self.remote = remote
        #: Through a proxy: the target, then the proxy (the real peer), as messages name it.
        self.via: str | None = None
        self.read_waiter: asyncio.Future[bool] | None = None
        self.write_waiter: asyncio.Future[bool] | None = None

    @property
    def target(self) -> str:
        """How messages name the peer (built when a message needs it)."""
        via = self.via
        if via is not None:
            return via
        return describe_handle(self.host, self.remote)

    def timed_out(self, action: str) -> InetTimeoutError:
        return InetTimeoutError(f"{action} {self.target}: timed out", ErrorCode.TIMED_OUT)

    async def wait_readable(self, deadline: float | None) -> bool:
        """Wait until the socket is readable; False when ``deadline`` passed first."""
        loop = self.loop
        fd = self.fd
        waiter = self.read_waiter = loop.create_future()
        loop.add_reader(fd, _ready, waiter)
        timer = None
        if deadline is not None:
            timer = loop.call_later(max(deadline - _monotonic(), 0.0), _expired, waiter)
        try:
            ready: bool = await waiter
            return ready
        finally:
            # Only our own registration: after `abort` the descriptor may
            # already belong to somebody else's socket.
            if self.read_waiter is waiter:
                self.read_waiter = None
                loop.remove_reader(fd)
            if timer is not None:
                timer.cancel()

    async def wait_writable(self, deadline: float | None) -> bool:
        """Wait until the socket takes more bytes; False when ``deadline`` passed first."""
        loop = self.loop
        fd = self.fd
        waiter = self.write_waiter = loop.create_future()
        loop.add_writer(fd, _ready, waiter)
        timer = None
        if deadline is not None:
            timer = loop.call_later(max(deadline - _monotonic(), 0.0), _expired, waiter)
        try:
            ready: bool = await waiter
            return ready
        finally:
            if self.write_waiter is waiter:
                self.write_waiter = None
                loop.remove_writer(fd)
            if timer is not None:
                timer.cancel()

    def abort(self, error: InetError) -> None:
        """Wake every waiting call with ``error`` and drop the callbacks (before the socket closes)."""
        waiter = self.read_waiter
        if waiter is not None:
            self.read_waiter = None
            self.loop.remove_reader(self.fd)
            if not waiter.done():
                waiter.set_exception(error)
        waiter = self.write_waiter
        if waiter is not None:
            self.write_waiter = None
            self.loop.remove_writer(self.fd)
            if not waiter.done():
                waiter.set_exception(error)

    def _read_failed(self, exc: OSError) -> None:
        if not isinstance(exc, BlockingIOError):
            raise translate_os_error(exc, action="read from", target=self.target) from exc

    async def recv(self, max_bytes: int, deadline: float | None) -> bytes:
        """Up to ``max_bytes``; ``b""`` at end of stream (TCP) or for an empty datagram."""
        sock = self.sock
        try:
            return sock.recv(max_bytes)
        except OSError as exc:
            self._read_failed(exc)
        while True:  # bounded by the deadline: each turn waits or returns
            if not await self.wait_readable(deadline):
                raise self.timed_out("read from")
            try:
                return sock.recv(max_bytes)
            except OSError as exc:
                self._read_failed(exc)

    async def recv_into(self, view: memoryview, deadline: float | None) -> int:
        sock = self.sock
        try:
            return sock.recv_into(view)
        except OSError as exc:
            self._read_failed(exc)
        while True:  # bounded by the deadline: each turn waits or returns
            if not await self.wait_readable(deadline):
                raise self.timed_out("read from")
            try:
                return sock.recv_into(view)
            except OSError as exc:
                self._read_failed(exc)

    async def sendall(self, data: memoryview, deadline: float | None) -> None:
        """Send every byte of ``data`` (one datagram for UDP) or raise with ``bytes_sent``."""
        sock = self.sock
        total = len(data)
        sent = 0
        while True:  # bounded by the deadline: each turn sends or waits
            try:
                sent += sock.send(data[sent:] if sent else data)
            except BlockingIOError:
                pass
            except OSError as exc:
                err = translate_os_error(exc, action="write to", target=self.target)
                err.bytes_sent = sent
                raise err from exc
            else:
                if sent >= total:
                    return
                if self.datagram:
                    raise InetError(
                        f"write to {self.target}: the datagram was cut to {sent} of {total} bytes",
                        ErrorCode.INVALID_ARGUMENT,
                        bytes_sent=sent,
                    )
            try:
                ready = await self.wait_writable(deadline)
            except InetError as exc:
                exc.bytes_sent = sent
                raise
            if not ready:
                err = self.timed_out("write to")
                err.bytes_sent = sent
                raise err

    def recv_nowait(self, max_bytes: int) -> bytes | None:
        """What the kernel holds now (``b""`` at the end); None when nothing (or a failure a read reports)."""
        try:
            return self.sock.recv(max_bytes)
        except OSError:  # BlockingIOError (nothing there) included
            return None

    def send_nowait(self, data: bytes | memoryview) -> int:
        """Send what the socket takes now: the count, 0 when it is full. Raises `OSError`."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0

    async def flush(self, deadline: float | None) -> None:
        """Nothing is held here: every send went to the kernel (the TLS layer's `flush` sends its queue)."""

    # -- what the handle asks of its transport (plain: nothing to hold) --

    def pending(self) -> int:
        return 0

    def ready_to_read(self) -> bool:
        return True

    async def shutdown_write(self, deadline: float | None) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise translate_os_error(exc, action="shut down sending to", target=self.target) from exc


@final
class AsyncConnection(HandleFace):
    """A connected client handle for asyncio, made by `inetkit.aio.connect`.

    It owns one socket and belongs to the event loop that made it. Use it
    with ``async with``, or call `aclose`.
    """

    __slots__ = (
        "__weakref__",
        "_channel",
        "_local",
        "_loop",
        "_reading",
        "_shut",
        "_tls",
        "_writing",
        "closed",
    )

    _channel: Channel
    _tls: AsyncTLS | None
    _local: tuple[str, int] | None
    _credentials: SecurityCredentials | None
    _session_cache: bool
    _shut: bool
    _reading: bool
    _writing: bool
    _loop: asyncio.AbstractEventLoop
    closed: bool

    def __init__(self) -> None:
        raise TypeError(
            "AsyncConnection handles are made by inetkit.aio.connect() or inetkit.aio.connect_url()"
        )

    @classmethod
    def _new(
        cls,
        sock: socket.socket,
        remote: tuple[str, int],
        plan: Plan,
        trace: TraceSource,
        loop: asyncio.AbstractEventLoop,
    ) -> AsyncConnection:
        """The one internal constructor: a handle around a connected, non-blocking socket.

        ``remote`` is the peer's ``(ip, port)``; ``plan`` the checked request
        (host, port, protocol, options, timeout, credentials, session
        cache); ``trace.trace()`` builds the connect's `ConnectTrace` when it
        is first asked for; ``loop`` is the loop that owns the handle.
        """
        self = object.__new__(cls)
        self._plan = plan
        self._timeout = plan.timeout
        self._trace = None
        self._trace_source = trace
        self._remote = remote
        self._local = None
        self._loop = loop
        self._channel = Channel(sock, loop, plan.protocol is _UDP, plan.host, remote)
        self._tls = None
        self._buffer = EMPTY
        self._negotiated = None
        self._starttls_extensions = None
        self._shut = False
        self._reading = False
        self._writing = False
        self.closed = False
        return self

    # -- properties (from anywhere) -------------------------------------

    @property
    def local_address(self) -> tuple[str, int]:
        """``(ip, port)`` of this end (ask while the handle is open)."""
        local = self._local
        if local is None:
            if self.closed:
                raise self._closed_error()
            try:
                name = self._channel.sock.getsockname()
            except OSError as exc:
                raise translate_os_error(exc, action="get the local address of", target=self._target) from exc
            local = self._local = (name[0], name[1])
        return local

    def fileno(self) -> int:
        """The socket's descriptor; -1 once closed."""
        if self.closed:
            return -1
        return self._channel.fd

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        plan = self._plan
        proto = plan.protocol.name.lower()
        local = "?"
        if self._local is not None or not self.closed:
            try:
                local_ip, local_port = self.local_address
                local = f"{local_ip}:{local_port}"
            except InetError:
                pass
        remote = f"{self._remote[0]}:{self._remote[1]}"
        security = f" {self._negotiated.protocol}" if self._negotiated is not None else ""
        return (
            f"<inetkit.aio.AsyncConnection {proto}{security} {plan.host}:{plan.port} "
            f"{local}->{remote} {state}>"
        )

    # -- helpers -------------------------------------------------------

    @property
    def _target(self) -> str:
        return self._channel.target

    def _closed_error(self) -> InetError:
        return InetError(f"{self._target}: the handle is closed", ErrorCode.HANDLE_CLOSED)

    def _check(self) -> None:
        """The handle is open and the caller runs on its loop."""
        if self.closed:
            raise self._closed_error()
        if _get_running_loop() is not self._loop:
            raise self._not_owner()

    def _not_owner(self) -> OwnershipError:
        running = _get_running_loop()
        caller = "no running event loop" if running is None else f"event loop {running!r}"
        return OwnershipError(
            f"{self._target}: the handle belongs to the event loop that made it ({self._loop!r}); "
            f"the caller runs in {caller}. Use it from its own loop (hand work over with "
            "asyncio.run_coroutine_threadsafe)",
            ErrorCode.NOT_HANDLE_OWNER,
        )

    def _busy(self, direction: str) -> OwnershipError:
        return OwnershipError(
            f"{self._target}: another task is already {direction} this handle; one task may read "
            "while another writes, but two reads (or two writes) cannot overlap",
            ErrorCode.HANDLE_BUSY,
        )

    def _enter_read(self) -> None:
        self._check()
        if self._reading:
            raise self._busy("reading from")
        self._reading = True

    def _enter_write(self) -> None:
        self._check()
        if self._writing:
            raise self._busy("writing to")
        self._writing = True

    async def _receive(self, deadline: float | None) -> ReceiveBuffer:
        """Receive once into the buffer (waiting within ``deadline``); EOF is recorded there.

        The bytes are in the buffer before anything else can run: a
        cancellation can only come while nothing was received.
        """
        tls = self._tls
        if tls is not None:
            data = await tls.recv(READ_AHEAD, deadline)
        else:
            data = await self._channel.recv(READ_AHEAD, deadline)
        buffer = self._buffer
        if buffer is EMPTY:
            buffer = self._filling()
        if data:
            buffer.feed(data)
        else:
            buffer.feed_eof()
        return buffer

    # -- reading -------------------------------------------------------

    async def read(self, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        """Read up to ``max_bytes`` (at least 1); ``b""`` once the peer has closed.

        On UDP, one datagram (cut to ``max_bytes``, as with ``socket.recv``).
        """
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
            raise TypeError(f"max_bytes must be an int, not {type(max_bytes).__name__}")
        if max_bytes < 1:
            raise InvalidArgumentError(f"max_bytes must be at least 1, got {max_bytes}")
        self._enter_read()
        try:
            buffer = self._buffer
            # A handle that never buffered anything skips the shared empty buffer's length (a call).
            if buffer is not EMPTY:
                if buffer:
                    return buffer.take(max_bytes)
                if buffer.eof:
                    return b""
            tls = self._tls
            if tls is not None:
                return await tls.recv(max_bytes, self._deadline())
            return await self._channel.recv(max_bytes, self._deadline())
        finally:
            self._reading = False

    async def read_into(self, buffer: Any) -> int:
        """Fill a writable buffer; return the count (0 once the peer has closed).

        Bytes go straight from the kernel (or the TLS engine) into ``buffer``
        when nothing is buffered.
        """
        view = memoryview(buffer)
        if view.readonly:
            raise TypeError("read_into() needs a writable buffer")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if not view.nbytes:
            return 0
        self._enter_read()
        try:
            received = self._buffer
            if received is not EMPTY:  # as in read
                if received:
                    return received.take_into(view)
                if received.eof:
                    return 0
            tls = self._tls
            if tls is not None:
                return await tls.recv_into(view, self._deadline())
            return await self._channel.recv_into(view, self._deadline())
        finally:
            self._reading = False

    async def read_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or `ConnectionClosedError` if the peer closes first.

        Bytes received before such an end (or a timeout, or a cancellation)
        stay buffered for the next read.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, not {type(n).__name__}")
        if n < 0:
            raise InvalidArgumentError(f"n must be >= 0, got {n}")
        self._stream_only("read_exactly()")
        self._enter_read()
        try:
            return await self._read_exactly(n, self._deadline())
        finally:
            self._reading = False

    async def _read_exactly(self, n: int, deadline: float | None) -> bytes:
        buffer = self._buffer
        while n <= READ_AHEAD:  # bounded by the deadline: each turn receives
            data = buffer.take_exactly(n)
            if data is not NEED_MORE:
                assert isinstance(data, bytes)
                return data
            if buffer.eof:
                raise self._closed_early(len(buffer), n)
            buffer = await self._receive(deadline)
        # Long reads: straight into the result, with no copy through the buffer.
        if buffer.eof:
            raise self._closed_early(len(buffer), n)
        result = bytearray(n)
        out = memoryview(result)
        got = 0
        tls = self._tls
        try:
            while buffer:  # bounded: each turn takes at least one byte
                got += buffer.take_into(out[got:])
            while got < n:
                if tls is not None:
                    count = await tls.recv_into(out[got:], deadline)
                else:
                    count = await self._channel.recv_into(out[got:], deadline)
                if count == 0:
                    buffer = self._filling()
                    buffer.feed(bytes(out[:got]))
                    buffer.feed_eof()
                    got = 0
                    raise self._closed_early(len(buffer), n)
                got += count
        except BaseException:
            # A timeout, an error or a cancellation: nothing is lost, the next read gets it.
            if got and not self.closed:
                self._filling().feed(bytes(out[:got]))
            raise
        finally:
            out.release()
        return bytes(result)

    async def read_line(self, max_length: int = DEFAULT_MAX_BYTES) -> bytes:
        """The next line with its terminator (``\\n`` or ``\\r\\n``); ``b""`` at EOF.

        A line whose content is longer than ``max_length`` raises `InetError`
        (``LINE_TOO_LONG``); its bytes stay buffered.
        """
        # The fast path: the next line is already read ahead. A loop check
        # (it also pins the thread) and one C-level readline; nothing can
        # wait, so no busy flag is taken (but a waiting reader's bytes are
        # never served to another task). A closed handle's buffer is empty.
        if _get_running_loop() is self._loop and not self._reading:
            region = self._buffer.region
            line = region.readline()
            if line:
                if max_length is DEFAULT_MAX_BYTES or (
                    max_length.__class__ is int and 0 < max_length >= len(line) - 1
                ):
                    return line
                region.seek(-len(line), 1)  # the full way decides
        return await self._read_line(max_length)

    async def _read_line(self, max_length: int) -> bytes:
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise TypeError(f"max_length must be an int, not {type(max_length).__name__}")
        if max_length < 1:
            raise InvalidArgumentError(f"max_length must be at least 1, got {max_length}")
        self._stream_only("read_line()")
        self._enter_read()
        try:
            buffer = self._buffer
            deadline = self._deadline()
            while True:  # bounded by the deadline: each turn returns or receives
                line = buffer.next_line(max_length)
                if line is NEED_MORE:
                    buffer = await self._receive(deadline)
                elif line is TOO_LONG:
                    raise self._line_too_long(max_length)
                else:
                    assert isinstance(line, bytes)
                    return line
        finally:
            self._reading = False

    def __aiter__(self) -> AsyncConnection:
        """Lines until the end of the stream: exactly what repeated `read_line()` calls give.

        Lines are read ahead in large chunks; leaving the loop early loses
        nothing (the next read gets what was read ahead).
        """
        self._stream_only("iteration")
        return self

    async def __anext__(self) -> bytes:
        if _get_running_loop() is self._loop and not self._reading:
            line = self._buffer.region.readline()  # the region's lines are within the default limit
            if line:
                return line
        line = await self._read_line(DEFAULT_MAX_BYTES)
        if not line:
            raise StopAsyncIteration
        return line

    # -- writing -------------------------------------------------------

    async def write(self, data: Any) -> int:
        """Write all of ``data`` (a bytes-like object); return its length in bytes.

        On UDP, ``data`` is one datagram. A failure part-way raises with
        ``bytes_sent`` set.
        """
        if isinstance(data, str):
            raise TypeError("write() takes bytes-like data, not str; encode it or use write_line()")
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1 or not view.c_contiguous:
            view = memoryview(view.tobytes()) if not view.c_contiguous else view.cast("B")
        self._enter_write()
        try:
            if self._shut:
                raise InetError(
                    f"write to {self._target}: the sending side was shut down with shutdown()",
                    ErrorCode.HANDLE_CLOSED,
                )
            tls = self._tls
            if tls is not None:
                await tls.sendall(view, self._deadline())
            else:
                await self._channel.sendall(view, self._deadline())
        except InetError as exc:
            if exc.bytes_sent is not None and exc.code is not ErrorCode.INVALID_ARGUMENT:
                exc.message = f"{exc.message} ({exc.bytes_sent} of {len(view)} bytes were sent)"
            raise
        finally:
            self._writing = False
        return len(view)

    async def write_line(self, line: str | bytes) -> int:
        """Write ``line`` (``str`` as UTF-8, or bytes) followed by CRLF; return the bytes written."""
        if isinstance(line, str):
            data = line.encode("utf-8") + b"\r\n"
        elif isinstance(line, bytes | bytearray | memoryview):
            data = bytes(line) + b"\r\n"
        else:
            raise TypeError(f"write_line() takes str or bytes, not {type(line).__name__}")
        return await self.write(data)

    # -- readiness -----------------------------------------------------

    async def is_readable(self, timeout: float | None = 0.0) -> bool:
        """True when a read would not wait (data or the end of the stream is there)."""
        return await self._ready(timeout, write=False)

    async def is_writable(self, timeout: float | None = 0.0) -> bool:
        """True when a write of at least one byte would not wait."""
        return await self._ready(timeout, write=True)

    async def _ready(self, timeout: float | None, *, write: bool) -> bool:
        # 0 means "look without waiting" (check_timeout refuses it); a bool is refused.
        if timeout is not None and (timeout != 0 or isinstance(timeout, bool)):
            timeout = check_timeout(timeout, "timeout")
        if write:
            self._enter_write()
        else:
            self._enter_read()
        try:
            tls = self._tls
            buffer = self._buffer
            if not write and (buffer or buffer.eof or (tls is not None and tls.pending())):
                return True
            channel = self._channel
            deadline = None if timeout is None else _monotonic() + timeout
            for _ in range(MAX_READY_PASSES):  # bounded: each pass waits until the deadline or takes bytes
                if timeout == 0:
                    events = select.POLLOUT if write else select.POLLIN
                    poller = select.poll()
                    poller.register(channel.fd, events)
                    ready = bool(poller.poll(0))
                elif write:
                    ready = await channel.wait_writable(deadline)
                else:
                    ready = await channel.wait_readable(deadline)
                if not ready:
                    return False
                if write or tls is None or tls.ready_to_read():
                    return True
                if timeout == 0:
                    return False
            return False
        finally:
            if write:
                self._writing = False
            else:
                self._reading = False

    # -- TLS -----------------------------------------------------------

    async def enable_security(
        self,
        credentials: SecurityCredentials | None = None,
        *,
        server_name: str | None = None,
    ) -> None:
        """Start TLS on this live plain connection (explicit TLS, after STARTTLS).

        Verification is the same as for `Option.SECURE`. Refused with
        ``UNEXPECTED_PLAINTEXT`` when the server already sent bytes that were
        not read, and with ``ALREADY_SECURE`` on a secure handle.
        """
        self._check()
        if self._reading or self._writing:
            raise self._busy("reading from" if self._reading else "writing to")
        self._refuse_upgrade(self._tls, self._channel.sock)
        await self._start_tls(credentials or self._plan.credentials, server_name, self._deadline())

    async def _start_tls(
        self,
        credentials: SecurityCredentials | None,
        server_name: str | None,
        deadline: float | None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        """The one wrap-and-verify path, for implicit TLS (inside connect) and `enable_security`.

        Holds both directions for the handshake; records ``trace.tls_handshake``.
        TLS runs over the socket's `Channel`, or through an HTTPS proxy over
        the TLS layer to the proxy (TLS inside TLS).
        """
        from ._tls import start_tls  # TLS is loaded only when used

        self._check()
        if self._reading or self._writing:
            raise self._busy("reading from" if self._reading else "writing to")
        self._reading = self._writing = True
        started = _monotonic()
        plan = self._plan
        try:
            self._tls, self._negotiated = await start_tls(
                self._tls or self._channel,
                host=plan.host,
                port=plan.port,
                options=plan.options,
                credentials=credentials,
                server_name=server_name,
                deadline=deadline,
                session_cache=plan.session_cache,
                context=context,
                target=self._channel.target,  # the target (through a proxy: and the proxy), not the hop
            )
        finally:
            self._reading = self._writing = False
            self._note_times(tls_handshake=_monotonic() - started)

    async def _run_dialog(self, name: str, deadline: float | None) -> object:
        """The STARTTLS dialog ``name`` inside connect, under its deadline; returns the dialog's result.

        Records ``trace.starttls`` (the dialog's time without the handshake);
        the handle is closed when the dialog fails.
        """
        from ._starttls import run_dialog

        started = _monotonic()
        result = await run_dialog(name, self, deadline)
        trace = self.trace
        trace.starttls = _monotonic() - started - (trace.tls_handshake or 0.0)
        return result

    # -- ending --------------------------------------------------------

    async def shutdown(self) -> None:
        """Half-close: no more writes (TLS close_notify, then FIN); reads go on."""
        self._enter_write()
        try:
            tls = self._tls
            if tls is not None:
                await tls.shutdown_write(self._deadline())
            else:
                await self._channel.shutdown_write(self._deadline())
            self._shut = True
        finally:
            self._writing = False

    async def aclose(self) -> None:
        """Close the handle (idempotent). Calls waiting in other tasks get ``HANDLE_CLOSED``.

        A secure handle keeps its session for resumption and sends
        close_notify; it never waits for the server's, and its own is sent
        within a bound (``aio._tls.CLOSE_NOTIFY_LIMIT``, or the handle's
        timeout if shorter), so a peer that stops reading cannot hang it.
        """
        if self.closed:
            return
        if _get_running_loop() is not self._loop:
            raise self._not_owner()
        tls = self._tls
        if tls is None or self._reading or self._writing:
            self._close_now()
            return
        self.closed = True
        try:
            await tls.close(self._timeout)
        finally:
            self._release()

    disconnect = aclose

    def _close_now(self) -> None:
        """Close the socket at once, without close_notify (failures, cancellation, other tasks' calls)."""
        if self.closed and self._channel.sock.fileno() < 0:
            return
        self.closed = True
        self._release()

    def _release(self) -> None:
        channel = self._channel
        channel.abort(self._closed_error())
        channel.sock.close()
        buffer = self._buffer
        if buffer is not EMPTY:
            buffer.clear()

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        try:
            if self.closed:
                return
        except AttributeError:  # pragma: no cover - _new failed before the flag was set
            return
        try:
            message = f"unclosed {self!r}"
        except Exception:  # pragma: no cover - repr during interpreter shutdown
            message = "unclosed inetkit.aio.AsyncConnection"
        try:
            self.closed = True
            self._channel.sock.close()
        except Exception:  # pragma: no cover - finalizers must not raise
            logger.debug("error closing a collected connection", exc_info=True)
        warnings.warn(message, ResourceWarning, stacklevel=2, source=self)
