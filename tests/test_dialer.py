"""The connection race: the sans-I/O race with exact times, the loop on a fake clock, then real sockets."""

from __future__ import annotations

import errno
import math
import os
import pickle
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from typing import Any

import pytest
from conftest import black_hole, dual_stack_port, free_port, open_fds
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from inetkit._core.race import Lost, Race, Start, Wait, Won
from inetkit._dialer import CONNECTION_ATTEMPT_DELAY, MAX_POLL_MS, MAX_WAKEUPS_PER_ADDRESS, dial, poll_ms
from inetkit._errors import (
    ErrorCode,
    InetConnectionError,
    InetConnectionRefusedError,
    InetError,
    InetTimeoutError,
    InvalidArgumentError,
)
from inetkit._trace import Attempt
from inetkit._types import Protocol

V4 = socket.AF_INET
V6 = socket.AF_INET6
Address = tuple[int, tuple[Any, ...]]

ADDRESSES: list[Address] = [
    (V6, ("2001:db8::1", 80, 0, 0)),
    (V4, ("192.0.2.1", 80)),
    (V6, ("2001:db8::2", 80, 0, 0)),
    (V4, ("192.0.2.2", 80)),
]


def test_attempt_delay_is_rfc_8305s() -> None:
    assert CONNECTION_ATTEMPT_DELAY == 0.25


# -- the race, with made-up times ------------------------------------------------------


def refused(index: int) -> InetConnectionRefusedError:
    return InetConnectionRefusedError(f"attempt {index} refused", ErrorCode.CONNECTION_REFUSED, errno=111)


def make_race(count: int, *, deadline: float | None = 10.0, delay: float = 0.25, now: float = 0.0) -> Race:
    return Race(
        ADDRESSES[:count],
        host="race.test",
        port=80,
        started=0.0,
        now=now,
        deadline=deadline,
        attempt_delay=delay,
    )


def play(
    outcomes: Sequence[tuple[str, float] | None], *, deadline: float | None = 10.0, delay: float = 0.25
) -> tuple[list[Attempt], InetError | None, float]:
    """Play the network for the real race: do what it says, on a fake clock.

    ``outcomes[i]`` is ``("connected" | "refused", seconds after attempt i
    started)``, or None for an address that never answers. The race makes
    every decision; this only starts the made-up attempts it asks for, lets
    the clock run to the next answer or the end of the wait, and reports the
    answers most preferred first, acting on each answer as the driver does.
    Returns the trace, the error (None when an attempt won) and the clock at
    the end.
    """
    race = make_race(len(outcomes), deadline=deadline, delay=delay)
    now = 0.0
    ends: dict[int, tuple[float, str]] = {}
    step = race.next(now)
    for _ in range(100):
        if isinstance(step, Start):
            outcome = outcomes[step.attempt]
            if outcome is not None:
                ends[step.attempt] = (now + outcome[1], outcome[0])
            # The start's own wait is what the race answers when asked again at once
            # (the blocking driver waits as the start says, without asking).
            follow = race.next(now)
            assert isinstance(follow, Wait) and follow.seconds == step.seconds, (step, follow)
            step = Wait(step.seconds)
        elif isinstance(step, Wait):
            next_end = min((end for end, _ in ends.values()), default=math.inf)
            now = min(next_end, math.inf if step.seconds is None else now + step.seconds)
            assert now < math.inf, "the race would wait forever"
            answered = sorted(i for i, (end, _) in ends.items() if end <= now)
            if not answered:
                step = race.next(now)
            for index in answered:
                _, kind = ends.pop(index)
                if kind == "connected":
                    step = race.connected(index, now)
                    break
                step = race.failed(index, now, refused(index))
        elif isinstance(step, Won):
            return race.attempts(), None, now
        else:
            return race.attempts(), step.error, now
    raise AssertionError("the race did not end")


def starts(trace: list[Attempt]) -> list[float]:
    return [a.start for a in trace]


def outcomes(trace: list[Attempt]) -> list[str]:
    return [a.outcome for a in trace]


