"""AsyncConnection over TLS: the shared engine and policy, the blocking handle's errors, full duplex,
cancellation, bounded close, and one session cache for both handles; default loop and uvloop."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable

import certs
import pytest
from aio_io_support import LOOPS, TIMEOUT, open_handle, registered, run
from conftest import Server
from test_tls_engine import answer_then, tls_echo
from tls_servers import Servers

import inetkit
from inetkit import (
    CertificateError,
    ConnectionClosedError,
    ErrorCode,
    InetError,
    InetTimeoutError,
    Option,
    OwnershipError,
    SecurityCredentials,
    SecurityError,
)
from inetkit._tls import SESSION_CACHE, public_key_pin
from inetkit.aio import AsyncConnection

pytestmark = [pytest.mark.parametrize("loop", LOOPS), pytest.mark.usefixtures("fresh_tls_caches")]

#: Bytes each way in the duplex test: many send slices and receives.
DUPLEX_BYTES = 8 << 20
#: Rounds of the randomized cancellation test over TLS.
CANCEL_ROUNDS = 150


def trust(pki: certs.PKI, **fields: object) -> SecurityCredentials:
    return SecurityCredentials(ca_file=pki.ca_file, **fields)  # type: ignore[arg-type]


async def secure(
    port: int, credentials: SecurityCredentials | None, *, host: str = "localhost", **kw: object
) -> AsyncConnection:
    options = Option.SECURE | kw.pop("options", Option.NONE)  # type: ignore[operator]
    return await open_handle(host, port, options=options, credentials=credentials, **kw)  # type: ignore[arg-type]


def blocking_secure(port: int, credentials: SecurityCredentials | None, **kw: object) -> inetkit.Connection:
    return inetkit.connect(
        "localhost",
        port,
        options=Option.SECURE,
        credentials=credentials,
        timeout=TIMEOUT,
        **kw,  # type: ignore[arg-type]
    )


def echo_server(pki: certs.PKI, make_server: Callable[..., Server], **context_args: object) -> Server:
    return make_server(tls_echo(pki.servers["valid"].context(**context_args)))  # type: ignore[arg-type]


# -- the handshake and what it reports -----------------------------------------------------------


def test_round_trip_and_security_info_as_blocking(
    loop: str, pki: certs.PKI, make_server: Callable[..., Server]
) -> None:
    server = echo_server(pki, make_server)

    async def main() -> tuple[str, str, int, str | None]:
        async with await secure(server.port, trust(pki), session_cache=False) as conn:
            assert conn.is_secure
            assert conn.trace.tls_handshake is not None and conn.trace.tls_handshake > 0
            await conn.write_line("hello over tls")
            assert await conn.read_line() == b"hello over tls\r\n"
            payload = bytes(range(256)) * 1000
            await conn.write(payload)
            assert await conn.read_exactly(len(payload)) == payload
            assert "TLSv1.3" in repr(conn)
            info = conn.security_info
            assert info is not None and info.peer_certificate is not None
            return info.protocol, info.cipher, info.cipher_bits, info.peer_certificate.common_name

    mine = run(loop, main)
    with blocking_secure(server.port, trust(pki), session_cache=False) as conn:
        info = conn.security_info
        assert info is not None and info.peer_certificate is not None
        assert mine == (info.protocol, info.cipher, info.cipher_bits, info.peer_certificate.common_name)


@pytest.mark.parametrize("server_name", ["wrong_host", "untrusted_root", "self_signed", "expired"])
def test_verification_failures_as_blocking(
    loop: str, pki: certs.PKI, make_server: Callable[..., Server], server_name: str
) -> None:
    server = make_server(tls_echo(pki.servers[server_name].context()))

    async def main() -> BaseException:
        with pytest.raises(CertificateError) as info:
            await secure(server.port, trust(pki))
        return info.value

    mine = run(loop, main)
    with pytest.raises(CertificateError) as theirs:
        blocking_secure(server.port, trust(pki))
    assert type(mine) is type(theirs.value)
    assert isinstance(mine, CertificateError)
    assert mine.code is theirs.value.code
    assert mine.message == theirs.value.message


def test_pins_as_blocking(loop: str, pki: certs.PKI, make_server: Callable[..., Server]) -> None:
    server = echo_server(pki, make_server)
    good = public_key_pin(der(pki))
    bad = public_key_pin(certs_der(pki.root))

    async def main() -> BaseException:
        async with await secure(server.port, trust(pki, pinned_public_keys=[good])) as conn:
            assert conn.is_secure
        with pytest.raises(SecurityError) as info:
            await secure(server.port, trust(pki, pinned_public_keys=[bad]))
        return info.value

    mine = run(loop, main)
    with pytest.raises(SecurityError) as theirs:
        blocking_secure(server.port, trust(pki, pinned_public_keys=[bad]))
    assert isinstance(mine, SecurityError)
    assert mine.code is ErrorCode.PIN_MISMATCH is theirs.value.code
    assert mine.message == theirs.value.message


def der(pki: certs.PKI) -> bytes:
    return certs_der(pki.servers["valid"].leaf)


def certs_der(cert: certs.CertKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.cert.public_bytes(serialization.Encoding.DER)


def test_handshake_timeout_as_blocking(loop: str, make_server: Callable[..., Server]) -> None:
    stop = threading.Event()
    server = make_server(lambda sock: stop.wait(TIMEOUT))  # accepts, never answers the ClientHello

    async def main() -> BaseException:
        with pytest.raises(InetTimeoutError) as info:
            await asyncio.wait_for(secure(server.port, None, timeout=0.3), TIMEOUT)
        return info.value

    try:
        mine = run(loop, main)
        with pytest.raises(InetTimeoutError) as theirs:
            inetkit.connect("localhost", server.port, options=Option.SECURE, timeout=0.3)
    finally:
        stop.set()
    assert isinstance(mine, InetTimeoutError)
    assert mine.code is ErrorCode.TIMED_OUT
    assert mine.message == theirs.value.message
    assert mine.message.startswith(f"TLS handshake with localhost port {server.port} (127.0.0.1): timed out")


def test_bare_fin_is_truncation_as_blocking(
    loop: str, pki: certs.PKI, make_server: Callable[..., Server]
) -> None:
    server = make_server(
        answer_then(pki.servers["valid"].context(), b"partial answer\nno end", close_notify=False)
    )

    async def main() -> BaseException:
        async with await secure(server.port, trust(pki)) as conn:
            await conn.write(b"GET\n")
            assert await conn.read_line() == b"partial answer\n"
            assert await conn.read(100) == b"no end"
            assert await conn.is_readable(2) is True
            for _ in range(2):
                with pytest.raises(ConnectionClosedError) as info:
                    await conn.read()
                assert info.value.code is ErrorCode.TLS_TRUNCATED
            return info.value

    mine = run(loop, main)
    with blocking_secure(server.port, trust(pki)) as conn:
        conn.write(b"GET\n")
        conn.read_line()
        conn.read(100)
        with pytest.raises(ConnectionClosedError) as theirs:
            conn.read()
    assert isinstance(mine, ConnectionClosedError)
    assert mine.message == theirs.value.message


def test_close_notify_reads_as_the_end(loop: str, pki: certs.PKI, make_server: Callable[..., Server]) -> None:
    server = make_server(answer_then(pki.servers["valid"].context(), b"all of it\n", close_notify=True))

    async def main() -> None:
        async with await secure(server.port, trust(pki)) as conn:
            await conn.write(b"GET\n")
            assert [line async for line in conn] == [b"all of it\n"]
            assert await conn.read() == b""

    run(loop, main)


# -- full duplex, busy, cancellation -------------------------------------------------------------


def test_full_duplex_under_load(loop: str, pki: certs.PKI, make_server: Callable[..., Server]) -> None:
    """One task writes megabytes while another reads the echo: neither waits for the other."""
    server = echo_server(pki, make_server)
    data = random.Random(3).randbytes(DUPLEX_BYTES)

    async def main() -> None:
        async with await secure(server.port, trust(pki), timeout=60) as conn:

            async def write() -> None:
                for start in range(0, len(data), 300_000):
                    await conn.write(data[start : start + 300_000])

            async def read() -> bytes:
                got = bytearray()
                buf = bytearray(70_000)
                while len(got) < len(data):  # bounded: each read gives bytes or times out
                    if len(got) % 2:
                        got += await conn.read(50_000)
                    else:
                        count = await conn.read_into(buf)
                        got += buf[:count]
                return bytes(got)

            writer = asyncio.create_task(write())
            received = await read()
            await writer
            assert received == data

    run(loop, main)


def test_second_reader_is_busy_over_tls(
    loop: str, pki: certs.PKI, make_server: Callable[..., Server]
) -> None:
    server = echo_server(pki, make_server)

    async def main() -> None:
        async with await secure(server.port, trust(pki)) as conn:
            reader = asyncio.create_task(conn.read_line())
            await asyncio.sleep(0.02)
            with pytest.raises(OwnershipError) as info:
                await conn.read()
            assert info.value.code is ErrorCode.HANDLE_BUSY
            with pytest.raises(OwnershipError):
                await conn.enable_security()
            await conn.write(b"duplex\n")
            assert await asyncio.wait_for(reader, TIMEOUT) == b"duplex\n"

    run(loop, main)


def test_cancelled_tls_reads_lose_no_bytes(
    loop: str, pki: certs.PKI, make_server: Callable[..., Server]
) -> None:
    rng = random.Random(11)
    body = b"".join(
        rng.randbytes(rng.randint(1, 2000)).replace(b"\n", b"") + b"\n" for _ in range(CANCEL_ROUNDS)
    )
    context = pki.servers["valid"].context()
    server_rng = random.Random(12)

    def trickle(sock: socket.socket) -> None:
        with context.wrap_socket(sock, server_side=True) as tls:
            tls.recv(10)
            pos = 0
            sends = 0
            while pos < len(body):
                step = server_rng.randint(1, 5000)
                tls.sendall(body[pos : pos + step])
                pos += step
                sends += 1
                # Now and then a pause long enough for a slow client to catch up
                # and wait, so that some reads are cancelled while waiting.
                time.sleep(0.03 if sends % 25 == 0 else server_rng.random() * 0.002)
            tls.unwrap()

    server = make_server(trickle)

    async def main() -> bytes:
        got = bytearray()
        cancels = 0
        async with await secure(server.port, trust(pki)) as conn:
            await conn.write(b"go\n")
            fd = conn.fileno()
            for _ in range(CANCEL_ROUNDS * 20):  # bounded: the body is ended within these rounds
                kind = rng.randrange(3)
                if kind == 0:
                    call = conn.read(rng.randint(1, 5000))
                elif kind == 1:
                    call = conn.read_line()
                else:
                    call = conn.read_exactly(rng.randint(1, 3000))
                task = asyncio.ensure_future(call)
                await asyncio.sleep(rng.random() * 0.001)
                if not task.done():
                    task.cancel()
                try:
                    data = await task
                except asyncio.CancelledError:
                    cancels += 1
                    assert not registered(conn, fd)
                    continue
                except ConnectionClosedError:
                    got += await conn.read(1 << 20)
                    break
                got += data
                if not data:
                    break
            assert cancels > 0
        return bytes(got)

    assert run(loop, main) == body


def test_cancelled_write_leaves_tls_unusable(
    loop: str, pki: certs.PKI, make_server: Callable[..., Server]
) -> None:
    stop = threading.Event()
    context = pki.servers["valid"].context()

    def handshake_then_stall(sock: socket.socket) -> None:
        with context.wrap_socket(sock, server_side=True):
            stop.wait(TIMEOUT)

    server = make_server(handshake_then_stall)

    async def main() -> None:
        conn = await secure(server.port, trust(pki), timeout=None)
        fd = conn.fileno()
        writer = asyncio.create_task(conn.write(b"w" * (32 << 20)))
        await asyncio.sleep(0.1)
        assert not writer.done()  # the peer does not read: the write waits for room
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer
        assert not registered(conn, fd)
        with pytest.raises(InetError) as info:
            await conn.write(b"more")
        assert info.value.code is ErrorCode.CANCELLED
        assert "unusable" in info.value.message
        # A peer that reads nothing cannot hang the close (the guard is far above its bound).
        await asyncio.wait_for(conn.aclose(), TIMEOUT)
        assert conn.closed

    try:
        run(loop, main)
    finally:
        stop.set()


def test_aclose_never_waits_for_the_peers_close_notify(
    loop: str, pki: certs.PKI, make_server: Callable[..., Server]
) -> None:
    stop = threading.Event()
    context = pki.servers["valid"].context()

    def mute(sock: socket.socket) -> None:
        with context.wrap_socket(sock, server_side=True) as tls:
            tls.recv(10)
            stop.wait(TIMEOUT)  # never answers our close_notify, never closes

    server = make_server(mute)

    async def main() -> None:
        conn = await secure(server.port, trust(pki), timeout=None)
        await conn.write(b"hi\n")
        await asyncio.wait_for(conn.aclose(), TIMEOUT)
        assert conn.closed and conn.fileno() == -1

    try:
        run(loop, main)
    finally:
        stop.set()


def test_aclose_cancelled_still_closes(loop: str, pki: certs.PKI, make_server: Callable[..., Server]) -> None:
    server = echo_server(pki, make_server, max_version=ssl.TLSVersion.TLSv1_3)

    async def main() -> None:
        conn = await secure(server.port, trust(pki))
        sock = conn._channel.sock
        closing = asyncio.create_task(conn.aclose())  # may wait briefly for a session ticket
        await asyncio.sleep(0)
        closing.cancel()
        try:
            await closing
        except asyncio.CancelledError:
            pass
        assert conn.closed and sock.fileno() == -1

    run(loop, main)


# -- one session cache for the blocking and the asyncio handles ---------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("read_first", [True, False])
def test_sessions_resume_across_blocking_and_async(
    loop: str,
    pki: certs.PKI,
    make_server: Callable[..., Server],
    version: ssl.TLSVersion,
    read_first: bool,
) -> None:
    server = echo_server(pki, make_server, min_version=version, max_version=version)
    creds = trust(pki)

    def blocking_once() -> bool:
        with blocking_secure(server.port, creds) as conn:
            if read_first:
                conn.write(b"x")
                assert conn.read(1) == b"x"
            assert conn.security_info is not None
            return conn.security_info.session_reused

    async def async_once() -> bool:
        async with await secure(server.port, creds) as conn:
            if read_first:
                await conn.write(b"x")
                assert await conn.read(1) == b"x"
            assert conn.security_info is not None
            return conn.security_info.session_reused

    assert blocking_once() is False
    assert run(loop, async_once) is True  # the blocking handle's session
    SESSION_CACHE.clear()
    assert run(loop, async_once) is False
    assert blocking_once() is True  # the async handle's session
    assert run(loop, async_once) is True


# -- enable_security ------------------------------------------------------------------------------


async def ask_for_tls(port: int, credentials: SecurityCredentials | None = None) -> AsyncConnection:
    conn = await open_handle("127.0.0.1", port, credentials=credentials)
    await conn.write(b"STARTTLS\n")
    assert await conn.read_line() == b"GO\n"
    return conn


def test_enable_security_after_a_plain_exchange(loop: str, pki: certs.PKI, servers: Servers) -> None:
    server = servers.python(pki.servers["valid"].context(), expect=b"STARTTLS\n", reply=[b"GO\n"])

    async def main() -> BaseException:
        async with await ask_for_tls(server.port) as conn:
            assert not conn.is_secure
            await conn.enable_security(trust(pki), server_name="LOCALHOST.")
            assert conn.is_secure
            assert conn.security_info is not None and conn.security_info.protocol == "TLSv1.3"
            assert conn.trace.tls_handshake is not None
            await conn.write(b"over TLS\n")
            assert await conn.read_line() == b"SLT revo\n"
            with pytest.raises(SecurityError) as info:
                await conn.enable_security(trust(pki))
            assert info.value.code is ErrorCode.ALREADY_SECURE
            await conn.write(b"still fine\n")
            assert await conn.read_line() == b"enif llits\n"
            return info.value

    mine = run(loop, main)
    server.wait_idle()
    assert server.seen[0].server_name == "localhost"
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as conn:
        conn.write(b"STARTTLS\n")
        conn.read_line()
        conn.enable_security(trust(pki), server_name="localhost")
        with pytest.raises(SecurityError) as theirs:
            conn.enable_security(trust(pki))
    assert isinstance(mine, SecurityError)
    assert mine.message == theirs.value.message


def test_enable_security_with_connect_credentials_and_ip_sans(
    loop: str, pki: certs.PKI, servers: Servers
) -> None:
    server = servers.python(pki.servers["valid"].context(), expect=b"STARTTLS\n", reply=[b"GO\n"])

    async def main() -> None:
        async with await ask_for_tls(server.port, trust(pki)) as conn:
            await conn.enable_security()
            await conn.write(b"ping\n")
            assert await conn.read_line() == b"gnip\n"

    run(loop, main)


def test_enable_security_refuses_buffered_plaintext_as_blocking(
    loop: str, pki: certs.PKI, servers: Servers
) -> None:
    server = servers.python(pki.servers["valid"].context(), expect=b"STARTTLS\n", reply=[b"GO\nEXTRA"])

    async def main() -> BaseException:
        async with await ask_for_tls(server.port) as conn:
            with pytest.raises(SecurityError) as info:
                await conn.enable_security(trust(pki))
            assert not conn.is_secure
            return info.value

    mine = run(loop, main)
    with inetkit.connect("127.0.0.1", server.port, timeout=TIMEOUT) as conn:
        conn.write(b"STARTTLS\n")
        conn.read_line()
        with pytest.raises(SecurityError) as theirs:
            conn.enable_security(trust(pki))
    assert isinstance(mine, SecurityError)
    assert mine.code is ErrorCode.UNEXPECTED_PLAINTEXT
    assert mine.message == theirs.value.message


def test_enable_security_refuses_plaintext_waiting_in_the_socket(
    loop: str, pki: certs.PKI, servers: Servers
) -> None:
    gate = threading.Event()
    server = servers.python(
        pki.servers["valid"].context(), expect=b"STARTTLS\n", reply=[b"GO\n", gate, b"EXTRA"]
    )

    async def main() -> None:
        async with await ask_for_tls(server.port) as conn:
            gate.set()
            assert await conn.is_readable(TIMEOUT)
            with pytest.raises(SecurityError) as info:
                await conn.enable_security(trust(pki))
            assert info.value.code is ErrorCode.UNEXPECTED_PLAINTEXT

    run(loop, main)


def test_enable_security_verifies_like_implicit_tls(loop: str, pki: certs.PKI, servers: Servers) -> None:
    server = servers.python(pki.servers["wrong_host"].context(), expect=b"STARTTLS\n", reply=[b"GO\n"])

    async def main() -> None:
        async with await ask_for_tls(server.port) as conn:
            with pytest.raises(CertificateError) as info:
                await conn.enable_security(trust(pki), server_name="localhost")
            assert info.value.code is ErrorCode.CERTIFICATE_NAME_MISMATCH
            assert not conn.is_secure

    run(loop, main)


def test_aclose_bounds_a_close_notify_the_socket_cannot_take(
    loop: str, pki: certs.PKI, make_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    """The kernel's send buffer is full (a peer that stopped reading): aclose still returns, closed."""
    stop = threading.Event()
    context = pki.servers["valid"].context()

    def stalled(sock: socket.socket) -> None:
        # A fixed receive buffer: no window autotuning that would make room later.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with context.wrap_socket(sock, server_side=True):
            stop.wait(TIMEOUT)

    server = make_server(stalled)

    async def main() -> None:
        conn = await secure(server.port, trust(pki))
        conn.timeout = 0.3  # after the handshake, which a loaded machine may not finish in 0.3 s
        sock = conn._channel.sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # fixed too
        # Fill the socket below the handle (real bytes into a real kernel buffer)
        # until it takes no more, twice: whatever room the peer's window made
        # meanwhile is taken as well.
        for _ in range(2):
            for _ in range(100_000):  # bounded: a loopback socket holds a few MB at most
                try:
                    sock.send(b"\0" * 65536)
                except BlockingIOError:
                    break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(conn.aclose(), TIMEOUT)  # the guard is far above the handle's 0.3 s
        assert conn.closed and sock.fileno() == -1

    try:
        with caplog.at_level(logging.DEBUG, logger="inetkit"):
            run(loop, main)
    finally:
        stop.set()
    messages = [record.getMessage() for record in caplog.records]
    assert any("was not sent within 0.3 s" in message for message in messages), messages
