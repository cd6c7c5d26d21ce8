"""Many connections from one asyncio task group: `inetkit.aio.connect` with a bound on handshakes in flight.

Starts an asyncio line-echo server on 127.0.0.1, then opens ``COUNT``
connections to it at once (at most ``IN_FLIGHT`` connects at a time, so
a burst never overflows the server's listen backlog), sends a line on each,
reads the echo back, and closes them all. One connect to a port where
nothing listens shows how a failure arrives: the same `InetError` (class,
code, message, ``trace``) as from the blocking `inetkit.connect`. Every
connect has one deadline (``TIMEOUT``) over resolution, the race and TLS.

    python examples/aio_many.py [COUNT]
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import inetkit
import inetkit.aio

#: Connections the example opens at once (default).
COUNT = 500
#: Connects in flight at once: well below the server's listen backlog.
IN_FLIGHT = 100
#: Seconds each connect (and each later call) may take; loopback answers in microseconds.
TIMEOUT = 10.0


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The server side: send every line back until the client closes."""
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def free_port() -> int:
    """A port nothing listens on (connects to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main(count: int) -> int:
    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=IN_FLIGHT * 2)
    port = server.sockets[0].getsockname()[1]
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one(number: int) -> inetkit.aio.AsyncConnection:
        async with limit:
            return await inetkit.aio.connect("127.0.0.1", port, timeout=TIMEOUT)

    async with server:
        started = time.perf_counter()
        # A task group: if one connect failed, the others would be cancelled,
        # and every socket they had opened closed.
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(number)) for number in range(count)]
        handles = [task.result() for task in tasks]
        opened = time.perf_counter() - started
        print(f"{len(handles)} connections open in {opened * 1000:.0f} ms")

        async def round_trip(conn: inetkit.aio.AsyncConnection, number: int) -> bool:
            await conn.write_line(f"line {number}")
            return await conn.read_line() == f"line {number}\r\n".encode()

        echoed = await asyncio.gather(*(round_trip(conn, n) for n, conn in enumerate(handles)))
        print(f"{sum(echoed)} of {len(handles)} echoed their line")
        await asyncio.gather(*(conn.aclose() for conn in handles))
        print(f"all closed after {(time.perf_counter() - started) * 1000:.0f} ms")

        try:
            await inetkit.aio.connect("127.0.0.1", free_port(), timeout=TIMEOUT)
        except inetkit.InetError as exc:
            attempts = exc.trace.attempts if exc.trace is not None else []
            print(f"refused as expected: {exc.code.name} ({type(exc).__name__}), {len(attempts)} attempt(s)")
    return 0 if all(echoed) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else COUNT)))
