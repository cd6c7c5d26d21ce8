"""The connection race: RFC 8305 "Happy Eyeballs" for synchronous callers, under one deadline.

Theory of operation
-------------------
The problem. A name often has several addresses, of both families. Trying
them one after another with a per-address timeout turns one broken path (a
black-holed IPv6 route answers nothing; the kernel retries SYNs for about two
minutes) into minutes of waiting, and multiplies the caller's timeout by the
number of addresses. Trying them all at once floods the server.

The algorithm (RFC 8305):

* The addresses arrive already ordered (``_resolver.order_addresses``: the
  preferred family first, then alternating families, RFC 8305 section 4).
* Attempts are staggered (section 5): the first starts at once; each further
  attempt starts when the previous one has been running for
  `CONNECTION_ATTEMPT_DELAY` without an answer, or at once when an attempt
  fails (a refusal or an unreachable network gives way immediately instead
  of wasting the delay). Started attempts keep running in parallel.
* The first attempt to connect wins; every other socket is closed at once
  (section 5: "all other connection attempts ... SHOULD be canceled") and
  recorded as "abandoned".
* ONE deadline covers every attempt: there is no per-address timeout, so a
  caller's ``timeout`` means what it says however many addresses there are.
  When it runs out, whatever is still running is "timed out".
* When every address failed, the error names every address and keeps each
  attempt's own error in ``.attempts``; its class and code are those of the
  most preferred address's failure, or ``TIMED_OUT`` when the deadline ran
  out (so ``except ConnectionRefusedError`` still works).

Not done: the "Resolution Delay" of RFC 8305 section 3 (start connecting
when the AAAA answer arrives before the A answer); ``getaddrinfo`` returns
both families together, so there is nothing to wait for.

Structure. `_Race` is a small sans-I/O state machine: told the time and what
happened, it says which attempt to start and how long the caller may sleep,
keeps the trace records, and builds the final error. It never reads a clock
or touches a socket, so tests drive it with made-up times and assert exact
results. `dial` is the thin I/O loop around it: non-blocking sockets, one
``select.poll`` object for every attempt in flight (no thread per attempt),
and a `Clock` that says what time it is.

Fast paths. One address (an IP literal, the common case) skips the race:
one socket, one non-blocking connect, one poll, one ``SO_ERROR`` check,
which is cheaper than ``socket.create_connection`` (that one also runs
``getaddrinfo``). UDP has no race at all: a datagram "connect" only sets the
default destination and cannot be answered by the peer, so the first address
whose local connect succeeds is used.

Rejected alternatives: a thread per blocking attempt (a thread each, and a
blocking ``connect`` cannot be cancelled cleanly when another one wins); ``selectors.DefaultSelector`` (epoll
costs a descriptor and three system calls per dial, poll costs none extra);
a per-attempt timeout (see the problem above).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import select
import socket
import time
from _socket import socket as _raw_socket
from collections.abc import Callable, Sequence
from typing import Any, Final, NoReturn
from typing import Protocol as TypingProtocol

from ._errors import ErrorCode, InetError, InetTimeoutError, InvalidArgumentError, translate_os_error
from ._options import Protocol
from ._trace import Attempt

__all__ = ["CONNECTION_ATTEMPT_DELAY", "MONOTONIC", "Clock", "Socket", "dial", "dial_one"]

logger = logging.getLogger("inetkit")

#: RFC 8305 section 8: the recommended "Connection Attempt Delay" (250 ms):
#: long enough for a healthy path to answer, short enough that a dead one
#: costs little. `connect(attempt_delay=...)` tunes it (at least 10 ms,
#: the RFC's floor).
CONNECTION_ATTEMPT_DELAY: Final = 0.25

#: ``poll`` takes a C int of milliseconds; longer waits are done in pieces.
MAX_POLL_MS: Final = 2**31 - 1

#: Wake-ups of the race loop per address before giving up. Each wake-up
#: starts, ends or times something, so a handful per address is normal; the
#: bound only stops a broken clock from spinning forever.
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

Address = tuple[int, tuple[Any, ...]]
#: The sockets the dialer makes: the C-level ``_socket.socket`` that
#: ``socket.socket`` extends. Nothing in inetkit needs the wrapper's extras
#: (``makefile``, ``sendfile``, enum-typed ``family``), and skipping its
#: Python-level ``__init__`` and ``close`` saves about 2 µs per connect.
Socket = _raw_socket
Prepare = Callable[[Socket, int], None]


class Clock(TypingProtocol):
    """Where the dialer reads the time: seconds on a monotonic scale."""

    def now(self) -> float: ...


class _MonotonicClock:
    """The real clock: `time.monotonic`, the scale connect deadlines use."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()


