"""The TLS record engine: I/O over TLS, resumption, threads, and the duplex stress test."""

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
#: Records of random sizes from 1 byte to the TLS maximum plaintext (16 KiB).
MAX_RECORD = 16 * 1024
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
