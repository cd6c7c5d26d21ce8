"""Thread affinity, free-thread locking, cancel and close wake-ups.

Theory of operation
-------------------
A handle is owned by one thread (SocketWrench's model) unless it was made with
`Option.FREETHREAD`. Every operation starts with `Guard.enter` and ends with
`Guard.leave`; between the two the operation is *busy*. The guard keeps:

* the owner check (owned handles) or the per-direction locks (free-threaded
  handles: one reader lock and one writer lock, so one thread may read while
  another writes, and two readers take turns);
* a count of busy operations, which `attach_thread` (``HANDLE_BUSY``),
  `cancel` (only calls in progress are affected) and `close` (waits for them)
  consult;
* one wake-up descriptor (an ``eventfd``, created the first time an operation
  has to block, so a connect+close never pays for it). Every blocking wait
  polls the socket *and* this descriptor; `cancel` and a cross-thread `close`
  set a flag and signal the descriptor, so a blocked call returns promptly
  with `CancelledError` or ``HANDLE_CLOSED``. The flag and the descriptor are
  cleared when the last busy operation leaves.

Rejected alternative: closing the socket under a blocked thread to wake it
(what many libraries do). The descriptor number can be reused by another
thread's new socket while the blocked call still holds it; waking first and
closing after the last operation has left avoids that race.

Invariants: the socket is closed only after ``busy`` reached zero (or the
bounded close wait ran out, which is logged); the wake descriptor is drained
only when nothing is busy, so every call in progress at the time of a cancel
sees it.
"""

from __future__ import annotations

import _socket
import math
import os
import select
import threading
import time

from ._errors import CancelledError, ErrorCode, InetError, InetTimeoutError, OwnershipError

__all__ = ["Guard", "Waiter", "describe_handle", "wait_private"]

#: How long `close` waits for blocked calls on other threads to leave after
#: waking them. They leave within microseconds of the wake-up; the bound only
#: protects `close` against a thread stuck outside inetkit's waits.
CLOSE_WAIT_LIMIT = 5.0

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_POLL_WAKE = select.POLLIN | select.POLLERR | select.POLLHUP

#: Longest single poll() wait in milliseconds: poll takes a C int, so a
#: larger timeout (any deadline beyond ~24.8 days) would raise OverflowError.
#: A longer deadline is waited for in several rounds.
MAX_POLL_MS = 2**31 - 1
_MAX_POLL_SECONDS = MAX_POLL_MS / 1000
#: Longest single lock wait in seconds (`threading.Lock.acquire` refuses more
#: with OverflowError); a longer deadline is waited for in several rounds.
MAX_LOCK_WAIT = threading.TIMEOUT_MAX

_get_ident = threading.get_ident
_allocate_lock = threading.Lock


def describe_handle(host: str, remote: tuple[str, int]) -> str:
    """How messages name a handle: ``host port 443 (192.0.2.1)``, or ``192.0.2.1 port 443``.

    One form for the blocking and the asyncio handles (and the connect's own messages).
    """
    ip, port = remote[0], remote[1]
    if ip == host:
        return f"{ip} port {port}"
    return f"{host} port {port} ({ip})"