#: The clock `dial` uses unless a test passes another.
MONOTONIC: Final[Clock] = _MonotonicClock()


# -- messages ------------------------------------------------------------------


def _where(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _target(host: str, port: int, ip: str) -> str:
    """How messages name one attempt: ``example.com port 443 (192.0.2.1)``."""
    if host == ip or host.partition("%")[0] == ip:
        return f"{ip} port {port}"
    return f"{host} port {port} ({ip})"


def _reason(error: BaseException | None) -> str:
    if isinstance(error, InetError):
        return error.code.name.lower().replace("_", " ")
    return "failed" if error is None else str(error) or type(error).__name__


def _attempt_timed_out(host: str, port: int, ip: str, elapsed: float) -> InetTimeoutError:
    return InetTimeoutError(
        f"connect to {_target(host, port, ip)} timed out after {elapsed:.2f} s "
        "(no answer before the connect deadline)",
        ErrorCode.TIMED_OUT,
    )


def _connect_failed(exc: BaseException, host: str, port: int, ip: str) -> InetError:
    """The `InetError` for one failed attempt, chained to the `OSError` behind it."""
    error = translate_os_error(exc, action="connect to", target=_target(host, port, ip))
    if error is not exc:
        # Kept on the error itself: it is raised later, outside this handler.
        error.__cause__ = exc
    return error


class _Fatal(Exception):
    """`prepare` refused the caller's configuration: stop the whole dial."""

    def __init__(self, error: InetError) -> None:
        super().__init__(str(error))
        self.error = error


def _raise(error: InetError, cause: BaseException | None) -> NoReturn:
    """Raise ``error`` chained to ``cause`` (but never to itself)."""
    if cause is None or cause is error:
        raise error
    raise error from cause


# -- the sans-I/O race -------------------------------------------------------------


class _Race:
    """The RFC 8305 scheduler: which attempt starts when, and how the race ended.

    It is told the time (``now``, seconds on the deadline's scale) and the
    outcome of each attempt, and answers with the next attempt to start
    (`start_due`) and how long the caller may wait for socket events before
    asking again (`wait_time`). It keeps the trace (`Attempt` records,
    appended to ``trace`` as attempts start) and builds the error when the
    race is lost (`error`).

    Rules: the first attempt is due at once; attempt *n + 1* is due
    ``attempt_delay`` after attempt *n* started, or at once when any attempt
    fails before that; nothing starts at or after the deadline; the first
    attempt to connect wins and every other running attempt is abandoned.
    """

    __slots__ = (
        "_addresses",
        "_deadline",
        "_delay",
        "_due",
        "_host",
        "_next",
        "_port",
        "_records",
        "_running",
        "_started",
        "_starts",
        "_trace",
        "timed_out",
        "winner",
    )

    def __init__(
        self,
        addresses: Sequence[Address],
        *,
        host: str,
        port: int,
        started: float,
        now: float,
        deadline: float | None,
        attempt_delay: float,
        trace: list[Attempt],
    ) -> None:
        self._addresses = addresses
        self._host = host
        self._port = port
        self._started = started
        self._deadline = deadline
        self._delay = attempt_delay
        self._trace = trace
        self._records: list[Attempt] = []
        self._starts: list[float] = []
        self._running: set[int] = set()
        self._next = 0
        self._due = now
        self.winner: int | None = None
        self.timed_out = False

    # -- questions -----------------------------------------------------------

    def expired(self, now: float) -> bool:
        """Whether the deadline has run out at ``now``."""
        return self._deadline is not None and now >= self._deadline

    @property
    def all_failed(self) -> bool:
        """Every address was tried and every attempt failed."""
        return self.winner is None and self._next >= len(self._addresses) and not self._running

    @property
    def running(self) -> frozenset[int]:
        """Indices of the attempts in flight."""
        return frozenset(self._running)

    def start_due(self, now: float) -> int | None:
        """The index of the attempt to start at ``now``, or None when none is due.

        The caller starts it and reports back (`failed` / `connected`); call
        again until None, since a failure reported at once makes the next
        attempt due at once.
        """
        if (
            self.winner is not None
            or self.timed_out
            or self._next >= len(self._addresses)
            or now < self._due
            or self.expired(now)
        ):
            return None
        index = self._next
        self._next += 1
        self._running.add(index)
        self._due = now + self._delay
        family, sockaddr = self._addresses[index]
        record = Attempt(address=str(sockaddr[0]), port=self._port, family=family, start=now - self._started)
        self._records.append(record)
        self._starts.append(now)
        self._trace.append(record)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "connect %s port %d: attempt %d/%d to %s started at +%.1f ms",
                self._host,
                self._port,
                index + 1,
                len(self._addresses),
                _where(record.address),
                record.start * 1000,
            )
        return index

    def wait_time(self, now: float) -> float | None:
        """Seconds the caller may wait for socket events before calling again; None = no limit."""
        limit: float | None = None
        if self._next < len(self._addresses) and self.winner is None:
            limit = self._due - now
        if self._deadline is not None:
            until_deadline = self._deadline - now
            limit = until_deadline if limit is None else min(limit, until_deadline)
        return None if limit is None else max(0.0, limit)

    # -- reports -------------------------------------------------------------

    def _finish(self, index: int, now: float, outcome: str, error: BaseException | None) -> None:
        record = self._records[index]
        record.outcome = outcome
        record.duration = now - self._starts[index]
        record.error = error
        self._running.discard(index)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "connect %s port %d: attempt %d to %s %s after %.1f ms%s",
                self._host,
                self._port,
                index + 1,
                _where(record.address),
                outcome,
                record.duration * 1000,
                f": {error}" if error is not None else "",
            )

    def failed(self, index: int, now: float, error: InetError) -> None:
        """Attempt ``index`` failed at ``now``: the next attempt becomes due at once."""
        self._finish(index, now, "failed", error)
        self._due = min(self._due, now)

    def connected(self, index: int, now: float) -> None:
        """Attempt ``index`` connected at ``now``: it wins, every other running attempt is abandoned."""
        self._finish(index, now, "connected", None)
        self.winner = index
        self.abandon(now)

    def abandon(self, now: float) -> None:
        """Record every running attempt as abandoned (the race is over, their sockets closed)."""
        for index in sorted(self._running):
            self._finish(index, now, "abandoned", None)

    def expire(self, now: float) -> None:
        """The deadline ran out at ``now``: every running attempt timed out."""
        self.timed_out = True
        for index in sorted(self._running):
            ip = self._records[index].address
            elapsed = now - self._starts[index]
            self._finish(index, now, "timed out", _attempt_timed_out(self._host, self._port, ip, elapsed))

    # -- the verdict -----------------------------------------------------------

    def error(self, now: float) -> InetError:
        """The error that ends a lost race (every attempt failed, or the deadline ran out).

        With one address it is that attempt's own error. Otherwise the
        message says how many addresses were tried and names every address;
        ``.attempts`` holds each attempt's own error, most preferred first;
        class and code are ``TIMED_OUT`` when the deadline ran out, else
        those of the first address's failure.
        """
        errors = [r.error for r in self._records if isinstance(r.error, InetError)]
        total = len(self._addresses)
        elapsed = now - self._started
        if self.timed_out or not errors:
            if total == 1 and errors:
                return errors[0]
            if not self._records:
                return InetTimeoutError(
                    f"connect to {self._host} port {self._port} timed out after {elapsed:.2f} s "
                    f"before any of its {total} address(es) was tried (name resolution used up the deadline)",
                    ErrorCode.TIMED_OUT,
                )
            return InetTimeoutError(
                f"connect to {self._host} port {self._port} timed out after {elapsed:.2f} s: "
                f"{self._tried_text()}",
                ErrorCode.TIMED_OUT,
                attempts=errors,
            )
        first = errors[0]
        if total == 1:
            return first
        return type(first)(
            f"connect to {self._host} port {self._port} failed: {self._tried_text()}",
            first.code,
            errno=first.errno,
            attempts=errors,
        )

    def _tried_text(self) -> str:
        total = len(self._addresses)
        tried = len(self._records)
        count = f"{tried} of {total} addresses" if tried < total else f"{total} addresses"
        details = ", ".join(
            f"{_where(r.address)} ({'no answer' if r.outcome == 'timed out' else _reason(r.error)})"
            for r in self._records
        )
        text = f"{count} tried: {details}"
        if tried < total:
            untried = ", ".join(_where(str(sockaddr[0])) for _, sockaddr in self._addresses[tried:])
            text += f"; not tried: {untried}"
        return text


