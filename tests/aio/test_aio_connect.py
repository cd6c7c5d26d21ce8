"""`inetkit.aio.connect` end to end on loopback, side by side with the blocking `inetkit.connect`.

The asyncio connect is a second driver over the same plan, race, resolver
and trace, so most tests here make the same failure happen to both and
compare what each raises: class, code, message (durations aside) and trace.
Every test runs on the default loop and on uvloop (`arun`).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aio_connect_support import Run, loop_fixture
from certs import PKI
from conftest import Server, black_hole, dual_stack_port, free_port, open_fds, silent_listener

import inetkit
import inetkit.aio
from inetkit import ErrorCode, InetError, KeepAlive, Option, Protocol, Resolver, SecurityCredentials

arun = loop_fixture()

#: Durations in messages ("after 0.60 s"): the one part two runs of a failure may differ in.
DURATION = re.compile(r"\d+\.\d+ s\b")


def blocking_error(*args: Any, **kwargs: Any) -> BaseException:
    """What `inetkit.connect` raises for these arguments."""
    try:
        inetkit.connect(*args, **kwargs).close()
    except BaseException as exc:
        return exc
    pytest.fail("inetkit.connect did not fail")


async def async_error(*args: Any, **kwargs: Any) -> BaseException:
    """What `inetkit.aio.connect` raises for these arguments."""
    try:
        conn = await inetkit.aio.connect(*args, **kwargs)
    except BaseException as exc:
        return exc
    await conn.aclose()
    pytest.fail("inetkit.aio.connect did not fail")


def assert_same_error(ours: BaseException, blocking: BaseException) -> None:
    """Same class, code and message (durations aside), and the same attempts in the trace."""
    assert type(ours) is type(blocking), (ours, blocking)
    assert DURATION.sub("N s", str(ours)) == DURATION.sub("N s", str(blocking))
    if isinstance(blocking, InetError):
        assert isinstance(ours, InetError)
        assert ours.code is blocking.code
        assert [type(e) for e in ours.attempts] == [type(e) for e in blocking.attempts]
        if blocking.trace is None:
            assert ours.trace is None
        else:
            assert ours.trace is not None
            theirs_attempts = [(a.address, a.port, a.outcome) for a in blocking.trace.attempts]
            assert [(a.address, a.port, a.outcome) for a in ours.trace.attempts] == theirs_attempts
            resolution, blocking_resolution = ours.trace.resolution, blocking.trace.resolution
            assert (resolution is None) == (blocking_resolution is None)
            if resolution is not None and blocking_resolution is not None:
                assert resolution.source == blocking_resolution.source
                assert resolution.addresses == blocking_resolution.addresses


async def counted(action: Callable[[], Coroutine[Any, Any, object]]) -> tuple[int, int, int]:
    """Descriptors, tasks and loop callbacks before ``action`` ran, and after (as a difference each)."""
    loop = asyncio.get_running_loop()
    selector = getattr(loop, "_selector", None)  # the default loop's: the readers and writers it watches

    def watched() -> int:
        return 0 if selector is None else len(selector.get_map())

    fds, tasks, callbacks = open_fds(), len(asyncio.all_tasks()), watched()
    await action()
    await asyncio.sleep(0)  # callbacks scheduled by the cleanup run
    return await settled(fds) - fds, len(asyncio.all_tasks()) - tasks, watched() - callbacks


async def steady_fds(window: float = 0.1, limit: float = 5.0) -> int:
    """The descriptor count once it has not changed for ``window`` seconds (bounded wait).

    Taken before a measurement that follows a blocking connect to an
    in-process server: that server may still be closing its end.
    """
    end = time.monotonic() + limit
    count = open_fds()
    stable_since = time.monotonic()
    while time.monotonic() < end:
        await asyncio.sleep(0.02)
        now_count = open_fds()
        if now_count != count:
            count, stable_since = now_count, time.monotonic()
        elif time.monotonic() - stable_since >= window:
            break
    return count


async def settled(expected: int, limit: float = 5.0) -> int:
    """The descriptor count once in-process server threads have closed their ends (bounded wait)."""
    end = time.monotonic() + limit
    count = open_fds()
    while count != expected and time.monotonic() < end:
        await asyncio.sleep(0.02)
        count = open_fds()
    return count


# -- the face and the signatures ---------------------------------------------------------


def test_face() -> None:
    assert set(inetkit.aio.__all__) == {"AsyncConnection", "aresolve", "connect", "connect_url"}
    public = {name for name in dir(inetkit.aio) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(inetkit.aio, name))}
    assert public - modules == set(inetkit.aio.__all__)


@pytest.mark.parametrize(
    ("ours", "blocking"),
    [(inetkit.aio.connect, inetkit.connect), (inetkit.aio.connect_url, inetkit.connect_url)],
    ids=["connect", "connect_url"],
)
def test_parameters_are_exactly_the_blocking_ones(ours: Any, blocking: Any) -> None:
    """Names, kinds, defaults and annotations: a keyword added to the blocking twin fails this test."""

    def shape(function: Any) -> list[tuple[str, Any, Any, Any]]:
        return [
            (p.name, p.kind, p.default, p.annotation) for p in inspect.signature(function).parameters.values()
        ]

    assert shape(ours) == shape(blocking)
    assert inspect.iscoroutinefunction(ours)


# -- arguments: refused before any I/O, as the blocking connect refuses them --------------------

BAD_ARGUMENTS: list[dict[str, Any]] = [
    {"host": None, "port": 80},
    {"host": b"localhost", "port": 80},
    {"host": "localhost", "port": 80.0},
    {"host": "localhost", "port": True},
    {"host": "localhost", "port": 80, "options": "x"},
    {"host": "localhost", "port": 80, "timeout": "5"},
    {"host": "localhost", "port": 80, "resolver": object()},
    {"host": "localhost", "port": 80, "credentials": {"ca_file": "x"}},
    {"host": "localhost", "port": 80, "keepalive": (1, 2, 3)},
    {"host": "", "port": 80},
    {"host": "https://example.com/", "port": 443},
    {"host": "127.1", "port": 80},
    {"host": "localhost", "port": 0},
    {"host": "localhost", "port": "no-such-service"},
    {"host": "localhost", "port": 80, "timeout": 0},
    {"host": "localhost", "port": 80, "timeout": float("nan")},
    {"host": "localhost", "port": 80, "options": 1 << 30},
    {"host": "localhost", "port": 80, "attempt_delay": 0},
    {"host": "localhost", "port": 80, "options": Option.BROADCAST},
    {"host": "localhost", "port": 80, "protocol": Protocol.UDP, "options": Option.SECURE},
    {"host": "localhost", "port": 25, "options": Option.SECURE, "starttls": "smtp"},
    {"host": "localhost", "port": 25, "starttls": "gopher"},
    {"host": "localhost", "port": 80, "local_address": ("not an ip", 0)},
    {"host": "127.0.0.1", "port": 80, "local_address": ("::1", 0)},
    {"host": "localhost", "port": 443, "options": Option.SECURE, "credentials": None, "session_cache": 1},
]


@pytest.mark.parametrize("kwargs", BAD_ARGUMENTS, ids=lambda kwargs: repr(kwargs)[:60])
def test_bad_arguments_fail_as_in_the_blocking_connect(kwargs: dict[str, Any], arun: Run[Any]) -> None:
    blocking = blocking_error(**kwargs)
    assert isinstance(blocking, TypeError | inetkit.InvalidArgumentError)

    async def main() -> tuple[BaseException, int]:
        before = await steady_fds()  # the blocking connect's server end may still be closing
        error = await async_error(**kwargs)
        return error, await settled(before) - before

    ours, leaked = arun(main())
    assert_same_error(ours, blocking)
    assert leaked == 0


def test_bad_credentials_fail_before_any_io(tmp_path: Any, arun: Run[Any]) -> None:
    missing = str(tmp_path / "missing.pem")
    with silent_listener(1) as port:
        blocking = blocking_error(
            "127.0.0.1",
            port,
            options=Option.SECURE,
            credentials=SecurityCredentials(ca_file=missing),
            timeout=5,
        )
        ours = arun(
            async_error(
                "127.0.0.1",
                port,
                options=Option.SECURE,
                credentials=SecurityCredentials(ca_file=missing),
                timeout=5,
            )
        )
    assert_same_error(ours, blocking)


def test_connect_url_bad_urls_fail_as_in_the_blocking_one(arun: Run[Any]) -> None:
    for url in ("gopher://example.test/", "https://", "http://[::1/", 5):
        try:
            inetkit.connect_url(url)  # type: ignore[arg-type]
        except BaseException as exc:
            blocking = exc
        else:  # pragma: no cover - every URL here is refused
            pytest.fail(f"{url!r} connected")

        async def main(url: Any = url) -> BaseException:
            try:
                await inetkit.aio.connect_url(url)
            except BaseException as exc:
                return exc
            pytest.fail(f"{url!r} connected")

        assert_same_error(arun(main()), blocking)


# -- failures: the same errors, messages and traces ---------------------------------------


def test_refused(arun: Run[Any]) -> None:
    port = free_port()
    blocking = blocking_error("127.0.0.1", port, timeout=5)
    ours = arun(async_error("127.0.0.1", port, timeout=5))
    assert_same_error(ours, blocking)
    assert isinstance(ours, ConnectionRefusedError)
    assert isinstance(ours, InetError) and ours.code is ErrorCode.CONNECTION_REFUSED
    assert ours.trace is not None and ours.trace.attempts[0].outcome == "failed"


def test_every_address_refused_lists_each(arun: Run[Any]) -> None:
    port = free_port()
    resolver = Resolver(overrides={"dead.test": ["127.0.0.1", "::1"]}, dns=False)
    blocking = blocking_error("dead.test", port, resolver=resolver, timeout=5)
    ours = arun(async_error("dead.test", port, resolver=resolver, timeout=5))
    assert_same_error(ours, blocking)
    assert isinstance(ours, InetError) and len(ours.attempts) == 2


def test_host_not_found(arun: Run[Any]) -> None:
    resolver = Resolver(system_hosts=False, dns=False)
    blocking = blocking_error("nowhere.test", 80, resolver=resolver, timeout=5)
    ours = arun(async_error("nowhere.test", 80, resolver=resolver, timeout=5))
    assert_same_error(ours, blocking)
    assert isinstance(ours, inetkit.HostNotFoundError) and ours.code is ErrorCode.HOST_NOT_FOUND
    assert ours.trace is not None and ours.trace.resolution is None


def test_connect_timeout_at_the_deadline(arun: Run[Any]) -> None:
    with black_hole("127.0.0.1") as port:
        resolver = Resolver(overrides={"void.test": ["127.0.0.1"]})
        blocking = blocking_error("void.test", port, timeout=0.3, resolver=resolver)

        async def main() -> tuple[BaseException, float]:
            start = time.monotonic()
            error = await async_error("void.test", port, timeout=0.3, resolver=resolver)
            return error, time.monotonic() - start

        ours, elapsed = arun(main())
    assert_same_error(ours, blocking)
    assert isinstance(ours, inetkit.InetTimeoutError) and ours.code is ErrorCode.TIMED_OUT
    assert 0.29 <= elapsed < 2.0  # uvloop timers may fire up to a millisecond early


def test_local_address_in_use(echo_server: Server, arun: Run[Any]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        local = ("127.0.0.1", taken.getsockname()[1])
        blocking = blocking_error("127.0.0.1", echo_server.port, local_address=local, timeout=5)
        ours = arun(async_error("127.0.0.1", echo_server.port, local_address=local, timeout=5))
    assert_same_error(ours, blocking)
    assert isinstance(ours, InetError) and ours.code is ErrorCode.ADDRESS_IN_USE


def test_local_address_not_on_this_machine(echo_server: Server, arun: Run[Any]) -> None:
    local = ("192.0.2.1", 0)
    blocking = blocking_error("127.0.0.1", echo_server.port, local_address=local, timeout=5)
    ours = arun(async_error("127.0.0.1", echo_server.port, local_address=local, timeout=5))
    assert_same_error(ours, blocking)
    assert isinstance(ours, InetError) and ours.code is ErrorCode.ADDRESS_NOT_AVAILABLE


# -- success paths ---------------------------------------------------------------------------


def test_plain_connect_round_trip_and_trace(echo_server: Server, arun: Run[Any]) -> None:
    async def main() -> None:
        conn = await inetkit.aio.connect("127.0.0.1", echo_server.port, timeout=5)
        async with conn:
            assert conn.remote_address == ("127.0.0.1", echo_server.port)
            assert conn.host_name == "127.0.0.1"
            await conn.write(b"ping")
            assert await conn.read(4) == b"ping"
            trace = conn.trace
            assert trace.resolution is not None and trace.resolution.source == "literal"
            assert [a.outcome for a in trace.attempts] == ["connected"]
            assert trace.total > 0

    arun(main())


def test_options_and_local_address_applied(echo_server: Server, arun: Run[Any]) -> None:
    opts = Option.NODELAY | Option.KEEPALIVE
    local_port = free_port()

    async def main() -> None:
        async with await inetkit.aio.connect(
            "127.0.0.1",
            echo_server.port,
            options=opts,
            keepalive=KeepAlive(idle=30, interval=5, count=4),
            local_address=("127.0.0.1", local_port),
            timeout=5,
        ) as conn:
            with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
                assert sock.getsockname() == ("127.0.0.1", local_port)
            assert not os.get_inheritable(conn.fileno())

    arun(main())


def test_udp(udp_echo: tuple[str, int], arun: Run[Any]) -> None:
    async def main() -> None:
        async with await inetkit.aio.connect(*udp_echo, Protocol.UDP, timeout=5) as conn:
            with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                assert sock.type == socket.SOCK_DGRAM
            assert conn.trace.attempts[0].outcome == "connected"

    arun(main())


def test_names_through_the_resolver(echo_server: Server, arun: Run[Any]) -> None:
    resolver = Resolver(overrides={"bücher.test": "127.0.0.1"}, system_hosts=False, dns=False)

    async def main() -> None:
        async with await inetkit.aio.connect(
            "Bücher.TEST", echo_server.port, resolver=resolver, timeout=5
        ) as c:
            assert c.host_name == "xn--bcher-kva.test"
            assert c.trace.resolution is not None and c.trace.resolution.source == "overrides"
        async with await inetkit.aio.connect("localhost", echo_server.port, timeout=5) as c:
            assert c.remote_address[0] == "127.0.0.1"
            assert c.trace.resolution is not None
            assert c.trace.resolution.source in ("system_hosts", "dns")
        async with await inetkit.aio.connect_url(f"tcp://127.0.0.1:{echo_server.port}/", timeout=5) as c:
            assert c.remote_address == ("127.0.0.1", echo_server.port)

    arun(main())


def test_a_connect_that_ends_later_is_watched_on_the_loop(arun: Run[Any]) -> None:
    """The listen queue is full when the SYN comes (dropped); emptied meanwhile, the retried SYN connects."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.settimeout(2)
        filler.connect(("127.0.0.1", port))  # fills the queue of length 0

        async def main() -> inetkit.ConnectTrace:
            async def empty_the_queue() -> None:
                await asyncio.sleep(0.2)
                accepted, _ = listener.accept()  # a handshake waiting in the queue: no wait
                accepted.close()

            emptying = asyncio.ensure_future(empty_the_queue())
            async with await inetkit.aio.connect("127.0.0.1", port, timeout=10) as conn:
                await emptying
                assert conn.remote_address == ("127.0.0.1", port)
                return conn.trace

        trace = arun(main())
    (attempt,) = trace.attempts
    assert attempt.outcome == "connected"
    # The SYN was retried after the queue emptied.
    assert attempt.duration is not None and attempt.duration >= 0.2


