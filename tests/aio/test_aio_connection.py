"""AsyncConnection over plain TCP and UDP: every member, the blocking handle's errors, ownership,
cancellation that loses nothing, on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
import gc
import random
import socket
import threading
import time
import warnings
from collections.abc import Callable

import pytest
from aio_io_support import LOOPS, TIMEOUT, open_handle, registered, run
from conftest import Server, echo_handler

import inetkit
from inetkit import (
    ConnectionClosedError,
    ErrorCode,
    InetError,
    InetTimeoutError,
    InvalidArgumentError,
    Option,
    OwnershipError,
    Protocol,
)
from inetkit.aio import AsyncConnection

pytestmark = pytest.mark.parametrize("loop", LOOPS)

#: A short I/O timeout for the tests that wait for it to run out.
SHORT = 0.2
#: Rounds of the randomized cancellation test (each a few milliseconds).
CANCEL_ROUNDS = 200


def talker(*chunks: bytes, pause: float = 0.0) -> Callable[[socket.socket], None]:
    """A server that sends ``chunks`` (pausing between them), then closes."""

    def handler(sock: socket.socket) -> None:
        for chunk in chunks:
            sock.sendall(chunk)
            if pause:
                time.sleep(pause)

    return handler


def silent(sock: socket.socket) -> None:
    """A server that reads until the client leaves and never answers."""
    while sock.recv(65536):
        pass


def blocking_error(port: int, action: Callable[[inetkit.Connection], object], **kw: object) -> InetError:
    """The error the blocking handle raises for ``action`` in the same situation."""
    with inetkit.connect("127.0.0.1", port, **kw) as conn:  # type: ignore[arg-type]
        with pytest.raises(InetError) as info:
            action(conn)
        return info.value


def same_error(mine: BaseException, theirs: InetError) -> None:
    """Class, code and message as the blocking handle's (ports differ: compare with them masked)."""
    assert isinstance(mine, InetError)
    assert type(mine) is type(theirs)
    assert mine.code is theirs.code


# -- reading and writing ------------------------------------------------------------------------


def test_round_trip_every_read(loop: str, echo_server: Server) -> None:
    async def main() -> None:
        async with await open_handle("127.0.0.1", echo_server.port) as conn:
            assert await conn.write(b"hello\n") == 6
            assert await conn.read_line() == b"hello\n"
            assert await conn.write_line("one") == 5
            assert await conn.write_line(b"two") == 5
            assert await conn.read_line() == b"one\r\n"
            assert await conn.read_exactly(3) == b"two"
            assert await conn.read_exactly(2) == b"\r\n"
            await conn.write(memoryview(b"abcdef"))
            got = b""
            while len(got) < 6:  # bounded by the timeout: each read gives at least a byte
                got += await conn.read(6 - len(got))
            assert got == b"abcdef"
            await conn.write(bytearray(b"xyz"))
            buf = bytearray(10)
            count = 0
            while count < 3:
                count += await conn.read_into(memoryview(buf)[count:])
            assert bytes(buf[:3]) == b"xyz"
            assert await conn.read_into(bytearray()) == 0
            assert await conn.read_exactly(0) == b""

    run(loop, main)


def test_buffered_bytes_are_served_first(loop: str, make_server: Callable[..., Server]) -> None:
    server = make_server(talker(b"line one\nrest of it"))

    async def main() -> None:
        async with await open_handle("127.0.0.1", server.port) as conn:
            assert await conn.read_line() == b"line one\n"
            buf = bytearray(4)
            assert await conn.read_into(buf) == 4
            assert buf == b"rest"
            assert await conn.read(100) == b" of it"
            assert await conn.read(100) == b""
            assert await conn.read_line() == b""

    run(loop, main)


def test_eof_and_read_exactly_keeps_the_data(loop: str, make_server: Callable[..., Server]) -> None:
    server = make_server(talker(b"abc"))

    async def main() -> None:
        async with await open_handle("127.0.0.1", server.port) as conn:
            with pytest.raises(ConnectionClosedError) as info:
                await conn.read_exactly(5)
            assert info.value.code is ErrorCode.CONNECTION_CLOSED
            assert info.value.message == (
                f"read from 127.0.0.1 port {server.port}: the peer closed the connection after 3 of 5 bytes"
            )
            assert await conn.read(10) == b"abc"
            assert await conn.read(10) == b""

    run(loop, main)
    theirs = blocking_error(server.port, lambda c: c.read_exactly(5))
    assert theirs.message == info_message(server.port, "the peer closed the connection after 3 of 5 bytes")