# -- the I/O loop ------------------------------------------------------------------


def _open(
    family: int, sockaddr: tuple[Any, ...], kind: int, proto: int, prepare: Prepare | None
) -> tuple[Socket, bool]:
    """Create a non-blocking socket, prepare it and start connecting.

    Returns the socket and whether it is already connected. Raises `OSError`
    (or `InetError`) when this attempt failed, `_Fatal` when ``prepare``
    refused the configuration; the socket is closed in both cases.
    """
    sock = _raw_socket(family, kind | _NONBLOCK, proto)
    try:
        if not _NONBLOCK:  # pragma: no cover - platforms without SOCK_NONBLOCK
            sock.setblocking(False)
        if prepare is not None:
            try:
                prepare(sock, family)
            except OSError as exc:
                error = translate_os_error(exc, action="prepare a socket for", target=str(sockaddr[0]))
                if error.code in _FATAL_CODES or isinstance(error, InvalidArgumentError):
                    raise _Fatal(error) from exc
                raise
        code = sock.connect_ex(sockaddr)
    except BaseException:
        sock.close()
        raise
    if code == 0:
        return sock, True
    if code in _IN_PROGRESS:
        return sock, False
    sock.close()
    raise OSError(code, os.strerror(code))


def _start(
    race: _Race,
    index: int,
    address: Address,
    kind: int,
    prepare: Prepare | None,
    host: str,
    port: int,
    clock: Clock,
) -> tuple[Socket, bool] | None:
    """Open attempt ``index``: (socket, connected already), or None when it failed at once.

    A failure is recorded in ``race``; a refused configuration (`_Fatal`)
    ends the whole dial.
    """
    family, sockaddr = address
    proto = socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP
    try:
        return _open(family, sockaddr, kind, proto, prepare)
    except _Fatal as fatal:
        race.failed(index, clock.now(), fatal.error)
        _raise(fatal.error, fatal.__cause__)
    except OSError as exc:
        race.failed(index, clock.now(), _connect_failed(exc, host, port, str(sockaddr[0])))
        return None