def test_black_holed_ipv6_first_falls_back_to_ipv4(arun: Run[Any]) -> None:
    """PREFER_IPV6, ::1 black-holed and 127.0.0.1 live on the same port: IPv4 wins after the delay."""
    with dual_stack_port() as port, black_hole("::1", port):
        resolver = Resolver(overrides={"dual.test": ["::1", "127.0.0.1"]})

        async def main() -> list[inetkit.Attempt]:
            async with await inetkit.aio.connect(
                "dual.test",
                port,
                timeout=10,
                options=Option.PREFER_IPV6,
                resolver=resolver,
                attempt_delay=0.1,
            ) as conn:
                assert conn.remote_address == ("127.0.0.1", port)
                return conn.trace.attempts

        attempts = arun(main())
    assert [a.address for a in attempts] == ["::1", "127.0.0.1"]
    assert [a.outcome for a in attempts] == ["abandoned", "connected"]
    assert attempts[1].start >= 0.1


def test_refused_first_address_moves_on_at_once(echo_server: Server, arun: Run[Any]) -> None:
    resolver = Resolver(overrides={"mixed.test": ["::1", "127.0.0.1"]})

    async def main() -> list[inetkit.Attempt]:
        async with await inetkit.aio.connect(
            "mixed.test",
            echo_server.port,
            options=Option.PREFER_IPV6,
            resolver=resolver,
            timeout=10,
            attempt_delay=5.0,  # only an immediate start after the refusal can connect in time
        ) as conn:
            return conn.trace.attempts

    attempts = arun(main())
    assert [a.outcome for a in attempts] == ["failed", "connected"]
    assert attempts[1].start < 2.5