def test_unanswered_attempts_start_every_delay_and_time_out_at_the_deadline() -> None:
    trace, error, end = play([None, None, None])
    assert starts(trace) == [0.0, 0.25, 0.5]
    assert end == 10.0
    assert outcomes(trace) == ["timed out"] * 3
    assert [a.duration for a in trace] == [10.0, 9.75, 9.5]
    assert isinstance(error, InetTimeoutError)
    assert error.code is ErrorCode.TIMED_OUT
    assert len(error.attempts) == 3
    assert all(isinstance(e, InetTimeoutError) for e in error.attempts)
    assert "3 addresses tried" in str(error)
    for address in ("[2001:db8::1]", "192.0.2.1", "[2001:db8::2]"):
        assert address in str(error)


def test_a_refusal_starts_the_next_attempt_at_once() -> None:
    trace, error, end = play([("refused", 0.1), None, ("connected", 0.05)])
    assert starts(trace) == [0.0, 0.1, 0.35]
    assert end == pytest.approx(0.4, abs=1e-12)
    assert outcomes(trace) == ["failed", "abandoned", "connected"]
    assert trace[0].duration == 0.1
    assert error is None


def test_exact_times_with_dyadic_values() -> None:
    trace, error, end = play([("refused", 0.125), None, None, ("connected", 0.5)])
    # 0 -> refused at 0.125 -> #1 at 0.125 -> #2 at 0.375 -> #3 at 0.625, connects at 1.125.
    assert starts(trace) == [0.0, 0.125, 0.375, 0.625]
    assert end == 1.125
    assert outcomes(trace) == ["failed", "abandoned", "abandoned", "connected"]
    assert [a.duration for a in trace] == [0.125, 1.0, 0.75, 0.5]
    assert error is None


def test_a_failure_of_an_older_attempt_also_starts_the_next_at_once() -> None:
    # #0 refuses at 0.375 while #1 (started at 0.25) still runs: #2 starts at 0.375, not 0.5.
    trace, _, _ = play([("refused", 0.375), None, None])
    assert starts(trace) == [0.0, 0.25, 0.375]


def test_the_first_to_connect_wins_and_the_rest_are_abandoned() -> None:
    trace, error, end = play([None, ("connected", 0.0625), None])
    assert error is None
    assert end == 0.3125
    assert starts(trace) == [0.0, 0.25]  # the third never started
    assert outcomes(trace) == ["abandoned", "connected"]
    assert [a.duration for a in trace] == [0.3125, 0.0625]


def test_simultaneous_answers_the_more_preferred_wins() -> None:
    # #0 answers at 0.5, #1 (started at 0.25) at 0.5 too: reported most preferred first.
    trace, error, end = play([("connected", 0.5), ("connected", 0.25)])
    assert error is None and end == 0.5
    assert outcomes(trace) == ["connected", "abandoned"]


def test_a_race_of_one() -> None:
    race = make_race(1)
    step = race.next(0.0)
    assert isinstance(step, Start) and step.attempt == 0
    step = race.next(0.0)
    assert isinstance(step, Wait) and step.seconds == 10.0  # nothing else to start: up to the deadline
    step = race.connected(0, 0.5)
    assert isinstance(step, Won) and step.attempt == 0
    assert race.next(7.0) is step  # final
    (attempt,) = race.attempts()
    assert (attempt.outcome, attempt.start, attempt.duration, attempt.error) == ("connected", 0.0, 0.5, None)


def test_every_address_refused_error_has_the_first_ones_class_and_code() -> None:
    trace, error, end = play([("refused", 0.0), ("refused", 0.0), ("refused", 0.0)])
    assert starts(trace) == [0.0, 0.0, 0.0]
    assert end == 0.0
    assert isinstance(error, InetConnectionRefusedError)
    assert isinstance(error, ConnectionRefusedError)
    assert error.code is ErrorCode.CONNECTION_REFUSED
    assert error.errno == 111
    assert [str(e) for e in error.attempts] == ["attempt 0 refused", "attempt 1 refused", "attempt 2 refused"]
    assert str(error) == (
        "connect to race.test port 80 failed: 3 addresses tried: [2001:db8::1] (connection refused), "
        "192.0.2.1 (connection refused), [2001:db8::2] (connection refused)"
    )