def _poll_ms(wait: float | None) -> int | None:
    if wait is None:
        return None
    # Round up: waking a little late is harmless, waking early spins.
    return min(MAX_POLL_MS, max(0, math.ceil(wait * 1000)))


def dial(
    addresses: Sequence[Address],
    *,
    protocol: Protocol,
    deadline: float | None,
    attempt_delay: float = CONNECTION_ATTEMPT_DELAY,
    prepare: Prepare | None,
    host: str,
    port: int,
    started: float,
    trace_attempts: list[Attempt],
    clock: Clock = MONOTONIC,
) -> Socket:
    """Connect to the first of ``addresses`` that answers, racing them as RFC 8305 says.

    Returns the winning socket, connected and still non-blocking; every other
    socket it opened is closed. Each attempt is appended to
    ``trace_attempts`` as it starts and updated as it ends.

    Args:
        addresses: ``(family, sockaddr)`` pairs, already in the order to try
            (`order_addresses`).
        protocol: `Protocol.TCP` races; `Protocol.UDP` uses the first address
            whose (local) connect succeeds.
        deadline: `time.monotonic` value by which everything must be done,
            or None for no limit (each attempt then ends when the kernel
            gives up).
        attempt_delay: seconds before the next attempt starts while the
            previous one is still unanswered.
        prepare: called as ``prepare(sock, family)`` on each fresh socket
            before it connects (socket options, local bind). An `InetError`
            with ``PERMISSION_DENIED`` or ``INVALID_ARGUMENT`` from it stops
            the whole dial; any other fails only that attempt.
        host, port: what the caller asked for, for messages and the trace.
        started: the clock value the trace's start offsets count from.
        trace_attempts: list the `Attempt` records are appended to.
        clock: where the time comes from (tests pass a fake one).

    Raises:
        InetError: the subclass and code of the most preferred address's
            failure, or `InetTimeoutError` (``TIMED_OUT``) when the deadline
            ran out; see `_Race.error`.
    """
    if not addresses:
        raise InvalidArgumentError(f"connect to {host} port {port}: no address to connect to")
    if protocol is Protocol.UDP:
        return _dial_datagram(addresses, deadline, prepare, host, port, started, trace_attempts, clock)
    if len(addresses) == 1:
        family, sockaddr = addresses[0]
        sock, begun, ended = dial_one(
            family, sockaddr, deadline, prepare, host, port, started, trace_attempts, clock
        )
        trace_attempts.append(
            Attempt(str(sockaddr[0]), port, family, begun - started, ended - begun, "connected")
        )
        return sock
    return _dial_race(addresses, deadline, attempt_delay, prepare, host, port, started, trace_attempts, clock)


