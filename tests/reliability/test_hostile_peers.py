"""Hostile peers on loopback: trickled handshakes, resets, garbage, truncation, peers that never read.

Every case runs against a real peer (``peers.peer``), inside ``measure``,
which also checks that no descriptor or thread outlives the case. TLS_TRUNCATED
on a bare FIN, plaintext ``bytes_sent`` for TLS writes and a huge connect
timeout are in ``test_tls_end_and_huge_timeouts.py``.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import tracemalloc
from typing import Any

import pytest

import inetkit
from inetkit import (
    ErrorCode,
    InetConnectionResetError,
    InetError,
    InetTimeoutError,
    Option,
    SecurityCredentials,
    SecurityError,
)

from .conftest import Measure
from .peers import Trickle, peer, read_some, reset

#: Bound on any helper wait in this module.
WAIT_LIMIT = 10.0
#: The connect deadline for the trickle case: far shorter than the trickled handshake.
TRICKLE_DEADLINE = 0.5
#: Pause between trickled bytes: every byte is prompt, the handshake as a whole is not.
TRICKLE_PAUSE = 0.01
#: What a peer that never reads is sent: far more than the kernel buffers hold.
FLOOD = 64 << 20
#: Size of the line without a newline that read_line is fed.
LONG_LINE = 10 << 20
#: read_line must find the limit with memory bounded well below the line's size.
LINE_MEMORY_LIMIT = 4 << 20


@pytest.fixture(scope="module")
def tls(pki: Any) -> tuple[ssl.SSLContext, SecurityCredentials]:
    return pki.servers["valid"].context(), SecurityCredentials(ca_file=pki.ca_file)


def secure(port: int, creds: SecurityCredentials, timeout: float = 5.0) -> inetkit.Connection:
    return inetkit.connect("localhost", port, timeout=timeout, options=Option.SECURE, credentials=creds)


# -- the handshake ------------------------------------------------------------------


def test_a_trickled_handshake_is_bounded_by_the_one_connect_deadline(
    tls: tuple[ssl.SSLContext, SecurityCredentials], measure: Measure
) -> None:
    context, creds = tls
    stop = threading.Event()
    with measure("TLS handshake trickled 1 byte / 10 ms", f"connect(timeout={TRICKLE_DEADLINE})") as case:
        with peer(Trickle(context, TRICKLE_PAUSE, stop)) as port:
            started = time.monotonic()
            with pytest.raises(InetTimeoutError) as info:
                secure(port, creds, timeout=TRICKLE_DEADLINE)
            case.saw(time.monotonic() - started)
            stop.set()
        assert info.value.code is ErrorCode.TIMED_OUT
        # Each byte came within 10 ms; only the one deadline over the whole
        # handshake can end this (the full trickle takes tens of seconds).
        assert case.worst < WAIT_LIMIT
        case.outcome = "InetTimeoutError/TIMED_OUT at the deadline"


def test_a_handshake_trickled_without_pause_completes(
    tls: tuple[ssl.SSLContext, SecurityCredentials], measure: Measure
) -> None:
    context, creds = tls
    stop = threading.Event()
    trickle = Trickle(context, 0.0, stop)
    with measure("TLS handshake 1 byte per segment", "connect(SECURE)") as case:
        with peer(trickle) as port:
            with case.timed(), secure(port, creds, timeout=WAIT_LIMIT) as conn:
                conn.write(b"hi")
                assert conn.read_exactly(2) == b"hi"
            stop.set()
        assert trickle.completed
        case.outcome = "connects; data round trip"


def test_reset_during_the_handshake(
    tls: tuple[ssl.SSLContext, SecurityCredentials], measure: Measure
) -> None:
    _, creds = tls

    def handler(sock: socket.socket) -> None:
        read_some(sock)  # the ClientHello
        reset(sock)

    with measure("RST after the ClientHello", "connect(SECURE)") as case, peer(handler) as port:
        with case.timed(), pytest.raises(InetError) as info:
            secure(port, creds)
        error = info.value
        assert isinstance(error, InetConnectionResetError), repr(error)
        assert error.code is ErrorCode.CONNECTION_RESET
        assert "localhost" in str(error)
        case.outcome = f"{type(error).__name__}/{error.code.name}"


@pytest.mark.parametrize(
    "garbage",
    [b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", b"\x00" * 64, b"SSH-2.0-OpenSSH_9.6\r\n"],
    ids=["HTTP", "zeros", "SSH banner"],
)
def test_plaintext_instead_of_a_server_hello_fails_fast(
    garbage: bytes, tls: tuple[ssl.SSLContext, SecurityCredentials], measure: Measure
) -> None:
    _, creds = tls
    release = threading.Event()

    def handler(sock: socket.socket) -> None:
        read_some(sock)
        sock.sendall(garbage)
        release.wait(WAIT_LIMIT)  # keep the connection open: the client must not wait for more

    with measure(f"plaintext ({garbage[:4]!r}...) as ServerHello", "connect(SECURE, timeout=30)") as case:
        with peer(handler) as port:
            started = time.monotonic()
            with pytest.raises(SecurityError) as info:
                secure(port, creds, timeout=30)
            case.saw(time.monotonic() - started)
            release.set()
        assert info.value.code is ErrorCode.HANDSHAKE_FAILED, repr(info.value)
        assert case.worst < WAIT_LIMIT  # not the 30 s deadline: the garbage is recognised
        case.outcome = "SecurityError/HANDSHAKE_FAILED"


# -- resets mid-stream: received data first, then the error -------------------------


def test_plain_reset_mid_stream_delivers_the_data_first(measure: Measure) -> None:
    sent = threading.Event()

    def handler(sock: socket.socket) -> None:
        sock.sendall(b"first part\n")
        time.sleep(0.05)  # the data is in the client's receive queue before the RST
        reset(sock)
        sent.set()

    with measure("plain RST mid-stream", "read until the reset") as case, peer(handler) as port:
        with inetkit.connect("127.0.0.1", port, timeout=5) as conn:
            assert sent.wait(WAIT_LIMIT)
            time.sleep(0.05)
            assert conn.read_line() == b"first part\n"
            with case.timed(), pytest.raises(InetConnectionResetError) as info:
                conn.read()
            assert info.value.code is ErrorCode.CONNECTION_RESET
            with pytest.raises(InetError):
                conn.write(b"x" * 100_000)
        case.outcome = "data, then InetConnectionResetError/CONNECTION_RESET"


def test_tls_reset_mid_stream_delivers_the_data_first(
    tls: tuple[ssl.SSLContext, SecurityCredentials], measure: Measure
) -> None:
    context, creds = tls
    sent = threading.Event()

    def handler(sock: socket.socket) -> None:
        server = context.wrap_socket(sock, server_side=True)
        server.sendall(b"protected part\n")
        time.sleep(0.05)
        raw = socket.socket(fileno=server.detach())
        reset(raw)
        sent.set()

    with measure("TLS RST mid-stream", "read until the reset") as case, peer(handler) as port:
        with secure(port, creds) as conn:
            assert sent.wait(WAIT_LIMIT)
            time.sleep(0.05)
            assert conn.read_line() == b"protected part\n"
            with case.timed(), pytest.raises(InetConnectionResetError) as info:
                conn.read()
            assert info.value.code is ErrorCode.CONNECTION_RESET
        case.outcome = "data, then InetConnectionResetError/CONNECTION_RESET"


# -- ends of stream -----------------------------------------------------------------


def test_tls_close_notify_is_a_clean_end(
    tls: tuple[ssl.SSLContext, SecurityCredentials], measure: Measure
) -> None:
    context, creds = tls

    def handler(sock: socket.socket) -> None:
        server = context.wrap_socket(sock, server_side=True)
        server.sendall(b"last words\n")
        raw = server.unwrap()  # close_notify, then the TCP connection stays for our FIN
        raw.close()

    with measure("TLS close_notify then FIN", "read to the end") as case, peer(handler) as port:
        with secure(port, creds) as conn:
            assert conn.read_line() == b"last words\n"
            with case.timed():
                assert conn.read() == b""
            assert conn.read() == b""  # stays at the end
            assert conn.read_line() == b""
        case.outcome = 'b"" (clean end)'


def test_plain_half_close_is_a_clean_end_and_writes_go_on(measure: Measure) -> None:
    got = bytearray()

    def handler(sock: socket.socket) -> None:
        sock.sendall(b"answer\n")
        sock.shutdown(socket.SHUT_WR)
        while data := sock.recv(65536):
            got.extend(data)

    with (
        measure("plain half-close by the peer", "read to the end, then write") as case,
        peer(handler) as port,
    ):
        with inetkit.connect("127.0.0.1", port, timeout=5) as conn:
            assert conn.read_line() == b"answer\n"
            assert conn.read() == b""
            assert conn.read_line() == b""
            assert conn.write(b"still talking") == 13
            conn.shutdown()
        case.outcome = 'b"" at the end; writes still work'
    assert bytes(got) == b"still talking"


@pytest.mark.parametrize("secure_handle", [False, True], ids=["plain", "TLS"])
def test_a_write_after_our_own_shutdown_is_handle_closed(
    secure_handle: bool, tls: tuple[ssl.SSLContext, SecurityCredentials], measure: Measure
) -> None:
    context, creds = tls
    got = bytearray()

    def handler(sock: socket.socket) -> None:
        stream: socket.socket = context.wrap_socket(sock, server_side=True) if secure_handle else sock
        try:
            while data := stream.recv(65536):
                got.extend(data)
            stream.sendall(b"bye\n")
        finally:
            if stream is not sock:
                stream.close()

    kind = "TLS" if secure_handle else "plain"
    with measure(f"write after own shutdown ({kind})", "shutdown(); write()") as case, peer(handler) as port:
        conn = secure(port, creds) if secure_handle else inetkit.connect("127.0.0.1", port, timeout=5)
        with conn:
            conn.write(b"request")
            conn.shutdown()
            with pytest.raises(InetError) as info:
                conn.write(b"more")
            assert info.value.code is ErrorCode.HANDLE_CLOSED
            assert not isinstance(info.value, ConnectionError)  # "you closed it", not the network
            assert conn.read_line() == b"bye\n"  # reads go on
        case.outcome = "InetError/HANDLE_CLOSED; reads go on"
    assert bytes(got) == b"request"


# -- peers that never read, lines that never end ------------------------------------


def test_a_peer_that_never_reads_times_the_write_out_with_bytes_sent(measure: Measure) -> None:
    release = threading.Event()

    def handler(sock: socket.socket) -> None:
        release.wait(WAIT_LIMIT)

    with measure("peer never reads; 64 MiB write", "write() with timeout 0.3") as case, peer(handler) as port:
        with inetkit.connect("127.0.0.1", port, timeout=5) as conn:
            conn.timeout = 0.3
            with case.timed(), pytest.raises(InetTimeoutError) as info:
                conn.write(b"z" * FLOOD)
            release.set()
        error = info.value
        assert error.code is ErrorCode.TIMED_OUT
        assert error.bytes_sent is not None and 0 < error.bytes_sent < FLOOD
        assert str(error.bytes_sent) in str(error)
        case.outcome = f"InetTimeoutError/TIMED_OUT, bytes_sent={error.bytes_sent}"


def test_ten_mib_without_a_newline(measure: Measure) -> None:
    def handler(sock: socket.socket) -> None:
        chunk = b"x" * (1 << 20)
        for _ in range(LONG_LINE // len(chunk)):
            sock.sendall(chunk)
        sock.sendall(b"\nnext line\n")
        read_some(sock)

    with measure("10 MiB without a newline", "read_line()") as case, peer(handler) as port:
        with inetkit.connect("127.0.0.1", port, timeout=10) as conn:
            tracemalloc.start()
            try:
                with case.timed(), pytest.raises(InetError) as info:
                    conn.read_line()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert info.value.code is ErrorCode.LINE_TOO_LONG
            assert peak < LINE_MEMORY_LIMIT, f"read_line held {peak} bytes for a line it refuses"
            # Still usable: skip the rest of the long line, then lines work again.
            skipped = 0
            while True:
                data = conn.read(1 << 20)
                assert data
                skipped += len(data)
                if b"\n" in data:
                    tail = data[data.index(b"\n") + 1 :]
                    break
            rest = tail if tail.endswith(b"\n") else tail + conn.read_line()
            assert rest == b"next line\n"
            conn.write(b"done")
        case.outcome = f"InetError/LINE_TOO_LONG (peak {peak // 1024} KiB traced); handle usable"
        case.note(f"tracemalloc peak {peak} bytes")


def test_a_reset_during_a_large_write(measure: Measure) -> None:
    def handler(sock: socket.socket) -> None:
        read_some(sock)
        time.sleep(0.05)
        reset(sock)

    with measure("RST during a 64 MiB write", "write()") as case, peer(handler) as port:
        with inetkit.connect("127.0.0.1", port, timeout=10) as conn:
            with case.timed(), pytest.raises(InetConnectionResetError) as info:
                conn.write(b"y" * FLOOD)
            error = info.value
            assert error.code is ErrorCode.CONNECTION_RESET
            assert error.bytes_sent is not None and 0 < error.bytes_sent < FLOOD
            with pytest.raises(InetError):
                conn.write(b"again")
        case.outcome = f"InetConnectionResetError/CONNECTION_RESET, bytes_sent={error.bytes_sent}"
