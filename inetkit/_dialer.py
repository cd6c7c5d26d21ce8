"""The blocking driver of the connection race: sockets and one poll under one deadline.

Theory of operation
-------------------
The race itself (RFC 8305 "Happy Eyeballs": which attempt starts when, who
wins, what the error says) is the sans-I/O `inetkit._core.race.Race`; its
module header explains the algorithm. This module is the thin loop that
acts on its answers: it reads the clock, opens non-blocking sockets, waits
on ONE ``select.poll`` object for every attempt in flight (no thread per
attempt), reports back what happened, and closes every socket that did not
win, on every path out (success, failure, deadline, or an exception from a
``prepare`` hook).

TCP and UDP, one address or many, all go through the same loop. The cost of
a race of one, the common case (an IP literal), is one socket (created
non-blocking: ``SOCK_NONBLOCK``), one ``connect_ex`` and one ``poll``. A
socket that polls writable without ``POLLERR``/``POLLHUP`` is connected, so
no ``SO_ERROR`` query is needed on success; only a failed attempt asks for
its errno.

Order of work. On loopback the handshake completes inside ``connect_ex``,
and Python work placed after it costs more than its own time (the peer's
answers arrive, caches are cold, the caller's next step waits). So each
attempt's socket is registered with the poll object, handed to ``adopt``
(the caller builds its handle) and the race asked for its next step BEFORE
``connect_ex``; what follows the connect is one poll and the race's
``connected`` report.

Waits are clamped: ``poll`` takes a C int of milliseconds, so a far deadline
(``timeout=1e308``) is waited for in pieces of at most `MAX_POLL_MS`, and the
arithmetic never rounds an infinite or huge float.

Rejected alternatives: a thread per blocking attempt (a thread each, and a
blocking ``connect`` cannot be cancelled cleanly when another one wins);
``selectors.DefaultSelector`` (epoll costs a descriptor and three system
calls per dial, poll costs none extra); a separate single-address path (two
sets of bookkeeping to keep in step, for a saving of about a microsecond).
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import sys
import time
from _socket import socket as _raw_socket
from collections.abc import Callable, Sequence
from typing import Any, Final
from typing import Protocol as TypingProtocol

from ._core.race import (
    CONNECTION_ATTEMPT_DELAY,
    Address,
    Lost,
    Race,
    Start,
    Wait,
    Won,
    describe_target,
    where,
)
from ._errors import ErrorCode, InetError, InvalidArgumentError, translate_os_error
from ._log import DEBUG, logger

__all__ = ["CONNECTION_ATTEMPT_DELAY", "Clock", "Poller", "Socket", "dial", "poll_ms"]


#: ``poll`` takes a C int of milliseconds; longer waits are done in pieces.
MAX_POLL_MS: Final = 2**31 - 1

#: Wake-ups without any socket event, per address, before the loop gives up.
#: Every event ends an attempt and every start uses up an address, so only
#: an empty wake-up can repeat; a handful per address is normal (each starts
#: or times something). The bound only stops a broken clock from spinning
#: forever (a far deadline waited for in `MAX_POLL_MS` pieces takes one
#: wake-up per 24.8 days).
MAX_WAKEUPS_PER_ADDRESS: Final = 1000

# SOCK_NONBLOCK makes the socket non-blocking as it is created (one system
# call fewer per attempt); where it does not exist, setblocking(False).
_NONBLOCK: Final = getattr(socket, "SOCK_NONBLOCK", 0)

# connect() on a non-blocking socket reports "started, not finished yet" as
# EINPROGRESS (POSIX), WSAEWOULDBLOCK (Windows), or EINTR when a signal
# arrived (the connect still proceeds; PEP 475 does not retry it for
# non-blocking sockets). EAGAIN is NOT one of them: for TCP on Linux it means
# that no local port is free.
_IN_PROGRESS: Final = frozenset({errno.EINPROGRESS, errno.EINTR, 10035})

# Errors from `prepare` that no other address can cure: the caller's own
# configuration is refused, so the whole dial stops at once.
_FATAL_CODES: Final = frozenset({ErrorCode.PERMISSION_DENIED, ErrorCode.INVALID_ARGUMENT})

#: poll() flags that mean a connect in progress failed (SO_ERROR says why).
_POLL_FAILED: Final = select.POLLERR | select.POLLHUP
_POLLOUT: Final = select.POLLOUT
_SOL_SOCKET: Final = socket.SOL_SOCKET
_STREAM: Final = socket.SOCK_STREAM | _NONBLOCK
_DGRAM: Final = socket.SOCK_DGRAM | _NONBLOCK
_IPPROTO_TCP: Final = socket.IPPROTO_TCP
_IPPROTO_UDP: Final = socket.IPPROTO_UDP
_SO_ERROR: Final = socket.SO_ERROR
_DEBUG: Final = DEBUG
_modules = sys.modules

#: The sockets the dialer makes: the C-level ``_socket.socket`` that
#: ``socket.socket`` extends. Nothing in inetkit needs the wrapper's extras
#: (``makefile``, ``sendfile``, enum-typed ``family``), and skipping its
#: Python-level ``__init__`` and ``close`` saves about 2 µs per connect.
Socket = _raw_socket
Prepare = Callable[[Socket, int], None]
Adopt = Callable[[Socket, int], None]


#: Where the dialer reads the time: seconds on a monotonic scale (`time.monotonic`,
#: the scale connect deadlines use; tests pass a fake).
Clock = Callable[[], float]


class Poller(TypingProtocol):
    """What the dialer needs of ``select.poll()`` (tests may pass their own)."""

    def register(self, fd: int, eventmask: int = ..., /) -> None: ...

    def unregister(self, fd: int, /) -> None: ...

    def poll(self, timeout: float | None = ..., /) -> list[tuple[int, int]]: ...


class _Fatal(Exception):
    """`prepare` refused the caller's configuration: stop the whole dial."""

    def __init__(self, error: InetError) -> None:
        super().__init__(str(error))
        self.error = error


