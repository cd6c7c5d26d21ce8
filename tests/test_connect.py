"""`inetkit.connect` end to end on loopback: arguments, options, resolution, the race, errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import Server, black_hole, dual_stack_port, free_port, open_fds, settled_fds, silent_listener

import inetkit
from inetkit import ErrorCode, KeepAlive, Option, Protocol

# -- arguments -----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"host": None, "port": 80},
        {"host": b"localhost", "port": 80},
        {"host": "localhost", "port": 80.0},
        {"host": "localhost", "port": True},
        {"host": "localhost", "port": None},
        {"host": "localhost", "port": 80, "options": "x"},
        {"host": "localhost", "port": 80, "timeout": "5"},
        {"host": "localhost", "port": 80, "protocol": "tcp"},
        {"host": "localhost", "port": 80, "local_address": "127.0.0.1"},
        {"host": "localhost", "port": 80, "resolver": object()},
        {"host": "localhost", "port": 80, "credentials": {"ca_file": "x"}},
        {"host": "localhost", "port": 80, "keepalive": (1, 2, 3)},
    ],
)
def test_wrong_types_raise_type_error(kwargs: dict[str, object]) -> None:
    before = open_fds()
    with pytest.raises(TypeError):
        inetkit.connect(**kwargs)  # type: ignore[arg-type]
    assert open_fds() == before


@pytest.mark.parametrize(
    ("kwargs", "code", "fragment"),
    [
        ({"host": "", "port": 80}, ErrorCode.INVALID_HOST_NAME, "empty"),
        ({"host": "https://example.com/", "port": 443}, ErrorCode.INVALID_HOST_NAME, "connect_url"),
        ({"host": "127.1", "port": 80}, ErrorCode.INVALID_HOST_NAME, "127.1"),
        ({"host": "localhost", "port": 0}, ErrorCode.INVALID_PORT, "0"),
        ({"host": "localhost", "port": 70000}, ErrorCode.INVALID_PORT, "70000"),
        ({"host": "localhost", "port": "no-such-service"}, ErrorCode.INVALID_PORT, "no-such-service"),
        ({"host": "localhost", "port": 80, "timeout": 0}, ErrorCode.INVALID_ARGUMENT, "timeout"),
        ({"host": "localhost", "port": 80, "timeout": float("nan")}, ErrorCode.INVALID_ARGUMENT, "timeout"),
        ({"host": "localhost", "port": 80, "options": 1 << 30}, ErrorCode.INVALID_ARGUMENT, "unknown"),
        ({"host": "localhost", "port": 80, "protocol": 99}, ErrorCode.INVALID_ARGUMENT, "protocol"),
        ({"host": "localhost", "port": 80, "attempt_delay": 0}, ErrorCode.INVALID_ARGUMENT, "attempt_delay"),
        (
            {"host": "localhost", "port": 80, "options": Option.BROADCAST},
            ErrorCode.INVALID_ARGUMENT,
            "BROADCAST",
        ),
        (
            {"host": "localhost", "port": 80, "protocol": Protocol.UDP, "options": Option.SECURE},
            ErrorCode.INVALID_ARGUMENT,
            "DTLS",
        ),
        (
            {"host": "localhost", "port": 80, "protocol": Protocol.UDP, "starttls": "smtp"},
            ErrorCode.INVALID_ARGUMENT,
            "starttls",
        ),
        (
            {"host": "localhost", "port": 25, "options": Option.SECURE, "starttls": "smtp"},
            ErrorCode.INVALID_ARGUMENT,
            "exclude",
        ),
        (
            {"host": "localhost", "port": 25, "starttls": "gopher"},
            ErrorCode.INVALID_ARGUMENT,
            "gopher",
        ),
        (
            {
                "host": "localhost",
                "port": 80,
                "options": Option.RESERVEDPORT,
                "local_address": ("127.0.0.1", 5000),
            },
            ErrorCode.INVALID_ARGUMENT,
            "RESERVEDPORT",
        ),
        (
            {"host": "localhost", "port": 80, "local_address": ("not an ip", 0)},
            ErrorCode.INVALID_HOST_NAME,
            "local_address",
        ),
    ],
)
def test_invalid_values_refused_before_io(kwargs: dict[str, object], code: ErrorCode, fragment: str) -> None:
    before = open_fds()
    with pytest.raises(inetkit.InvalidArgumentError) as info:
        inetkit.connect(**kwargs)  # type: ignore[arg-type]
    assert info.value.code is code
    assert isinstance(info.value, ValueError)
    assert fragment in str(info.value)
    assert open_fds() == before


def test_local_address_family_mismatch() -> None:
    with pytest.raises(inetkit.InvalidArgumentError, match="local_address ::1 is IPv6"):
        inetkit.connect("127.0.0.1", 80, local_address=("::1", 0))


def test_service_name_port(make_server: object) -> None:
    # A service name is resolved without I/O; "echo" is 7, which is refused here.
    with pytest.raises(inetkit.InetConnectionRefusedError):
        inetkit.connect("127.0.0.1", "echo", timeout=2)


# -- success paths and options ------------------------------------------


def dup_socket(conn: inetkit.Connection) -> socket.socket:
    return socket.socket(fileno=os.dup(conn.fileno()))


def test_options_are_applied(echo_server: Server) -> None:
    opts = Option.NODELAY | Option.KEEPALIVE | Option.DONTROUTE | Option.NOINHERIT
    keep = KeepAlive(idle=30, interval=5, count=4)
    with inetkit.connect("127.0.0.1", echo_server.port, options=opts, keepalive=keep, timeout=5) as conn:
        assert conn.options & opts == opts
        with dup_socket(conn) as sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
        assert not os.get_inheritable(conn.fileno())


def test_options_off_by_default(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn, dup_socket(conn) as sock:
        assert not sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE)
        assert not os.get_inheritable(conn.fileno())


def test_keepalive_argument_implies_the_flag(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, keepalive=KeepAlive(idle=60), timeout=5) as conn:
        assert conn.options & Option.KEEPALIVE
        with dup_socket(conn) as sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60


def test_keepalive_values_checked() -> None:
    with pytest.raises(inetkit.InvalidArgumentError):
        KeepAlive(idle=0)
    with pytest.raises(TypeError):
        KeepAlive(count=1.5)  # type: ignore[arg-type]


def test_broadcast_on_udp(udp_echo: tuple[str, int]) -> None:
    with inetkit.connect(*udp_echo, Protocol.UDP, options=Option.BROADCAST, timeout=5) as conn:
        with dup_socket(conn) as sock:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
            assert sock.type == socket.SOCK_DGRAM


def test_local_address_binding(echo_server: Server) -> None:
    port = free_port()
    with inetkit.connect("127.0.0.1", echo_server.port, local_address=("127.0.0.1", port), timeout=5) as c:
        assert c.local_address == ("127.0.0.1", port)


def test_local_address_in_use(echo_server: Server) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(inetkit.InetConnectionError) as info:
            inetkit.connect("127.0.0.1", echo_server.port, local_address=("127.0.0.1", port), timeout=5)
        assert info.value.code is ErrorCode.ADDRESS_IN_USE


def test_local_address_not_on_this_machine(echo_server: Server) -> None:
    with pytest.raises(inetkit.InetConnectionError) as info:
        inetkit.connect("127.0.0.1", echo_server.port, local_address=("192.0.2.1", 0), timeout=5)
    assert info.value.code is ErrorCode.ADDRESS_NOT_AVAILABLE


def test_reserved_port_as_root(echo_server: Server) -> None:
    if os.geteuid() != 0:
        pytest.skip("binding ports below 1024 needs root here")
    with inetkit.connect("127.0.0.1", echo_server.port, options=Option.RESERVEDPORT, timeout=5) as conn:
        assert 512 <= conn.local_address[1] <= 1023


def test_reserved_port_refused_for_unprivileged_process(echo_server: Server) -> None:
    if os.geteuid() != 0:
        pytest.skip("the test drops from root to an unprivileged uid")
    code = textwrap.dedent(
        f"""
        import os, sys
        import inetkit  # before dropping privileges: the interpreter lives under /root
        from inetkit import connect  # and the connect driver, which loads on first use
        os.setgid(65534)
        os.setuid(65534)
        try:
            connect("127.0.0.1", {echo_server.port}, options=inetkit.Option.RESERVEDPORT, timeout=5)
        except inetkit.InetError as exc:
            print(exc.code.name)
            print(exc)
            sys.exit(0)
        print("CONNECTED")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "PERMISSION_DENIED"
    assert "RESERVEDPORT" in lines[1]
    assert "CAP_NET_BIND_SERVICE" in lines[1]