def test_the_first_addresss_failure_decides_class_and_code() -> None:
    race = make_race(2)
    assert isinstance(race.next(0.0), Start)
    step = race.failed(0, 0.0, InetConnectionError("no route", ErrorCode.NETWORK_UNREACHABLE, errno=101))
    assert isinstance(step, Start) and step.attempt == 1  # the next attempt is due at once
    step = race.failed(1, 0.5, refused(1))
    assert isinstance(step, Lost)
    assert race.next(0.5) is step
    error = step.error
    assert type(error) is InetConnectionError
    assert error.code is ErrorCode.NETWORK_UNREACHABLE
    assert error.errno == 101
    assert "(network unreachable)" in str(error) and "(connection refused)" in str(error)
    # Kept through pickling.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is InetConnectionError
    assert copy.code is ErrorCode.NETWORK_UNREACHABLE
    assert [str(e) for e in copy.attempts] == ["no route", "attempt 1 refused"]


def test_a_fatal_failure_ends_the_race_with_that_error() -> None:
    race = make_race(3)
    assert isinstance(race.next(0.0), Start)
    assert isinstance(race.next(0.25), Start)
    fatal = InetError("not allowed", ErrorCode.PERMISSION_DENIED)
    step = race.failed(1, 0.25, fatal, fatal=True)
    assert isinstance(step, Lost) and step.error is fatal
    assert outcomes(race.attempts()) == ["abandoned", "failed"]


def test_deadline_before_every_address_was_tried() -> None:
    trace, error, end = play([None, None, None, None], deadline=0.3)
    assert starts(trace) == [0.0, 0.25]
    assert end == 0.3
    assert isinstance(error, InetTimeoutError)
    assert "timed out after 0.30 s: 2 of 4 addresses tried" in str(error)
    assert "not tried: [2001:db8::2], 192.0.2.2" in str(error)
    assert len(error.attempts) == 2


def test_deadline_mixed_with_failures_is_still_timed_out() -> None:
    trace, error, end = play([("refused", 0.0625), None], deadline=1.0)
    assert end == 1.0
    assert outcomes(trace) == ["failed", "timed out"]
    assert isinstance(error, InetTimeoutError)
    assert [type(e) for e in error.attempts] == [InetConnectionRefusedError, InetTimeoutError]
    assert "(connection refused)" in str(error) and "(no answer)" in str(error)


def test_deadline_already_past() -> None:
    race = make_race(2, deadline=5.0, now=5.0)
    step = race.next(5.0)
    assert isinstance(step, Lost)
    assert isinstance(step.error, InetTimeoutError)
    assert race.attempts() == []
    assert step.error.attempts == ()
    assert "before any of its 2 address(es) was tried" in str(step.error)


def test_wait_times() -> None:
    race = make_race(2, deadline=None)
    assert race.next(0.0) == Start(0, 0.25)  # the start says how long to wait after it
    step = race.next(0.0)
    assert isinstance(step, Wait) and step.seconds == 0.25
    step = race.next(0.1875)
    assert isinstance(step, Wait) and step.seconds == 0.0625
    assert race.next(0.25) == Start(1, None)
    step = race.next(0.25)
    assert isinstance(step, Wait) and step.seconds is None  # nothing left to start, no deadline
    race = make_race(3, deadline=0.375)
    race.next(0.0)
    assert race.next(0.25) == Start(1, 0.125)
    step = race.next(0.25)
    assert isinstance(step, Wait) and step.seconds == 0.125  # the deadline comes before the next start
    race = make_race(1, deadline=0.5)
    assert race.next(0.125) == Start(0, 0.375)  # the last address: the deadline's wait
    assert repr(Start(0, 0.375)) == "Start(attempt=0, seconds=0.375)"
    assert repr(Wait(0.25)) == "Wait(seconds=0.25)"


