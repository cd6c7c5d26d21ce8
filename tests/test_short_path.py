"""The short path of `connect`: plain TCP to an IP literal seen before.

`connect` skips resolution and the race for such a call, and keeps the trace
as clock readings until somebody asks for it. Everything a caller can see
must be the same as on the full path; these tests compare the two.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from conftest import Server, black_hole, free_port, open_fds, silent_listener

import inetkit
from inetkit import ErrorCode, Option, _hostname


@pytest.fixture(autouse=True)
def cold_host_cache() -> Iterator[None]:
    """Each test starts with no host known, so its first connect takes the full path."""
    _hostname._NORMALIZED.clear()
    _hostname._LITERALS.clear()
    yield
    _hostname._NORMALIZED.clear()
    _hostname._LITERALS.clear()


def took_short_path(conn: inetkit.Connection) -> bool:
    return conn._lazy_trace is not None


def test_the_second_connect_to_a_literal_takes_the_short_path(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as full:
        assert not took_short_path(full)
        full.write_line(b"one")
        assert full.read_line() == b"one\r\n"
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as short:
        assert took_short_path(short)
        short.write_line(b"two")
        assert short.read_line() == b"two\r\n"
        for conn in (full, short):
            assert conn.host_name == "127.0.0.1"
            assert conn.remote_address == ("127.0.0.1", echo_server.port)
            assert conn.timeout == 5.0
            assert conn.options is Option.NONE
            assert conn.protocol is inetkit.Protocol.TCP
        assert short.local_address[0] == "127.0.0.1"
        assert repr(short).startswith(f"<inetkit.Connection tcp 127.0.0.1:{echo_server.port} 127.0.0.1:")


def test_short_path_trace_matches_the_full_path(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as full:
        full_trace = full.trace
    started = time.monotonic()
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as short:
        elapsed = time.monotonic() - started
        assert took_short_path(short)
        trace = short.trace
        assert short.trace is trace  # built once, then kept
    for one in (full_trace, trace):
        assert one.host == "127.0.0.1" and one.port == echo_server.port
        assert one.resolution is not None
        assert one.resolution.source == "literal"
        assert one.resolution.addresses == ["127.0.0.1"]
        (attempt,) = one.attempts
        assert attempt.outcome == "connected"
        assert attempt.address == "127.0.0.1" and attempt.port == echo_server.port
        assert attempt.error is None
        assert attempt.duration is not None and attempt.duration >= 0
        assert one.total is not None and one.total >= attempt.start + attempt.duration
    assert trace.total is not None and trace.total <= elapsed
    assert trace.format().splitlines()[1].startswith("  resolve: 1 address(es) from literal")


def test_short_path_for_ipv6_literals_with_and_without_brackets(make_server: object) -> None:
    server = make_server(host="::1")  # type: ignore[operator]
    for host in ("[::1]", "[::1]", "0:0::1", "0:0::1"):
        with inetkit.connect(host, server.port, timeout=5) as conn:
            assert conn.host_name == "::1"
            assert conn.remote_address == ("::1", server.port)
            conn.write_line(b"six")
            assert conn.read_line() == b"six\r\n"
            assert conn.trace.attempts[0].address == "::1"
    assert took_short_path(conn)


def test_refused_on_the_short_path_carries_the_same_trace() -> None:
    port = free_port()
    errors = []
    for _ in range(2):  # full path, then short path
        with pytest.raises(inetkit.InetConnectionRefusedError) as info:
            inetkit.connect("127.0.0.1", port, timeout=5)
        errors.append(info.value)
    assert "127.0.0.1" in _hostname._LITERALS
    for error in errors:
        assert error.code is ErrorCode.CONNECTION_REFUSED
        assert f"127.0.0.1:{port}" in str(error) or f"127.0.0.1 port {port}" in str(error)
        assert error.trace is not None
        assert error.trace.resolution is not None and error.trace.resolution.source == "literal"
        (attempt,) = error.trace.attempts
        assert attempt.outcome == "failed"
        assert isinstance(attempt.error, inetkit.InetConnectionRefusedError)
        assert error.trace.total is not None
    assert str(errors[0]) == str(errors[1])


def test_short_path_keeps_the_deadline() -> None:
    with black_hole("127.0.0.1") as port:
        with pytest.raises(inetkit.InetConnectionRefusedError):
            inetkit.connect("127.0.0.1", free_port(), timeout=5)  # makes 127.0.0.1 known
        started = time.monotonic()
        with pytest.raises(inetkit.InetTimeoutError) as info:
            inetkit.connect("127.0.0.1", port, timeout=0.3)
        elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 2.0
    assert info.value.code is ErrorCode.TIMED_OUT
    assert info.value.trace is not None
    (attempt,) = info.value.trace.attempts
    assert attempt.outcome == "timed out"


@pytest.mark.parametrize(
    ("options", "short"),
    [
        (Option.FREETHREAD, True),
        (Option.NOINHERIT | Option.PREFER_IPV6, True),
        (Option.NODELAY, False),  # a socket option to set: the full path
        (Option.KEEPALIVE, False),
    ],
)
def test_which_options_take_the_short_path(echo_server: Server, options: Option, short: bool) -> None:
    inetkit.connect("127.0.0.1", echo_server.port, timeout=5).close()
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5, options=options) as conn:
        assert took_short_path(conn) is short
        assert conn.options == options
        assert (conn.owner is None) is bool(options & Option.FREETHREAD)
        conn.write_line(b"x")
        assert conn.read_line() == b"x\r\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": None},
        {"protocol": inetkit.Protocol.UDP},
        {"local_address": ("127.0.0.1", 0)},
        {"attempt_delay": 0.1},
        {"resolver": inetkit.Resolver()},
        {"port": "7"},
    ],
)
def test_anything_else_takes_the_full_path(make_server: object, kwargs: dict[str, object]) -> None:
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
        assert not took_short_path(conn)
        assert conn.trace.resolution is not None and conn.trace.resolution.source == "literal"


def test_short_path_leaks_no_descriptor() -> None:
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