# -- resolution and the race ------------------------------------------------


def test_localhost_through_the_resolver(echo_server: Server) -> None:
    with inetkit.connect("localhost", echo_server.port, timeout=5) as conn:
        assert conn.host_name == "localhost"
        assert conn.remote_address[0] == "127.0.0.1"
        assert conn.trace.resolution is not None
        assert conn.trace.resolution.source in ("system_hosts", "dns")


def test_a_held_handle_keeps_readings_not_the_connect(echo_server: Server) -> None:
    # Until its trace is asked for, a handle keeps the connect's readings, but
    # not what only the connect needed (the race, the attempt handles); the
    # plan is the handle's own (one shared plan per set of arguments).
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        readings = conn._trace_source
        assert readings is not None
        assert readings.handles == {} and not hasattr(readings, "race")  # type: ignore[attr-defined]
        assert readings.plan is conn._plan  # type: ignore[attr-defined]
        trace = conn.trace
        assert trace.host == "127.0.0.1" and trace.port == echo_server.port
        assert trace.resolution is not None and trace.resolution.addresses == ["127.0.0.1"]
        (attempt,) = trace.attempts
        assert attempt.outcome == "connected" and attempt.start >= 0.0 and attempt.duration is not None
        assert trace.total is not None and trace.total >= attempt.start + attempt.duration - 1e-9
        assert conn._trace_source is None  # the readings go once the trace is built