# -- resolution ---------------------------------------------------------------------------------


class AsyncResolver(Resolver):
    """Answers from ``answer`` after ``delay`` seconds; records whether it was cancelled."""

    def __init__(self, answer: object, delay: float = 0.0) -> None:
        super().__init__()
        self.answer = answer
        self.delay = delay
        self.cancelled = False
        self.calls: list[tuple[str, int, Protocol, float | None]] = []

    async def aresolve(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> list[tuple[int, tuple[Any, ...]]]:
        self.calls.append((host, port, protocol, deadline))
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer  # type: ignore[return-value]


def test_custom_aresolve_is_awaited(echo_server: Server, arun: Run[Any]) -> None:
    resolver = AsyncResolver([(socket.AF_INET, ("127.0.0.1", echo_server.port))], delay=0.05)

    async def main() -> inetkit.ConnectTrace:
        async with await inetkit.aio.connect(
            "Custom.Test", echo_server.port, resolver=resolver, timeout=5
        ) as c:
            return c.trace

    trace = arun(main())
    assert trace.resolution is not None and trace.resolution.source == "custom"
    assert trace.resolution.duration >= 0.05
    ((host, port, protocol, deadline),) = resolver.calls
    assert (host, port, protocol) == ("custom.test", echo_server.port, Protocol.TCP)
    assert deadline is not None


def test_custom_aresolve_overrunning_is_cancelled(arun: Run[Any]) -> None:
    resolver = AsyncResolver([(socket.AF_INET, ("127.0.0.1", 9))], delay=30)

    async def main() -> tuple[BaseException, float]:
        start = time.monotonic()
        error = await async_error("slow.test", 80, resolver=resolver, timeout=0.2)
        return error, time.monotonic() - start

    error, elapsed = arun(main())
    assert resolver.cancelled
    assert isinstance(error, inetkit.InetTimeoutError) and error.code is ErrorCode.TIMED_OUT
    assert str(error) == (
        "resolving slow.test timed out: AsyncResolver.aresolve did not answer before the connect deadline"
    )
    assert error.trace is not None and error.trace.resolution is None
    assert 0.19 <= elapsed < 2.0  # uvloop timers may fire up to a millisecond early


def test_custom_aresolve_errors_and_bad_answers(arun: Run[Any]) -> None:
    cases: list[tuple[object, type[BaseException], str]] = [
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            inetkit.HostNotFoundError,
            "x.test",
        ),
        ([], inetkit.HostNotFoundError, "AsyncResolver.aresolve returned no address"),
        ("127.0.0.1", TypeError, "AsyncResolver.aresolve must return"),
        ([("127.0.0.1", 80)], TypeError, "AsyncResolver.aresolve must return"),
    ]
    for answer, kind, fragment in cases:
        error = arun(async_error("x.test", 80, resolver=AsyncResolver(answer), timeout=5))
        assert isinstance(error, kind), (answer, error)
        assert fragment in str(error)


