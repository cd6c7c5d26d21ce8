"""The asyncio driver of the connection race: non-blocking sockets on the event loop, one deadline.

Theory of operation
-------------------
The race (RFC 8305: which attempt starts when, who wins, what the error
says) is the sans-I/O `inetkit._core.race.Race`, the same machine the
blocking driver (``inetkit._dialer``) runs. This module is its second
driver: it opens the same non-blocking sockets (same flags, the same
``prepare`` hook for socket options and the local bind, the same
per-attempt errors, all imported from ``inetkit._dialer``), starts each
``connect_ex``, and instead of one ``poll`` it watches every attempt in
flight with ``loop.add_writer`` and waits, per `Wait` step, on ONE future
that the first writable socket or one timer (``loop.call_later``, the step's
time) completes. There is no task and no thread per attempt: a race of one
is one socket, one writer callback, one future and one timer.

A connect often ends before ``connect_ex`` returns (on loopback the kernel
answers the SYN in the same call), so a connect in progress is first asked
``getpeername`` (one system call; ``ENOTCONN`` until the handshake is done):
a connected socket needs no callback, no future and no loop iteration, the
way the handle's I/O first tries the system call and waits only when the
kernel says "would block". Otherwise the socket is watched. A socket that
turns writable has finished its connect; ``SO_ERROR`` says whether it
connected (the event loop does not tell ``POLLERR`` apart from ``POLLOUT``,
so it is asked on every watched attempt, as ``loop.sock_connect`` does).
When several turn writable in the same loop iteration they are reported
most preferred first, so the more preferred address wins, as in the
blocking driver.

Every exit closes every socket that did not win and removes its writer
callback first (a closed descriptor still registered would confuse the
selector when the number is reused): success, failure, the deadline, an
exception from ``prepare``, and cancellation (`asyncio.CancelledError` at the
wait, the only place the coroutine yields). After `dial` returns or raises,
nothing it made is left on the loop: no callback, no timer, no future.

Timers are rounded up to whole milliseconds and clamped as ``poll``'s
timeout is (`inetkit._dialer.poll_ms`): uvloop's clock counts milliseconds,
and a timer that fires before the race's due time would only spin.

Rejected: ``loop.sock_connect`` per attempt (a future, a done-callback and a
task-like wrapper each, and cancelling one leaves the others to clean up
separately); a task per attempt with ``asyncio.wait(FIRST_COMPLETED)``
(staggered starts, cancellation of the losers and the deadline would then be
spread over several tasks; one loop over the race keeps the order of events
and the cleanup in one place, as the blocking driver does).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Final

from .._core.race import Address, Lost, Race, Start, Wait, Won
from .._dialer import (
    _DGRAM,
    _IN_PROGRESS,
    _IPPROTO_TCP,
    _IPPROTO_UDP,
    _NONBLOCK,
    _SO_ERROR,
    _SOL_SOCKET,
    _STREAM,
    MAX_WAKEUPS_PER_ADDRESS,
    Clock,
    Prepare,
    Socket,
    _failed,
    _Fatal,
    _log_end,
    _log_start,
    _no_address,
    _no_progress,
    _prepared,
    poll_ms,
)
from .._log import DEBUG, logger

__all__ = ["dial"]

_raw_socket: Final = Socket
_modules: Final = sys.modules


class _Watch:
    """The attempts in flight on the loop: their writer callbacks, and the future the race waits on."""

    __slots__ = ("loop", "ready", "wake", "watched")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watched: dict[int, int] = {}  # descriptor -> attempt, while its writer callback is set
        self.ready: list[int] = []  # attempts whose connect finished since the last look
        self.wake: asyncio.Future[None] | None = None

    def add(self, fd: int, attempt: int) -> None:
        self.watched[fd] = attempt
        self.loop.add_writer(fd, self.writable, fd)

    def writable(self, fd: int) -> None:
        """The writer callback: the connect on ``fd`` finished (either way); wake the race."""
        self.loop.remove_writer(fd)
        self.ready.append(self.watched.pop(fd))
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def wait(self, seconds: float | None) -> None:
        """Wait until an attempt's connect finishes, or ``seconds`` (None: no limit)."""
        wake = self.wake = self.loop.create_future()
        timer = None
        if seconds is not None:
            ms = poll_ms(seconds)
            assert ms is not None
            timer = self.loop.call_later(ms / 1000.0, _wake_up, wake)
        try:
            await wake
        finally:
            self.wake = None
            if timer is not None:
                timer.cancel()

    def forget(self, fd: int) -> None:
        """Stop watching ``fd`` (before its socket is closed)."""
        if self.watched.pop(fd, None) is not None:
            self.loop.remove_writer(fd)

    def clear(self) -> None:
        for fd in self.watched:
            self.loop.remove_writer(fd)
        self.watched.clear()


