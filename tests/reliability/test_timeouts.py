"""Every timeout the API accepts works; every one it refuses is refused before any I/O.

`check_timeout` accepts any finite number > 0. The waits underneath have
limits of their own (``poll`` takes a C int of milliseconds, about 24.8 days;
lock and event waits refuse more than `threading.TIMEOUT_MAX`), so a large
timeout must be waited for in rounds, never passed through. Each test here
makes a call really wait (the peer answers a moment later) with such a
timeout, so the clamped wait itself runs.
"""

from __future__ import annotations

import contextlib
import math
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import open_fds, silent_listener

import inetkit
from inetkit import ErrorCode, InvalidArgumentError, Option, Protocol, Resolver

from .conftest import Measure

#: Timeouts past each wait's own limit: poll's ~24.8 days, then TIMEOUT_MAX, then the largest float.
HUGE_TIMEOUTS = [30 * 24 * 3600.0, 2.0**31, threading.TIMEOUT_MAX * 2, 1e308, sys.float_info.max]
#: Accepted values that are not huge: the smallest positive float, an int, an ordinary float.
SMALL_TIMEOUTS = [5e-324, 1, 2.5]
#: Values of the right type that are refused.
BAD_TIMEOUTS = [math.nan, math.inf, -math.inf, -1.0, -5e-324, 0, 0.0, -0.0]
#: Values of the wrong type.
WRONG_TYPES = [True, False, "5", b"5", [5], complex(1, 0)]
#: How long the peer waits before answering, so that the call under test really blocks.
ANSWER_DELAY = 0.05
#: Bound on every helper thread join.
JOIN_LIMIT = 10.0


@contextlib.contextmanager
def open_pair(options: Option = Option.NONE) -> Iterator[tuple[inetkit.Connection, socket.socket]]:
    """A connected handle and the peer's socket, both closed at the end."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        conn = inetkit.connect("127.0.0.1", listener.getsockname()[1], timeout=5, options=options)
        peer, _ = listener.accept()
    try:
        yield conn, peer
    finally:
        conn.close()
        peer.close()


def later(action: Callable[[], object], delay: float = ANSWER_DELAY) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def short(value: float) -> str:
    return f"{value:.3g}"


@pytest.mark.parametrize("timeout", HUGE_TIMEOUTS, ids=short)
def test_every_blocking_call_works_with_a_huge_io_timeout(timeout: float, measure: Measure) -> None:
    with (
        measure(
            f"I/O timeout {short(timeout)} s", f"conn.timeout = {short(timeout)}; every blocking call waits"
        ) as case,
        open_pair() as (conn, peer),
    ):
        conn.timeout = timeout
        assert conn.timeout == timeout
        calls: list[tuple[str, Callable[[], object], bytes]] = [
            ("read", lambda: conn.read(10), b"a"),
            ("read_line", conn.read_line, b"line\n"),
            ("read_exactly", lambda: conn.read_exactly(3), b"abc"),
            ("read_into", lambda: conn.read_into(bytearray(8)), b"b"),
            ("is_readable", lambda: conn.is_readable(timeout), b"c"),
        ]
        for name, call, answer in calls:
            thread = later(lambda answer=answer: peer.sendall(answer))
            with case.timed():
                result = call()
            thread.join(JOIN_LIMIT)
            assert result, name
            if name == "is_readable":
                assert conn.read(10) == b"c"
        # A write that has to wait for room: 8 MiB, drained by the peer a moment later.
        data = b"w" * (8 << 20)
        received = bytearray()

        def drain() -> None:
            while len(received) < len(data):
                chunk = peer.recv(1 << 20)
                if not chunk:
                    return
                received.extend(chunk)

        thread = later(drain)
        with case.timed():
            assert conn.write(data) == len(data)
        thread.join(JOIN_LIMIT)
        assert len(received) == len(data)
        assert conn.is_writable(timeout)
        case.outcome = "works (waits in rounds, no OverflowError)"


@pytest.mark.parametrize("timeout", HUGE_TIMEOUTS, ids=short)
def test_a_free_thread_lock_wait_with_a_huge_timeout(timeout: float, measure: Measure) -> None:
    """`Guard.take`: the second reader waits for the first one's turn with a huge timeout."""
    with measure(f"lock wait {short(timeout)} s", "second FREETHREAD reader queues behind the first") as case:
        with open_pair(Option.FREETHREAD) as (conn, peer):
            conn.timeout = timeout
            got: list[bytes] = []
            first = threading.Thread(target=lambda: got.append(conn.read_exactly(1)))
            first.start()
            time.sleep(ANSWER_DELAY)  # the first reader holds the reader turn, blocked
            second = threading.Thread(target=lambda: got.append(conn.read_exactly(1)))
            second.start()
            time.sleep(ANSWER_DELAY)  # the second waits in Guard.take
            peer.sendall(b"xy")
            first.join(JOIN_LIMIT)
            second.join(JOIN_LIMIT)
            assert not first.is_alive() and not second.is_alive()
            assert sorted(got) == [b"x", b"y"]
        case.outcome = "both reads served"