class BlockingResolver(Resolver):
    """A custom blocking `resolve`: it stays stuck on ``stuck`` names until ``release`` is set."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.release = threading.Event()
        self.stuck = 0  # lookups waiting for the release right now
        self.lock = threading.Lock()

    def resolve(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> list[tuple[int, tuple[Any, ...]]]:
        if host.startswith("stuck"):
            with self.lock:
                self.stuck += 1
            self.release.wait(10)
            with self.lock:
                self.stuck -= 1
        return [(socket.AF_INET, ("127.0.0.1", port))]


def test_stuck_lookup_never_holds_up_a_later_one(echo_server: Server, arun: Run[Any]) -> None:
    """A blocking resolve stuck past its deadline is abandoned; later lookups run beside it at once."""
    resolver = BlockingResolver(echo_server.port)

    async def stuck() -> tuple[BaseException, float]:
        start = time.monotonic()
        error = await async_error("stuck.test", echo_server.port, resolver=resolver, timeout=0.5)
        return error, time.monotonic() - start

    async def main() -> tuple[Any, ...]:
        try:
            first = asyncio.ensure_future(stuck())
            for _ in range(500):  # until its thread is inside resolve (bounded: 5 s)
                if resolver.stuck:
                    break
                await asyncio.sleep(0.01)
            async with await inetkit.aio.connect(
                "quick.test", echo_server.port, resolver=resolver, timeout=5
            ) as conn:
                assert conn.trace.resolution is not None
                source = conn.trace.resolution.source
            quick_beside = resolver.stuck  # still stuck while the quick one answered
            timed_out = await first
            after = await stuck()  # the first one's thread is still stuck: this one has its own
            return timed_out, source, quick_beside, after, resolver.stuck
        finally:
            resolver.release.set()

    first, source, quick_beside, second, stuck_at_end = arun(main())
    assert source == "custom"
    assert quick_beside == 1
    assert stuck_at_end == 2  # both abandoned lookups were still stuck when the second timed out
    for error, took in (first, second):
        assert isinstance(error, inetkit.InetTimeoutError)
        assert str(error) == (
            "resolving stuck.test timed out: BlockingResolver.resolve did not answer "
            "before the connect deadline"
        )
        assert 0.5 <= took < 5.0  # at its own deadline, never after the stuck one's release


def test_aresolve(echo_server: Server, arun: Run[Any]) -> None:
    async def main() -> None:
        assert await inetkit.aio.aresolve("127.0.0.1", 80) == [(socket.AF_INET, ("127.0.0.1", 80))]
        resolver = Resolver(overrides={"two.test": ["::1", "127.0.0.1"]})
        assert await inetkit.aio.aresolve("two.test", "https", resolver=resolver) == resolver.resolve(
            "two.test", 443, Protocol.TCP, None
        )
        assert await inetkit.aio.aresolve("localhost", 80) == Resolver().resolve(
            "localhost", 80, Protocol.TCP, None
        )
        custom = AsyncResolver([(socket.AF_INET6, ("::1", 80))])
        assert await inetkit.aio.aresolve("c.test", 80, resolver=custom) == [
            (socket.AF_INET6, ("::1", 80, 0, 0))
        ]
        assert await resolver.aresolve("Two.Test", 80, Protocol.TCP, None) == resolver.resolve(
            "two.test", 80, Protocol.TCP, None
        )
        with pytest.raises(inetkit.HostNotFoundError):
            await inetkit.aio.aresolve("none.test", 80, resolver=Resolver(system_hosts=False, dns=False))
        with pytest.raises(inetkit.InvalidArgumentError):
            await inetkit.aio.aresolve("localhost", 0)
        with pytest.raises(TypeError):
            await inetkit.aio.aresolve(None, 80)  # type: ignore[arg-type]

    arun(main())


def test_aresolve_calls_super_without_recursion(arun: Run[Any]) -> None:
    """An `aresolve` override may fall back on the default one (which never calls it back)."""

    class Fallback(Resolver):
        async def aresolve(
            self, host: str, port: int, protocol: Protocol, deadline: float | None
        ) -> list[tuple[int, tuple[Any, ...]]]:
            if host == "special.test":
                return [(socket.AF_INET, ("127.0.0.2", port))]
            return await super().aresolve(host, port, protocol, deadline)

    async def main() -> None:
        resolver = Fallback(overrides={"plain.test": "127.0.0.3"})
        assert await inetkit.aio.aresolve("special.test", 1, resolver=resolver) == [
            (socket.AF_INET, ("127.0.0.2", 1))
        ]
        assert await inetkit.aio.aresolve("plain.test", 1, resolver=resolver) == [
            (socket.AF_INET, ("127.0.0.3", 1))
        ]

    arun(main())


# -- cancellation ---------------------------------------------------------------------------------


async def cancelled_after(delay: float, connecting: Coroutine[Any, Any, Any]) -> None:
    """Start ``connecting``, cancel it after ``delay`` seconds, check it raised CancelledError."""
    task = asyncio.ensure_future(connecting)
    await asyncio.sleep(delay)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_cancelled_race_closes_every_socket(arun: Run[Any]) -> None:
    with black_hole("127.0.0.1") as port4, black_hole("::1") as port6:
        # Two black-holed addresses in flight at once (the second starts after 10 ms).
        resolver = AsyncResolver([(socket.AF_INET, ("127.0.0.1", port4)), (socket.AF_INET6, ("::1", port6))])

        async def main() -> tuple[int, int, int]:
            return await counted(
                lambda: cancelled_after(
                    0.1,
                    inetkit.aio.connect(
                        "void.test", port4, resolver=resolver, timeout=10, attempt_delay=0.01
                    ),
                )
            )

        assert arun(main()) == (0, 0, 0)


def test_cancelled_resolution(arun: Run[Any]) -> None:
    resolver = AsyncResolver([(socket.AF_INET, ("127.0.0.1", 9))], delay=30)

    async def main() -> tuple[int, int, int]:
        return await counted(
            lambda: cancelled_after(0.05, inetkit.aio.connect("x.test", 80, resolver=resolver))
        )

    assert arun(main()) == (0, 0, 0)
    assert resolver.cancelled


def test_cancelled_blocking_lookup_is_abandoned(echo_server: Server, arun: Run[Any]) -> None:
    resolver = BlockingResolver(echo_server.port)

    async def main() -> tuple[int, int, int]:
        try:
            return await counted(
                lambda: cancelled_after(0.05, inetkit.aio.connect("stuck.test", 80, resolver=resolver))
            )
        finally:
            resolver.release.set()

    assert arun(main()) == (0, 0, 0)


# -- TLS and STARTTLS inside the one deadline ---------------------------------------------------------


@pytest.fixture
def creds(pki: PKI) -> SecurityCredentials:
    return SecurityCredentials(ca_file=str(pki.ca_file))


def test_deadline_covers_resolution_race_and_handshake(arun: Run[Any]) -> None:
    """0.2 s resolving, a black-holed first address, then a server that never answers the handshake."""
    with silent_listener(8) as port, black_hole("::1") as dead:
        resolver = AsyncResolver(
            [(socket.AF_INET6, ("::1", dead)), (socket.AF_INET, ("127.0.0.1", port))], delay=0.2
        )

        async def main() -> tuple[BaseException, float]:
            start = time.monotonic()
            error = await async_error(
                "tls.test",
                port,
                options=Option.SECURE | Option.PREFER_IPV6,
                resolver=resolver,
                timeout=1.0,
                attempt_delay=0.1,
            )
            return error, time.monotonic() - start

        error, elapsed = arun(main())
    assert isinstance(error, inetkit.InetTimeoutError) and error.code is ErrorCode.TIMED_OUT
    assert 0.99 <= elapsed < 2.5  # uvloop timers may fire up to a millisecond early
    trace = error.trace
    assert trace is not None and trace.resolution is not None
    assert trace.resolution.duration >= 0.2
    assert [a.outcome for a in trace.attempts] == ["abandoned", "failed"]  # the handshake failed the winner
    assert trace.tls_handshake is not None
    assert 0.99 <= trace.total < 2.5


def test_handshake_failure_parity(pki: PKI, arun: Run[Any]) -> None:
    """A foreign CA: the same CertificateError, code and message from both connects."""
    from tls_servers import Servers

    foreign = SecurityCredentials(ca_file=str(pki.foreign_ca_file))
    with Servers() as servers:
        server = servers.python(pki.servers["valid"].context())
        blocking = blocking_error(
            "localhost", server.port, options=Option.SECURE, credentials=foreign, timeout=5
        )
        ours = arun(
            async_error("localhost", server.port, options=Option.SECURE, credentials=foreign, timeout=5)
        )
    assert_same_error(ours, blocking)
    assert isinstance(ours, inetkit.CertificateError) and ours.code is ErrorCode.CERTIFICATE_UNTRUSTED
    assert ours.trace is not None and ours.trace.attempts[-1].outcome == "failed"


def test_cancelled_handshake_closes_the_socket(creds: SecurityCredentials, arun: Run[Any]) -> None:
    with silent_listener(8) as port:

        async def main() -> tuple[int, int, int]:
            return await counted(
                lambda: cancelled_after(
                    0.1,
                    inetkit.aio.connect(
                        "localhost", port, options=Option.SECURE, credentials=creds, timeout=10
                    ),
                )
            )

        assert arun(main()) == (0, 0, 0)


@pytest.mark.usefixtures("fresh_tls_caches")
def test_one_session_cache_for_blocking_and_async_clients(
    pki: PKI, creds: SecurityCredentials, arun: Run[Any]
) -> None:
    """A session a blocking connect got resumes in an async connect, and the other way round."""
    from tls_servers import Servers

    from inetkit._tls import SESSION_CACHE

    def blocking_once(port: int) -> bool:
        with inetkit.connect("localhost", port, options=Option.SECURE, credentials=creds, timeout=5) as conn:
            conn.write_line("ping")  # a round trip: the TLS 1.3 ticket arrives with the answer
            assert conn.read_line() == b"gnip\n"
            assert conn.security_info is not None
            return conn.security_info.session_reused

    async def async_once(port: int) -> bool:
        async with await inetkit.aio.connect(
            "localhost", port, options=Option.SECURE, credentials=creds, timeout=5
        ) as conn:
            await conn.write_line("ping")
            assert await conn.read_line() == b"gnip\n"
            assert conn.security_info is not None
            return conn.security_info.session_reused

    with Servers() as servers:
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            server = servers.python(pki.servers["valid"].context(min_version=version, max_version=version))
            SESSION_CACHE.clear()
            assert blocking_once(server.port) is False
            assert arun(async_once(server.port)) is True  # the blocking client's session
            SESSION_CACHE.clear()
            assert arun(async_once(server.port)) is False
            assert blocking_once(server.port) is True  # the async client's session


@pytest.mark.parametrize("timeout", [30 * 24 * 3600.0, 2.0**31, 1e308, sys.float_info.max, None])
def test_huge_timeouts_are_waited_for(timeout: float | None, arun: Run[Any]) -> None:
    """Timeouts past every timer's range: the resolver's and the race's waits are clamped, never passed on."""
    with black_hole("127.0.0.1") as port:
        resolver = AsyncResolver([(socket.AF_INET, ("127.0.0.1", port))], delay=0.01)

        async def main() -> tuple[int, int, int]:
            async def connect() -> None:
                async with asyncio.timeout(0.2):  # the black hole never answers: cancelled here
                    await inetkit.aio.connect("hole.test", port, resolver=resolver, timeout=timeout)

            async def timed_out() -> None:
                with pytest.raises(TimeoutError):
                    await connect()

            return await counted(timed_out)

        assert arun(main()) == (0, 0, 0)
    assert resolver.calls and not resolver.cancelled


