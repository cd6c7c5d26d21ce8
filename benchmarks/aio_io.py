"""`inetkit.aio.AsyncConnection` I/O against asyncio's streams, side by side in one run, as ratios.

Usage::

    python3 benchmarks/aio_io.py            # both rows, default loop (and uvloop where it imports)
    python3 benchmarks/aio_io.py --quick    # tiny sizes (a smoke run)

Rows (targets from the asyncio issue):

=========================================================  ========
row: ratio                                                  target
=========================================================  ========
aio read_line, 80-byte lines: lines/s / StreamReader.readline   >= 1.50
aio TLS bulk receive: throughput / StreamReader.read(65536)      >= 1.00
=========================================================  ========

The functions `bench_aio_lines` and `bench_aio_tls_bulk` take the ports of
``run.py``'s loopback server (its ``sink`` and ``tls_sink`` listeners) and
return ``run.Result`` rows, measured as ``run.py`` measures: the two sides
in alternating rounds (ABBA...), a fresh connection each round, the ratio
the median of the per-round ratios. Both sides of a round run on the same
event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

import run as bench  # noqa: E402 (after the path lines: this tree's run.py)

import inetkit.aio  # noqa: E402
from inetkit import Option, SecurityCredentials  # noqa: E402
from inetkit.aio import AsyncConnection  # noqa: E402

LoopFactory = Callable[[], asyncio.AbstractEventLoop] | None
Opener = Callable[[], Coroutine[Any, Any, AsyncConnection]]

#: Bytes each TLS bulk round receives in a full run (the issue's figure).
TLS_BULK_SIZE = 256 << 20
#: Lines each read_line round reads in a full run (as run.py's line rows).
LINES = 200_000


def _opener(port: int, options: Option, credentials: SecurityCredentials | None) -> Opener:
    """How a round opens its handle: `inetkit.aio.connect` (the public way)."""

    async def open_public() -> AsyncConnection:
        return await inetkit.aio.connect(
            "127.0.0.1", port, options=options | Option.NODELAY, credentials=credentials, timeout=30
        )

    return open_public


def _paired(
    loop_factory: LoopFactory,
    rounds: int,
    first: Callable[[], Coroutine[Any, Any, float]],
    second: Callable[[], Coroutine[Any, Any, float]],
) -> bench.Paired:
    """``rounds`` alternating rounds (ABBA...) of two coroutine measurements on one loop."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        a, b = bench.alternate_many(rounds, (lambda: runner.run(first()), lambda: runner.run(second())))
    return bench.Paired(a, b)


def bench_aio_lines(
    port: int, rounds: int, count: int, loop_factory: LoopFactory = None
) -> list[bench.Result]:
    """``count`` 80-byte lines a round, one call per line; Mlines/s."""
    open_ours = _opener(port, Option.NONE, None)

    async def std() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            readline = reader.readline
            start = time.perf_counter()
            writer.write(bench._header(b"l", count))
            for _ in range(count):
                line = await readline()
            elapsed = time.perf_counter() - start
        finally:
            writer.close()
            await writer.wait_closed()
        assert line == bench.LINE, line
        return count / elapsed / 1e6

    async def ours() -> float:
        async with await open_ours() as conn:
            read_line = conn.read_line
            start = time.perf_counter()
            await conn.write(bench._header(b"l", count))
            for _ in range(count):
                line = await read_line()
            elapsed = time.perf_counter() - start
        assert line == bench.LINE, line
        return count / elapsed / 1e6

    name = _loop_name(loop_factory)
    pairs = _paired(loop_factory, rounds, std, ours)
    return [bench.Result(f"aio read_line {name} (vs readline)", "Mline/s", pairs, ">= 1.50")]


def bench_aio_tls_bulk(
    port: int, rounds: int, size: int, ca_file: str, loop_factory: LoopFactory = None
) -> list[bench.Result]:
    """``size`` bytes a round over TLS 1.3, read 64 KiB at a time; MB/s."""
    context = ssl.create_default_context(cafile=ca_file)
    open_ours = _opener(port, Option.SECURE, SecurityCredentials(ca_file=ca_file))

    async def std() -> float:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        try:
            read = reader.read
            start = time.perf_counter()
            writer.write(bench._header(b"r", size))
            left = size
            while left > 0:
                data = await read(65536)
                assert data
                left -= len(data)
            elapsed = time.perf_counter() - start
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ssl.SSLError, OSError):
                pass  # the server may close without answering our close_notify
        return size / elapsed / 1e6

    async def ours() -> float:
        async with await open_ours() as conn:
            read = conn.read
            start = time.perf_counter()
            await conn.write(bench._header(b"r", size))
            left = size
            while left > 0:
                data = await read(65536)
                assert data
                left -= len(data)
            elapsed = time.perf_counter() - start
        return size / elapsed / 1e6

    name = _loop_name(loop_factory)
    pairs = _paired(loop_factory, rounds, std, ours)
    return [bench.Result(f"aio tls bulk receive {name} (vs read)", "MB/s", pairs, ">= 1.00")]


def _loop_name(loop_factory: LoopFactory) -> str:
    return "asyncio" if loop_factory is None else "uvloop"


def loop_factories() -> list[LoopFactory]:
    """The default loop, and uvloop where it imports."""
    factories: list[LoopFactory] = [None]
    try:
        import uvloop
    except ImportError:
        return factories
    factories.append(uvloop.new_event_loop)
    return factories


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds per row")
    parser.add_argument("--only", default="lines,tls-bulk", help="comma-separated: lines, tls-bulk")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 11)
    lines = 5000 if args.quick else LINES
    size = (4 << 20) if args.quick else TLS_BULK_SIZE
    cases = set(args.only.split(","))
    rsa_identity, rsa_ca = bench.make_certificate()
    ec_identity, _ = bench.make_certificate(rsa_leaf=False)
    ports_queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.get_context("fork").Process(
        target=bench.server_main, args=(ports_queue, rsa_identity, ec_identity), daemon=True
    )
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="inetkit-aio-bench-") as scratch:
            ca_file = Path(scratch, "ca.pem")
            ca_file.write_bytes(rsa_ca)
            ports = ports_queue.get(timeout=30)
            for factory in loop_factories():
                results: list[bench.Result] = []
                if "lines" in cases:
                    results += bench_aio_lines(ports["sink"], rounds, lines, factory)
                if "tls-bulk" in cases:
                    results += bench_aio_tls_bulk(ports["tls_sink"], rounds, size, str(ca_file), factory)
                for result in results:
                    print(result.line(), flush=True)
    finally:
        server.kill()
        server.join(5)
        ports_queue.close()
        ports_queue.join_thread()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
