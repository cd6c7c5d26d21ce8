"""The Connection handle's I/O on real loopback sockets."""

from __future__ import annotations

import array
import gc
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from conftest import Server, open_fds, silent_listener

import inetkit
from inetkit import ErrorCode, Option, Protocol

if TYPE_CHECKING:
    from certs import PKI
    from tls_servers import Servers


def test_read_write_round_trip(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        assert conn.write(b"hello") == 5
        assert conn.read_exactly(5) == b"hello"
        assert conn.write(bytearray(b"abc")) == 3
        assert conn.write(memoryview(b"xyz")) == 3
        assert conn.read_exactly(6) == b"abcxyz"


def test_write_multibyte_buffer_counts_bytes(echo_server: Server) -> None:
    data = array.array("I", [1, 2, 3])
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        assert conn.write(data) == 12
        assert conn.read_exactly(12) == data.tobytes()


def test_write_refuses_str(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        with pytest.raises(TypeError, match="write_line"):
            conn.write("text")  # type: ignore[arg-type]


def test_read_returns_at_least_one_byte_and_at_most_max(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        conn.write(b"0123456789")
        got = b""
        while len(got) < 10:
            chunk = conn.read(3)
            assert 1 <= len(chunk) <= 3
            got += chunk
        assert got == b"0123456789"


def test_read_into_bytearray_and_memoryview(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        conn.write(b"abcdef")
        buf = bytearray(6)
        n = 0
        while n < 6:
            n += conn.read_into(memoryview(buf)[n:])
        assert buf == b"abcdef"
        with pytest.raises(TypeError):
            conn.read_into(b"readonly")


def test_read_into_serves_buffered_bytes_first(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        conn.write(b"line\nrest")
        assert conn.read_line() == b"line\n"
        buf = bytearray(4)
        assert conn.read_into(buf) == 4
        assert buf == b"rest"


def test_eof_gives_empty_bytes(make_server: Callable[..., Server]) -> None:
    def send_and_close(sock: socket.socket) -> None:
        sock.sendall(b"bye")

    server = make_server(send_and_close)
    with inetkit.connect("127.0.0.1", server.port, timeout=5) as conn:
        assert conn.read_exactly(3) == b"bye"
        assert conn.read() == b""
        assert conn.read_line() == b""
        assert conn.read_into(bytearray(10)) == 0


def test_read_exactly_raises_when_peer_closes_and_keeps_data(make_server: Callable[..., Server]) -> None:
    def short(sock: socket.socket) -> None:
        sock.sendall(b"12345")

    server = make_server(short)
    with inetkit.connect("127.0.0.1", server.port, timeout=5) as conn:
        with pytest.raises(inetkit.ConnectionClosedError) as info:
            conn.read_exactly(10)
        assert info.value.code is ErrorCode.CONNECTION_CLOSED
        assert "5 of 10" in str(info.value)
        assert isinstance(info.value, ConnectionError)
        # Nothing received is lost: the partial bytes stay readable.
        assert conn.read(100) == b"12345"


def test_read_line_terminators_and_final_line(make_server: Callable[..., Server]) -> None:
    def lines(sock: socket.socket) -> None:
        sock.sendall(b"one\r\ntwo\nthree")

    server = make_server(lines)
    with inetkit.connect("127.0.0.1", server.port, timeout=5) as conn:
        assert conn.read_line() == b"one\r\n"
        assert conn.read_line() == b"two\n"
        assert conn.read_line() == b"three"
        assert conn.read_line() == b""


def test_read_line_across_many_small_segments(make_server: Callable[..., Server]) -> None:
    def trickle(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for ch in b"slow line\n":
            sock.sendall(bytes([ch]))
            time.sleep(0.002)

    server = make_server(trickle)
    with inetkit.connect("127.0.0.1", server.port, timeout=5) as conn:
        assert conn.read_line() == b"slow line\n"


def test_read_line_long_lines_grow_buffer(echo_server: Server) -> None:
    big = b"x" * 200_000 + b"\n"
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=10) as conn:
        conn.write(big + b"after\n")
        assert conn.read_line(max_length=300_000) == big
        assert conn.read_line() == b"after\n"


def test_read_line_too_long(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        conn.write(b"a" * 20 + b"\n")
        with pytest.raises(inetkit.InetError) as info:
            conn.read_line(max_length=10)
        assert info.value.code is ErrorCode.LINE_TOO_LONG
        # The bytes stay buffered.
        assert conn.read_exactly(21) == b"a" * 20 + b"\n"


def test_read_line_limit_counts_content_not_terminator(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        conn.write(b"0123456789\r\n")
        assert conn.read_line(max_length=10) == b"0123456789\r\n"


def test_read_line_too_long_without_newline(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        conn.write(b"b" * 100)
        with pytest.raises(inetkit.InetError) as info:
            conn.read_line(max_length=50)
        assert info.value.code is ErrorCode.LINE_TOO_LONG


def test_iteration_yields_lines(make_server: Callable[..., Server]) -> None:
    def lines(sock: socket.socket) -> None:
        sock.sendall(b"a\nb\nc\n")

    server = make_server(lines)
    with inetkit.connect("127.0.0.1", server.port, timeout=5) as conn:
        assert list(conn) == [b"a\n", b"b\n", b"c\n"]


def test_write_line_str_and_bytes(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        assert conn.write_line("héllo") == len("héllo".encode()) + 2
        conn.write_line(b"raw")
        assert conn.read_line() == "héllo\r\n".encode()
        assert conn.read_line() == b"raw\r\n"
        with pytest.raises(TypeError):
            conn.write_line(42)  # type: ignore[arg-type]


def test_bulk_transfer_both_ways(echo_server: Server) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    received = bytearray()
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=20, options=Option.FREETHREAD) as conn:

        def reader() -> None:
            buf = bytearray(65536)
            while len(received) < len(payload):
                n = conn.read_into(buf)
                if not n:
                    return
                received.extend(buf[:n])

        thread = threading.Thread(target=reader)
        thread.start()
        assert conn.write(payload) == len(payload)
        thread.join(20)
    assert bytes(received) == payload


def test_read_timeout(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        conn.timeout = 0.2
        start = time.monotonic()
        with pytest.raises(inetkit.InetTimeoutError) as info:
            conn.read()
        elapsed = time.monotonic() - start
        assert info.value.code is ErrorCode.TIMED_OUT
        assert isinstance(info.value, TimeoutError)
        assert 0.15 < elapsed < 2.0
        assert f"127.0.0.1 port {echo_server.port}" in str(info.value)


def test_timeout_bounds_whole_call(make_server: Callable[..., Server]) -> None:
    def dribble(sock: socket.socket) -> None:
        for _ in range(40):
            sock.sendall(b"x")
            time.sleep(0.05)

    server = make_server(dribble)
    with inetkit.connect("127.0.0.1", server.port, timeout=5) as conn:
        conn.timeout = 0.3
        start = time.monotonic()
        with pytest.raises(inetkit.InetTimeoutError):
            conn.read_exactly(40)  # needs 2 s of dribble; the call as a whole has 0.3 s
        assert time.monotonic() - start < 1.5


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_timeout_setter_rejects_bad_values(echo_server: Server, bad: float) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        with pytest.raises(inetkit.InvalidArgumentError):
            conn.timeout = bad
        with pytest.raises(TypeError):
            conn.timeout = "1"  # type: ignore[assignment]
        conn.timeout = None
        assert conn.timeout is None


def test_write_timeout_reports_bytes_sent(make_server: Callable[..., Server]) -> None:
    release = threading.Event()

    def never_reads(sock: socket.socket) -> None:
        release.wait(10)

    server = make_server(never_reads)
    with inetkit.connect("127.0.0.1", server.port, timeout=5) as conn:
        conn.timeout = 0.3
        with pytest.raises(inetkit.InetTimeoutError) as info:
            conn.write(b"\0" * (64 * 1024 * 1024))
        assert info.value.bytes_sent is not None
        assert 0 < info.value.bytes_sent < 64 * 1024 * 1024
        assert "bytes were sent" in str(info.value)
        release.set()


def test_write_to_reset_peer_raises_reset(make_server: Callable[..., Server]) -> None:
    def reset(sock: socket.socket) -> None:
        sock.recv(1)  # reset only once the connection is surely up on both ends
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")

    server = make_server(reset)
    with inetkit.connect("127.0.0.1", server.port, timeout=5) as conn:
        conn.write(b"!")
        time.sleep(0.1)
        with pytest.raises(inetkit.InetConnectionError) as info:
            for _ in range(50):
                conn.write(b"x" * 65536)
                time.sleep(0.01)
        assert info.value.code in (ErrorCode.CONNECTION_RESET, ErrorCode.CONNECTION_ABORTED)
        assert info.value.bytes_sent is not None


def test_readiness(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        assert conn.is_writable()
        assert not conn.is_readable()
        conn.write(b"ping\n")
        assert conn.is_readable(timeout=2)
        assert conn.read_line() == b"ping\n"
        assert not conn.is_readable(0.05)


def test_shutdown_half_closes(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        conn.write(b"last words")
        conn.shutdown()
        # The echo server sees EOF after the data and closes; we still read.
        assert conn.read_exactly(10) == b"last words"
        assert conn.read() == b""


def test_close_is_idempotent_and_handle_closed(echo_server: Server) -> None:
    conn = inetkit.connect("127.0.0.1", echo_server.port, timeout=5)
    assert "open" in repr(conn)
    conn.close()
    conn.close()
    conn.disconnect()
    assert conn.closed
    assert conn.fileno() == -1
    assert "closed" in repr(conn)
    for call in (conn.read, lambda: conn.write(b"x"), conn.read_line, conn.shutdown, conn.is_readable):
        with pytest.raises(inetkit.InetError) as info:
            call()
        assert info.value.code is ErrorCode.HANDLE_CLOSED


def test_close_after_a_blocking_wait_closes_the_wake_descriptor() -> None:
    with silent_listener(64) as port:  # reads wait: nothing is ever sent
        before = open_fds()
        for _ in range(20):
            conn = inetkit.connect("127.0.0.1", port, timeout=5)
            conn.timeout = 0.01
            with pytest.raises(inetkit.InetTimeoutError):
                conn.read()  # the wait makes the wake-up descriptor
            assert conn._guard.wake_fd >= 0
            conn.close()
            assert conn._guard.wake_fd == -1
        assert open_fds() == before


def test_properties_and_repr(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        assert conn.host_name == "127.0.0.1"
        assert conn.port == echo_server.port
        assert conn.protocol is Protocol.TCP
        assert conn.options == Option.NONE
        assert conn.remote_address == ("127.0.0.1", echo_server.port)
        assert conn.local_address[0] == "127.0.0.1"
        assert conn.owner == threading.get_ident()
        assert conn.is_secure is False
        assert conn.security_info is None
        assert conn.timeout == 5
        assert conn.fileno() > 0
        text = repr(conn)
        assert "tcp" in text and f"127.0.0.1:{echo_server.port}" in text and "open" in text


def test_connection_cannot_be_constructed_directly() -> None:
    with pytest.raises(TypeError, match="connect"):
        inetkit.Connection()


def test_unclosed_handle_warns_and_closes(echo_server: Server) -> None:
    conn = inetkit.connect("127.0.0.1", echo_server.port, timeout=5)
    fd = conn.fileno()
    inode = os.fstat(fd).st_ino
    with pytest.warns(ResourceWarning, match="unclosed"):
        del conn
        gc.collect()
    # The descriptor is closed: gone, or reused for something else.
    try:
        assert os.fstat(fd).st_ino != inode
    except OSError:
        pass


def test_udp_datagrams(udp_echo: tuple[str, int]) -> None:
    host, port = udp_echo
    with inetkit.connect(host, port, Protocol.UDP, timeout=5) as conn:
        assert conn.protocol is Protocol.UDP
        assert conn.write(b"one") == 3
        assert conn.write(b"two") == 3
        assert conn.read() == b"one"
        assert conn.read() == b"two"
        conn.write(b"")
        assert conn.read() == b""  # an empty datagram
        big = bytes(range(256)) * 200
        conn.write(big)
        assert conn.read(65536) == big
        with pytest.raises(inetkit.InvalidArgumentError):
            conn.read_line()
        with pytest.raises(inetkit.InvalidArgumentError):
            conn.read_exactly(3)


def test_udp_refused_port_reports_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with inetkit.connect("127.0.0.1", port, Protocol.UDP, timeout=2) as conn:
        conn.write(b"anyone?")
        with pytest.raises(inetkit.InetConnectionRefusedError) as info:
            conn.read()
        assert info.value.code is ErrorCode.CONNECTION_REFUSED


@pytest.mark.parametrize("bad", [0, -5])
def test_read_argument_checks(echo_server: Server, bad: int) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        with pytest.raises(inetkit.InvalidArgumentError):
            conn.read(bad)
        with pytest.raises(TypeError):
            conn.read(1.5)  # type: ignore[arg-type]
        with pytest.raises(inetkit.InvalidArgumentError):
            conn.read_line(bad)
        with pytest.raises(TypeError):
            conn.read_exactly("3")  # type: ignore[arg-type]


def test_write_after_shutdown_says_so(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        conn.shutdown()
        with pytest.raises(inetkit.InetError, match=r"shutdown\(\)") as info:
            conn.write(b"late")
        assert info.value.code is ErrorCode.HANDLE_CLOSED


def test_oversized_datagram_is_the_callers_to_split(udp_echo: tuple[str, int]) -> None:
    with inetkit.connect(*udp_echo, Protocol.UDP, timeout=5) as conn:
        with pytest.raises(inetkit.InvalidArgumentError):
            conn.write(b"\0" * 70000)


# -- lines at full speed: read-ahead, mixing, owner checks ---------------------

#: Lines the read-ahead tests send: far more than one 64 KiB receive holds.
MANY_LINES = 5000


def numbered_lines(count: int = MANY_LINES) -> list[bytes]:
    return [b"line %05d %s\r\n" % (number, b"." * (number % 70)) for number in range(count)]


def mixed_reads(conn: inetkit.Connection, expected: bytes) -> bytes:
    """Read everything with iteration, read_line, read, read_exactly and read_into in turn."""
    got = bytearray()
    # Bounded: every turn reads at least one byte until EOF (len(expected) turns at most).
    for turn in range(1, len(expected) + 2):
        if turn % 5 == 0:
            for count, line in enumerate(conn, 1):
                got += line
                if count == 333:
                    break
            else:
                break  # the iteration reached EOF
        elif turn % 5 == 1:
            line = conn.read_line()
            if not line:
                break
            got += line
        elif turn % 5 == 2:
            got += conn.read(7)
        elif turn % 5 == 3:
            want = min(1000, len(expected) - len(got))
            got += conn.read_exactly(want)
        else:
            target = bytearray(97)
            got += target[: conn.read_into(target)]
    return bytes(got)


def test_mixing_iteration_with_other_reads_loses_nothing(make_server: Callable[..., Server]) -> None:
    payload = b"".join(numbered_lines()) + b"last line without terminator"

    def send(sock: socket.socket) -> None:
        sock.sendall(payload)

    server = make_server(send)
    with inetkit.connect("127.0.0.1", server.port, timeout=10) as conn:
        assert mixed_reads(conn, payload) == payload
        assert conn.read_line() == b""
        assert list(conn) == []


def test_iteration_yields_what_read_line_would(make_server: Callable[..., Server]) -> None:
    payload = b"".join(numbered_lines()) + b"a\rb\r\n\r\n\n" + b"tail"

    def send(sock: socket.socket) -> None:
        sock.sendall(payload)

    server = make_server(send)
    with inetkit.connect("127.0.0.1", server.port, timeout=10) as conn:
        by_iteration = list(conn)
    with inetkit.connect("127.0.0.1", server.port, timeout=10) as conn:
        by_read_line = list(iter(conn.read_line, b""))
    assert by_iteration == by_read_line
    assert b"".join(by_iteration) == payload
    assert by_iteration[-3:] == [b"\r\n", b"\n", b"tail"]


def test_iteration_stops_at_a_line_over_the_default_limit(make_server: Callable[..., Server]) -> None:
    long_line = b"L" * 70_000 + b"\n"

    def send(sock: socket.socket) -> None:
        sock.sendall(b"first\n" + long_line + b"after\n")

    server = make_server(send)
    with inetkit.connect("127.0.0.1", server.port, timeout=10) as conn:
        lines = iter(conn)
        assert next(lines) == b"first\n"
        with pytest.raises(inetkit.InetError) as info:
            next(lines)
        assert info.value.code is ErrorCode.LINE_TOO_LONG
        assert conn.read_line(max_length=70_000) == long_line  # it stayed buffered
        assert list(conn) == [b"after\n"]


def test_read_ahead_line_from_another_thread_is_refused(make_server: Callable[..., Server]) -> None:
    lines = numbered_lines(50)

    def send(sock: socket.socket) -> None:
        sock.sendall(b"".join(lines))

    server = make_server(send)
    with inetkit.connect("127.0.0.1", server.port, timeout=10) as conn:
        assert conn.read_line() == lines[0]
        # Wait (bounded) until the next line is read ahead: the fast path is what is checked.
        for _ in range(500):
            if conn._buffer.region.tell() < conn._buffer._rend:
                break
            assert conn.read_line() == lines[1]
            lines.pop(1)
        errors: list[BaseException] = []

        def intruder() -> None:
            for call in (conn.read_line, lambda: next(iter(conn)), lambda: next(conn)):
                try:
                    call()
                except inetkit.OwnershipError as exc:
                    errors.append(exc)

        thread = threading.Thread(target=intruder)
        thread.start()
        thread.join(5)
        assert [exc.code for exc in errors] == [ErrorCode.NOT_HANDLE_OWNER] * 3
        # Nothing was taken by the refused calls.
        assert list(conn) == lines[1:]


def test_iterator_of_the_previous_owner_stops_after_attach(make_server: Callable[..., Server]) -> None:
    lines = numbered_lines(100)

    def send(sock: socket.socket) -> None:
        sock.sendall(b"".join(lines))

    server = make_server(send)
    with inetkit.connect("127.0.0.1", server.port, timeout=10) as conn:
        mine = iter(conn)
        got = [next(mine), next(mine), next(mine)]
        taken_over: list[bytes] = []

        def new_owner() -> None:
            conn.attach_thread()
            taken_over.append(conn.read_line())
            taken_over.extend(conn)

        thread = threading.Thread(target=new_owner)
        thread.start()
        thread.join(5)
        with pytest.raises(inetkit.OwnershipError) as info:
            next(mine)
        assert info.value.code is ErrorCode.NOT_HANDLE_OWNER
        assert got + taken_over == lines  # every line once, in order
        conn.attach_thread()


def test_read_ahead_lines_after_close_raise_handle_closed(make_server: Callable[..., Server]) -> None:
    def send(sock: socket.socket) -> None:
        sock.sendall(b"".join(numbered_lines(100)))
        time.sleep(0.5)  # keep the connection open while the client reads

    server = make_server(send)
    conn = inetkit.connect("127.0.0.1", server.port, timeout=10)
    lines = iter(conn)
    next(lines)
    conn.read_line()
    conn.close()
    for call in (conn.read_line, lambda: next(lines), lambda: next(iter(conn))):
        with pytest.raises(inetkit.InetError) as info:
            call()
        assert info.value.code is ErrorCode.HANDLE_CLOSED


def test_free_thread_readers_iterate_together(make_server: Callable[..., Server]) -> None:
    lines = numbered_lines()

    def send(sock: socket.socket) -> None:
        sock.sendall(b"".join(lines))

    server = make_server(send)
    seen: list[list[bytes]] = [[], [], []]
    with inetkit.connect("127.0.0.1", server.port, timeout=10, options=Option.FREETHREAD) as conn:

        def iterate(slot: int) -> None:
            seen[slot].extend(conn)

        def by_read_line() -> None:
            while line := conn.read_line():
                seen[2].append(line)

        threads = [threading.Thread(target=iterate, args=(slot,)) for slot in (0, 1)]
        threads.append(threading.Thread(target=by_read_line))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in threads)
    # Every line whole and exactly once; each reader saw its lines in stream order.
    assert sorted(seen[0] + seen[1] + seen[2]) == sorted(lines)
    for part in seen:
        assert part == sorted(part)


def test_udp_handle_refuses_iteration(udp_echo: tuple[str, int]) -> None:
    with inetkit.connect(*udp_echo, Protocol.UDP, timeout=5) as conn:
        with pytest.raises(inetkit.InvalidArgumentError):
            iter(conn)
        with pytest.raises(inetkit.InvalidArgumentError):
            conn.read_line()


def test_idle_handle_keeps_no_read_ahead_memory(make_server: Callable[..., Server]) -> None:
    lines = numbered_lines(2000)
    ready = threading.Event()

    def send(sock: socket.socket) -> None:
        sock.sendall(b"".join(lines))
        ready.wait(5)

    server = make_server(send)
    with inetkit.connect("127.0.0.1", server.port, timeout=10) as conn:
        for expected in lines:
            assert conn.read_line() == expected
        buffer = conn._buffer
        assert len(buffer) == 0
        held = sum(sys.getsizeof(item) for item in gc.get_referents(buffer) if not isinstance(item, type))
        assert held < 1024
        ready.set()


def test_tls_lines_mixed_and_iterated(pki: PKI, servers: Servers) -> None:
    payload = b"".join(numbered_lines()) + b"end"

    def send(tls: socket.socket, _seen: object) -> None:
        tls.sendall(payload)
        tls.unwrap()

    server = servers.python(pki.servers["valid"].context(), app=send)
    credentials = inetkit.SecurityCredentials(ca_file=pki.ca_file)
    with inetkit.connect(
        "127.0.0.1", server.port, timeout=10, options=Option.SECURE, credentials=credentials
    ) as conn:
        assert mixed_reads(conn, payload) == payload
    with inetkit.connect(
        "127.0.0.1", server.port, timeout=10, options=Option.SECURE, credentials=credentials
    ) as conn:
        assert list(conn) == [*numbered_lines(), b"end"]


def test_explicit_line_limit_applies_to_read_ahead_lines(make_server: Callable[..., Server]) -> None:
    lines = [b"short\n", b"s" * 60 + b"\n", b"y" * 100 + b"\r\n", b"z" * 50 + b"\r\n", b"end\n", b"last\n"]

    def send(sock: socket.socket) -> None:
        sock.sendall(b"".join(lines))

    server = make_server(send)
    with inetkit.connect("127.0.0.1", server.port, timeout=10) as conn:
        assert conn.read_line(max_length=50) == lines[0]
        with pytest.raises(inetkit.InetError) as info:
            conn.read_line(max_length=50)  # served from read-ahead: still checked
        assert info.value.code is ErrorCode.LINE_TOO_LONG
        assert conn.read_line(max_length=60) == lines[1]
        with pytest.raises(inetkit.InetError):
            conn.read_line(max_length=99)
        assert conn.read_line(max_length=100) == lines[2]  # the terminator does not count
        assert conn.read_line(max_length=50) == lines[3]
        for bad in (0, -1):
            with pytest.raises(inetkit.InvalidArgumentError):
                conn.read_line(max_length=bad)
        with pytest.raises(TypeError):
            conn.read_line(max_length=True)
        with pytest.raises(TypeError):
            conn.read_line(max_length="10")  # type: ignore[arg-type]
        assert list(conn) == lines[4:]  # the refused calls took nothing


def test_iteration_timeout_and_cancel_keep_the_partial_line(make_server: Callable[..., Server]) -> None:
    go_on = threading.Event()

    def send(sock: socket.socket) -> None:
        sock.sendall(b"one\ntwo\npart")
        go_on.wait(10)
        sock.sendall(b"ial\nthree\n")

    server = make_server(send)
    with inetkit.connect("127.0.0.1", server.port, timeout=0.3) as conn:
        lines = iter(conn)
        assert next(lines) == b"one\n"
        assert next(lines) == b"two\n"
        with pytest.raises(inetkit.InetTimeoutError):
            next(lines)  # the call as a whole is bounded by the timeout
        conn.timeout = 10
        assert conn.is_readable()  # "part" is buffered

        def cancel_soon() -> None:
            time.sleep(0.2)
            conn.cancel()

        canceller = threading.Thread(target=cancel_soon)
        canceller.start()
        with pytest.raises(inetkit.CancelledError):
            conn.read_line()
        canceller.join(5)
        go_on.set()
        assert list(conn) == [b"partial\n", b"three\n"]


def test_each_handle_buffers_its_own_bytes(make_server: Callable[..., Server]) -> None:
    # Handles that have not received anything share one empty buffer until
    # their first receive; what one receives must never show on another.
    counter = iter(range(100))
    lock = threading.Lock()

    def send(sock: socket.socket) -> None:
        with lock:
            number = next(counter)
        sock.sendall(f"first {number}\r\nsecond {number}\r\n".encode())
        time.sleep(0.5)  # keep the connection open while the client reads

    server = make_server(send)
    with (
        inetkit.connect("127.0.0.1", server.port, timeout=10) as one,
        inetkit.connect("127.0.0.1", server.port, timeout=10) as two,
        inetkit.connect("127.0.0.1", server.port, timeout=10) as idle,
    ):
        first_one = one.read_line()  # buffers "second" behind it
        first_two = two.read_line()
        number_one = first_one.split()[1]
        number_two = first_two.split()[1]
        assert number_one != number_two
        assert one.read_line() == b"second " + number_one + b"\r\n"
        expected = b"second " + number_two
        assert two.read_exactly(len(expected)) == expected
        assert idle.is_readable(5)
        assert idle.read_line().startswith(b"first ")
    assert one.closed and two.closed and idle.closed


def test_messages_name_the_handle(echo_server: Server) -> None:
    port = echo_server.port
    for host, named in (("127.0.0.1", f"127.0.0.1 port {port}:"), ("localhost", f"localhost port {port} (")):
        conn = inetkit.connect(host, port, timeout=5)
        conn.close()
        with pytest.raises(inetkit.InetError) as info:
            conn.read(1)
        assert info.value.code is ErrorCode.HANDLE_CLOSED
        assert named in str(info.value)