def test_the_dial_gives_up_on_a_clock_that_does_not_move(arun: Run[Any]) -> None:
    # The asyncio driver bounds wake-ups without progress as the blocking one does: a clock
    # that never reaches the deadline cannot keep the dial waking up forever.
    from inetkit._core.race import Race
    from inetkit._dialer import MAX_WAKEUPS_PER_ADDRESS
    from inetkit.aio._dialer import dial

    readings: list[float] = []

    def stopped() -> float:
        readings.append(0.0)
        return 0.0

    with black_hole("127.0.0.1") as port:
        address = (socket.AF_INET, ("127.0.0.1", port))
        # The deadline is a millisecond after the stopped clock: each wake-up waits that long.
        race = Race(
            [address], host="dial.test", port=port, started=0.0, now=0.0, deadline=0.001, attempt_delay=0.25
        )

        async def main() -> tuple[BaseException, int]:
            before = open_fds()
            loop = asyncio.get_running_loop()
            with pytest.raises(InetError) as info:
                await dial(race, [address], datagram=False, prepare=None, loop=loop, clock=stopped)
            return info.value, open_fds() - before

        error, leaked = arun(main())
    assert leaked == 0
    assert error.code is ErrorCode.NETWORK_ERROR
    assert "dial.test port" in str(error) and "too many wake-ups without progress" in str(error)
    assert [a.outcome for a in race.attempts()] == ["abandoned"]
    # One reading to start, one per wake-up (the last one over the bound), one to abandon.
    assert len(readings) == 1 + MAX_WAKEUPS_PER_ADDRESS + 1 + 1