class SlowResolver(Resolver):
    """Answers 127.0.0.1 after a short pause, so the caller really waits for the helper thread."""

    def resolve(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> list[tuple[int, tuple[str, int]]]:
        time.sleep(ANSWER_DELAY)
        return [(socket.AF_INET, ("127.0.0.1", port))]


@pytest.mark.parametrize("timeout", HUGE_TIMEOUTS, ids=short)
def test_the_resolver_waits_with_a_huge_deadline(timeout: float, measure: Measure) -> None:
    with measure(f"resolver wait {short(timeout)} s", "custom resolver answers after 50 ms") as case:
        deadline = time.monotonic() + timeout
        addresses, source = SlowResolver().resolve_traced("slow.test", 80, Protocol.TCP, deadline)
        assert addresses == [(socket.AF_INET, ("127.0.0.1", 80))]
        assert source == "custom"
        case.outcome = "answer returned"


@pytest.mark.parametrize("timeout", [t for t in HUGE_TIMEOUTS if t < 1e300], ids=short)
def test_connect_with_a_huge_timeout_through_a_slow_resolver(timeout: float, measure: Measure) -> None:
    """The resolver's helper-thread wait and the dialer under one huge deadline (up to 2**64 s)."""
    with (
        silent_listener(4) as port,
        measure(f"connect timeout {short(timeout)} s", "connect via a slow custom resolver") as case,
    ):
        with (
            case.timed(),
            inetkit.connect("slow.test", port, timeout=timeout, resolver=SlowResolver()) as conn,
        ):
            assert conn.timeout == timeout
        case.outcome = "connected"


@pytest.mark.parametrize("timeout", HUGE_TIMEOUTS, ids=short)
def test_the_tls_handshake_waits_with_a_huge_timeout(timeout: float, pki: object, measure: Measure) -> None:
    """enable_security's handshake waits (server answers after a pause) with a huge I/O timeout."""
    from certs import PKI

    assert isinstance(pki, PKI)
    context = pki.servers["valid"].context()
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        measure(
            f"TLS handshake wait {short(timeout)} s", "enable_security, server answers after 50 ms"
        ) as case,
    ):
        conn = inetkit.connect("localhost", listener.getsockname()[1], timeout=5)
        peer, _ = listener.accept()
        server_done = threading.Event()

        def serve() -> None:
            time.sleep(ANSWER_DELAY)
            try:
                with context.wrap_socket(peer, server_side=True) as tls:
                    tls.sendall(tls.recv(100))
            except (OSError, ssl.SSLError):
                pass
            finally:
                server_done.set()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with conn:
            conn.timeout = timeout
            with case.timed():
                conn.enable_security(inetkit.SecurityCredentials(ca_file=pki.ca_file))
            conn.write(b"ping")
            assert conn.read_exactly(4) == b"ping"
        thread.join(JOIN_LIMIT)
        peer.close()
        case.outcome = "handshake completes"


@pytest.mark.parametrize("timeout", SMALL_TIMEOUTS, ids=str)
def test_small_accepted_timeouts_behave(timeout: float) -> None:
    """The smallest accepted values are deadlines that pass at once: TIMED_OUT, never a hang."""
    with silent_listener(4) as port:
        if timeout < 1:
            with pytest.raises(inetkit.InetTimeoutError) as info:
                inetkit.connect("127.0.0.1", port, timeout=timeout, resolver=SlowResolver())
            assert info.value.code is ErrorCode.TIMED_OUT
        with inetkit.connect("127.0.0.1", port, timeout=5) as conn:
            conn.timeout = timeout
            if timeout < 1:
                with pytest.raises(inetkit.InetTimeoutError):
                    conn.read(1)
            assert conn.timeout == float(timeout)