def _failed(exc: BaseException, race: Race, ip: str, action: str = "connect to") -> InetError:
    """The `InetError` for one failed attempt; its ``__cause__`` is the `OSError` behind it.

    The cause is kept on the error itself because the error is raised later,
    outside the handler that caught ``exc`` (a race of one raises it as is).
    """
    error = translate_os_error(exc, action=action, target=describe_target(race.host, race.port, ip))
    if error is not exc:
        error.__cause__ = exc
    return error


def _no_address(race: Race) -> InvalidArgumentError:
    return InvalidArgumentError(f"connect to {race.host} port {race.port}: no address to connect to")


def _no_progress(race: Race) -> InetError:
    """The error of a dial whose wake-ups brought no event too often (both drivers bound them)."""
    return InetError(
        f"connect to {race.host} port {race.port}: gave up after too many wake-ups "
        "without progress (is the clock moving?)",
        ErrorCode.NETWORK_ERROR,
    )


def poll_ms(seconds: float | None) -> int | None:
    """A wait in seconds as ``poll``'s milliseconds: rounded up, clamped to `MAX_POLL_MS`.

    Rounding up: waking a little late is harmless, waking early spins. The
    comparison comes before any rounding, so an infinite or huge wait (a
    ``timeout`` of ``1e308``) never reaches ``math.ceil``.
    """
    if seconds is None:
        return None
    ms = seconds * 1000.0
    if ms >= MAX_POLL_MS:
        return MAX_POLL_MS
    if ms <= 0.0:
        return 0
    return math.ceil(ms)


def _prepared(prepare: Prepare, sock: Socket, family: int, sockaddr: tuple[Any, ...]) -> None:
    """Run the ``prepare`` hook on a fresh socket; `_Fatal` when no other address can cure its failure."""
    try:
        prepare(sock, family)
    except OSError as exc:
        error = translate_os_error(exc, action="prepare a socket for", target=str(sockaddr[0]))
        if error.code in _FATAL_CODES or isinstance(error, InvalidArgumentError):
            if error is not exc:
                error.__cause__ = exc
            raise _Fatal(error) from exc
        raise