class Guard:
    """The per-handle state that every operation passes through."""

    __slots__ = (
        "_closer",
        "_lock",
        "busy",
        "cancel_pending",
        "closed",
        "closing",
        "free",
        "host",
        "owner",
        "private",
        "read_lock",
        "remote",
        "via",
        "wake_fd",
        "write_lock",
    )

    owner: int | None
    read_lock: threading.Lock | None
    write_lock: threading.Lock | None

    def __init__(self, free_thread: bool, host: str, remote: tuple[str, int], private: bool = False) -> None:
        self.free = free_thread
        self.busy = 0
        self.closed = False
        self.closing = False
        self.cancel_pending = False
        self.wake_fd = -1
        # What `describe` names: the host as asked for and the peer's (ip, port).
        self.host = host
        # Through a proxy, the whole description (target and proxy), set by the proxy driver.
        self.via: str | None = None
        self.remote = remote
        # True while connect still holds the handle (see Waiter.wait).
        self.private = private
        self._lock = _allocate_lock()
        # Made only when a close has to wait for blocked calls (rare; a
        # Condition costs microseconds that every connect would pay).
        self._closer: threading.Condition | None = None
        if free_thread:
            self.owner = None
            self.read_lock = _allocate_lock()
            self.write_lock = _allocate_lock()
        else:
            self.owner = _get_ident()
            self.read_lock = self.write_lock = None

    # -- entering and leaving operations -------------------------------

    # The lock is taken with acquire/release rather than ``with`` in the
    # methods every operation or close runs: a ``with`` costs two more
    # method calls (``__enter__``, ``__exit__``), about 100 ns each.

    def enter(self) -> None:
        """Start an operation on the calling thread (owner check, busy count)."""
        lock = self._lock
        lock.acquire()
        try:
            if self.closed or self.closing:
                raise self.closed_error()
            if self.owner is not None and self.owner != _get_ident():
                raise self._not_owner()
            self.busy += 1
        finally:
            lock.release()

    def leave(self) -> None:
        lock = self._lock
        lock.acquire()
        try:
            self.busy -= 1
            if self.busy == 0:
                if self.cancel_pending:
                    self.cancel_pending = False
                    self._drain()
                if self._closer is not None:
                    self._closer.notify_all()
        finally:
            lock.release()

    def take(self, lock: threading.Lock | None, deadline: float | None) -> None:
        """Acquire a free-thread direction lock within the call's deadline."""
        if lock is None:
            return
        if lock.acquire(blocking=False):
            pass  # uncontended: the common case
        elif deadline is None:
            lock.acquire()
        else:
            # Bounded: each round waits until the deadline or MAX_LOCK_WAIT,
            # whichever is sooner, so a huge timeout never overflows.
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise InetTimeoutError(
                        f"{self.describe}: timed out waiting for another thread's call on this handle",
                        ErrorCode.TIMED_OUT,
                    )
                if lock.acquire(timeout=min(remaining, MAX_LOCK_WAIT)):
                    break
        if self.closing or self.closed:
            lock.release()
            raise self.closed_error()

    # -- errors ----------------------------------------------------------

    @property
    def describe(self) -> str:
        """How messages name the handle: ``host port 443 (192.0.2.1)``, or ``192.0.2.1 port 443``.

        The same form as the connect's own messages (one address format in
        every message). Built when a message needs it: most handles never
        raise, and the text would cost every connect a string.
        """
        via = self.via
        if via is not None:  # through a proxy: the target, then the proxy (the real peer)
            return via
        return describe_handle(self.host, self.remote)

    def closed_error(self) -> InetError:
        return InetError(f"{self.describe}: the handle is closed", ErrorCode.HANDLE_CLOSED)

    def _not_owner(self) -> OwnershipError:
        return OwnershipError(
            f"{self.describe}: the calling thread ({_get_ident()}) does not own this handle "
            f"(owner: {self.owner}); call attach_thread() from the thread that takes it over, "
            "or connect with Option.FREETHREAD",
            ErrorCode.NOT_HANDLE_OWNER,
        )

    # -- ownership ---------------------------------------------------------

    def attach(self) -> int | None:
        """Make the calling thread the owner; return the previous owner."""
        with self._lock:
            if self.free:
                return None
            if self.closed or self.closing:
                raise self.closed_error()
            if self.busy:
                raise OwnershipError(
                    f"{self.describe}: another thread ({self.owner}) is blocked in a call on this "
                    "handle; attach after that call returns (or cancel() it first)",
                    ErrorCode.HANDLE_BUSY,
                )
            previous = self.owner
            self.owner = _get_ident()
            return previous

    # -- cancel and close ----------------------------------------------

    def cancel(self) -> None:
        with self._lock:
            if self.busy and not self.closed:
                self.cancel_pending = True
                self._signal()

    def close_idle(self) -> bool:
        """Close at once if nothing is busy and the caller may: one lock round.

        The common case of `Connection.close`. False means "take the full
        way" (`begin_close`): something is busy, the handle is already closed
        or closing, or the caller is not the owner (the full way says so).
        """
        lock = self._lock
        lock.acquire()
        try:
            if self.busy or self.closed or self.closing:
                return False
            owner = self.owner
            if owner is not None and owner != _get_ident():
                return False
            self.closed = True
            if self.wake_fd >= 0:  # as _mark_closed, inlined: this runs on every close
                os.close(self.wake_fd)
                self.wake_fd = -1
            return True
        finally:
            lock.release()

    def begin_close(self, *, check_owner: bool) -> bool:
        """Mark the handle closing and wait for busy calls to leave.

        Returns False when it was already closed (close is idempotent).
        """
        with self._lock:
            if self.closed or self.closing:
                return False
            if check_owner and self.owner is not None and self.owner != _get_ident():
                raise self._not_owner()
            self.closing = True
            if not self.busy:
                return True
            if self.busy:
                self._signal()
                self._closer = threading.Condition(self._lock)
                end = time.monotonic() + CLOSE_WAIT_LIMIT
                while self.busy:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    self._closer.wait(remaining)
            return True

    def finish_close(self) -> None:
        with self._lock:
            self._mark_closed()

    def _mark_closed(self) -> None:
        """Closed for good; the wake-up descriptor goes with it (caller holds the lock)."""
        self.closed = True
        if self.wake_fd >= 0:
            os.close(self.wake_fd)
            self.wake_fd = -1

    def _signal(self) -> None:
        if self.wake_fd >= 0:
            os.eventfd_write(self.wake_fd, 1)

    def _drain(self) -> None:
        if self.wake_fd >= 0:
            try:
                os.eventfd_read(self.wake_fd)
            except BlockingIOError:
                pass

    # -- waiting -----------------------------------------------------------

    def wake_descriptor(self) -> int:
        """The wake-up descriptor, created on first use (under the lock)."""
        with self._lock:
            if self.wake_fd < 0:
                self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            return self.wake_fd

    def check_interrupt(self) -> None:
        """Raise if a cancel or a close is pending for calls in progress."""
        if self.closing or self.closed:
            raise self.closed_error()
        if self.cancel_pending:
            raise CancelledError(f"{self.describe}: the call was cancelled", ErrorCode.CANCELLED)