def test_overrides_and_unicode_names(echo_server: Server) -> None:
    resolver = inetkit.Resolver(overrides={"bücher.test": "127.0.0.1"}, system_hosts=False, dns=False)
    with inetkit.connect("Bücher.TEST", echo_server.port, resolver=resolver, timeout=5) as conn:
        assert conn.host_name == "xn--bcher-kva.test"
        assert conn.trace.resolution is not None
        assert conn.trace.resolution.source == "overrides"
        assert conn.trace.attempts[0].outcome == "connected"


def test_host_not_found_names_host() -> None:
    resolver = inetkit.Resolver(system_hosts=False, dns=False)
    with pytest.raises(inetkit.HostNotFoundError) as info:
        inetkit.connect("nowhere.test", 80, resolver=resolver, timeout=5)
    assert info.value.code is ErrorCode.HOST_NOT_FOUND
    assert "nowhere.test" in str(info.value)
    assert info.value.trace is not None


def test_refused_names_address() -> None:
    port = free_port()
    with pytest.raises(inetkit.InetConnectionRefusedError) as info:
        inetkit.connect("127.0.0.1", port, timeout=5)
    assert info.value.code is ErrorCode.CONNECTION_REFUSED
    assert isinstance(info.value, ConnectionRefusedError)
    assert str(port) in str(info.value) and "127.0.0.1" in str(info.value)
    assert info.value.trace is not None
    assert info.value.trace.attempts[0].outcome == "failed"


def test_dual_stack_black_holed_ipv6_falls_back_after_attempt_delay() -> None:
    """PREFER_IPV6, ::1 black-holed and 127.0.0.1 live on the same port: connects after ~250 ms."""
    with dual_stack_port() as port, black_hole("::1", port):
        resolver = inetkit.Resolver(overrides={"dual.test": ["::1", "127.0.0.1"]})
        start = time.monotonic()
        with inetkit.connect(
            "dual.test", port, timeout=10, options=Option.PREFER_IPV6, resolver=resolver
        ) as conn:
            elapsed = time.monotonic() - start
            assert conn.remote_address == ("127.0.0.1", port)
            attempts = conn.trace.attempts
        print(f"dual-stack fallback connected in {elapsed * 1000:.1f} ms")
        assert elapsed < 2.0
        assert [a.address for a in attempts] == ["::1", "127.0.0.1"]
        assert attempts[0].outcome == "abandoned"
        assert attempts[1].outcome == "connected"
        assert attempts[1].start >= inetkit.CONNECTION_ATTEMPT_DELAY


def test_dual_stack_ipv4_first_by_default() -> None:
    with dual_stack_port() as port, black_hole("::1", port):
        resolver = inetkit.Resolver(overrides={"dual.test": ["::1", "127.0.0.1"]})
        start = time.monotonic()
        # A long attempt delay: IPv4 must win before a second attempt could start.
        with inetkit.connect("dual.test", port, timeout=10, resolver=resolver, attempt_delay=5.0) as conn:
            assert conn.remote_address[0] == "127.0.0.1"
            assert len(conn.trace.attempts) == 1
        assert time.monotonic() - start < 2.5


