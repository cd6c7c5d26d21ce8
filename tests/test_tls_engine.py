"""The TLS engine and its blocking driver: I/O over TLS, how a stream ends, resumption, threads,
the duplex stress test, and the engine alone over memory BIOs (no sockets)."""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from certs import PKI
from conftest import Server, open_fds

import inetkit
from inetkit import ErrorCode, Option, SecurityCredentials
from inetkit._core import tls_engine
from inetkit._core.tls_engine import MAX_RECORD, SEND_SLICE, WANT_READ, TLSEngine
from inetkit._tls import get_context

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")


@pytest.fixture
def creds(pki: PKI) -> SecurityCredentials:
    return SecurityCredentials(ca_file=str(pki.ca_file))


def tls_echo(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    def handler(sock: socket.socket) -> None:
        try:
            tls = context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with tls:
            try:
                while True:
                    data = tls.recv(65536)
                    if not data:
                        break
                    tls.sendall(data)
                tls.unwrap()
            except (ssl.SSLError, OSError):
                pass

    return handler


@pytest.fixture
def tls_server(pki: PKI, make_server: Callable[..., Server]) -> Callable[..., Server]:
    def make(**context_args: Any) -> Server:
        context = pki.servers["valid"].context(**context_args)
        return make_server(tls_echo(context))

    return make


def test_round_trip_lines_and_info(tls_server: Callable[..., Server], creds: SecurityCredentials) -> None:
    server = tls_server()
    with inetkit.connect(
        "localhost", server.port, options=Option.SECURE, credentials=creds, timeout=5
    ) as conn:
        assert conn.is_secure
        info = conn.security_info
        assert info is not None
        assert info.protocol == "TLSv1.3"
        assert info.cipher and info.cipher_bits >= 128
        assert info.peer_certificate is not None
        assert info.peer_certificate.common_name == "localhost"
        conn.write_line("hello over tls")
        assert conn.read_line() == b"hello over tls\r\n"
        payload = bytes(range(256)) * 1000
        conn.write(payload)
        assert conn.read_exactly(len(payload)) == payload
        assert "TLSv1.3" in repr(conn)
        assert conn.trace.tls_handshake is not None and conn.trace.tls_handshake > 0


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("read_first", [True, False])
def test_session_resumption(
    tls_server: Callable[..., Server], creds: SecurityCredentials, version: ssl.TLSVersion, read_first: bool
) -> None:
    """The second connect resumes, for TLS 1.2 and 1.3, also when the first never read."""
    server = tls_server(min_version=version, max_version=version)

    def once() -> bool:
        conn = inetkit.connect("localhost", server.port, options=Option.SECURE, credentials=creds, timeout=5)
        with conn:
            if read_first:
                conn.write(b"x")
                assert conn.read(1) == b"x"
            assert conn.security_info is not None
            return conn.security_info.session_reused

    assert once() is False
    assert once() is True
    assert once() is True


def test_session_cache_off(tls_server: Callable[..., Server], creds: SecurityCredentials) -> None:
    server = tls_server()
    for _ in range(2):
        with inetkit.connect(
            "localhost", server.port, options=Option.SECURE, credentials=creds, timeout=5, session_cache=False
        ) as conn:
            conn.write(b"x")
            conn.read(1)
            assert conn.security_info is not None
            assert conn.security_info.session_reused is False


def test_trusted_site_session_never_resumed_by_verifying_connect(
    tls_server: Callable[..., Server], creds: SecurityCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    server = tls_server()
    for _ in range(2):
        with inetkit.connect(
            "localhost", server.port, options=Option.SECURE | Option.TRUSTEDSITE, timeout=5
        ) as conn:
            conn.write(b"x")
            conn.read(1)
    with inetkit.connect(
        "localhost", server.port, options=Option.SECURE, credentials=creds, timeout=5
    ) as conn:
        assert conn.security_info is not None
        assert conn.security_info.session_reused is False


def test_shutdown_sends_close_notify_and_reads_on(
    tls_server: Callable[..., Server], creds: SecurityCredentials
) -> None:
    server = tls_server()
    with inetkit.connect(
        "localhost", server.port, options=Option.SECURE, credentials=creds, timeout=5
    ) as conn:
        conn.write(b"last")
        conn.shutdown()
        assert conn.read_exactly(4) == b"last"
        assert conn.read() == b""  # the server answered our close_notify with its own


def test_tls_read_timeout(tls_server: Callable[..., Server], creds: SecurityCredentials) -> None:
    server = tls_server()
    with inetkit.connect(
        "localhost", server.port, options=Option.SECURE, credentials=creds, timeout=5
    ) as conn:
        conn.timeout = 0.2
        start = time.monotonic()
        with pytest.raises(inetkit.InetTimeoutError):
            conn.read()
        assert time.monotonic() - start < 2
        conn.timeout = 5
        conn.write(b"still ok")
        assert conn.read_exactly(8) == b"still ok"


@pytest.mark.parametrize("how", ["cancel", "close"])
def test_blocked_tls_read_is_woken(
    tls_server: Callable[..., Server], creds: SecurityCredentials, how: str
) -> None:
    server = tls_server()
    conn = inetkit.connect(
        "localhost", server.port, options=Option.SECURE | Option.FREETHREAD, credentials=creds, timeout=30
    )
    result: dict[str, BaseException] = {}

    def reader() -> None:
        try:
            conn.read()
        except inetkit.InetError as exc:
            result["error"] = exc

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.2)
    if how == "cancel":
        conn.cancel()
    else:
        conn.close()
    thread.join(2)
    assert not thread.is_alive()
    error = result["error"]
    assert isinstance(error, inetkit.InetError)
    expected = ErrorCode.CANCELLED if how == "cancel" else ErrorCode.HANDLE_CLOSED
    assert error.code is expected
    conn.close()


def test_handshake_failure_leaves_no_socket(pki: PKI, make_server: Callable[..., Server]) -> None:
    server = make_server(tls_echo(pki.servers["valid"].context()))
    before = open_fds()
    for _ in range(20):
        with pytest.raises(inetkit.CertificateError) as info:
            inetkit.connect("localhost", server.port, options=Option.SECURE, timeout=5)  # certifi roots
        assert info.value.code is ErrorCode.CERTIFICATE_UNTRUSTED
    time.sleep(0.2)
    assert open_fds() == before


# -- the duplex stress test ------------------------------------------------------

#: Bytes each way: 64 MiB, as the TLS issue asks.
STRESS_BYTES = 64 * 1024 * 1024
#: Generous bound; the test normally takes a few seconds.
STRESS_LIMIT = 90.0


def _stress_server(chain: str, key: str, ready: Any) -> None:  # runs in a child process
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(chain, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    ready.send(listener.getsockname()[1])
    sock, _ = listener.accept()
    with context.wrap_socket(sock, server_side=True) as tls:
        while True:
            data = tls.recv(65536)
            if not data:
                break
            tls.sendall(data)


def _stream(seed: int, total: int) -> Iterator[bytes]:
    """A reproducible stream cut into random record sizes."""
    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    sent = 0
    while sent < total:
        size = min(rng.randint(1, MAX_RECORD), total - sent)
        start = rng.randrange(0, len(block) - size)
        yield block[start : start + size]
        sent += size


@pytest.mark.slow
def test_free_threaded_duplex_stress(pki: PKI) -> None:
    """One thread writes 64 MiB while another reads 64 MiB on ONE TLS 1.3 handle, byte-exact."""
    server_cert = pki.servers["valid"]
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_stress_server,
        args=(str(server_cert.chain_file), str(server_cert.key_file), child),
        daemon=True,
    )
    proc.start()
    try:
        assert parent.poll(30)
        port = parent.recv()
        creds = SecurityCredentials(ca_file=str(pki.ca_file), min_version=ssl.TLSVersion.TLSv1_3)
        conn = inetkit.connect(
            "localhost",
            port,
            options=Option.SECURE | Option.FREETHREAD,
            credentials=creds,
            timeout=STRESS_LIMIT,
        )
        sent_hash = hashlib.sha256()
        got_hash = hashlib.sha256()
        failures: list[BaseException] = []
        received = 0

        def writer() -> None:
            try:
                for record in _stream(1234, STRESS_BYTES):
                    conn.write(record)
                    sent_hash.update(record)
            except BaseException as exc:
                failures.append(exc)

        def reader() -> None:
            nonlocal received
            buf = bytearray(MAX_RECORD)
            rng = random.Random(99)
            try:
                while received < STRESS_BYTES:
                    view = memoryview(buf)[: rng.randint(1, MAX_RECORD)]
                    n = conn.read_into(view)
                    if not n:
                        raise AssertionError(f"early end of stream after {received} bytes")
                    got_hash.update(view[:n])
                    received += n
            except BaseException as exc:
                failures.append(exc)

        start = time.monotonic()
        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(STRESS_LIMIT)
        elapsed = time.monotonic() - start
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            conn.cancel()
        assert not alive, f"deadlock: {alive} still running after {STRESS_LIMIT} s"
        assert not failures, failures
        assert received == STRESS_BYTES
        assert got_hash.digest() == sent_hash.digest()
        print(f"duplex: 2 x {STRESS_BYTES >> 20} MiB over one TLS 1.3 handle in {elapsed:.2f} s")
        conn.close()
    finally:
        proc.kill()
        proc.join(10)
        parent.close()
        child.close()


def test_stress_stream_is_reproducible() -> None:
    first = b"".join(_stream(5, 100_000))
    assert first == b"".join(_stream(5, 100_000))
    assert len(first) == 100_000


def test_is_readable_ignores_tls_housekeeping(
    tls_server: Callable[..., Server], creds: SecurityCredentials
) -> None:
    """Session tickets make the socket readable, but there is nothing to read."""
    server = tls_server()
    with inetkit.connect(
        "localhost", server.port, options=Option.SECURE, credentials=creds, timeout=5
    ) as conn:
        time.sleep(0.2)  # the TLS 1.3 tickets arrive
        assert conn.is_readable() is False
        assert conn.is_readable(0.1) is False
        conn.write(b"x")
        assert conn.is_readable(2) is True
        assert conn.read() == b"x"


# -- how a TLS stream ends, and what a write reports -----------------------------------


def answer_then(
    context: ssl.SSLContext, answer: bytes, *, close_notify: bool
) -> Callable[[socket.socket], None]:
    """A server that reads one line, sends ``answer``, and ends with or without close_notify."""

    def handler(sock: socket.socket) -> None:
        try:
            tls = context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            tls.recv(100)
            tls.sendall(answer)
            if close_notify:
                tls.unwrap().close()
            else:
                tls.close()  # SSLSocket.close: the TCP FIN without close_notify
        except (ssl.SSLError, OSError):
            tls.close()

    return handler


def test_bare_fin_reads_as_truncation(
    pki: PKI, make_server: Callable[..., Server], creds: SecurityCredentials
) -> None:
    context = pki.servers["valid"].context()
    server = make_server(answer_then(context, b"partial answer\nno end", close_notify=False))
    with inetkit.connect(
        "localhost", server.port, options=Option.SECURE, credentials=creds, timeout=5
    ) as conn:
        conn.write(b"GET\n")
        assert conn.read_line() == b"partial answer\n"
        assert conn.read(100) == b"no end"  # the data before the cut is delivered
        assert conn.is_readable(2) is True  # the end is there to report
        for _ in range(2):
            with pytest.raises(inetkit.ConnectionClosedError) as info:
                conn.read()
            assert info.value.code is ErrorCode.TLS_TRUNCATED
            assert str(server.port) in str(info.value)


def test_close_notify_reads_as_the_end(
    pki: PKI, make_server: Callable[..., Server], creds: SecurityCredentials
) -> None:
    context = pki.servers["valid"].context()
    server = make_server(answer_then(context, b"complete answer\n", close_notify=True))
    with inetkit.connect(
        "localhost", server.port, options=Option.SECURE, credentials=creds, timeout=5
    ) as conn:
        conn.write(b"GET\n")
        assert conn.read_line() == b"complete answer\n"
        assert conn.read() == b""
        assert conn.read() == b""


def test_plain_bare_fin_is_still_a_clean_end(make_server: Callable[..., Server]) -> None:
    """The twin: without TLS there is no close_notify to miss."""

    def handler(sock: socket.socket) -> None:
        sock.recv(100)
        sock.sendall(b"bye\n")
        sock.close()

    server = make_server(handler)
    with inetkit.connect("127.0.0.1", server.port, timeout=5) as conn:
        conn.write(b"GET\n")
        assert conn.read_line() == b"bye\n"
        assert conn.read() == b""


def hashing_server(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    """Reads a 16-byte length, then that many bytes, and answers their SHA-256."""

    def handler(sock: socket.socket) -> None:
        try:
            with context.wrap_socket(sock, server_side=True) as tls:
                header = b""
                while len(header) < 16:
                    header += tls.recv(16 - len(header))
                left = int(header)
                digest = hashlib.sha256()
                while left:
                    chunk = tls.recv(min(left, 65536))
                    if not chunk:
                        return
                    digest.update(chunk)
                    left -= len(chunk)
                tls.sendall(digest.digest())
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass

    return handler


def test_large_write_arrives_whole(
    pki: PKI, make_server: Callable[..., Server], creds: SecurityCredentials
) -> None:
    server = make_server(hashing_server(pki.servers["valid"].context()))
    payload = random.Random(7).randbytes(5 * SEND_SLICE + 7)  # slices and a tail
    with inetkit.connect(
        "localhost", server.port, options=Option.SECURE, credentials=creds, timeout=10
    ) as conn:
        assert conn.write(str(len(payload)).rjust(16).encode()) == 16
        assert conn.write(payload) == len(payload)
        assert conn.read_exactly(32) == hashlib.sha256(payload).digest()


def test_failed_write_counts_plaintext_of_whole_slices(
    pki: PKI, make_server: Callable[..., Server], creds: SecurityCredentials
) -> None:
    """A write that times out part-way reports the plaintext of the slices that went out."""
    stop = threading.Event()

    def handshake_then_stall(sock: socket.socket) -> None:
        try:
            with pki.servers["valid"].context().wrap_socket(sock, server_side=True):
                stop.wait(10)  # never reads: the client's write fills the socket buffers
        except (ssl.SSLError, OSError):
            pass

    server = make_server(handshake_then_stall)
    total = 64 * 1024 * 1024  # far more than the kernel buffers hold
    try:
        with inetkit.connect(
            "localhost", server.port, options=Option.SECURE, credentials=creds, timeout=5
        ) as conn:
            conn.timeout = 0.5
            with pytest.raises(inetkit.InetTimeoutError) as info:
                conn.write(bytes(total))
            sent = info.value.bytes_sent
            assert sent is not None and 0 < sent < total
            # Plaintext of whole slices: ciphertext counts (records carry 22
            # bytes each of header and tag) would not be multiples of it.
            assert sent % SEND_SLICE == 0
            with pytest.raises(inetkit.InetTimeoutError):  # the handle stays unusable
                conn.write(b"more")
    finally:
        stop.set()


# -- the engine without sockets -----------------------------------------------------
#
# A client TLSEngine against a server ssl.SSLObject over memory BIOs; the
# tests move the bytes by hand and pass a made-up clock.


TARGET = "localhost port 443 (memory)"


class Peer:
    """A server `ssl.SSLObject` over memory BIOs, wired to a client engine by hand."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.done = False
        self.error: ssl.SSLError | None = None

    def step(self) -> None:
        """Take what the client sent; answer it (a refusal leaves its alert in ``outgoing``)."""
        if not self.done and self.error is None:
            try:
                self.obj.do_handshake()
                self.done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                self.error = exc

    def read_all(self) -> bytes:
        chunks = []
        for _ in range(10_000):  # bounded: each pass takes one record
            try:
                data = self.obj.read(MAX_RECORD)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def to_server(engine: TLSEngine, peer: Peer) -> None:
    peer.incoming.write(engine.data_to_send())


def to_client(peer: Peer, engine: TLSEngine, piece: int | None = None) -> None:
    data = peer.outgoing.read()
    if piece is None:
        if data:
            engine.receive(data)
        return
    for start in range(0, len(data), piece):
        engine.receive(data[start : start + piece])


def handshake(engine: TLSEngine, peer: Peer, clock: Iterator[float] | None = None) -> None:
    times = clock or iter(range(1000))
    for _ in range(10):  # bounded: a TLS 1.3 handshake takes two client steps
        done = engine.handshake(float(next(times)))
        to_server(engine, peer)
        peer.step()
        if done:
            return
        to_client(peer, engine)
    raise AssertionError("the handshake did not finish")


def read_everything(engine: TLSEngine, size: int = 65536) -> bytes:
    out = bytearray()
    buf = bytearray(size)
    for _ in range(100_000):  # bounded: each pass returns data or stops
        count = engine.read_into(memoryview(buf))
        if count in (WANT_READ, 0):
            break
        out += buf[:count]
    return bytes(out)


@pytest.fixture
def client_context(pki: PKI) -> ssl.SSLContext:
    return get_context(SecurityCredentials(ca_file=str(pki.ca_file)), Option.SECURE)


@pytest.fixture
def pair(pki: PKI, client_context: ssl.SSLContext) -> tuple[TLSEngine, Peer]:
    engine = TLSEngine(client_context, "localhost", target=TARGET)
    peer = Peer(pki.servers["valid"].context())
    return engine, peer


def test_engine_handshake_and_what_it_reports(pair: tuple[TLSEngine, Peer]) -> None:
    engine, peer = pair
    assert engine.handshake(100.0) is False  # the ClientHello is out, the answer is needed
    hello = engine.data_to_send()
    assert hello[:1] == b"\x16"  # a handshake record
    peer.incoming.write(hello)
    peer.step()
    to_client(peer, engine)
    assert engine.handshake(100.25) is True
    assert engine.rtt == pytest.approx(0.25)  # from the clock the driver passed in
    to_server(engine, peer)
    peer.step()
    assert peer.done
    info = engine.security_info(engine)
    assert info.protocol == "TLSv1.3"
    assert info.cipher_bits >= 128
    assert info.session_reused is False
    assert info.peer_certificate is not None
    assert info.peer_certificate.common_name == "localhost"


def test_engine_data_both_ways(pair: tuple[TLSEngine, Peer]) -> None:
    engine, peer = pair
    handshake(engine, peer)
    payload = bytes(range(256)) * 1000  # 256,000 bytes: several slices
    view = memoryview(payload)
    sent = 0
    steps = 0
    while sent < len(payload):
        taken = engine.write(view, sent)
        assert 0 < taken <= SEND_SLICE
        sent += taken
        steps += 1
        to_server(engine, peer)
    assert steps == -(-len(payload) // SEND_SLICE)
    assert peer.read_all() == payload
    answer = bytes(range(200)) * 500
    peer.obj.write(answer)
    to_client(peer, engine)
    assert read_everything(engine, 1000) == answer
    assert engine.read_into(memoryview(bytearray(10))) == WANT_READ


def test_engine_records_split_at_every_byte(pair: tuple[TLSEngine, Peer]) -> None:
    """Records that arrive a few bytes at a time are still read exactly (the framing)."""
    engine, peer = pair
    handshake(engine, peer)
    answer = b"".join(bytes([n]) * 700 for n in range(40))
    for start in range(0, len(answer), 7000):
        peer.obj.write(answer[start : start + 7000])
    got = bytearray()
    data = peer.outgoing.read()
    for index in range(0, len(data), 3):
        engine.receive(data[index : index + 3])
        got += read_everything(engine, 500)
    assert bytes(got) == answer


def test_engine_read_returns_the_records_received_up_to_max_bytes(pair: tuple[TLSEngine, Peer]) -> None:
    engine, peer = pair
    handshake(engine, peer)
    assert engine.read(100) is None
    peer.obj.write(b"y" * (MAX_RECORD * 3))
    to_client(peer, engine)
    # One call serves several whole records, never more than asked.
    first = engine.read(MAX_RECORD + 100)
    assert first == b"y" * (MAX_RECORD + 100)
    assert engine.read(10) == b"y" * 10
    assert engine.read(1 << 20) == b"y" * (MAX_RECORD * 2 - 110)
    assert engine.read(10) is None


def test_engine_read_delivers_data_before_the_end_that_follows_it(pair: tuple[TLSEngine, Peer]) -> None:
    engine, peer = pair
    handshake(engine, peer)
    peer.obj.write(b"a" * MAX_RECORD)
    peer.obj.write(b"b" * 10)
    try:
        peer.obj.unwrap()
    except ssl.SSLWantReadError:
        pass  # the server's close_notify is out; it does not wait for ours
    to_client(peer, engine)
    engine.receive_eof()
    assert engine.read(1 << 20) == b"a" * MAX_RECORD + b"b" * 10
    assert engine.read(1 << 20) == b""


def test_engine_close_notify_is_a_clean_end(pair: tuple[TLSEngine, Peer]) -> None:
    engine, peer = pair
    handshake(engine, peer)
    peer.obj.write(b"last words")
    try:
        peer.obj.unwrap()
    except ssl.SSLWantReadError:
        pass  # the server's close_notify is out; it does not wait for ours
    to_client(peer, engine)
    engine.receive_eof()
    buf = memoryview(bytearray(100))
    count = engine.read_into(buf)
    assert bytes(buf[:count]) == b"last words"
    assert engine.read_into(buf) == 0
    assert engine.read_into(buf) == 0  # and stays ended
    assert engine.read(10) == b""
    assert engine.failure is None


def test_engine_eof_without_close_notify_is_truncation(pair: tuple[TLSEngine, Peer]) -> None:
    engine, peer = pair
    handshake(engine, peer)
    peer.obj.write(b"cut off here")
    to_client(peer, engine)
    engine.receive_eof()  # a bare TCP FIN
    buf = memoryview(bytearray(100))
    count = engine.read_into(buf)
    assert bytes(buf[:count]) == b"cut off here"  # the data before the cut is delivered
    for _ in range(2):  # then the truncation, every time
        with pytest.raises(inetkit.ConnectionClosedError) as info:
            engine.read_into(buf)
        assert info.value.code is ErrorCode.TLS_TRUNCATED
        assert TARGET in str(info.value)
    with pytest.raises(inetkit.ConnectionClosedError):
        engine.read(10)
    assert engine.take_records() is True  # a read would not wait: it reports the end


def test_engine_eof_inside_a_record_is_truncation(pair: tuple[TLSEngine, Peer]) -> None:
    engine, peer = pair
    handshake(engine, peer)
    peer.obj.write(b"whole")
    peer.obj.write(b"never complete")
    data = peer.outgoing.read()
    engine.receive(data[:-5])  # the second record loses its tail
    engine.receive_eof()
    buf = memoryview(bytearray(100))
    count = engine.read_into(buf)
    assert bytes(buf[:count]) == b"whole"
    with pytest.raises(inetkit.ConnectionClosedError) as info:
        engine.read_into(buf)
    assert info.value.code is ErrorCode.TLS_TRUNCATED


def test_engine_garbage_fails_the_handshake(client_context: ssl.SSLContext) -> None:
    engine = TLSEngine(client_context, "localhost", target=TARGET)
    assert engine.handshake(0.0) is False
    engine.data_to_send()
    engine.receive(b"220 smtp.example.com ESMTP ready\r\n")
    with pytest.raises(inetkit.SecurityError) as info:
        engine.handshake(0.1)
    assert info.value.code is ErrorCode.HANDSHAKE_FAILED
    assert "not TLS" in str(info.value)
    assert TARGET in str(info.value)


def test_engine_eof_during_the_handshake(client_context: ssl.SSLContext) -> None:
    engine = TLSEngine(client_context, "localhost", target=TARGET)
    engine.handshake(0.0)
    engine.receive_eof()
    with pytest.raises(inetkit.SecurityError) as info:
        engine.handshake(0.1)
    assert info.value.code is ErrorCode.HANDSHAKE_FAILED
    assert "closed the connection during the handshake" in str(info.value)


def test_engine_untrusted_certificate_sends_an_alert(pki: PKI) -> None:
    foreign = get_context(SecurityCredentials(ca_file=str(pki.foreign_ca_file)), Option.SECURE)
    engine = TLSEngine(foreign, "localhost", target=TARGET)
    peer = Peer(pki.servers["valid"].context())
    with pytest.raises(inetkit.CertificateError) as info:
        handshake(engine, peer)
    assert info.value.code is ErrorCode.CERTIFICATE_UNTRUSTED
    alert = engine.data_to_send()
    assert alert[:1] == b"\x15"  # our alert record, for the driver to send


def test_engine_server_alert_after_the_handshake(pki: PKI, client_context: ssl.SSLContext) -> None:
    """TLS 1.3: the server's verdict on a missing client certificate comes as an alert on the first read."""
    engine = TLSEngine(client_context, "localhost", target=TARGET)
    peer = Peer(pki.servers["valid"].context(client_ca=pki.ca_file))
    handshake(engine, peer)  # completes on the client's side
    assert peer.error is not None  # the server refused, with an alert
    to_client(peer, engine)
    assert engine.take_records() is True  # the alert is there, and no data was lost
    with pytest.raises(inetkit.SecurityError) as info:
        engine.read_into(memoryview(bytearray(10)))
    assert info.value.code is ErrorCode.CLIENT_CERTIFICATE_REQUIRED
    with pytest.raises(inetkit.SecurityError) as again:
        engine.write(memoryview(b"ping"))
    assert again.value.code is ErrorCode.CLIENT_CERTIFICATE_REQUIRED


def test_engine_tls12_alert_during_the_handshake(pki: PKI, client_context: ssl.SSLContext) -> None:
    engine = TLSEngine(client_context, "localhost", target=TARGET)
    server = pki.servers["valid"].context(client_ca=pki.ca_file, max_version=ssl.TLSVersion.TLSv1_2)
    peer = Peer(server)
    with pytest.raises(inetkit.SecurityError) as info:
        handshake(engine, peer)
    assert peer.error is not None
    assert info.value.code is ErrorCode.HANDSHAKE_FAILED  # alert 40, no certificate given
    assert "client certificate" in str(info.value)


def test_engine_take_records_keeps_the_data(pair: tuple[TLSEngine, Peer]) -> None:
    engine, peer = pair
    handshake(engine, peer)
    assert engine.take_records() is False
    to_client(peer, engine)  # the server's session tickets
    assert engine.heard_since_handshake is True
    assert engine.take_records() is False  # tickets only: a read would wait
    session = engine.session()
    assert session is not None and session.has_ticket
    peer.obj.write(b"hello")
    to_client(peer, engine)
    assert engine.take_records() is True
    assert engine.pending() == 5
    assert read_everything(engine) == b"hello"


def test_engine_resumes_a_session(pki: PKI, client_context: ssl.SSLContext) -> None:
    server = pki.servers["valid"].context()
    first = TLSEngine(client_context, "localhost", target=TARGET)
    peer = Peer(server)
    handshake(first, peer)
    to_client(peer, first)
    first.take_records()
    session = first.session()
    second = TLSEngine(client_context, "localhost", session=session, target=TARGET)
    handshake(second, Peer(server))
    assert second.session_reused is True


def test_engine_close_notify_goes_out(pair: tuple[TLSEngine, Peer]) -> None:
    engine, peer = pair
    handshake(engine, peer)
    engine.close_notify()
    to_server(engine, peer)
    assert peer.obj.read(10) == b""  # the server sees a clean end


@pytest.mark.parametrize("c_level", [True, False], ids=["C object", "public SSLObject"])
def test_engine_over_either_kind_of_tls_object(
    pki: PKI, client_context: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, c_level: bool
) -> None:
    # The engine drives the C-level object behind ssl.SSLObject; an ssl module
    # without SSLContext._wrap_bio gets the public SSLObject, with the same results.
    monkeypatch.setattr(tls_engine, "_C_LEVEL", c_level)
    engine = TLSEngine(client_context, "localhost", target=TARGET)
    assert isinstance(engine._obj, ssl.SSLObject) is not c_level
    peer = Peer(pki.servers["valid"].context())
    handshake(engine, peer)
    assert engine.version == "TLSv1.3" and engine.session_reused is False
    der = engine.peer_der()
    assert der is not None and der[:1] == b"\x30"  # the server's certificate, DER (a SEQUENCE)
    info = engine.security_info(engine)
    assert info.peer_certificate is not None and info.peer_certificate.common_name == "localhost"
    assert engine.write(memoryview(b"ping"), 0) == 4
    to_server(engine, peer)
    assert peer.read_all() == b"ping"
    peer.obj.write(b"pong")
    to_client(peer, engine)
    assert read_everything(engine) == b"pong"
    engine.close_notify()
    to_server(engine, peer)
    assert peer.obj.read(10) == b""  # a clean end


def test_engine_gives_bytes_that_are_not_records_to_openssl(pair: tuple[TLSEngine, Peer]) -> None:
    engine, peer = pair
    handshake(engine, peer)
    engine.receive(b"\x00garbage that is not a TLS record")
    with pytest.raises(inetkit.SecurityError):
        engine.read_into(memoryview(bytearray(100)))


def test_engine_read_serves_many_small_records_in_one_call(pair: tuple[TLSEngine, Peer]) -> None:
    """A receive of many small records (a line per record) is served by one read, in order."""
    engine, peer = pair
    handshake(engine, peer)
    lines = [b"%05d " % n + b"x" * 73 + b"\n" for n in range(500)]  # 500 records of 80 bytes
    for line in lines:
        peer.obj.write(line)
    to_client(peer, engine)
    assert engine.read(65536) == b"".join(lines)
    assert engine.read(65536) is None
    # Limited by max_bytes: the cut record's rest comes first next time.
    for line in lines[:3]:
        peer.obj.write(line)
    to_client(peer, engine)
    assert engine.read(100) == lines[0] + lines[1][:20]
    assert engine.read(65536) == lines[1][20:] + lines[2]


def test_engine_read_of_records_split_at_every_byte(pair: tuple[TLSEngine, Peer]) -> None:
    """`read` (the line reader's step) frames records that arrive a few bytes at a time."""
    engine, peer = pair
    handshake(engine, peer)
    answer = b"".join(bytes([n]) * 700 for n in range(40))
    for start in range(0, len(answer), 7000):
        peer.obj.write(answer[start : start + 7000])
    peer.obj.write(b"tail")
    data = peer.outgoing.read()
    got = bytearray()
    for index in range(0, len(data), 3):  # 3 bytes at a time: every header is cut somewhere
        engine.receive(data[index : index + 3])
        for _ in range(10):  # bounded: each pass returns data or stops
            chunk = engine.read(65536)
            if not chunk:
                assert chunk is None
                break
            got += chunk
    assert bytes(got) == answer + b"tail"


def test_engine_read_reports_an_end_without_close_notify_after_small_records(
    pair: tuple[TLSEngine, Peer],
) -> None:
    engine, peer = pair
    handshake(engine, peer)
    for n in range(50):
        peer.obj.write(b"%03d\n" % n)
    data = peer.outgoing.read()
    engine.receive(data[:-3])  # the last record is cut short, then the stream ends
    engine.receive_eof()
    assert engine.read(65536) == b"".join(b"%03d\n" % n for n in range(49))
    with pytest.raises(inetkit.ConnectionClosedError) as info:
        engine.read(65536)
    assert info.value.code is ErrorCode.TLS_TRUNCATED
    with pytest.raises(inetkit.ConnectionClosedError):
        engine.read(65536)  # sticky


def test_engine_never_holds_more_than_one_record_or_the_receive(pair: tuple[TLSEngine, Peer]) -> None:
    """Bulk receives of 64 KiB: OpenSSL's incoming BIO holds at most one record, and no receive is kept.

    The BIO keeps the largest size it ever held, so this bound is what a
    handle that once read in bulk costs afterwards. A record cut by the end
    of a receive goes into the BIO at once, so nothing of the receive's
    buffer stays referenced once the read has returned, and the next read
    knows that it waits without decrypting anything.
    """
    engine, peer = pair
    handshake(engine, peer)
    answer = bytes(range(251)) * 2000  # 502,000 bytes: 31 records, cut at every kind of place
    peer.obj.write(answer)
    data = peer.outgoing.read()
    biggest = 0
    got = bytearray()
    buf = bytearray(65536)
    sizes: list[int] = []
    for start in range(0, len(data), 65536):
        engine.receive(data[start : start + 65536])
        for _ in range(10):  # bounded: each pass returns data or stops
            count = engine.read_into(memoryview(buf))
            biggest = max(biggest, engine._incoming.pending)
            if count == WANT_READ:
                break
            got += buf[:count]
            sizes.append(count)
        assert len(engine._inbox) < 5  # at most a cut header, copied
    assert bytes(got) == answer
    assert 0 < biggest <= MAX_RECORD + 256 + 5
    assert max(sizes) == 65536  # a view is filled from several records at once


def test_engine_handshake_steps_only_when_openssl_has_something_to_read(
    pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One OpenSSL step for the ClientHello, then one per piece of the server's flight: none for nothing.

    A step that can only fail for want of input costs a call into OpenSSL,
    an exception and a release of the GIL; every TLS connect would pay it.
    """
    steps: list[int] = []

    class Counting(ssl.SSLObject):
        def do_handshake(self) -> None:
            steps.append(1)
            super().do_handshake()

    monkeypatch.setattr(tls_engine, "_C_LEVEL", False)  # the public SSLObject, whose class we choose
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.sslobject_class = Counting
    engine = TLSEngine(context, "localhost", target=TARGET)
    peer = Peer(pki.servers["valid"].context())
    assert engine.handshake(0.0) is False
    assert len(steps) == 1  # the ClientHello
    to_server(engine, peer)
    peer.step()
    flight = peer.outgoing.read()
    engine.receive(flight)
    assert engine.handshake(0.001) is True
    pieces = -(-len(flight) // tls_engine.HANDSHAKE_PIECE)
    assert len(steps) == 1 + pieces