# Answers on the dyadic grid (exact in binary), so that every comparison in `play` is exact.
OUTCOME = st.none() | st.tuples(
    st.sampled_from(["connected", "refused"]), st.integers(0, 64).map(lambda n: n / 16)
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(OUTCOME, min_size=1, max_size=6),
    st.none() | st.integers(1, 96).map(lambda n: n / 8),
    st.sampled_from([0.125, 0.25, 0.5, math.inf]),
)
def test_every_start_says_the_wait_the_race_would_answer(
    outcomes_: list[tuple[str, float] | None], deadline: float | None, delay: float
) -> None:
    # `play` checks each start's wait against the race's answer at the same moment.
    assume(deadline is not None or None not in outcomes_)  # else nothing would ever end the race
    trace, error, end = play(outcomes_, deadline=deadline, delay=delay)
    assert (error is None) == any(a.outcome == "connected" for a in trace)
    if deadline is not None:
        assert end <= deadline


def test_a_far_deadline_is_a_plain_number() -> None:
    race = make_race(1, deadline=1e308)
    race.next(0.0)
    step = race.next(0.0)
    assert isinstance(step, Wait) and step.seconds == 1e308


def test_single_address_error_is_the_attempts_own() -> None:
    race = make_race(1)
    race.next(0.0)
    own = refused(0)
    step = race.failed(0, 0.0625, own)
    assert isinstance(step, Lost) and step.error is own
    race = make_race(1, deadline=2.0)
    race.next(0.0)
    step = race.next(2.0)
    assert isinstance(step, Lost)
    error = step.error
    assert isinstance(error, InetTimeoutError)
    assert error.attempts == ()
    assert "2001:db8::1" in str(error) and "2.00 s" in str(error)
    assert outcomes(race.attempts()) == ["timed out"]


def test_udp_infinite_delay_moves_on_only_after_a_failure() -> None:
    race = make_race(2, delay=math.inf)
    assert isinstance(race.next(0.0), Start)
    step = race.failed(0, 0.0, refused(0))
    assert isinstance(step, Start) and step.attempt == 1
    assert isinstance(race.connected(1, 0.0), Won)


# -- the blocking loop, on a fake clock and poll -----------------------------------------


def test_poll_ms_rounds_up_and_clamps() -> None:
    assert poll_ms(None) is None
    assert poll_ms(0.0) == 0
    assert poll_ms(-1.0) == 0
    assert poll_ms(0.0001) == 1
    assert poll_ms(0.25) == 250
    assert poll_ms(1e308) == MAX_POLL_MS
    assert poll_ms(math.inf) == MAX_POLL_MS
    assert poll_ms(MAX_POLL_MS / 1000 + 1) == MAX_POLL_MS