def info_message(port: int, text: str) -> str:
    return f"read from 127.0.0.1 port {port}: {text}"


def test_long_read_exactly_goes_straight_into_the_result(loop: str, echo_server: Server) -> None:
    data = random.Random(1).randbytes(300_000)

    async def main() -> None:
        async with await open_handle("127.0.0.1", echo_server.port) as conn:
            writer = asyncio.create_task(conn.write(data))
            assert await conn.read_exactly(len(data)) == data
            assert await writer == len(data)

    run(loop, main)


def test_lines_terminators_and_the_last_line(loop: str, make_server: Callable[..., Server]) -> None:
    server = make_server(talker(b"a\r\nb\n", b"\nc\rd", b"\r\nlast", pause=0.01))

    async def main() -> None:
        async with await open_handle("127.0.0.1", server.port) as conn:
            lines = [await conn.read_line() for _ in range(5)]
            assert lines == [b"a\r\n", b"b\n", b"\n", b"c\rd\r\n", b"last"]
            assert await conn.read_line() == b""

    run(loop, main)


def test_line_too_long_same_as_blocking(loop: str, make_server: Callable[..., Server]) -> None:
    server = make_server(talker(b"x" * 20 + b"\nshort\n"))

    async def main() -> InetError:
        async with await open_handle("127.0.0.1", server.port) as conn:
            with pytest.raises(InetError) as info:
                await conn.read_line(10)
            assert await conn.read_line(20) == b"x" * 20 + b"\n"  # its bytes stayed buffered
            assert await conn.read_line() == b"short\n"
            return info.value

    mine = run(loop, main)
    theirs = blocking_error(server.port, lambda c: c.read_line(10))
    same_error(mine, theirs)
    assert mine.code is ErrorCode.LINE_TOO_LONG
    assert mine.message == theirs.message


def test_async_iteration_gives_what_read_line_gives(loop: str, make_server: Callable[..., Server]) -> None:
    body = b"".join(b"line %d %s\r\n" % (i, b"y" * (i % 97)) for i in range(3000)) + b"tail"
    server = make_server(talker(body[:5000], body[5000:70000], body[70000:], pause=0.005))
    expected = body.splitlines(keepends=True)

    async def main() -> list[bytes]:
        async with await open_handle("127.0.0.1", server.port) as conn:
            return [line async for line in conn]

    assert run(loop, main) == expected


def test_mixing_iteration_and_reads_loses_nothing(loop: str, make_server: Callable[..., Server]) -> None:
    body = b"".join(b"%d\n" % i for i in range(500)) + b"binary-rest"
    server = make_server(talker(body))

    async def main() -> bytes:
        got = b""
        async with await open_handle("127.0.0.1", server.port) as conn:
            async for line in conn:
                got += line
                if line == b"9\n":
                    break
            got += await conn.read_exactly(4)
            got += await conn.read_line()
            async for line in conn:
                got += line
        return got

    assert run(loop, main) == body


def test_bulk_both_ways(loop: str, echo_server: Server) -> None:
    data = random.Random(2).randbytes(4 << 20)

    async def main() -> None:
        async with await open_handle("127.0.0.1", echo_server.port, timeout=30) as conn:
            writer = asyncio.create_task(conn.write(data))
            received = bytearray()
            while len(received) < len(data):  # bounded: each read gives at least a byte or times out
                received += await conn.read(65536)
            await writer
            assert received == data

    run(loop, main)


# -- argument checks, the same as the blocking handle's --------------------------------------


@pytest.mark.parametrize("bad", [0, -1])
def test_read_argument_values(loop: str, echo_server: Server, bad: int) -> None:
    async def main() -> None:
        async with await open_handle("127.0.0.1", echo_server.port) as conn:
            for call in (conn.read, conn.read_line):
                with pytest.raises(InvalidArgumentError):
                    await call(bad)
            with pytest.raises(TypeError):
                await conn.read("1")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await conn.read_line(True)
            with pytest.raises(TypeError):
                await conn.read_exactly(1.5)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError):
                await conn.read_exactly(-1)
            with pytest.raises(TypeError):
                await conn.write("text")
            with pytest.raises(TypeError):
                await conn.write_line(3)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await conn.read_into(b"readonly")

    run(loop, main)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), True])