def dial(
    race: Race,
    addresses: Sequence[Address],
    datagram: bool,
    prepare: Prepare | None,
    adopt: Adopt | None = None,
    clock: Clock = time.monotonic,
    poller: Callable[[], Poller] = select.poll,
) -> tuple[Socket, int]:
    """Run ``race`` over ``addresses`` with real sockets: the winning socket and its index.

    The socket is connected and still non-blocking; every other socket this
    opened is closed. ``race`` keeps the trace (`Race.attempts`), also when
    this raises.

    Args:
        race: the race over exactly these ``addresses`` (the caller keeps it
            for the trace).
        addresses: ``(family, sockaddr)`` pairs in the order to try
            (`order_addresses`).
        datagram: UDP (the race then has an infinite attempt delay: a local
            connect either works at once or fails at once).
        prepare: called as ``prepare(sock, family)`` on each fresh socket
            before it connects (socket options, local bind). An `InetError`
            with ``PERMISSION_DENIED`` or ``INVALID_ARGUMENT`` from it stops
            the whole dial; any other fails only that attempt.
        adopt: called as ``adopt(sock, index)`` on each prepared socket
            just before it connects, so that the caller can build what it
            needs around it while the kernel does the handshake (work after
            the connect delays the caller's next step). The socket stays
            this loop's to close when its attempt does not win.
        clock: where the time comes from; ``poller`` makes the poll object
            (tests pass their own of both).

    Raises:
        InetError: what `Race.error` says: the subclass and code of the most
            preferred address's failure, or `InetTimeoutError` (``TIMED_OUT``)
            when the deadline ran out.
    """
    if not addresses:
        raise _no_address(race)
    if datagram:
        kind = _DGRAM
        proto = _IPPROTO_UDP
    else:
        kind = _STREAM
        proto = _IPPROTO_TCP
    # `logging` not loaded: nobody can have enabled DEBUG (see _log), and no call is made.
    debug = "logging" in _modules and logger.isEnabledFor(_DEBUG)
    socks: dict[int, Socket] = {}  # attempt -> its socket, until the attempt ends
    polled: dict[int, int] = {}  # descriptor -> attempt, while in flight
    poll = poller()
    idle = 0  # wake-ups that brought no event
    step = race.next(clock())
    try:
        # Won ends the loop: the common path leaves right after the poll.
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
                    if adopt is not None:
                        adopt(sock, index)
                    # What the loop does next is settled before the connect
                    # starts: on loopback the handshake completes inside
                    # connect_ex, and work placed after it delays the caller.
                    fd = sock.fileno()
                    polled[fd] = index
                    poll.register(fd, _POLLOUT)
                    timeout_ms = poll_ms(step.seconds)  # the wait that follows the start
                    code = sock.connect_ex(sockaddr)
                    if code and code not in _IN_PROGRESS:
                        raise OSError(code, os.strerror(code))
                except (_Fatal, OSError) as exc:
                    failed = socks.pop(index, None)
                    if failed is not None:
                        fd = failed.fileno()
                        if polled.pop(fd, None) is not None:
                            poll.unregister(fd)
                        failed.close()
                    if type(exc) is _Fatal:
                        step = race.failed(index, clock(), exc.error, fatal=True)
                    else:
                        step = race.failed(index, clock(), _failed(exc, race, str(sockaddr[0])))
                    continue
                if not code:  # a datagram socket, or a TCP connect that ended at once
                    step = race.connected(index, clock())
                    continue
                # In progress: wait as the start said (below).
            elif type(step) is Wait:
                timeout_ms = poll_ms(step.seconds)
            else:
                assert type(step) is Lost
                if debug:
                    _log_end(race)
                raise step.error
            events = poll.poll(timeout_ms)
            now = clock()
            if not events:
                # Only a wake-up without events can repeat without progress
                # (every event ends an attempt): bound them against a broken clock.
                idle += 1
                if idle > MAX_WAKEUPS_PER_ADDRESS * len(addresses):
                    raise _no_progress(race)
                step = race.next(now)
                continue
            if len(events) > 1:
                # Simultaneous answers: report the more preferred address first, so it wins.
                events.sort(key=lambda event: polled[event[0]])
            for fd, flags in events:
                index = polled.pop(fd)
                # Writable without error or hang-up: connected, no SO_ERROR query.
                if not flags & _POLL_FAILED:
                    step = race.connected(index, now)
                    break  # the race is over
                ended = socks[index]
                code = ended.getsockopt(_SOL_SOCKET, _SO_ERROR)
                if code == 0:
                    step = race.connected(index, now)
                    break
                poll.unregister(fd)
                del socks[index]
                ended.close()
                error = _failed(OSError(code, os.strerror(code)), race, str(addresses[index][1][0]))
                step = race.failed(index, now, error)
    except BaseException:
        race.abandon(clock())
        for loser in socks.values():
            loser.close()
        raise
    index = step.attempt
    winner = socks.pop(index)
    if socks:
        for loser in socks.values():
            loser.close()
    if debug:
        _log_end(race)
    return winner, index


def _log_start(race: Race, index: int, total: int, ip: str, now: float) -> None:
    logger.debug(
        "connect %s port %d: attempt %d/%d to %s started at +%.1f ms",
        race.host,
        race.port,
        index + 1,
        total,
        where(ip),
        (now - race.started) * 1000,
    )


def _log_end(race: Race) -> None:
    for number, attempt in enumerate(race.attempts(), 1):
        logger.debug(
            "connect %s port %d: attempt %d to %s %s after %.1f ms%s",
            race.host,
            race.port,
            number,
            where(attempt.address),
            attempt.outcome,
            (attempt.duration or 0.0) * 1000,
            f": {attempt.error}" if attempt.error is not None else "",
        )
