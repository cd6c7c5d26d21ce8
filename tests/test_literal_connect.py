"""Connects to IP literals: the same one path as every connect, with nothing to resolve.

An IP literal needs no resolution (the plan carries its address) and its
connect is a race of one. Everything a caller can see must be what a
resolved connect to the same address shows: these tests compare the two,
with the host cache cold and warm.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from conftest import Server, black_hole, free_port, open_fds, silent_listener

import inetkit
from inetkit import ErrorCode, Option, _hostname
from inetkit._trace import ConnectTrace


@pytest.fixture(autouse=True)
def cold_host_cache() -> Iterator[None]:
    """Each test starts with no host known, so its first connect normalizes the host."""
    _hostname._NORMALIZED.clear()
    _hostname._LITERALS.clear()
    yield
    _hostname._NORMALIZED.clear()
    _hostname._LITERALS.clear()


def by_name(port: int, **kwargs: object) -> inetkit.Connection:
    """The same address reached through resolution (an override), for comparison."""
    resolver = inetkit.Resolver(overrides={"literal.test": "127.0.0.1"}, system_hosts=False, dns=False)
    return inetkit.connect("literal.test", port, resolver=resolver, **kwargs)  # type: ignore[arg-type]


def same_attempts(one: ConnectTrace, two: ConnectTrace) -> None:
    assert len(one.attempts) == len(two.attempts)
    for a, b in zip(one.attempts, two.attempts, strict=True):
        assert (a.address, a.port, a.family, a.outcome) == (b.address, b.port, b.family, b.outcome)
        assert (a.error is None) == (b.error is None)
        assert type(a.error) is type(b.error)


def test_cold_and_warm_cache_connects_look_the_same(echo_server: Server) -> None:
    handles = []
    for word in (b"one", b"two"):  # the first normalizes the host, the second finds it cached
        conn = inetkit.connect("127.0.0.1", echo_server.port, timeout=5)
        handles.append(conn)
        conn.write_line(word)
        assert conn.read_line() == word + b"\r\n"
    try:
        for conn in handles:
            assert conn.host_name == "127.0.0.1"
            assert conn.remote_address == ("127.0.0.1", echo_server.port)
            assert conn.timeout == 5.0
            assert conn.options is Option.NONE
            assert conn.protocol is inetkit.Protocol.TCP
            assert conn.local_address[0] == "127.0.0.1"
            assert repr(conn).startswith(f"<inetkit.Connection tcp 127.0.0.1:{echo_server.port} 127.0.0.1:")
    finally:
        for conn in handles:
            conn.close()


def test_literal_trace_matches_the_resolved_path(echo_server: Server) -> None:
    with by_name(echo_server.port, timeout=5) as named:
        named_trace = named.trace
    started = time.monotonic()
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        elapsed = time.monotonic() - started
        trace = conn.trace
        assert conn.trace is trace  # built once, then kept
    assert named_trace.resolution is not None and named_trace.resolution.source == "overrides"
    assert trace.resolution is not None and trace.resolution.source == "literal"
    assert trace.resolution.addresses == named_trace.resolution.addresses == ["127.0.0.1"]
    assert trace.resolution.duration == 0.0
    same_attempts(trace, named_trace)
    for one, host in ((named_trace, "literal.test"), (trace, "127.0.0.1")):
        assert one.host == host and one.port == echo_server.port
        (attempt,) = one.attempts
        assert attempt.outcome == "connected"
        assert attempt.address == "127.0.0.1" and attempt.port == echo_server.port
        assert attempt.family == socket.AF_INET
        assert attempt.error is None
        assert attempt.start >= 0
        assert attempt.duration is not None and attempt.duration >= 0
        assert one.total is not None and one.total >= attempt.start + attempt.duration
        assert one.tls_handshake is None and one.starttls is None
    assert trace.total is not None and trace.total <= elapsed
    assert trace.format().splitlines()[1].startswith("  resolve: 1 address(es) from literal")


def test_the_trace_is_built_on_first_access_for_every_connect(echo_server: Server) -> None:
    for conn in (
        inetkit.connect("127.0.0.1", echo_server.port, timeout=5),
        by_name(echo_server.port, timeout=5),
    ):
        with conn:
            assert conn._trace is None  # only clock readings so far
            assert conn.trace.attempts[0].outcome == "connected"
            assert conn._trace is conn.trace


def test_ipv6_literals_with_and_without_brackets(make_server: object) -> None:
    server = make_server(host="::1")  # type: ignore[operator]
    for host in ("[::1]", "[::1]", "0:0::1", "0:0::1"):
        with inetkit.connect(host, server.port, timeout=5) as conn:
            assert conn.host_name == "::1"
            assert conn.remote_address == ("::1", server.port)
            conn.write_line(b"six")
            assert conn.read_line() == b"six\r\n"
            assert conn.trace.attempts[0].address == "::1"
            assert conn.trace.attempts[0].family == socket.AF_INET6


def test_refused_carries_the_same_trace_cold_and_warm() -> None:
    port = free_port()
    errors = []
    for _ in range(2):  # cold cache, then warm
        with pytest.raises(inetkit.InetConnectionRefusedError) as info:
            inetkit.connect("127.0.0.1", port, timeout=5)
        errors.append(info.value)
    with pytest.raises(inetkit.InetConnectionRefusedError) as named:
        by_name(port, timeout=5)
    assert "127.0.0.1" in _hostname._LITERALS
    for error in errors:
        assert error.code is ErrorCode.CONNECTION_REFUSED
        assert f"127.0.0.1 port {port}" in str(error)
        assert isinstance(error.__cause__, ConnectionRefusedError)
        assert error.attempts == ()
        assert error.trace is not None
        assert error.trace.resolution is not None and error.trace.resolution.source == "literal"
        (attempt,) = error.trace.attempts
        assert attempt.outcome == "failed"
        assert attempt.error is error
        assert error.trace.total is not None and error.trace.total >= 0
        assert named.value.trace is not None
        same_attempts(error.trace, named.value.trace)
    assert str(errors[0]) == str(errors[1])
    assert f"literal.test port {port} (127.0.0.1)" in str(named.value)


def test_the_deadline_holds() -> None:
    with black_hole("127.0.0.1") as port:
        started = time.monotonic()
        with pytest.raises(inetkit.InetTimeoutError) as info:
            inetkit.connect("127.0.0.1", port, timeout=0.3)
        elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 2.0
    assert info.value.code is ErrorCode.TIMED_OUT
    assert info.value.trace is not None
    (attempt,) = info.value.trace.attempts
    assert attempt.outcome == "timed out"
    assert attempt.error is info.value


@pytest.mark.parametrize(
    "options",
    [Option.FREETHREAD, Option.NOINHERIT | Option.PREFER_IPV6, Option.NODELAY, Option.KEEPALIVE],
)
def test_options(echo_server: Server, options: Option) -> None:
    inetkit.connect("127.0.0.1", echo_server.port, timeout=5).close()
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5, options=options) as conn:
        assert conn.options == options
        assert (conn.owner is None) is bool(options & Option.FREETHREAD)
        conn.write_line(b"x")
        assert conn.read_line() == b"x\r\n"
        assert conn.trace.resolution is not None and conn.trace.resolution.source == "literal"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": None},
        {"timeout": 1e308},
        {"protocol": inetkit.Protocol.UDP},
        {"local_address": ("127.0.0.1", 0)},
        {"attempt_delay": 0.1},
        {"resolver": inetkit.Resolver()},
        {"port": "7"},
    ],
)
def test_every_setting_works_with_a_literal(make_server: object, kwargs: dict[str, object]) -> None:
    _hostname.check_host("127.0.0.1")  # known as a literal from here on
    assert "127.0.0.1" in _hostname._LITERALS
    if kwargs.get("protocol") is inetkit.Protocol.UDP:
        port = free_port()
    else:
        port = make_server().port  # type: ignore[operator]
    args: dict[str, object] = {"timeout": 5, "port": port}
    args.update(kwargs)
    if args["port"] == "7":
        args["port"] = str(port)
    with inetkit.connect("127.0.0.1", **args) as conn:  # type: ignore[arg-type]
        assert conn.remote_address == ("127.0.0.1", port)
        assert conn.trace.resolution is not None and conn.trace.resolution.source == "literal"
        assert [a.outcome for a in conn.trace.attempts] == ["connected"]


def test_no_descriptor_leaks() -> None:
    refused = free_port()
    with silent_listener(512) as port:
        inetkit.connect("127.0.0.1", port, timeout=5).close()
        before = open_fds()
        for _ in range(200):
            inetkit.connect("127.0.0.1", port, timeout=5).close()
            with pytest.raises(inetkit.InetConnectionRefusedError):
                inetkit.connect("127.0.0.1", refused, timeout=5)
        assert open_fds() == before


def test_only_literals_without_a_zone_are_cached() -> None:
    assert _hostname.check_host("fe80::1%1") == "fe80::1%1"
    assert _hostname.check_host("[::1]") == "::1"
    assert _hostname.check_host("127.0.0.1") == "127.0.0.1"
    assert _hostname.check_host("LocalHost.") == "localhost."
    assert _hostname._LITERALS == {
        "[::1]": ("::1", socket.AF_INET6),
        "127.0.0.1": ("127.0.0.1", socket.AF_INET),
    }


def test_the_caches_stay_bounded() -> None:
    for i in range(_hostname.NORMALIZED_CACHE_SIZE + 10):
        _hostname.check_host(f"10.0.{i // 256}.{i % 256}")
    assert len(_hostname._NORMALIZED) <= _hostname.NORMALIZED_CACHE_SIZE
    assert len(_hostname._LITERALS) <= len(_hostname._NORMALIZED)
