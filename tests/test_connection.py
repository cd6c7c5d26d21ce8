"""The Connection handle's I/O on real loopback sockets."""

from __future__ import annotations

import array
import gc
import os
import socket
import threading
import time
from collections.abc import Callable

import pytest
from conftest import Server, open_fds, silent_listener

import inetkit
from inetkit import ErrorCode, Option, Protocol


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
        assert f"127.0.0.1:{echo_server.port}" in str(info.value)


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