def _poll_timeout(deadline: float | None) -> int | None:
    """``poll``'s timeout in milliseconds for ``deadline`` (None: no deadline)."""
    if deadline is None:
        return None
    # Round up: poll() with a truncated timeout would wake early and spin.
    # Clamp: poll() takes a C int; a far deadline takes rounds (the clamp
    # comes before "* 1000": 1e308 * 1000 is inf).
    remaining = min(deadline - time.monotonic(), _MAX_POLL_SECONDS)
    return min(MAX_POLL_MS, max(0, math.ceil(remaining * 1000)))


def wait_private(fd: int, events: int, deadline: float | None) -> bool:
    """Wait for ``events`` on ``fd`` while connect still holds the handle; False at the deadline.

    Inside connect (TLS handshake, STARTTLS dialog) no other thread has the
    handle yet, so nothing can cancel or close it: no wake-up descriptor
    (its creation and closing would cost every TLS connect two system
    calls) and no `Waiter` (an idle handle would hold one for nothing).
    """
    poll = select.poll()
    poll.register(fd, events)
    while True:
        try:
            if poll.poll(_poll_timeout(deadline)):
                return True
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        if deadline is not None and time.monotonic() >= deadline:
            return False


class Waiter:
    """Blocks until a socket is ready in one direction, a deadline, or a wake-up.

    One waiter per direction per handle: `select.poll` objects must not be
    polled by two threads at once, and a free-threaded handle has at most one
    reader and one writer blocked at a time.
    """

    __slots__ = ("_events", "_guard", "_poll", "_sock_fd", "_wake_fd", "action")

    def __init__(self, guard: Guard, sock: _socket.socket, *, write: bool) -> None:
        self._guard = guard
        self._sock_fd = sock.fileno()
        self._events = _POLLOUT if write else _POLLIN
        self._poll: select.poll | None = None
        self._wake_fd = -1
        self.action = "write to" if write else "read from"

    def wait(self, deadline: float | None) -> bool:
        """Wait for readiness; False when the deadline passed first.

        The socket is polled at least once, so a deadline already in the past
        means "check without blocking".

        Raises `CancelledError` or ``HANDLE_CLOSED`` when woken by `cancel`
        or a cross-thread `close`.
        """
        guard = self._guard
        if guard.private:
            return wait_private(self._sock_fd, self._events, deadline)
        poll = self._poll
        if poll is None:
            self._wake_fd = guard.wake_descriptor()
            poll = self._poll = select.poll()
            poll.register(self._sock_fd, self._events)
            poll.register(self._wake_fd, _POLL_WAKE)
        guard.check_interrupt()
        while True:
            try:
                events = poll.poll(_poll_timeout(deadline))
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            if not events:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                continue
            for fd, _ in events:
                if fd == self._wake_fd:
                    guard.check_interrupt()
            for fd, _ in events:
                if fd == self._sock_fd:
                    return True