def test_timeout_setter_checks_like_blocking(loop: str, echo_server: Server, bad: float) -> None:
    async def main() -> BaseException:
        async with await open_handle("127.0.0.1", echo_server.port) as conn:
            with pytest.raises((InvalidArgumentError, TypeError)) as info:
                conn.timeout = bad
            assert conn.timeout == TIMEOUT
            conn.timeout = None
            assert conn.timeout is None
            conn.timeout = 2
            assert conn.timeout == 2
            return info.value

    mine = run(loop, main)
    with inetkit.connect("127.0.0.1", echo_server.port) as blocking:
        with pytest.raises((InvalidArgumentError, TypeError)) as info:
            blocking.timeout = bad
    assert type(mine) is type(info.value)
    assert str(mine) == str(info.value)


# -- timeouts ---------------------------------------------------------------------------------


def test_read_timeout_same_as_blocking(loop: str, make_server: Callable[..., Server]) -> None:
    server = make_server(silent)

    async def main() -> list[InetError]:
        errors = []
        async with await open_handle("127.0.0.1", server.port, timeout=SHORT) as conn:
            for call in (conn.read(), conn.read_line(), conn.read_exactly(3), conn.read_into(bytearray(5))):
                with pytest.raises(InetTimeoutError) as info:
                    await asyncio.wait_for(call, TIMEOUT)  # the hang guard, far above the handle's timeout
                errors.append(info.value)
            assert not registered(conn, conn.fileno())  # the timed-out waits left nothing behind
        return errors

    errors = run(loop, main)
    theirs = blocking_error(server.port, lambda c: c.read(), timeout=SHORT)
    for mine in errors:
        same_error(mine, theirs)
        assert mine.code is ErrorCode.TIMED_OUT
        assert mine.message == theirs.message == f"read from 127.0.0.1 port {server.port}: timed out"


def test_timeout_bounds_the_whole_call(loop: str, make_server: Callable[..., Server]) -> None:
    # A byte every 50 ms never lets a per-receive timeout of 0.3 s run out; the call's does.
    server = make_server(talker(*[b"x"] * 40, pause=0.05))

    async def main() -> None:
        async with await open_handle("127.0.0.1", server.port, timeout=0.3) as conn:
            with pytest.raises(InetTimeoutError):
                await asyncio.wait_for(conn.read_line(), TIMEOUT)
            assert len(await conn.read(100)) >= 1  # what came before the timeout is kept

    run(loop, main)


def test_write_timeout_reports_bytes_sent(loop: str, make_server: Callable[..., Server]) -> None:
    stop = threading.Event()

    def never_reads(sock: socket.socket) -> None:
        stop.wait(TIMEOUT)

    server = make_server(never_reads)
    data = b"z" * (64 << 20)  # far more than both sockets' buffers

    async def main() -> InetError:
        async with await open_handle("127.0.0.1", server.port, timeout=SHORT) as conn:
            with pytest.raises(InetTimeoutError) as info:
                await asyncio.wait_for(conn.write(data), TIMEOUT)
            return info.value

    try:
        mine = run(loop, main)
    finally:
        stop.set()
    assert mine.code is ErrorCode.TIMED_OUT
    assert mine.bytes_sent is not None and 0 < mine.bytes_sent < len(data)
    assert mine.message == (
        f"write to 127.0.0.1 port {server.port}: timed out ({mine.bytes_sent} of {len(data)} bytes were sent)"
    )


# -- readiness, shutdown, close -----------------------------------------------------------------


def test_readiness(loop: str, echo_server: Server) -> None:
    async def main() -> None:
        async with await open_handle("127.0.0.1", echo_server.port) as conn:
            assert await conn.is_writable()
            assert not await conn.is_readable()
            assert not await conn.is_readable(0.05)
            await conn.write(b"ping\n")
            assert await conn.is_readable(TIMEOUT)
            assert await conn.read_line() == b"ping\n"
            assert not await conn.is_readable()
            with pytest.raises(InvalidArgumentError):
                await conn.is_readable(-1)

    run(loop, main)