def test_all_black_holed_times_out_at_deadline() -> None:
    with black_hole("127.0.0.1") as port4:
        resolver = inetkit.Resolver(overrides={"void.test": ["127.0.0.1"]})
        start = time.monotonic()
        with pytest.raises(inetkit.InetTimeoutError) as info:
            inetkit.connect("void.test", port4, timeout=0.6, resolver=resolver)
        elapsed = time.monotonic() - start
        assert 0.5 < elapsed < 2.0
        assert info.value.code is ErrorCode.TIMED_OUT
        assert info.value.trace is not None


def test_refused_then_live_moves_on_at_once(echo_server: Server) -> None:
    # ::1 refuses on this port (nothing listens there), 127.0.0.1 answers.
    resolver = inetkit.Resolver(overrides={"mixed.test": ["::1", "127.0.0.1"]})
    start = time.monotonic()
    # A long attempt delay: only an immediate start after the refusal can be fast.
    with inetkit.connect(
        "mixed.test",
        echo_server.port,
        options=Option.PREFER_IPV6,
        resolver=resolver,
        timeout=10,
        attempt_delay=5.0,
    ) as conn:
        assert conn.remote_address[0] == "127.0.0.1"
        assert conn.trace.attempts[0].outcome == "failed"
        assert conn.trace.attempts[1].start < 2.5
    assert time.monotonic() - start < 2.5


def test_every_address_failing_lists_attempts() -> None:
    port = free_port()
    resolver = inetkit.Resolver(overrides={"dead.test": ["127.0.0.1", "::1"]})
    with pytest.raises(inetkit.InetConnectionRefusedError) as info:
        inetkit.connect("dead.test", port, resolver=resolver, timeout=5)
    exc = info.value
    assert exc.code is ErrorCode.CONNECTION_REFUSED
    assert len(exc.attempts) == 2
    assert "127.0.0.1" in str(exc) and "::1" in str(exc)
    assert "2" in str(exc)


class SlowResolver(inetkit.Resolver):
    def resolve(self, host, port, protocol, deadline):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return [(socket.AF_INET, ("127.0.0.1", port))]


def test_custom_resolver_hook(echo_server: Server) -> None:
    with inetkit.connect("custom.test", echo_server.port, resolver=SlowResolver(), timeout=5) as conn:
        assert conn.trace.resolution is not None
        assert conn.trace.resolution.source == "custom"
        assert conn.trace.resolution.duration >= 0.3


# -- resources -----------------------------------------------------------------


def test_no_descriptor_leaks_over_many_connects() -> None:
    """1,000 failed and 1,000 successful connects leave the descriptor count unchanged."""
    refused = free_port()
    with silent_listener(4096) as port:
        # Warm-up: lazily created module state (resolver caches, ...) is not a leak.
        inetkit.connect("127.0.0.1", port, timeout=5).close()
        before = open_fds()
        for _ in range(1000):
            with pytest.raises(inetkit.InetConnectionRefusedError):
                inetkit.connect("127.0.0.1", refused, timeout=5)
        for _ in range(1000):
            inetkit.connect("127.0.0.1", port, timeout=5).close()
        assert settled_fds(before) == before


def test_failed_resolution_and_race_leak_nothing() -> None:
    before = open_fds()
    resolver = inetkit.Resolver(overrides={"dead.test": ["127.0.0.1", "::1"]}, dns=False)
    port = free_port()
    for _ in range(100):
        with pytest.raises(inetkit.InetConnectionRefusedError):
            inetkit.connect("dead.test", port, resolver=resolver, timeout=5)
        with pytest.raises(inetkit.HostNotFoundError):
            inetkit.connect("absent.test", port, resolver=resolver, timeout=5)
    assert open_fds() == before


def test_unreachable_codes_in_a_private_network_namespace() -> None:
    """NETWORK_UNREACHABLE and HOST_UNREACHABLE, in a namespace this test makes (only loopback)."""
    from conftest import require_program

    unshare = require_program("unshare")
    ip = require_program("ip")
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    code = textwrap.dedent(
        """
        import inetkit
        for host in ("10.9.0.1", "10.8.0.1"):
            try:
                inetkit.connect(host, 80, timeout=2)
            except inetkit.InetConnectionError as exc:
                print(host, exc.code.name, type(exc).__name__)
        """
    )
    script = f"{ip} link set lo up && {ip} route add unreachable 10.9.0.0/16 && {sys.executable} -c '{code}'"
    result = subprocess.run(
        [unshare, "-n", "sh", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "10.9.0.1 HOST_UNREACHABLE InetConnectionError",
        "10.8.0.1 NETWORK_UNREACHABLE InetConnectionError",
    ]
