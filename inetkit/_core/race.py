"""The RFC 8305 ("Happy Eyeballs") connection race as a sans-I/O state machine.

Theory of operation
-------------------
The problem. A name often has several addresses, of both families. Trying
them one after another with a per-address timeout turns one broken path (a
black-holed IPv6 route answers nothing; the kernel retries SYNs for about two
minutes) into minutes of waiting, and multiplies the caller's timeout by the
number of addresses. Trying them all at once floods the server.

The algorithm (RFC 8305):

* The addresses arrive already ordered (``_resolver.order_addresses``: the
  preferred family first, then alternating families, section 4).
* Attempts are staggered (section 5): the first starts at once; each further
  attempt starts when the previous one has been running for the attempt
  delay without an answer, or at once when an attempt fails (a refusal or an
  unreachable network gives way immediately instead of wasting the delay).
  Started attempts keep running in parallel.
* The first attempt to connect wins; every other attempt is "abandoned"
  (section 5: "all other connection attempts ... SHOULD be canceled"). When
  several answer in the same wake-up the driver reports them most preferred
  first, so the more preferred address wins.
* ONE deadline covers every attempt: there is no per-address timeout, so a
  caller's ``timeout`` means what it says however many addresses there are.
  When it runs out, whatever is still running is "timed out", and nothing
  starts at or after it.
* When every address failed, the error names every address and keeps each
  attempt's own error in ``.attempts``; its class and code are those of the
  most preferred address's failure, or ``TIMED_OUT`` when the deadline ran
  out (so ``except ConnectionRefusedError`` still works). A race of one
  address raises that attempt's own error.

A single address is a race of one, not a separate code path: it costs one
call per step (the start, which says how long to wait after it, and the
win). UDP uses the same machine with
an infinite attempt delay: a datagram "connect" ends locally and at once and
cannot be answered by the peer, so the next address is tried only after a
local failure.

The interface. Each call is told the time and what happened, and answers
with the one thing to do next: `Start` attempt *i* and then wait up to *t*
seconds for socket events, `Wait` up to *t* seconds, `Won` (attempt *i*
connected), or `Lost` (the final error). The wait that comes with a start
is what `Race.next` would answer at that moment, so a driver need not ask
again before it waits. `Race.next` reports nothing new (a wait that ended
without events); `Race.connected` and `Race.failed` report an attempt's
end.
The race keeps the trace as raw clock readings and builds `Attempt`
records only when asked (`Race.attempts`): most connects never look.

Nothing here opens a socket, waits or reads a clock; ``inetkit._dialer`` is
the blocking driver, and tests drive this machine with made-up times.

Not done: the "Resolution Delay" of section 3 (start connecting when the
AAAA answer arrives before the A answer); ``getaddrinfo`` returns both
families together, so there is nothing to wait for.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any, Final, Self

from .._errors import ErrorCode, InetError, InetTimeoutError
from .._trace import Attempt

__all__ = [
    "CONNECTION_ATTEMPT_DELAY",
    "Address",
    "Lost",
    "Race",
    "Start",
    "Step",
    "Wait",
    "Won",
    "attempts_of",
    "describe_target",
    "where",
]

#: RFC 8305 section 8: the recommended "Connection Attempt Delay" (250 ms):
#: long enough for a healthy path to answer, short enough that a dead one
#: costs little. `connect(attempt_delay=...)` tunes it (at least 10 ms,
#: the RFC's floor).
CONNECTION_ATTEMPT_DELAY: Final = 0.25

#: ``(family, sockaddr)`` as ``getaddrinfo`` gives it.
Address = tuple[int, tuple[Any, ...]]

_INF: Final = float("inf")

#: Outcomes of an attempt, as the trace names them.
PENDING: Final = "pending"
CONNECTED: Final = "connected"
FAILED: Final = "failed"
ABANDONED: Final = "abandoned"
TIMED_OUT: Final = "timed out"


# -- what the driver is told to do -----------------------------------------------


# The steps are small tuples: `Race.next` builds them with ``tuple.__new__``
# (no Python-level constructor call), which matters because a race of one
# takes two steps on every connect; each field is read through a C-level
# ``itemgetter``. Written out rather than made with `typing.NamedTuple`,
# whose class creation would cost ``import inetkit`` about a tenth of a
# millisecond per step type.


class _Step(tuple):  # type: ignore[type-arg]  # the subclasses name the fields
    __slots__ = ()
    __match_args__: tuple[str, ...]

    def __new__(cls, *values: object) -> Self:
        return tuple.__new__(cls, values)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self.__match_args__, self, strict=True))
        return f"{type(self).__name__}({fields})"


class Start(_Step):
    """Open attempt number ``attempt`` (a socket and a non-blocking connect), then wait as `Wait` does.

    ``seconds`` is the wait that follows the start (None: no limit), as
    `Race.next` would answer it at the same moment: when the attempt does
    not end at once, wait that long for socket events and report back.
    """

    __slots__ = ()
    __match_args__ = ("attempt", "seconds")
    attempt: int
    seconds: float | None


class Wait(_Step):
    """Wait for socket events at most ``seconds`` (None: no limit), then call `Race.next` again."""

    __slots__ = ()
    __match_args__ = ("seconds",)
    seconds: float | None


class Won(_Step):
    """Attempt number ``attempt`` connected: keep its socket, close every other one."""

    __slots__ = ()
    __match_args__ = ("attempt",)
    attempt: int


class Lost(_Step):
    """The race is lost: close every socket and raise ``error``."""

    __slots__ = ()
    __match_args__ = ("error",)
    error: InetError


# Each step's fields, read through C-level getters (the annotations above
# are what type checkers see).
for _kind in (Start, Wait, Won, Lost):
    for _index, _name in enumerate(_kind.__match_args__):
        setattr(_kind, _name, property(itemgetter(_index)))
del _kind, _index, _name


_step = tuple.__new__

Step = Start | Wait | Won | Lost

#: Steps are immutable, so the `Won` of the first attempts are made once,
#: here: a race of one then builds only its `Start`. Sixteen is more
#: addresses than a name usually has; further steps are built as needed.
_MADE_ONCE: Final = 16
_WINS: Final = tuple(_step(Won, (index,)) for index in range(_MADE_ONCE))


# -- messages ------------------------------------------------------------------


def where(ip: str) -> str:
    """An address as messages show it: IPv6 in brackets."""
    return f"[{ip}]" if ":" in ip else ip


def describe_target(host: str, port: int, ip: str) -> str:
    """How messages name one attempt: ``example.com port 443 (192.0.2.1)``."""
    if host == ip or host.partition("%")[0] == ip:
        return f"{ip} port {port}"
    return f"{host} port {port} ({ip})"


def _reason(error: BaseException | None) -> str:
    if isinstance(error, InetError):
        return error.code.name.lower().replace("_", " ")
    return "failed" if error is None else str(error) or type(error).__name__


# -- the machine -----------------------------------------------------------------


def attempts_of(log: Sequence[list[Any]], addresses: Sequence[Address], started: float) -> list[Attempt]:
    """The `Attempt` records of a race's `Race.log` over ``addresses``, the race having begun at ``started``.

    A finished race's readings are kept instead of the race itself (or the
    records) by a handle whose trace nobody has asked for yet.
    """
    records = []
    for index, (start, end, outcome, error) in enumerate(log):
        family, sockaddr = addresses[index]
        duration = None if end is None else end - start
        records.append(
            Attempt(str(sockaddr[0]), sockaddr[1], family, start - started, duration, outcome, error)
        )
    return records


class Race:
    """Which attempt starts when, and how the race ended (see the module header).

    ``now`` and every time passed in are seconds on the deadline's scale;
    ``started`` is the moment the connect began (trace offsets count from it).
    """

    __slots__ = (
        "_addresses",
        "_deadline",
        "_delay",
        "_due",
        "_expired",
        "_log",
        "_next",
        "_running",
        "_total",
        "_verdict",
        "host",
        "port",
        "started",
    )

    def __init__(
        self,
        addresses: Sequence[Address],
        host: str,
        port: int,
        started: float,
        now: float,
        deadline: float | None,
        attempt_delay: float,
    ) -> None:
        self._addresses = addresses
        self._total = len(addresses)
        self.host = host
        self.port = port
        self.started = started
        # No deadline is an infinite one: one comparison per step instead of two.
        self._deadline = _INF if deadline is None else deadline
        self._delay = attempt_delay
        # The raw trace: one [start, end, outcome, error] per started attempt.
        self._log: list[list[Any]] = []
        self._running = 0  # attempts in flight
        self._next = 0  # index of the next attempt to start
        self._due = now  # when it may start
        self._verdict: Won | Lost | None = None
        self._expired = False

    # -- the step ----------------------------------------------------------------

    def next(self, now: float) -> Step:
        """What to do at ``now``: start an attempt (and wait after it), wait, or the race is over.

        Call it again when a wait ended without events (a `Start`'s or a
        `Wait`'s); calling it right after acting on a `Start` answers the
        start's own wait again. `Won` and `Lost` are final (further calls
        repeat them).
        """
        verdict = self._verdict
        if verdict is not None:
            return verdict
        deadline = self._deadline
        if now >= deadline:
            self._expire(now)
            verdict = self._verdict = _step(Lost, (self.error(now),))
            return verdict
        index = self._next
        if index < self._total:
            due = self._due
            if now >= due:
                self._next = index + 1
                self._running += 1
                due = self._due = now + self._delay
                self._log.append([now, None, PENDING, None])
                # The wait after it, as the branches below would answer at ``now``.
                if index + 1 < self._total:
                    limit = due - now
                    left = deadline - now
                    return _step(Start, (index, left if left < limit else limit))
                return _step(Start, (index, None if deadline == _INF else deadline - now))
            # The next start, or the deadline if it comes first (an infinite one never does).
            limit = due - now
            left = deadline - now
            return _step(Wait, (left if left < limit else limit,))
        if not self._running:
            verdict = self._verdict = _step(Lost, (self.error(now),))
            return verdict
        return _step(Wait, (None if deadline == _INF else deadline - now,))

    # -- reports -------------------------------------------------------------------

    def connected(self, index: int, now: float) -> Step:
        """Attempt ``index`` connected at ``now``: it wins (`Won`), the others running are abandoned."""
        verdict = self._verdict
        if verdict is not None:
            return verdict
        entry = self._log[index]
        if entry[2] is PENDING:  # as _finish, inlined: this runs on every connect
            entry[1] = now
            entry[2] = CONNECTED
            self._running -= 1
        if self._running:
            self.abandon(now)
        verdict = self._verdict = _WINS[index] if index < _MADE_ONCE else _step(Won, (index,))
        return verdict

    def failed(self, index: int, now: float, error: InetError, *, fatal: bool = False) -> Step:
        """Attempt ``index`` failed at ``now`` with ``error``; answers what to do next, as `next` does.

        The next attempt becomes due at once. ``fatal`` means no other
        address can cure it (the caller's own configuration was refused):
        the race ends with ``error`` itself (`Lost`) and the attempts still
        running are abandoned.
        """
        verdict = self._verdict
        if verdict is not None:
            return verdict
        self._finish(index, now, FAILED, error)
        if fatal:
            self.abandon(now)
            verdict = self._verdict = _step(Lost, (error,))
            return verdict
        self._due = min(self._due, now)
        return self.next(now)

    def abandon(self, now: float) -> None:
        """Record every running attempt as abandoned (the race is over; the driver closes their sockets)."""
        for index, entry in enumerate(self._log):
            if entry[2] is PENDING:
                self._finish(index, now, ABANDONED, None)

    def _expire(self, now: float) -> None:
        self._expired = True
        for index, entry in enumerate(self._log):
            if entry[2] is PENDING:
                self._finish(index, now, TIMED_OUT, self._timed_out(index, now))

    def _finish(self, index: int, now: float, outcome: str, error: InetError | None) -> None:
        entry = self._log[index]
        if entry[2] is PENDING:
            entry[1] = now
            entry[2] = outcome
            entry[3] = error
            self._running -= 1

    # -- questions -----------------------------------------------------------------

    @property
    def running(self) -> int:
        """How many attempts are in flight."""
        return self._running

    @property
    def log(self) -> list[list[Any]]:
        """The raw readings: ``[started, ended, outcome, error]`` per started attempt (see `attempts_of`)."""
        return self._log

    def attempts(self) -> list[Attempt]:
        """The trace: one `Attempt` per started attempt, most preferred first (built on each call)."""
        return attempts_of(self._log, self._addresses, self.started)

    # -- the verdict -----------------------------------------------------------------

    def _timed_out(self, index: int, now: float) -> InetTimeoutError:
        ip = str(self._addresses[index][1][0])
        return InetTimeoutError(
            f"connect to {describe_target(self.host, self.port, ip)} timed out after "
            f"{now - self._log[index][0]:.2f} s (no answer before the connect deadline)",
            ErrorCode.TIMED_OUT,
        )

    def error(self, now: float) -> InetError:
        """The error that ends a lost race (every attempt failed, or the deadline ran out).

        With one address it is that attempt's own error. Otherwise the
        message says how many addresses were tried and names every address;
        ``.attempts`` holds each attempt's own error, most preferred first;
        class and code are ``TIMED_OUT`` when the deadline ran out, else
        those of the first address's failure.
        """
        errors: list[InetError] = [entry[3] for entry in self._log if entry[3] is not None]
        total = len(self._addresses)
        elapsed = now - self.started
        if self._expired or not errors:
            if total == 1 and errors:
                return errors[0]
            if not self._log:
                return InetTimeoutError(
                    f"connect to {self.host} port {self.port} timed out after {elapsed:.2f} s "
                    f"before any of its {total} address(es) was tried (name resolution used up the deadline)",
                    ErrorCode.TIMED_OUT,
                )
            return InetTimeoutError(
                f"connect to {self.host} port {self.port} timed out after {elapsed:.2f} s: "
                f"{self._tried_text()}",
                ErrorCode.TIMED_OUT,
                attempts=errors,
            )
        first = errors[0]
        if total == 1:
            return first
        return type(first)(
            f"connect to {self.host} port {self.port} failed: {self._tried_text()}",
            first.code,
            errno=first.errno,
            attempts=errors,
        )

    def _tried_text(self) -> str:
        total = len(self._addresses)
        tried = len(self._log)
        count = f"{tried} of {total} addresses" if tried < total else f"{total} addresses"
        details = ", ".join(
            f"{where(str(self._addresses[i][1][0]))} "
            f"({'no answer' if entry[2] is TIMED_OUT else _reason(entry[3])})"
            for i, entry in enumerate(self._log)
        )
        text = f"{count} tried: {details}"
        if tried < total:
            untried = ", ".join(where(str(sockaddr[0])) for _, sockaddr in self._addresses[tried:])
            text += f"; not tried: {untried}"
        return text