def test_shutdown_half_closes(loop: str, echo_server: Server) -> None:
    async def main() -> None:
        async with await open_handle("127.0.0.1", echo_server.port) as conn:
            await conn.write(b"last words\n")
            await conn.shutdown()
            assert await conn.read_line() == b"last words\n"
            assert await conn.read() == b""  # the echo server saw our FIN and closed
            with pytest.raises(InetError) as info:
                await conn.write(b"more")
            assert info.value.code is ErrorCode.HANDLE_CLOSED
            assert "shut down with shutdown()" in info.value.message

    run(loop, main)


def test_aclose_is_idempotent_and_closed_handles_say_so(loop: str, echo_server: Server) -> None:
    async def main() -> list[InetError]:
        conn = await open_handle("127.0.0.1", echo_server.port)
        fd = conn.fileno()
        assert fd >= 0 and not conn.closed
        await conn.aclose()
        await conn.aclose()
        await conn.disconnect()
        assert conn.closed and conn.fileno() == -1
        errors = []
        for call in (conn.read(), conn.write(b"x"), conn.read_line(), conn.is_readable(), conn.shutdown()):
            with pytest.raises(InetError) as info:
                await call
            errors.append(info.value)
        with pytest.raises(InetError):
            _ = conn.local_address
        return errors

    errors = run(loop, main)
    blocking = inetkit.connect("127.0.0.1", echo_server.port)
    blocking.close()
    with pytest.raises(InetError) as info:
        blocking.read()
    for mine in errors:
        assert mine.code is ErrorCode.HANDLE_CLOSED
        assert mine.message == info.value.message


def test_aclose_wakes_a_waiting_reader(loop: str, make_server: Callable[..., Server]) -> None:
    server = make_server(silent)

    async def main() -> None:
        conn = await open_handle("127.0.0.1", server.port, timeout=None)
        fd = conn.fileno()
        reader = asyncio.create_task(conn.read())
        await asyncio.sleep(0.05)
        await conn.aclose()
        with pytest.raises(InetError) as info:
            await asyncio.wait_for(reader, TIMEOUT)
        assert info.value.code is ErrorCode.HANDLE_CLOSED
        assert not registered(conn, fd)

    run(loop, main)


def test_properties_and_repr(loop: str, echo_server: Server) -> None:
    async def main() -> None:
        conn = await open_handle("127.0.0.1", echo_server.port, options=Option.NODELAY)
        assert conn.host_name == "127.0.0.1"
        assert conn.port == echo_server.port
        assert conn.protocol is Protocol.TCP
        assert conn.options is Option.NODELAY
        assert conn.remote_address == ("127.0.0.1", echo_server.port)
        local = conn.local_address
        assert local[0] == "127.0.0.1" and local[1] > 0
        assert not conn.is_secure and conn.security_info is None
        assert conn.timeout == TIMEOUT
        assert conn.trace.host == "127.0.0.1" and conn.trace.port == echo_server.port
        assert conn.trace is conn.trace  # built once
        text = repr(conn)
        assert text.startswith("<inetkit.aio.AsyncConnection tcp 127.0.0.1:")
        assert f"{local[0]}:{local[1]}->127.0.0.1:{echo_server.port} open>" in text
        await conn.aclose()
        assert repr(conn).endswith("closed>")
        assert conn.local_address == local  # known before the close

    run(loop, main)


def test_cannot_be_constructed_directly(loop: str) -> None:
    with pytest.raises(TypeError):
        AsyncConnection()


def test_unclosed_handle_warns_and_closes(loop: str, echo_server: Server) -> None:
    async def main() -> socket.socket:
        conn = await open_handle("127.0.0.1", echo_server.port)
        sock = conn._channel.sock
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del conn
            gc.collect()
        assert any(issubclass(w.category, ResourceWarning) for w in caught)
        return sock

    assert run(loop, main).fileno() == -1


# -- ownership: the loop that made it; one reader and one writer ------------------------------


