"""The byte transport under a `Connection`: a non-blocking socket with waits.

Theory of operation
-------------------
Sockets stay non-blocking for their whole life. Every call first tries the
system call; only when the kernel says "would block" does it wait, through a
`Waiter` that polls the socket together with the handle's wake-up descriptor
(so `cancel` and a cross-thread `close` interrupt it) until the call's
deadline. This is what the standard library does for a socket with a timeout
(``sock_call_ex`` in socketmodule.c), plus the wake-up descriptor; the fast
path is a single system call.

`PlainTransport` is also the raw channel that the TLS engine (``_tls_io``)
runs its records over; `Connection` swaps its transport in place when TLS is
enabled, so the layers above never change. What a TLS layer needs from the
layer below is `Channel`: a `PlainTransport`, or another TLS layer (TLS
inside TLS, through an HTTPS proxy).
"""

from __future__ import annotations

import _socket
import select
import socket
from collections.abc import Callable
from typing import Protocol as TypingProtocol
from typing import TypeVar

from ._errors import ErrorCode, InetError, InetTimeoutError, translate_os_error
from ._ownership import Guard, Waiter, wait_private

__all__ = ["Channel", "PlainTransport", "Transport"]

_POLLIN = select.POLLIN

_A = TypeVar("_A")
_R = TypeVar("_R")


class Transport(TypingProtocol):
    """What a `Connection` needs from the layer below it."""

    def recv(self, max_bytes: int, deadline: float | None) -> bytes: ...
    def recv_into(self, view: memoryview, deadline: float | None) -> int: ...
    def sendall(self, data: memoryview, deadline: float | None) -> None: ...
    def pending(self) -> int: ...
    def ready_to_read(self) -> bool: ...
    def shutdown_write(self, deadline: float | None) -> None: ...
    def close(self) -> None: ...


class Channel(TypingProtocol):
    """What a TLS layer runs over: the socket's `PlainTransport`, or the TLS layer to a proxy.

    Besides the waiting calls, three that never wait: `recv_nowait` (what is
    there now, None when nothing is), `send_nowait` (how much was taken,
    0 when nothing fits; a failure counts as 0, the next waiting call
    reports it), and `fileno` (the socket to poll).
    """

    @property
    def target(self) -> str: ...
    def recv(self, max_bytes: int, deadline: float | None) -> bytes: ...
    def sendall(self, data: memoryview, deadline: float | None) -> None: ...
    def recv_nowait(self, max_bytes: int) -> bytes | None: ...
    def send_nowait(self, data: bytes | bytearray | memoryview) -> int: ...
    def wait_readable(self, deadline: float | None) -> bool: ...
    def fileno(self) -> int: ...
    def shutdown_write(self, deadline: float | None) -> None: ...
    def close(self) -> None: ...


class PlainTransport:
    """Plain TCP/UDP over a non-blocking socket."""

    __slots__ = ("_read_waiter", "_write_waiter", "datagram", "guard", "sock")

    def __init__(self, sock: _socket.socket, guard: Guard, datagram: bool) -> None:
        self.sock = sock
        self.guard = guard
        self.datagram = datagram
        # Made on the first wait: a connect+close never needs them.
        self._read_waiter: Waiter | None = None
        self._write_waiter: Waiter | None = None

    @property
    def target(self) -> str:
        """How messages name the peer (the guard's `Guard.describe`, built when asked for)."""
        return self.guard.describe

    @property
    def read_waiter(self) -> Waiter:
        waiter = self._read_waiter
        if waiter is None:
            waiter = self._read_waiter = Waiter(self.guard, self.sock, write=False)
        return waiter

    @property
    def write_waiter(self) -> Waiter:
        waiter = self._write_waiter
        if waiter is None:
            waiter = self._write_waiter = Waiter(self.guard, self.sock, write=True)
        return waiter

    def _timed_out(self, action: str) -> InetTimeoutError:
        return InetTimeoutError(f"{action} {self.target}: timed out", ErrorCode.TIMED_OUT)

    def recv(self, max_bytes: int, deadline: float | None) -> bytes:
        """Up to ``max_bytes``; ``b""`` at end of stream (TCP) or for an empty datagram."""
        try:
            return self.sock.recv(max_bytes)
        except OSError as exc:
            self._read_failed(exc)
        return self._read_when_ready(self.sock.recv, max_bytes, deadline)

    def recv_into(self, view: memoryview, deadline: float | None) -> int:
        try:
            return self.sock.recv_into(view)
        except OSError as exc:
            self._read_failed(exc)
        return self._read_when_ready(self.sock.recv_into, view, deadline)

    # The first try of a read is written out in `recv` and `recv_into`
    # themselves, so that a read the kernel answers at once costs no extra
    # Python call; only a read that has to wait goes through these two.

    def _read_failed(self, exc: OSError) -> None:
        """Raise the translated error, unless ``exc`` only says the read would block."""
        if not isinstance(exc, BlockingIOError):
            raise translate_os_error(exc, action="read from", target=self.target) from exc

    def _read_when_ready(self, read: Callable[[_A], _R], arg: _A, deadline: float | None) -> _R:
        """Wait until the socket is readable, then ``read(arg)``; again while it would block."""
        while True:
            if not self.read_waiter.wait(deadline):
                raise self._timed_out("read from")
            try:
                return read(arg)
            except OSError as exc:
                self._read_failed(exc)

    def sendall(self, data: memoryview, deadline: float | None) -> None:
        """Send every byte of ``data`` (one datagram for UDP) or raise.

        A failure part-way raises with ``bytes_sent`` set to what the kernel
        accepted before it (`Connection.write` puts the count in the message:
        under TLS only it knows how much of the caller's data that was).
        """
        sock = self.sock
        total = len(data)
        sent = 0
        while True:
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
                # A partial send means the kernel buffer is full: wait for
                # room instead of failing the next send (an exception per turn).
            try:
                ready = self.write_waiter.wait(deadline)
            except InetError as exc:
                exc.bytes_sent = sent
                raise
            if not ready:
                err = self._timed_out("write to")
                err.bytes_sent = sent
                raise err

    # -- the calls that never wait (`Channel`) ------------------------

    def recv_nowait(self, max_bytes: int) -> bytes | None:
        """What the kernel holds now (``b""`` at the end), or None: nothing there, or a failure."""
        try:
            return self.sock.recv(max_bytes)
        except OSError:  # BlockingIOError (nothing there) included: the next waiting read reports a failure
            return None

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Send what fits now; 0 when nothing does (or the send failed: the next waiting write reports it)."""
        try:
            return self.sock.send(data)
        except OSError:  # BlockingIOError (full) included
            return 0

    def wait_readable(self, deadline: float | None) -> bool:
        """Wait until the socket is readable; False when ``deadline`` passed first."""
        if self.guard.private:  # inside connect: no Waiter kept (see `wait_private`)
            return wait_private(self.sock.fileno(), _POLLIN, deadline)
        return self.read_waiter.wait(deadline)

    def fileno(self) -> int:
        return self.sock.fileno()

    def pending(self) -> int:
        return 0

    def ready_to_read(self) -> bool:
        """Called once the socket polled readable: data or the end is there."""
        return True

    def shutdown_write(self, deadline: float | None) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise translate_os_error(exc, action="shut down sending to", target=self.target) from exc

    def close(self) -> None:
        self.sock.close()
