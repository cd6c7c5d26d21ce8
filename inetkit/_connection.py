"""The `Connection` handle and its I/O.

Theory of operation
-------------------
A `Connection` is a thin, fast layer over a *transport* (``_transport``): plain
TCP/UDP first, replaced in place by the TLS engine when security is enabled.
Everything above the transport (buffering, lines, ownership, timeouts) is the
same for both, so plain and secure handles behave alike.

Reads: a sans-I/O receive buffer (``_core.buffer.ReceiveBuffer``) holds
what was received and not yet read; this module is the blocking driver over
it. Line reads receive ahead in large chunks, and the buffer keeps the
complete lines in a region whose C-level ``readline`` serves the next line
without any Python-level parsing; `read_line` served from there is an owner
check and that one call, and iteration yields from the region directly.
`read` and `read_into` bypass the buffer when it is empty, so bulk reads are
one system call straight into the caller's memory.

Writes: whole buffers go to the kernel; `write` returns only when every byte
was accepted, or raises with ``bytes_sent``.

Timeouts: `timeout` bounds each call as a whole (as ``socket.sendall`` does):
the deadline is fixed when the call starts.

Threads: every operation passes through the `Guard` (``_ownership``): the
owner check, or on a free-threaded handle the reader/writer locks; blocking
waits are interruptible by `cancel` and by a cross-thread `close`.
"""

from __future__ import annotations

import _socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast, final

from ._core.buffer import EMPTY, NEED_MORE, TOO_LONG, ReceiveBuffer
from ._errors import (
    ConnectionClosedError,
    ErrorCode,
    InetError,
    InetTimeoutError,
    InvalidArgumentError,
    translate_os_error,
)
from ._handle import DEFAULT_MAX_BYTES, HandleFace
from ._log import logger
from ._ownership import Guard, Waiter
from ._transport import PlainTransport, Transport
from ._types import Option, Protocol, check_timeout

if TYPE_CHECKING:
    import ssl

    from ._core.plan import Plan
    from ._credentials import SecurityCredentials
    from ._handle import TraceSource
    from ._tls import SecurityInfo
    from ._transport import Channel


__all__ = ["Connection"]


#: How much a buffered read asks the transport for at once: one full TCP
#: read on loopback, and four of the largest TLS records (16 KiB).
READ_AHEAD = 65536
#: Largest UDP payload over IPv4/IPv6 (65535 minus the 8-byte UDP header).
MAX_DATAGRAM = 65527

#: Readable-but-nothing-to-read rounds (TLS housekeeping records) that
#: `is_readable` sits through before it answers False.
MAX_READY_PASSES = 1000

_monotonic = time.monotonic
#: ``_tls_io.start_tls`` once the first TLS handshake loaded it (`_tls_starter`):
#: TLS is loaded only when used, and a function-level import costs on every use.
_start_tls: Callable[..., tuple[Transport, SecurityInfo]] | None = None


def _tls_starter() -> Callable[..., tuple[Transport, SecurityInfo]]:
    global _start_tls
    from ._tls_io import start_tls

    _start_tls = start_tls
    return start_tls


_A = TypeVar("_A")
_R = TypeVar("_R")
_FREETHREAD = int(Option.FREETHREAD)
_UDP = Protocol.UDP
_get_ident = threading.get_ident


def _ip_port(sockaddr: Any) -> tuple[str, int]:
    return (sockaddr[0], sockaddr[1])