def test_use_from_another_loop_or_thread_is_refused(loop: str, echo_server: Server) -> None:
    async def main() -> None:
        async with await open_handle("127.0.0.1", echo_server.port) as conn:
            errors: list[BaseException] = []

            def elsewhere() -> None:
                async def use() -> None:
                    for call in (conn.read(), conn.write(b"x"), conn.read_line(), conn.aclose()):
                        try:
                            await call
                        except BaseException as exc:
                            errors.append(exc)

                asyncio.run(use())

            thread = threading.Thread(target=elsewhere)
            thread.start()
            await asyncio.to_thread(thread.join, TIMEOUT)
            assert len(errors) == 4
            for exc in errors:
                assert isinstance(exc, OwnershipError)
                assert exc.code is ErrorCode.NOT_HANDLE_OWNER
                assert f"127.0.0.1 port {echo_server.port}" in exc.message
            # Still fine on its own loop.
            await conn.write(b"ok\n")
            assert await conn.read_line() == b"ok\n"

    run(loop, main)


def test_one_reader_one_writer_and_busy(loop: str, make_server: Callable[..., Server]) -> None:
    release = threading.Event()

    def late_echo(sock: socket.socket) -> None:
        release.wait(TIMEOUT)
        echo_handler(sock)

    server = make_server(late_echo)

    async def main() -> None:
        async with await open_handle("127.0.0.1", server.port) as conn:
            reader = asyncio.create_task(conn.read_line())
            await asyncio.sleep(0.02)
            for second in (conn.read(), conn.read_line(), conn.read_exactly(1), conn.is_readable()):
                with pytest.raises(OwnershipError) as info:
                    await second
                assert info.value.code is ErrorCode.HANDLE_BUSY
            # A writer runs while the reader waits (full duplex).
            assert await conn.write(b"through\n") == 8
            release.set()
            assert await asyncio.wait_for(reader, TIMEOUT) == b"through\n"

    run(loop, main)


def test_second_concurrent_writer_is_busy(loop: str, make_server: Callable[..., Server]) -> None:
    stop = threading.Event()
    server = make_server(lambda sock: stop.wait(TIMEOUT))

    async def main() -> None:
        async with await open_handle("127.0.0.1", server.port) as conn:
            writer = asyncio.create_task(conn.write(b"w" * (64 << 20)))
            await asyncio.sleep(0.05)
            with pytest.raises(OwnershipError) as info:
                await conn.write(b"second")
            assert info.value.code is ErrorCode.HANDLE_BUSY
            writer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await writer
            assert not registered(conn, conn.fileno())

    try:
        run(loop, main)
    finally:
        stop.set()


# -- cancellation -------------------------------------------------------------------------------


def test_cancelled_reads_lose_no_bytes(loop: str, make_server: Callable[..., Server]) -> None:
    """Reads cancelled at random points, mixed kinds; every byte arrives once, in order."""
    rng = random.Random(7)
    chunks = [rng.randbytes(rng.randint(1, 3000)).replace(b"\n", b"") + b"\n" for _ in range(CANCEL_ROUNDS)]
    body = b"".join(chunks)

    def trickle(sock: socket.socket) -> None:
        pos = 0
        sends = 0
        while pos < len(body):
            step = rng_server.randint(1, 4000)
            sock.sendall(body[pos : pos + step])
            pos += step
            sends += 1
            # Now and then a pause long enough for a slow client to catch up
            # and wait, so that some reads are cancelled while waiting.
            time.sleep(0.03 if sends % 25 == 0 else rng_server.random() * 0.002)

    rng_server = random.Random(8)
    server = make_server(trickle)

    async def main() -> bytes:
        got = bytearray()
        cancels = 0
        async with await open_handle("127.0.0.1", server.port) as conn:
            fd = conn.fileno()
            for _ in range(CANCEL_ROUNDS * 20):  # bounded: the body is ended within these rounds
                kind = rng.randrange(4)
                if kind == 0:
                    call = conn.read(rng.randint(1, 5000))
                elif kind == 1:
                    call = conn.read_line()
                elif kind == 2:
                    call = conn.read_exactly(rng.randint(1, 3000))
                else:
                    buf = bytearray(rng.randint(1, 5000))
                    call = conn.read_into(buf)
                task = asyncio.ensure_future(call)
                await asyncio.sleep(rng.random() * 0.001)
                if not task.done():
                    task.cancel()
                try:
                    result = await task
                except asyncio.CancelledError:
                    cancels += 1
                    assert not registered(conn, fd)  # nothing outlives the cancelled call
                    continue
                except ConnectionClosedError:
                    got += await conn.read(1 << 20)  # the rest, kept by read_exactly
                    break
                if isinstance(result, int):
                    got += buf[:result]
                    if not result:
                        break
                else:
                    got += result
                    if not result:
                        break
            assert cancels > 0
        return bytes(got)

    assert run(loop, main) == body