def dial_one(
    family: int,
    sockaddr: tuple[Any, ...],
    deadline: float | None,
    prepare: Prepare | None,
    host: str,
    port: int,
    started: float,
    trace: list[Attempt],
    clock: Clock = MONOTONIC,
) -> tuple[Socket, float, float]:
    """One TCP address, no race: one socket, one poll. Kept lean, it is the common case.

    Returns the connected socket and the clock values when the attempt began
    and ended; the caller records the successful `Attempt` (it can do so
    lazily). A failed attempt is appended to ``trace`` before the error is
    raised.
    """
    begun = clock.now()
    if deadline is not None and begun >= deadline:
        raise InetTimeoutError(
            f"connect to {_target(host, port, str(sockaddr[0]))} timed out after {begun - started:.2f} s "
            "before it was tried (name resolution used up the deadline)",
            ErrorCode.TIMED_OUT,
        )
    outcome = "failed"
    try:
        sock, connected = _open(family, sockaddr, socket.SOCK_STREAM, socket.IPPROTO_TCP, prepare)
    except _Fatal as fatal:
        error, cause = fatal.error, fatal.__cause__
    except OSError as exc:
        error, cause = _connect_failed(exc, host, port, str(sockaddr[0])), None
    else:
        try:
            code = 0 if connected else _wait_connected(sock, deadline, clock)
        except BaseException:
            sock.close()
            raise
        if code == 0:
            ended = clock.now()
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "connect %s port %d: %s connected in %.1f ms",
                    host,
                    port,
                    _where(str(sockaddr[0])),
                    (ended - begun) * 1000,
                )
            return sock, begun, ended
        sock.close()
        cause = None
        if code is None:
            outcome = "timed out"
            error = _attempt_timed_out(host, port, str(sockaddr[0]), clock.now() - started)
        else:
            error = _connect_failed(OSError(code, os.strerror(code)), host, port, str(sockaddr[0]))
    ip = str(sockaddr[0])
    duration = clock.now() - begun
    trace.append(Attempt(ip, port, family, begun - started, duration, outcome, error))
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "connect %s port %d: %s %s after %.1f ms: %s",
            host,
            port,
            _where(ip),
            outcome,
            duration * 1000,
            error,
        )
    _raise(error, cause)