def _wake_up(wake: asyncio.Future[None]) -> None:
    if not wake.done():
        wake.set_result(None)


def _connected(sock: Socket) -> bool:
    """Whether a connect that answered "in progress" is done already (``getpeername`` works)."""
    try:
        sock.getpeername()  # ENOTCONN until the handshake is done (or when it failed)
    except OSError:
        return False
    return True


async def dial(
    race: Race,
    addresses: Sequence[Address],
    datagram: bool,
    prepare: Prepare | None,
    loop: asyncio.AbstractEventLoop,
    clock: Clock = time.monotonic,
) -> tuple[Socket, int]:
    """Run ``race`` over ``addresses`` on ``loop``: the winning socket and its index.

    The arguments, the result and the errors are those of the blocking
    ``inetkit._dialer.dial``: the socket is connected and non-blocking,
    every other socket this opened is closed, ``race`` keeps the trace.
    Cancelling the awaiting task closes every socket this opened and
    removes everything it put on the loop.
    """
    if not addresses:
        raise _no_address(race)
    if datagram:
        kind = _DGRAM
        proto = _IPPROTO_UDP
    else:
        kind = _STREAM
        proto = _IPPROTO_TCP
    debug = "logging" in _modules and logger.isEnabledFor(DEBUG)
    socks: dict[int, Socket] = {}  # attempt -> its socket, until the attempt ends
    watch = _Watch(loop)
    ready = watch.ready
    idle = 0  # wake-ups that brought no event
    step = race.next(clock())
    try:
        while type(step) is not Won:
            if type(step) is Start:
                index = step.attempt
                family, sockaddr = addresses[index]
                if debug:
                    _log_start(race, index, len(addresses), str(sockaddr[0]), clock())
                try:
                    sock = socks[index] = _raw_socket(family, kind, proto)
                    if not _NONBLOCK:  # pragma: no cover - platforms without SOCK_NONBLOCK
                        sock.setblocking(False)
                    if prepare is not None:
                        _prepared(prepare, sock, family, sockaddr)
                    code = sock.connect_ex(sockaddr)
                    if code and code not in _IN_PROGRESS:
                        raise OSError(code, os.strerror(code))
                except (_Fatal, OSError) as exc:
                    failed = socks.pop(index, None)
                    if failed is not None:
                        failed.close()
                    if type(exc) is _Fatal:
                        step = race.failed(index, clock(), exc.error, fatal=True)
                    else:
                        step = race.failed(index, clock(), _failed(exc, race, str(sockaddr[0])))
                    continue
                # In progress, or already connected: loopback answers inside connect_ex.
                if not code or _connected(sock):
                    # Connected: a datagram socket, or a TCP connect that ended at once.
                    step = race.connected(index, clock())
                    continue
                watch.add(sock.fileno(), index)  # the loop tells when it ends; wait as the start said
            elif type(step) is not Wait:
                assert type(step) is Lost
                if debug:
                    _log_end(race)
                raise step.error
            if not ready:
                await watch.wait(step.seconds)
            now = clock()
            if not ready:
                idle += 1
                if idle > MAX_WAKEUPS_PER_ADDRESS * len(addresses):
                    raise _no_progress(race)
                step = race.next(now)
                continue
            if len(ready) > 1:  # simultaneous answers: the more preferred address first, so it wins
                ready.sort()
            finished = ready[:]
            ready.clear()
            for index in finished:
                ended = socks[index]
                code = ended.getsockopt(_SOL_SOCKET, _SO_ERROR)
                if code == 0:
                    step = race.connected(index, now)
                    break  # the race is over
                del socks[index]
                ended.close()
                error = _failed(OSError(code, os.strerror(code)), race, str(addresses[index][1][0]))
                step = race.failed(index, now, error)
    except BaseException:
        race.abandon(clock())
        watch.clear()
        for loser in socks.values():
            loser.close()
        raise
    index = step.attempt
    winner = socks.pop(index)
    if socks:
        for loser in socks.values():
            watch.forget(loser.fileno())
            loser.close()
    if debug:
        _log_end(race)
    return winner, index