# -- UDP ------------------------------------------------------------------------------------------


def test_udp_one_datagram_per_call(loop: str, udp_echo: tuple[str, int]) -> None:
    async def main() -> None:
        async with await open_handle("127.0.0.1", udp_echo[1], protocol=Protocol.UDP) as conn:
            assert conn.protocol is Protocol.UDP
            for payload in (b"one", b"two two", b"x" * 1000):
                assert await conn.write(payload) == len(payload)
                assert await conn.read() == payload
            await conn.write(b"abcdef")
            assert await conn.read(3) == b"abc"  # a datagram longer than asked is cut, as recv does
            for stream_only in (conn.read_line(), conn.read_exactly(2)):
                with pytest.raises(InvalidArgumentError) as info:
                    await stream_only
                assert "stream operation" in info.value.message
            with pytest.raises(InvalidArgumentError):
                conn.__aiter__()
            with pytest.raises(InvalidArgumentError) as info:
                await conn.enable_security()
            assert "TLS needs TCP" in info.value.message

    run(loop, main)


def test_udp_oversized_datagram_same_as_blocking(loop: str, udp_echo: tuple[str, int]) -> None:
    big = b"u" * 70000

    async def main() -> InetError:
        async with await open_handle("127.0.0.1", udp_echo[1], protocol=Protocol.UDP) as conn:
            with pytest.raises(InetError) as info:
                await conn.write(big)
            return info.value

    mine = run(loop, main)
    with inetkit.connect("127.0.0.1", udp_echo[1], Protocol.UDP) as blocking:
        with pytest.raises(InetError) as info:
            blocking.write(big)
    same_error(mine, info.value)
    assert mine.message.replace(str(udp_echo[1]), "P") == info.value.message.replace(str(udp_echo[1]), "P")


def test_udp_refused_port_as_blocking(loop: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> InetError:
        async with await open_handle("127.0.0.1", port, protocol=Protocol.UDP, timeout=2) as conn:
            await conn.write(b"anyone?")
            with pytest.raises(inetkit.InetConnectionRefusedError) as info:
                await conn.read()
            return info.value

    mine = run(loop, main)
    with inetkit.connect("127.0.0.1", port, Protocol.UDP, timeout=2) as blocking:
        blocking.write(b"anyone?")
        with pytest.raises(inetkit.InetConnectionRefusedError) as theirs:
            blocking.read()
    assert mine.code is ErrorCode.CONNECTION_REFUSED
    assert mine.message == theirs.value.message


def test_a_thread_without_a_loop_is_not_the_owner(loop: str, echo_server: Server) -> None:
    async def main() -> None:
        async with await open_handle("127.0.0.1", echo_server.port) as conn:
            caught: list[BaseException] = []

            def no_loop() -> None:
                coro = conn.read()
                try:
                    coro.send(None)  # driven by hand: no running loop in this thread
                except BaseException as exc:
                    caught.append(exc)
                finally:
                    coro.close()

            thread = threading.Thread(target=no_loop)
            thread.start()
            await asyncio.to_thread(thread.join, TIMEOUT)
            (error,) = caught
            assert isinstance(error, OwnershipError)
            assert error.code is ErrorCode.NOT_HANDLE_OWNER
            assert "no running event loop" in error.message
            assert conn.host_name == "127.0.0.1"  # properties are readable from anywhere

    run(loop, main)


def test_ipv6_loopback(loop: str, make_server: Callable[..., Server]) -> None:
    server = make_server(echo_handler, host="::1")

    async def main() -> None:
        async with await open_handle("::1", server.port, ip="::1") as conn:
            assert conn.remote_address == ("::1", server.port)
            assert conn.local_address[0] == "::1"
            await conn.write_line("over six")
            assert await conn.read_line() == b"over six\r\n"
            assert f"::1 port {server.port}" == conn._target

    run(loop, main)