#: poll() flags that mean a connect in progress failed (SO_ERROR says why).
_POLL_FAILED = select.POLLERR | select.POLLHUP


def _wait_connected(sock: Socket, deadline: float | None, clock: Clock) -> int | None:
    """Wait until a connect in progress ends: its errno (0 = connected), or None at the deadline."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    for _ in range(MAX_WAKEUPS_PER_ADDRESS):
        wait = None if deadline is None else deadline - clock.now()
        if wait is not None and wait <= 0:
            return None
        events = poller.poll(_poll_ms(wait))
        if events:
            if events[0][1] & _POLL_FAILED:
                return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            # Writable without error or hang-up: connected. Skipping the
            # SO_ERROR query saves a system call on every successful connect.
            return 0
    return None


def _dial_race(
    addresses: Sequence[Address],
    deadline: float | None,
    attempt_delay: float,
    prepare: Prepare | None,
    host: str,
    port: int,
    started: float,
    trace: list[Attempt],
    clock: Clock,
) -> Socket:
    """Several TCP addresses: the staggered race over one poll object."""
    race = _Race(
        addresses,
        host=host,
        port=port,
        started=started,
        now=clock.now(),
        deadline=deadline,
        attempt_delay=attempt_delay,
        trace=trace,
    )
    poller = select.poll()
    live: dict[int, tuple[int, Socket]] = {}  # fd -> (attempt index, socket)
    try:
        for _ in range(MAX_WAKEUPS_PER_ADDRESS * len(addresses)):
            now = clock.now()
            index = race.start_due(now)
            while index is not None:
                opened = _start(race, index, addresses[index], socket.SOCK_STREAM, prepare, host, port, clock)
                if opened is None:
                    now = clock.now()
                else:
                    sock, connected = opened
                    if connected:
                        race.connected(index, clock.now())
                        return sock
                    fd = sock.fileno()
                    live[fd] = (index, sock)
                    poller.register(fd, select.POLLOUT)
                index = race.start_due(now)
            if race.all_failed:
                raise race.error(now)
            if race.expired(now):
                race.expire(now)
                raise race.error(now)
            events = poller.poll(_poll_ms(race.wait_time(now)))
            if not events:
                continue
            now = clock.now()
            # Simultaneous answers: the more preferred address wins.
            for fd, _ in sorted(events, key=lambda event: live[event[0]][0]):
                index, sock = live.pop(fd)
                poller.unregister(fd)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    race.connected(index, now)
                    return sock
                sock.close()
                ip = str(addresses[index][1][0])
                race.failed(index, now, _connect_failed(OSError(code, os.strerror(code)), host, port, ip))
        raise InetError(
            f"connect to {host} port {port}: gave up after too many wake-ups without progress "
            "(is the clock moving?)",
            ErrorCode.NETWORK_ERROR,
        )
    except BaseException:
        race.abandon(clock.now())
        raise
    finally:
        for _, loser in live.values():
            loser.close()


def _dial_datagram(
    addresses: Sequence[Address],
    deadline: float | None,
    prepare: Prepare | None,
    host: str,
    port: int,
    started: float,
    trace: list[Attempt],
    clock: Clock,
) -> Socket:
    """UDP: no race. The first address whose local connect works is used."""
    # A datagram connect ends locally and at once, so an attempt never waits:
    # an infinite delay means "the next address only after a failure".
    now = clock.now()
    race = _Race(
        addresses,
        host=host,
        port=port,
        started=started,
        now=now,
        deadline=deadline,
        attempt_delay=math.inf,
        trace=trace,
    )
    index = race.start_due(now)
    while index is not None:
        opened = _start(race, index, addresses[index], socket.SOCK_DGRAM, prepare, host, port, clock)
        if opened is None:
            now = clock.now()
        else:
            race.connected(index, clock.now())
            return opened[0]
        index = race.start_due(now)
    if not race.all_failed:  # the deadline ran out before every address was tried
        race.expire(now)
    raise race.error(now)