class FakeTime:
    """A clock that moves only when the loop waits: poll() advances it by the wait and reports nothing."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value
        self.waits: list[int | None] = []
        self.registered: set[int] = set()

    def now(self) -> float:
        return self.value

    def poller(self) -> FakeTime:
        return self

    def register(self, fd: int, eventmask: int = 0, /) -> None:
        self.registered.add(fd)

    def unregister(self, fd: int, /) -> None:
        self.registered.discard(fd)

    def poll(self, timeout: float | None = None, /) -> list[tuple[int, int]]:
        assert timeout is not None, "the loop would wait forever"
        self.waits.append(int(timeout))
        self.value += timeout / 1000
        return []


def dial_a_black_hole(
    fake: FakeTime, count: int, deadline: float, error: type[InetError]
) -> tuple[Race, InetError]:
    """Dial ``count`` copies of a black-holed loopback address on ``fake``'s clock and poll.

    Real sockets (never answered); only the time is made up. Returns the
    race and the error the dial raised, having checked that it left no
    descriptor open.
    """
    with black_hole("127.0.0.1") as port:
        addresses = [v4(port)] * count
        race = Race(
            addresses,
            host="dial.test",
            port=port,
            started=0.0,
            now=0.0,
            deadline=deadline,
            attempt_delay=0.25,
        )
        before = open_fds()
        with pytest.raises(error) as info:
            dial(race, addresses, datagram=False, prepare=None, clock=fake.now, poller=fake.poller)
        assert open_fds() == before
    return race, info.value


def test_the_blocking_loop_staggers_and_times_out_at_exact_times() -> None:
    fake = FakeTime()
    race, error = dial_a_black_hole(fake, 3, 10.0, InetTimeoutError)
    assert fake.waits == [250, 250, 9500]
    trace = race.attempts()
    assert starts(trace) == [0.0, 0.25, 0.5]
    assert outcomes(trace) == ["timed out"] * 3
    assert [a.duration for a in trace] == [10.0, 9.75, 9.5]
    assert fake.value == 10.0
    assert len(error.attempts) == 3


class StoppedClock(FakeTime):
    """A clock that never moves, and a poll that returns at once without events."""

    def poll(self, timeout: float | None = None, /) -> list[tuple[int, int]]:
        self.waits.append(-1 if timeout is None else int(timeout))
        return []


def test_the_blocking_loop_gives_up_on_a_clock_that_does_not_move() -> None:
    # Every wake-up brings nothing and the deadline never comes: the loop is bounded anyway.
    stopped = StoppedClock()
    race, error = dial_a_black_hole(stopped, 2, 10.0, InetError)
    assert error.code is ErrorCode.NETWORK_ERROR
    assert "too many wake-ups without progress" in str(error)
    assert "dial.test port" in str(error)
    assert len(stopped.waits) == 2 * MAX_WAKEUPS_PER_ADDRESS + 1
    assert set(stopped.waits) == {250}  # until the next start, which never comes
    assert outcomes(race.attempts()) == ["abandoned"]  # the first attempt; the second never became due


def test_the_blocking_loop_waits_a_far_deadline_in_clamped_pieces() -> None:
    fake = FakeTime()
    dial_a_black_hole(fake, 1, 3 * MAX_POLL_MS / 1000, InetTimeoutError)
    assert fake.waits == [MAX_POLL_MS] * 3


# -- real sockets on loopback ------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[tuple[str, int]]:
    """A plain IPv4 listener; accepted connections wait in its queue."""
    sock = socket.socket(V4, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()
    sock.close()


def v4(port: int, ip: str = "127.0.0.1") -> Address:
    return (V4, (ip, port))


def v6(port: int, ip: str = "::1") -> Address:
    return (V6, (ip, port, 0, 0))


def run_dial(
    addresses: Sequence[Address],
    *,
    timeout: float | None = 10.0,
    protocol: Protocol = Protocol.TCP,
    prepare: Callable[[socket.socket, int], None] | None = None,
    host: str = "dial.test",
    port: int = 80,
    attempt_delay: float = CONNECTION_ATTEMPT_DELAY,
) -> tuple[socket.socket, list[Attempt], float]:
    started = time.monotonic()
    race = new_race(addresses, timeout, protocol, host, port, started, attempt_delay)
    sock, index = dial(race, addresses, datagram=protocol is Protocol.UDP, prepare=prepare)
    assert sock.getpeername()[:2] == addresses[index][1][:2]
    return sock, race.attempts(), time.monotonic() - started


def new_race(
    addresses: Sequence[Address],
    timeout: float | None,
    protocol: Protocol,
    host: str,
    port: int,
    started: float,
    attempt_delay: float = CONNECTION_ATTEMPT_DELAY,
    clock_now: float | None = None,
) -> Race:
    return Race(
        addresses,
        host=host,
        port=port,
        started=started,
        now=started if clock_now is None else clock_now,
        deadline=None if timeout is None else started + timeout,
        attempt_delay=math.inf if protocol is Protocol.UDP else attempt_delay,
    )


def failing_dial(addresses: Sequence[Address], **kwargs: Any) -> tuple[InetError, list[Attempt], float]:
    started = time.monotonic()
    protocol = kwargs.pop("protocol", Protocol.TCP)
    clock = kwargs.pop("clock", None)
    race = new_race(
        addresses,
        kwargs.pop("timeout", 10.0),
        protocol,
        kwargs.pop("host", "dial.test"),
        kwargs.pop("port", 80),
        started,
        clock_now=None if clock is None else clock(),
    )
    if clock is not None:
        kwargs["clock"] = clock
    with pytest.raises(InetError) as info:
        dial(
            race, addresses, datagram=protocol is Protocol.UDP, prepare=kwargs.pop("prepare", None), **kwargs
        )
    return info.value, race.attempts(), time.monotonic() - started


@pytest.mark.parametrize("timeout", [10.0, None])
def test_single_address_connects_and_stays_non_blocking(
    listener: tuple[str, int], timeout: float | None
) -> None:
    sock, trace, _ = run_dial([v4(listener[1])], timeout=timeout)
    with closing(sock):
        assert sock.getpeername() == listener
        assert sock.getblocking() is False
        assert sock.type == socket.SOCK_STREAM
        assert not os.get_inheritable(sock.fileno())
    assert len(trace) == 1
    assert trace[0].outcome == "connected"
    assert trace[0].address == "127.0.0.1" and trace[0].port == listener[1] and trace[0].family == V4
    assert trace[0].start >= 0 and trace[0].duration is not None and trace[0].duration >= 0


def test_single_address_refused() -> None:
    port = free_port()
    error, trace, _ = failing_dial([v4(port)], host="127.0.0.1", port=port)
    assert isinstance(error, InetConnectionRefusedError)
    assert error.code is ErrorCode.CONNECTION_REFUSED
    assert error.errno == errno.ECONNREFUSED
    assert str(error).startswith(f"connect to 127.0.0.1 port {port} failed")
    assert error.attempts == ()
    assert isinstance(error.__cause__, ConnectionRefusedError)
    assert outcomes(trace) == ["failed"]
    assert trace[0].error is error


def test_single_address_black_hole_times_out_at_the_deadline() -> None:
    with black_hole("127.0.0.1") as port:
        error, trace, elapsed = failing_dial([v4(port)], timeout=0.3, port=port)
    assert isinstance(error, InetTimeoutError)
    assert error.code is ErrorCode.TIMED_OUT
    assert 0.3 <= elapsed < 1.0
    assert f"dial.test port {port} (127.0.0.1) timed out" in str(error)
    assert outcomes(trace) == ["timed out"]
    assert trace[0].error is error


def test_dual_stack_black_holed_ipv6_falls_back_after_the_attempt_delay() -> None:
    with dual_stack_port() as port, black_hole("::1", port):
        sock, trace, elapsed = run_dial([v6(port), v4(port)], port=port)
        with closing(sock):
            assert sock.getpeername() == ("127.0.0.1", port)
            assert sock.getblocking() is False
    assert CONNECTION_ATTEMPT_DELAY <= elapsed < 2.0
    assert [a.address for a in trace] == ["::1", "127.0.0.1"]
    assert outcomes(trace) == ["abandoned", "connected"]
    assert trace[1].start >= CONNECTION_ATTEMPT_DELAY
    assert trace[0].duration is not None and trace[0].duration >= CONNECTION_ATTEMPT_DELAY


def test_refused_then_live_connects_at_once(listener: tuple[str, int]) -> None:
    port = listener[1]  # nothing listens on ::1 at this port
    # A long attempt delay: only an immediate start after the refusal can be fast.
    sock, trace, elapsed = run_dial([v6(port), v4(port)], port=port, attempt_delay=5.0)
    sock.close()
    assert elapsed < 2.5
    assert outcomes(trace) == ["failed", "connected"]
    assert isinstance(trace[0].error, InetConnectionRefusedError)
    assert trace[1].start < 2.5


def test_all_refused() -> None:
    port = free_port()
    error, trace, _ = failing_dial([v4(port), v6(port), v4(port, "127.0.0.2")], port=port)
    assert isinstance(error, InetConnectionRefusedError)
    assert error.code is ErrorCode.CONNECTION_REFUSED
    assert len(error.attempts) == 3
    assert all(isinstance(e, InetConnectionRefusedError) for e in error.attempts)
    message = str(error)
    assert "3 addresses tried" in message
    assert "127.0.0.1" in message and "[::1]" in message and "127.0.0.2" in message
    assert outcomes(trace) == ["failed"] * 3


def test_all_fail_with_the_first_addresss_code() -> None:
    port = free_port()

    def prepare(sock: socket.socket, family: int) -> None:
        if family == V4:
            raise InetConnectionError("local port taken", ErrorCode.ADDRESS_IN_USE, errno=errno.EADDRINUSE)

    error, trace, _ = failing_dial([v4(port), v6(port)], prepare=prepare, port=port)
    assert type(error) is InetConnectionError
    assert error.code is ErrorCode.ADDRESS_IN_USE
    assert [e.code for e in error.attempts] == [ErrorCode.ADDRESS_IN_USE, ErrorCode.CONNECTION_REFUSED]
    assert "127.0.0.1 (address in use)" in str(error) and "[::1] (connection refused)" in str(error)
    assert outcomes(trace) == ["failed", "failed"]


def test_two_black_holes_time_out_at_the_deadline() -> None:
    with black_hole("127.0.0.1") as port4, black_hole("::1") as port6:
        error, trace, elapsed = failing_dial([v6(port6), v4(port4)], timeout=0.6)
    assert isinstance(error, InetTimeoutError)
    assert error.code is ErrorCode.TIMED_OUT
    assert 0.6 <= elapsed < 1.5
    assert len(error.attempts) == 2
    assert all(isinstance(e, InetTimeoutError) for e in error.attempts)
    assert "2 addresses tried" in str(error) and "[::1]" in str(error) and "127.0.0.1" in str(error)
    assert outcomes(trace) == ["timed out", "timed out"]
    assert trace[1].start >= CONNECTION_ATTEMPT_DELAY


def test_prepare_configures_every_socket(listener: tuple[str, int]) -> None:
    seen: list[int] = []

    def prepare(sock: socket.socket, family: int) -> None:
        seen.append(family)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    sock, _, _ = run_dial([v6(listener[1]), v4(listener[1])], prepare=prepare)
    with closing(sock):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert seen == [V6, V4]


@pytest.mark.parametrize(
    "refusal",
    [
        InetError("binding a reserved port is not allowed", ErrorCode.PERMISSION_DENIED, errno=errno.EACCES),
        InvalidArgumentError("bad local address", ErrorCode.INVALID_ARGUMENT),
        PermissionError(errno.EACCES, "Permission denied"),
    ],
)
def test_a_refused_configuration_stops_the_whole_dial(refusal: OSError, listener: tuple[str, int]) -> None:
    calls: list[int] = []

    def prepare(sock: socket.socket, family: int) -> None:
        calls.append(family)
        if family == V6:
            raise refusal

    with black_hole("127.0.0.1") as hole:
        before = open_fds()
        error, trace, elapsed = failing_dial([v4(hole), v6(listener[1]), v4(listener[1])], prepare=prepare)
        assert open_fds() == before
    assert calls == [V4, V6]  # the live third address is never tried
    assert CONNECTION_ATTEMPT_DELAY <= elapsed < 1.0
    assert error.code in (ErrorCode.PERMISSION_DENIED, ErrorCode.INVALID_ARGUMENT)
    if isinstance(refusal, InetError):
        assert error is refusal
    assert outcomes(trace) == ["abandoned", "failed"]


def test_an_unexpected_exception_in_prepare_closes_everything(listener: tuple[str, int]) -> None:
    def prepare(sock: socket.socket, family: int) -> None:
        if family == V6:
            raise RuntimeError("bug in prepare")

    before = open_fds()
    with pytest.raises(RuntimeError, match="bug in prepare"):
        run_dial([v4(free_port()), v6(listener[1])], prepare=prepare)
    with pytest.raises(RuntimeError, match="bug in prepare"):
        run_dial([v6(listener[1])], prepare=prepare)
    assert open_fds() == before


def test_no_descriptor_leaks_over_many_failing_dials(listener: tuple[str, int]) -> None:
    refused_port = free_port()

    def fatal(sock: socket.socket, family: int) -> None:
        raise InetError("not allowed", ErrorCode.PERMISSION_DENIED)

    # Warm-up: lazily created module state is not a leak.
    failing_dial([v4(refused_port)])
    before = open_fds()
    for round_number in range(200):
        kind = round_number % 4
        if kind == 0:
            failing_dial([v4(refused_port)])
        elif kind == 1:
            failing_dial([v6(refused_port), v4(refused_port)])
        elif kind == 2:
            failing_dial([v4(listener[1]), v6(refused_port)], prepare=fatal)
        else:
            failing_dial([v4(refused_port)], protocol=Protocol.UDP, prepare=fatal)
    assert open_fds() == before


def test_udp_uses_the_first_address(udp_echo: tuple[str, int]) -> None:
    sock, trace, _ = run_dial([v4(udp_echo[1]), v6(udp_echo[1])], protocol=Protocol.UDP)
    with closing(sock):
        assert sock.type == socket.SOCK_DGRAM
        assert sock.getpeername() == udp_echo
        assert sock.getblocking() is False
        sock.send(b"ping")
        sock.settimeout(5)
        assert sock.recv(100) == b"ping"
    assert outcomes(trace) == ["connected"]


def test_udp_moves_on_only_after_a_local_failure(udp_echo: tuple[str, int]) -> None:
    def prepare(sock: socket.socket, family: int) -> None:
        if family == V6:
            raise InetConnectionError("no IPv6 here", ErrorCode.ADDRESS_NOT_AVAILABLE)

    sock, trace, _ = run_dial([v6(udp_echo[1]), v4(udp_echo[1])], protocol=Protocol.UDP, prepare=prepare)
    sock.close()
    assert outcomes(trace) == ["failed", "connected"]
    error, trace, _ = failing_dial([v6(1), v6(2)], protocol=Protocol.UDP, prepare=prepare)
    assert type(error) is InetConnectionError
    assert error.code is ErrorCode.ADDRESS_NOT_AVAILABLE
    assert len(error.attempts) == 2


class FrozenClock:
    def __init__(self, value: float) -> None:
        self.value = value

    def now(self) -> float:
        return self.value


@pytest.mark.parametrize("protocol", [Protocol.TCP, Protocol.UDP])
@pytest.mark.parametrize("count", [1, 2])
def test_deadline_already_past_on_the_given_clock(protocol: Protocol, count: int) -> None:
    addresses = [v4(free_port()), v6(free_port())][:count]
    before = open_fds()
    error, trace, _ = failing_dial(addresses, protocol=protocol, clock=FrozenClock(1e9).now)
    assert open_fds() == before
    assert isinstance(error, InetTimeoutError)
    assert trace == []
    assert "used up the deadline" in str(error)


def test_trace_offsets_come_from_the_given_clock() -> None:
    port = free_port()
    race = Race(
        [v6(port), v4(port)],
        host="dial.test",
        port=port,
        started=100.0,
        now=105.0,
        deadline=107.0,
        attempt_delay=0.25,
    )
    with pytest.raises(InetConnectionRefusedError):
        dial(race, [v6(port), v4(port)], datagram=False, prepare=None, clock=FrozenClock(105.0).now)
    assert starts(race.attempts()) == [5.0, 5.0]
    assert [a.duration for a in race.attempts()] == [0.0, 0.0]


def test_a_huge_timeout_works(listener: tuple[str, int]) -> None:
    sock, trace, _ = run_dial([v4(listener[1])], timeout=1e308)
    sock.close()
    assert outcomes(trace) == ["connected"]


def test_no_addresses() -> None:
    with pytest.raises(InvalidArgumentError):
        run_dial([])