@final
class Connection(HandleFace):
    """A connected client handle, made by `inetkit.connect`.

    It owns one socket. Use it as a context manager, or call `close`. Unless it
    was made with `Option.FREETHREAD`, only the thread that owns it (the one
    that made it, or the last to call `attach_thread`) may operate on it.
    """

    __slots__ = (
        "__weakref__",
        "_guard",
        "_local",
        "_plain",
        "_shut",
        "_transport",
    )

    _guard: Guard
    _transport: Transport
    _plain: PlainTransport
    _local: tuple[str, int] | None
    _shut: bool

    def __init__(self) -> None:
        raise TypeError("Connection handles are made by inetkit.connect() or inetkit.connect_url()")

    @classmethod
    def _new(
        cls,
        sock: _socket.socket,
        remote: tuple[str, int],
        plan: Plan,
        trace: TraceSource,
        private: bool,
    ) -> Connection:
        """The one internal constructor: a handle around a non-blocking socket, with the plan's settings.

        `connect` builds each attempt's handle just before its socket
        connects (work after the handshake would delay the caller) and keeps
        the winner's; ``remote`` is that attempt's address (saves a
        ``getpeername`` call); the local address is asked for when first
        needed. ``plan`` is the checked request (host, port, protocol,
        options, timeout, credentials, session cache). ``trace.trace()``
        builds the connect's `ConnectTrace` on first access (most handles
        are never asked). ``private`` says that `connect` still holds the
        handle (a TLS handshake or STARTTLS dialog follows; see
        `Guard.private`) until it calls `_publish`. Few arguments and few
        objects: this runs on every connect.
        """
        self = object.__new__(cls)
        self._plan = plan
        self._timeout = plan.timeout
        self._trace = None
        self._trace_source = trace
        self._remote = remote
        self._local = None
        # Messages name the handle through the guard (`Guard.describe`), which
        # builds the text only when one is needed.
        guard = self._guard = Guard(plan.bits & _FREETHREAD != 0, plan.host, remote, private)
        self._transport = self._plain = PlainTransport(sock, guard, plan.protocol is _UDP)
        # The shared empty buffer until something is received into one
        # (`_receive`): most handles of a connect+close never read.
        self._buffer = EMPTY
        self._negotiated = None
        self._shut = False
        self._starttls_extensions = None
        return self

    def _abandon(self) -> None:
        """A handle whose attempt lost or failed: mark it closed (the dialer closed its socket)."""
        self._guard.closed = True

    def _publish(self) -> None:
        """`connect` is done with the handle: from now on other threads may hold it too."""
        self._guard.private = False

    # -- properties (any thread) ---------------------------------------

    @property
    def local_address(self) -> tuple[str, int]:
        """``(ip, port)`` of this end (ask while the handle is open)."""
        local = self._local
        if local is None:
            if self._guard.closed:
                raise self._guard.closed_error()
            try:
                local = self._local = _ip_port(self._plain.sock.getsockname())
            except OSError as exc:
                raise translate_os_error(exc, action="get the local address of", target=self._target) from exc
        return local

    @property
    def owner(self) -> int | None:
        """The owning thread's ``threading.get_ident()``, or None when free-threaded."""
        return self._guard.owner

    @property
    def closed(self) -> bool:
        return self._guard.closed

    def fileno(self) -> int:
        """The socket's descriptor (for selectors); -1 once closed."""
        if self._guard.closed:
            return -1
        return self._plain.sock.fileno()

    def __repr__(self) -> str:
        state = "closed" if self._guard.closed else "open"
        plan = self._plan
        proto = plan.protocol.name.lower()
        local = "?"
        if self._local is not None or not self._guard.closed:
            try:
                local_ip, local_port = self.local_address
                local = f"{local_ip}:{local_port}"
            except InetError:
                pass
        remote = f"{self._remote[0]}:{self._remote[1]}"
        security = f" {self._negotiated.protocol}" if self._negotiated is not None else ""
        owner = "free-threaded" if self._guard.owner is None else f"owner={self._guard.owner}"
        return (
            f"<inetkit.Connection {proto}{security} {plan.host}:{plan.port} "
            f"{local}->{remote} {owner} {state}>"
        )

    # -- helpers -------------------------------------------------------

    @property
    def _target(self) -> str:
        """How messages name this handle (built when a message needs it)."""
        return self._guard.describe

    def _receive(self, deadline: float | None) -> ReceiveBuffer:
        """Receive once into the buffer (waiting within ``deadline``); EOF is recorded there.

        Returns the buffer fed (the handle's first receive makes it).
        """
        data = self._transport.recv(READ_AHEAD, deadline)
        buffer = self._buffer
        if buffer is EMPTY:
            buffer = self._filling()
        if data:
            buffer.feed(data)
        else:
            buffer.feed_eof()
        return buffer

    # -- reading -------------------------------------------------------
    #
    # Every read serves the receive buffer (``_core.buffer``) first, then
    # asks the transport. Line reads have a fast path: when the buffer's
    # read-ahead region holds the next line, `read_line` is an owner check
    # (or, free-threaded, a non-blocking try of the read lock) and one
    # C-level ``readline``; no Guard lock, no deadline, no busy count, as
    # nothing can block. Everything else takes the full way through
    # `_reading`: Guard.enter (owner or closed check, busy count), one
    # deadline for the whole call, the read lock, and waits that `cancel`
    # and a cross-thread `close` interrupt.

    def _reading(self, step: Callable[[_A, float | None], _R], arg: _A) -> _R:
        """Run one read operation: owner check or reader turn, one deadline, busy count."""
        guard = self._guard
        guard.enter()
        try:
            deadline = self._deadline()  # one deadline for the turn and the I/O
            lock = guard.read_lock
            if lock is not None:
                guard.take(lock, deadline)
                try:
                    return step(arg, deadline)
                finally:
                    lock.release()
            return step(arg, deadline)
        finally:
            guard.leave()

    def read(self, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        """Read up to ``max_bytes`` (at least 1); ``b""`` once the peer has closed.

        On UDP, one datagram (an empty datagram is ``b""``; a datagram longer
        than ``max_bytes`` is cut, as with ``socket.recv``).
        """
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
            raise TypeError(f"max_bytes must be an int, not {type(max_bytes).__name__}")
        if max_bytes < 1:
            raise InvalidArgumentError(f"max_bytes must be at least 1, got {max_bytes}")
        return self._reading(self._read, max_bytes)

    def _read(self, max_bytes: int, deadline: float | None) -> bytes:
        buffer = self._buffer
        # A handle that never buffered anything (bulk readers) skips asking
        # the shared empty buffer for its length: a Python call per read.
        if buffer is not EMPTY:
            if buffer:
                return buffer.take(max_bytes)
            if buffer.eof:
                return b""
        return self._transport.recv(max_bytes, deadline)

    def read_into(self, buffer: Any) -> int:
        """Fill a writable buffer (``bytearray``, ``memoryview``, ...); return the count.

        Bytes go straight from the kernel into ``buffer`` when nothing is
        buffered. Returns 0 once the peer has closed (or for an empty buffer).
        """
        view = memoryview(buffer)
        if view.readonly:
            raise TypeError("read_into() needs a writable buffer")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if not view.nbytes:
            return 0
        return self._reading(self._read_into, view)

    def _read_into(self, view: memoryview, deadline: float | None) -> int:
        buffer = self._buffer
        if buffer is not EMPTY:  # as in _read
            if buffer:
                return buffer.take_into(view)
            if buffer.eof:
                return 0
        return self._transport.recv_into(view, deadline)

    def read_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or `ConnectionClosedError` if the peer closes first.

        Bytes received before such an end stay buffered for `read`.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, not {type(n).__name__}")
        if n < 0:
            raise InvalidArgumentError(f"n must be >= 0, got {n}")
        self._stream_only("read_exactly()")
        return self._reading(self._read_exactly, n)

    def _read_exactly(self, n: int, deadline: float | None) -> bytes:
        buffer = self._buffer
        # Short reads go through the buffer: one receive serves many of them,
        # and whatever arrived stays buffered when the call fails.
        while n <= READ_AHEAD:  # bounded by the deadline: each turn receives
            data = buffer.take_exactly(n)
            if data is not NEED_MORE:
                assert isinstance(data, bytes)
                return data
            if buffer.eof:
                raise self._closed_early(len(buffer), n)
            buffer = self._receive(deadline)
        # Long reads: straight into the result, with no copy through the buffer.
        if buffer.eof:
            raise self._closed_early(len(buffer), n)
        result = bytearray(n)
        out = memoryview(result)
        got = 0
        try:
            while buffer:  # bounded: each turn takes at least one byte
                got += buffer.take_into(out[got:])
            while got < n:
                count = self._transport.recv_into(out[got:], deadline)
                if count == 0:
                    buffer = self._filling()
                    buffer.feed(bytes(out[:got]))
                    buffer.feed_eof()
                    raise self._closed_early(got, n)
                got += count
        except InetError as exc:
            if not isinstance(exc, ConnectionClosedError) and got:
                self._filling().feed(bytes(out[:got]))  # nothing is lost: the next read gets it
            raise
        finally:
            out.release()
        return bytes(result)

    def read_line(self, max_length: int = DEFAULT_MAX_BYTES) -> bytes:
        """The next line with its terminator (``\\n`` or ``\\r\\n``); ``b""`` at EOF.

        A last line without a terminator is returned as it is. A line whose
        content (without the terminator) is longer than ``max_length`` raises
        `InetError` (``LINE_TOO_LONG``); its bytes stay buffered.
        """
        # The fast path (see "reading" above): the owner, and the next line
        # already read ahead. A closed handle's buffer is empty, so it always
        # takes the full way, which raises HANDLE_CLOSED. The region's lines
        # are within the default limit; other limits are checked here only
        # when they are plain positive ints (the full way checks the rest).
        guard = self._guard
        if guard.owner == _get_ident():
            region = self._buffer.region
            line = region.readline()
            if line:
                if max_length is DEFAULT_MAX_BYTES or (
                    max_length.__class__ is int and 0 < max_length >= len(line) - 1
                ):
                    return line
                region.seek(-len(line), 1)  # not ours to judge here: the full way decides
        elif guard.owner is None and guard.read_lock is not None and guard.read_lock.acquire(False):
            try:
                region = self._buffer.region
                line = region.readline()
                if line:
                    if max_length is DEFAULT_MAX_BYTES or (
                        max_length.__class__ is int and 0 < max_length >= len(line) - 1
                    ):
                        return line
                    region.seek(-len(line), 1)
            finally:
                guard.read_lock.release()
        return self._read_line(max_length)

    def _read_line(self, max_length: int) -> bytes:
        """`read_line` the full way: checks, the guard, the deadline, waits."""
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise TypeError(f"max_length must be an int, not {type(max_length).__name__}")
        if max_length < 1:
            raise InvalidArgumentError(f"max_length must be at least 1, got {max_length}")
        self._stream_only("read_line()")
        return self._reading(self._next_line, max_length)

    def _next_line(self, max_length: int, deadline: float | None) -> bytes:
        buffer = self._buffer
        while True:  # bounded by the deadline: each turn returns or receives
            line = buffer.next_line(max_length)
            if line is NEED_MORE:
                buffer = self._receive(deadline)
            elif line is TOO_LONG:
                raise self._line_too_long(max_length)
            else:
                assert isinstance(line, bytes)
                return line

    def __iter__(self) -> Iterator[bytes]:
        """Lines until the end of the stream: exactly what repeated `read_line()` calls give.

        It reads ahead in large chunks. Leaving the loop early loses nothing:
        the next read gets what was read ahead.
        """
        self._stream_only("iteration")
        if self._guard.owner is None:
            return self._locked_lines()
        # chain() pulls each line from the read-ahead region in C, with no
        # Python frame per line; _regions runs once per region.
        return chain.from_iterable(self._regions())

    def _regions(self) -> Iterator[Iterable[bytes]]:
        """The read-ahead regions, and between them the lines the full way gives."""
        guard = self._guard
        next_line = self._read_line
        while True:
            # The owner is checked once per region (by the thread pulling
            # now): `attach_thread` recalls the region and `close` clears it,
            # so a thread that lost the handle, or a closed handle, meets the
            # full way at its next line. The region's lines are within the
            # default limit.
            if guard.owner == _get_ident():
                yield self._buffer.region  # read again: the first receive replaces `EMPTY`
            line = next_line(DEFAULT_MAX_BYTES)
            if not line:
                return
            yield (line,)

    def _locked_lines(self) -> Iterator[bytes]:
        """Free-threaded: every line takes the read lock, so readers take turns line by line."""
        read_line = self.read_line
        while line := read_line():
            yield line

    def __next__(self) -> bytes:
        line = self.read_line()
        if not line:
            raise StopIteration
        return line

    # -- writing -------------------------------------------------------

    def write(self, data: Any) -> int:
        """Write all of ``data`` (a bytes-like object); return its length in bytes.

        On UDP, ``data`` is one datagram. A failure part-way raises with
        ``bytes_sent`` set.
        """
        if type(data) is bytes:  # the common case: one-dimensional unsigned bytes by definition
            view = memoryview(data)
        else:
            if isinstance(data, str):
                raise TypeError("write() takes bytes-like data, not str; encode it or use write_line()")
            view = memoryview(data)
            if view.format != "B" or view.ndim != 1 or not view.c_contiguous:
                view = memoryview(view.tobytes()) if not view.c_contiguous else view.cast("B")
        guard = self._guard
        guard.enter()
        try:
            if self._shut:
                raise InetError(
                    f"write to {self._target}: the sending side was shut down with shutdown()",
                    ErrorCode.HANDLE_CLOSED,
                )
            deadline = self._deadline()  # one deadline for the turn and the I/O
            if guard.write_lock is not None:
                guard.take(guard.write_lock, deadline)
                try:
                    self._transport.sendall(view, deadline)
                finally:
                    guard.write_lock.release()
            else:
                self._transport.sendall(view, deadline)
        except InetError as exc:
            if exc.bytes_sent is not None and exc.code is not ErrorCode.INVALID_ARGUMENT:
                # The transport counts what it sent of this write (plaintext, under TLS).
                exc.message = f"{exc.message} ({exc.bytes_sent} of {len(view)} bytes were sent)"
            raise
        finally:
            guard.leave()
        return len(view)

    def write_line(self, line: str | bytes) -> int:
        """Write ``line`` (``str`` as UTF-8, or bytes) followed by CRLF; return the bytes written."""
        if isinstance(line, str):
            data = line.encode("utf-8") + b"\r\n"
        elif isinstance(line, bytes | bytearray | memoryview):
            data = bytes(line) + b"\r\n"
        else:
            raise TypeError(f"write_line() takes str or bytes, not {type(line).__name__}")
        return self.write(data)

    # -- readiness -----------------------------------------------------

    def is_readable(self, timeout: float = 0.0) -> bool:
        """True when a read would not block (data or end of stream is waiting)."""
        return self._ready(timeout, write=False)

    def is_writable(self, timeout: float = 0.0) -> bool:
        """True when a write of at least one byte would not block."""
        return self._ready(timeout, write=True)

    def _ready(self, timeout: float | None, *, write: bool) -> bool:
        # 0 means "poll without waiting" here (check_timeout refuses it); a
        # bool is refused like everywhere else, though False == 0.
        if timeout is not None and (timeout != 0 or isinstance(timeout, bool)):
            timeout = check_timeout(timeout, "timeout")
        guard = self._guard
        guard.enter()
        try:
            buffer = self._buffer
            if not write and (buffer or buffer.eof or self._transport.pending()):
                return True
            waiter = self._plain.write_waiter if write else self._plain.read_waiter
            deadline = None if timeout is None else _monotonic() + timeout
            lock = guard.write_lock if write else guard.read_lock
            if lock is not None:
                try:
                    guard.take(lock, deadline)
                except InetTimeoutError:
                    return False  # another thread holds this direction for the whole wait
                try:
                    return self._wait_ready(waiter, deadline, write)
                finally:
                    lock.release()
            return self._wait_ready(waiter, deadline, write)
        finally:
            guard.leave()

    def _wait_ready(self, waiter: Waiter, deadline: float | None, write: bool) -> bool:
        transport = self._transport
        # Bounded: each pass either waits until the deadline or takes bytes.
        for _ in range(MAX_READY_PASSES):
            if not waiter.wait(deadline):
                return False
            if write or transport.ready_to_read():
                return True
        return False

    # -- threads -------------------------------------------------------

    def attach_thread(self) -> int | None:
        """Make the calling thread the owner; return the previous owner's thread id.

        On a free-threaded handle this does nothing and returns None.
        """
        previous = self._guard.attach()
        if previous is not None:
            # Lines read ahead go back among the buffered bytes, so an
            # iterator of the previous owner stops at its next line
            # (NOT_HANDLE_OWNER). Free-threaded handles have no owner to lose.
            self._buffer.recall_region()
        return previous

    def cancel(self) -> None:
        """From any thread: a call blocked on this handle raises `CancelledError` promptly.

        With nothing in progress it does nothing.
        """
        self._guard.cancel()

    # -- TLS -----------------------------------------------------------

    def enable_security(
        self,
        credentials: SecurityCredentials | None = None,
        *,
        server_name: str | None = None,
    ) -> None:
        """Start TLS on this live plain connection (explicit TLS, after STARTTLS).

        Verification is the same as for `Option.SECURE`. Refused with
        ``UNEXPECTED_PLAINTEXT`` when the server already sent bytes that were
        not read (a response-injection defence), and with ``ALREADY_SECURE``
        on a secure handle.
        """
        guard = self._guard
        guard.enter()
        try:
            deadline = self._deadline()
            guard.take(guard.read_lock, deadline)
            try:
                guard.take(guard.write_lock, deadline)
                try:
                    self._enable_security(credentials, server_name, deadline)
                finally:
                    if guard.write_lock is not None:
                        guard.write_lock.release()
            finally:
                if guard.read_lock is not None:
                    guard.read_lock.release()
        finally:
            guard.leave()

    def _enable_security(
        self,
        credentials: SecurityCredentials | None,
        server_name: str | None,
        deadline: float | None,
    ) -> None:
        transport = self._transport
        self._refuse_upgrade(None if transport is self._plain else transport, self._plain.sock)
        self._start_tls(credentials or self._plan.credentials, server_name, deadline)

    def _start_tls(
        self,
        credentials: SecurityCredentials | None,
        server_name: str | None,
        deadline: float | None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        """The one wrap-and-verify path, for implicit TLS and `enable_security`.

        TLS runs over the current transport: the socket's, or through an
        HTTPS proxy the TLS layer to the proxy (TLS inside TLS).
        """
        start_tls = _start_tls or _tls_starter()
        started = _monotonic()
        below = cast("Channel", self._transport)  # a PlainTransport, or the TLSTransport to a proxy
        plan = self._plan
        try:
            self._transport, self._negotiated = start_tls(
                below,
                host=plan.host,
                port=plan.port,
                options=plan.options,
                credentials=credentials,
                server_name=server_name,
                deadline=deadline,
                session_cache=plan.session_cache,
                context=context,
                # Over a proxy's TLS layer, messages name this handle (the target), not that layer's peer.
                target=None if below is self._plain else self._target,
            )
        finally:
            self._note_times(tls_handshake=_monotonic() - started)

    # -- ending --------------------------------------------------------

    def shutdown(self) -> None:
        """Half-close: no more writes (TLS close_notify, then FIN); reads go on."""
        guard = self._guard
        guard.enter()
        try:
            deadline = self._deadline()
            guard.take(guard.write_lock, deadline)
            try:
                self._transport.shutdown_write(deadline)
                self._shut = True
            finally:
                if guard.write_lock is not None:
                    guard.write_lock.release()
        finally:
            guard.leave()

    def close(self) -> None:
        """Close the handle (idempotent). Blocked calls on other threads are woken first."""
        if self._transport is self._plain and self._guard.close_idle():
            # Plain and idle: nothing to wake, nothing to say to the peer.
            self._plain.sock.close()
            buffer = self._buffer
            if buffer is not EMPTY:  # nothing was ever received: nothing to let go of
                buffer.clear()
            return
        self._close(check_owner=True)

    disconnect = close

    def _close(self, *, check_owner: bool) -> None:
        guard = self._guard
        if not guard.begin_close(check_owner=check_owner):
            return
        try:
            if self._transport is not self._plain:
                self._transport.close()  # TLS: close_notify, keep the session
        finally:
            self._plain.sock.close()
            guard.finish_close()
            buffer = self._buffer
            if buffer is not EMPTY:
                buffer.clear()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._guard.closed:  # the common case: closed, nothing to say
                return
        except AttributeError:  # pragma: no cover - _new failed before the guard was made
            return
        try:
            message = f"unclosed {self!r}"
        except Exception:  # pragma: no cover - repr during interpreter shutdown
            message = "unclosed inetkit.Connection"
        # Close first: with warnings turned into errors the warning raises,
        # and the socket must not stay open because of it.
        try:
            self._close(check_owner=False)
        except Exception:  # pragma: no cover - finalizers must not raise
            logger.debug("error closing a collected connection", exc_info=True)
        warnings.warn(message, ResourceWarning, stacklevel=2, source=self)