class RecordingResolver(Resolver):
    """Counts calls: a refused argument must never reach resolution."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def resolve(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> list[tuple[int, tuple[str, int]]]:
        self.calls += 1
        return [(socket.AF_INET, ("127.0.0.1", port))]


@pytest.mark.parametrize("value", BAD_TIMEOUTS, ids=repr)
def test_bad_timeouts_are_refused_before_any_io(value: float, measure: Measure) -> None:
    resolver = RecordingResolver()
    with measure(f"timeout={value!r}", "connect / conn.timeout / is_readable") as case:
        before = open_fds()
        for host in ("127.0.0.1", "name.test"):
            with pytest.raises(InvalidArgumentError) as info:
                inetkit.connect(host, 9, timeout=value, resolver=resolver)
            assert info.value.code is ErrorCode.INVALID_ARGUMENT
            assert "timeout" in str(info.value)
        assert resolver.calls == 0
        assert open_fds() == before
        with silent_listener(2) as port, inetkit.connect("127.0.0.1", port, timeout=5) as conn:
            with pytest.raises(InvalidArgumentError):
                conn.timeout = value
            assert conn.timeout == 5
            if value != 0:  # is_readable(0) is a poll, documented
                with pytest.raises(InvalidArgumentError):
                    conn.is_readable(value)
                with pytest.raises(InvalidArgumentError):
                    conn.is_writable(value)
        case.outcome = "InvalidArgumentError/INVALID_ARGUMENT"


@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
def test_timeouts_of_the_wrong_type_are_type_errors(value: object) -> None:
    resolver = RecordingResolver()
    before = open_fds()
    with pytest.raises(TypeError, match="timeout"):
        inetkit.connect("name.test", 9, timeout=value, resolver=resolver)  # type: ignore[arg-type]
    assert resolver.calls == 0
    assert open_fds() == before
    with silent_listener(2) as port, inetkit.connect("127.0.0.1", port, timeout=5) as conn:
        with pytest.raises(TypeError):
            conn.timeout = value  # type: ignore[assignment]
        if value is not False:  # see the test below
            with pytest.raises(TypeError):
                conn.is_readable(value)  # type: ignore[arg-type]


def test_is_readable_false_is_a_type_error() -> None:
    with silent_listener(2) as port, inetkit.connect("127.0.0.1", port, timeout=5) as conn:
        with pytest.raises(TypeError):
            conn.is_readable(False)


def test_the_resolver_wait_runs_in_rounds_no_longer_than_timeout_max() -> None:
    """``_wait_until`` with a stand-in wait: every round's timeout fits, and rounds go on."""
    from inetkit._resolver import _wait_until

    asked: list[float] = []

    def wait(timeout: float) -> bool:
        asked.append(timeout)
        return len(asked) == 3  # "set" on the third round

    assert _wait_until(wait, time.monotonic() + 1e308)
    assert asked == [threading.TIMEOUT_MAX] * 3

    asked.clear()
    assert not _wait_until(lambda timeout: asked.append(timeout) or False, time.monotonic() - 1)
    assert asked == [0.0]  # a past deadline still looks once


@pytest.mark.parametrize("timeout", [t for t in HUGE_TIMEOUTS if t < 1e300], ids=short)
def test_a_secure_connect_with_a_huge_timeout(timeout: float, pki: Any, measure: Measure) -> None:
    """Implicit TLS under a huge connect deadline: the handshake waits (server answers late)."""
    from .peers import peer

    context = pki.servers["valid"].context()

    def handler(sock: socket.socket) -> None:
        time.sleep(ANSWER_DELAY)
        with contextlib.suppress(OSError, ssl.SSLError), context.wrap_socket(sock, server_side=True) as tls:
            tls.sendall(tls.recv(100))

    with measure(
        f"TLS connect timeout {short(timeout)} s", "connect(SECURE), server answers after 50 ms"
    ) as case:
        with peer(handler) as port:
            creds = inetkit.SecurityCredentials(ca_file=pki.ca_file)
            with (
                case.timed(),
                inetkit.connect(
                    "localhost", port, timeout=timeout, options=Option.SECURE, credentials=creds
                ) as conn,
            ):
                conn.write(b"hello")
                assert conn.read_exactly(5) == b"hello"
        case.outcome = "connects"
