"""inetkit.aio's connect against asyncio's own streams, side by side in one run, as ratios.

Usage::

    python3 benchmarks/aio_connect.py                  # every row (about 2 minutes on 2 cores)
    python3 benchmarks/aio_connect.py --quick          # every row at tiny sizes (a smoke run)
    python3 benchmarks/aio_connect.py --loop uvloop    # both sides on uvloop instead
    python3 benchmarks/aio_connect.py --only connect,tls-connect
    python3 benchmarks/aio_connect.py --json rows.json

The rows use ``benchmarks/run.py``'s machinery (its loopback server process,
certificates, alternating rounds, paired ratios, `Result` rows) and are
functions that ``run.py`` can call with its own server's ports:

============  ==========================================================  ===============
case          row: ratio                                                  target
============  ==========================================================  ===============
connect       aio connect+close: time / asyncio.open_connection            <= 1.10
tls-connect   aio TLS full handshake: time / open_connection(ssl=ctx)      <= 1.05
concurrent    1,000 concurrent TLS connects: time, RSS per connection      <= 1.00, 0.15
              / asyncio.gather of open_connection(ssl=ctx)
idle          10,000 idle TLS connections in one process: RSS each         (report) <= 30 KiB
============  ==========================================================  ===============

Both sides close as their API closes: ``await conn.aclose()`` for inetkit
(close_notify sent, the peer's not waited for), ``writer.close(); await
writer.wait_closed()`` for asyncio. The TLS rows reuse one client context
on the asyncio side (``ssl.create_default_context(cafile=...)``), as inetkit
reuses its own; inetkit's session cache is off in the full-handshake rows.
The rows held in memory (``concurrent``, ``idle``) run each sample in a
fresh interpreter (``--child``), as run.py's memory rows do.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402 (benchmarks/run.py: its server, statistics and rows)
from run import (  # noqa: E402
    Paired,
    Reference,
    Report,
    Result,
    alternate,
    raise_open_files_limit,
    rss_bytes,
)

import inetkit  # noqa: E402 (run.py put this tree first on the path)
import inetkit.aio  # noqa: E402
from inetkit import Option, SecurityCredentials  # noqa: E402

#: The cases, in the order they run.
CASES = ("connect", "tls-connect", "concurrent", "idle")
#: Connections opened at once while the idle row fills up: far below the
#: server's listen backlog (4096), so no SYN is dropped and retried a second later.
IDLE_IN_FLIGHT = 256
#: The idle row's target: resident memory per held TLS connection, KiB.
IDLE_TARGET_KIB = 30.0
#: Descriptors one held asyncio handle costs the client: its socket (no wake-up
#: pipe, unlike a blocking handle: the loop's own is shared).
FDS_PER_AIO_HANDLE = 1


def within_fd_limit(count: int) -> int:
    """``count``, or fewer when the hard RLIMIT_NOFILE cannot hold that many asyncio handles (says so)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or count * FDS_PER_AIO_HANDLE + run.FD_RESERVE <= hard:
        return count
    fitting = max(1, (hard - run.FD_RESERVE) // FDS_PER_AIO_HANDLE)
    print(
        f"note: the hard open-files limit is {hard} (ulimit -Hn); holding {fitting}, not {count}",
        file=sys.stderr,
    )
    return fitting


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(kind: str) -> LoopFactory:
    """``asyncio.new_event_loop`` or ``uvloop.new_event_loop``."""
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def _suffix(loop_kind: str) -> str:
    """Row names say when both sides ran on uvloop."""
    return " uvloop" if loop_kind == "uvloop" else ""


def per_call_us(
    loop: asyncio.AbstractEventLoop, count: int, call: Callable[[], Coroutine[Any, Any, None]]
) -> Callable[[], float]:
    """A measurement: ``count`` awaits of ``call()`` one after another on ``loop``, microseconds each."""

    async def calls() -> float:
        start = time.perf_counter()
        for _ in range(count):
            await call()
        return (time.perf_counter() - start) / count * 1e6

    return lambda: loop.run_until_complete(calls())


# -- one connect at a time ------------------------------------------------------------


def bench_aio_connect(port: int, rounds: int, count: int, loop_kind: str = "asyncio") -> Result:
    """Plain connect+close on one loop: inetkit.aio.connect against asyncio.open_connection."""
    loop = loop_factory(loop_kind)()
    try:

        async def stdlib() -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()

        async def ours() -> None:
            conn = await inetkit.aio.connect("127.0.0.1", port, timeout=10)
            await conn.aclose()

        pairs = alternate(rounds, per_call_us(loop, count, stdlib), per_call_us(loop, count, ours))
    finally:
        loop.close()
    return Result(
        f"aio connect+close 127.0.0.1{_suffix(loop_kind)}", "us", pairs, "<= 1.10", ("asyncio", "inetkit")
    )


def bench_aio_tls_connect(
    port: int, rounds: int, count: int, ca_file: str, loop_kind: str = "asyncio"
) -> Result:
    """TLS 1.3 full handshakes (+close) on one loop, both sides reusing their client context."""
    context = ssl.create_default_context(cafile=ca_file)
    creds = SecurityCredentials(ca_file=ca_file)
    loop = loop_factory(loop_kind)()
    try:

        async def stdlib() -> None:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
            )
            writer.close()
            await writer.wait_closed()

        async def ours() -> None:
            conn = await inetkit.aio.connect(
                "127.0.0.1", port, options=Option.SECURE, credentials=creds, timeout=10, session_cache=False
            )
            await conn.aclose()

        pairs = alternate(rounds, per_call_us(loop, count, stdlib), per_call_us(loop, count, ours))
    finally:
        loop.close()
    return Result(
        f"aio tls full handshake{_suffix(loop_kind)}", "us", pairs, "<= 1.05", ("asyncio", "inetkit")
    )


# -- many connections held in one process (fresh interpreters) ---------------------------------


async def _open_many(spec: dict[str, Any], count: int, in_flight: int) -> list[Any]:
    """Open ``count`` TLS connections, at most ``in_flight`` handshakes at once; the handles."""
    port, ca_file = spec["port"], spec["ca_file"]
    limit = asyncio.Semaphore(in_flight)
    if spec["side"] == "stdlib":
        context = ssl.create_default_context(cafile=ca_file)

        async def one() -> Any:
            async with limit:
                return await asyncio.open_connection(
                    "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
                )

    else:
        creds = SecurityCredentials(ca_file=ca_file)

        async def one() -> Any:
            async with limit:
                return await inetkit.aio.connect(
                    "127.0.0.1",
                    port,
                    options=Option.SECURE,
                    credentials=creds,
                    timeout=120,
                    session_cache=False,
                )

    # The tasks are dropped before the handles are measured: only the handles stay.
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one()) for _ in range(count)]
    handles = [task.result() for task in tasks]
    tasks.clear()
    return handles


async def _close_all(side: str, handles: list[Any]) -> None:
    if side == "stdlib":
        for _, writer in handles:
            writer.close()
        await asyncio.gather(*(writer.wait_closed() for _, writer in handles), return_exceptions=True)
    else:
        await asyncio.gather(*(conn.aclose() for conn in handles), return_exceptions=True)


def child_concurrent(spec: dict[str, Any]) -> dict[str, float]:
    """``count`` TLS connects gathered at once, then held: wall time (s), RSS growth per connection (KiB)."""

    async def main() -> dict[str, float]:
        count = spec["count"]
        warm = await _open_many(spec, run.WARMUP_HANDLES, run.WARMUP_HANDLES)
        gc.collect()
        before = rss_bytes()
        start = time.perf_counter()
        handles = await _open_many(spec, count, count)
        elapsed = time.perf_counter() - start
        gc.collect()
        after = rss_bytes()
        await _close_all(spec["side"], handles + warm)
        return {"time": elapsed, "rss": (after - before) / count / 1024}

    with asyncio.Runner(loop_factory=loop_factory(spec["loop"])) as runner:
        return runner.run(main())


def child_idle(spec: dict[str, Any]) -> dict[str, float]:
    """``count`` idle TLS connections held at once; RSS per connection (KiB); then one round trip on each.

    The round trip (run.py's sink protocol: a 17-byte header, one byte, the
    server's one-byte answer) shows that every held connection still works.
    """

    async def main() -> dict[str, float]:
        count = spec["count"]
        warm = await _open_many(spec, run.WARMUP_HANDLES, run.WARMUP_HANDLES)
        gc.collect()
        before = rss_bytes()
        start = time.perf_counter()
        handles = await _open_many(spec, count, IDLE_IN_FLIGHT)
        opened = time.perf_counter() - start
        gc.collect()
        after = rss_bytes()
        request = run._header(b"s", 1) + b"x"

        async def use(conn: Any) -> bool:
            await conn.write(request)
            return bool(await conn.read_exactly(1) == b"k")

        usable = sum(await asyncio.gather(*(use(conn) for conn in handles)))
        await _close_all("inetkit", handles + warm)
        return {"rss": (after - before) / count / 1024, "usable": usable, "count": count, "open": opened}

    with asyncio.Runner(loop_factory=loop_factory(spec["loop"])) as runner:
        return runner.run(main())


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, float]]] = {
    "concurrent": child_concurrent,
    "idle": child_idle,
}


def run_child(spec: dict[str, Any]) -> dict[str, float]:
    """Run one sample in a fresh interpreter (``aio_connect.py --child SPEC``); its figures."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {spec} failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def bench_aio_concurrent(
    port: int, samples: int, count: int, ca_file: str, loop_kind: str = "asyncio"
) -> list[Result]:
    """``count`` TLS connects gathered at once, one fresh process per sample and side: time and RSS."""
    count = within_fd_limit(count)
    spec = {"kind": "concurrent", "port": port, "ca_file": ca_file, "count": count, "loop": loop_kind}

    def sample(side: str) -> Callable[[], dict[str, float]]:
        return lambda: run_child({**spec, "side": side})

    std, ours = run.alternate_many(samples, [sample("stdlib"), sample("inetkit")])
    labels = ("asyncio", "inetkit")
    return [
        Result(
            f"aio {count} tls connects at once: time{_suffix(loop_kind)}",
            "ms",
            Paired([s["time"] * 1e3 for s in std], [o["time"] * 1e3 for o in ours]),
            "<= 1.00",
            labels,
        ),
        Result(
            f"aio {count} tls connects at once: rss{_suffix(loop_kind)}",
            "KiB",
            Paired([s["rss"] for s in std], [o["rss"] for o in ours]),
            "<= 0.15",
            labels,
        ),
    ]


def bench_aio_idle(sink_port: int, count: int, ca_file: str, loop_kind: str = "asyncio") -> Reference:
    """``count`` idle TLS connections in one process (a TLS listener speaking run.py's sink protocol)."""
    count = within_fd_limit(count)
    figures = run_child(
        {
            "kind": "idle",
            "port": sink_port,
            "ca_file": ca_file,
            "count": count,
            "loop": loop_kind,
            "side": "inetkit",
        }
    )
    usable, held = int(figures["usable"]), int(figures["count"])
    note = (
        f"per idle TLS connection, {held} held at once ({usable} of {held} usable after; "
        f"opened in {figures['open']:.1f} s); target <= {IDLE_TARGET_KIB:.0f} KiB"
    )
    return Reference(f"aio {held} idle tls conns: rss each{_suffix(loop_kind)}", figures["rss"], "KiB", note)


# -- the standalone run ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="every row at tiny sizes (a smoke run)")
    parser.add_argument("--only", default=",".join(CASES), help=f"comma-separated cases: {', '.join(CASES)}")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop of both sides"
    )
    parser.add_argument("--json", metavar="PATH", help="write every row as JSON to PATH (- : stdout)")
    parser.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        raise_open_files_limit()
        spec = json.loads(args.child)
        print(json.dumps(CHILDREN[spec["kind"]](spec)))
        return 0
    cases = set(args.only.split(","))
    unknown = cases - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    if args.quick:
        rounds, count, tls_rounds, tls_count, samples, concurrent, idle = 3, 20, 3, 3, 2, 64, 200
    else:
        # As run.py's rows: 31 rounds of 300 connects, 15 rounds of 30 handshakes;
        # the 1,000 and 10,000 connections.
        rounds, count, tls_rounds, tls_count, samples, concurrent, idle = 31, 300, 15, 30, 4, 1000, 10_000
    raise_open_files_limit()
    rsa_identity, rsa_ca = run.make_certificate()
    ec_identity, ec_ca = run.make_certificate(rsa_leaf=False)
    ports_queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.get_context("fork").Process(
        target=run.server_main, args=(ports_queue, rsa_identity, ec_identity), daemon=True
    )
    server.start()
    header = {
        "inetkit": inetkit.__version__,
        "python": sys.version.split()[0],
        "openssl": ssl.OPENSSL_VERSION,
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "loop": args.loop,
    }
    stream = sys.stderr if args.json == "-" else sys.stdout
    report = Report(header, stream)
    print(
        f"inetkit {header['inetkit']}, Python {header['python']}, {header['openssl']}, {args.loop} loop",
        file=stream,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="inetkit-aio-bench-") as scratch:
            rsa_ca_file, ec_ca_file = Path(scratch, "rsa-ca.pem"), Path(scratch, "ec-ca.pem")
            rsa_ca_file.write_bytes(rsa_ca)
            ec_ca_file.write_bytes(ec_ca)
            ports = ports_queue.get(timeout=30)
            if "connect" in cases:
                report.add([bench_aio_connect(ports["plain"], rounds, count, args.loop)])
            if "tls-connect" in cases:
                report.add(
                    [bench_aio_tls_connect(ports["tls"], tls_rounds, tls_count, str(rsa_ca_file), args.loop)]
                )
            if "concurrent" in cases:
                report.add(
                    bench_aio_concurrent(ports["tls_hold"], samples, concurrent, str(ec_ca_file), args.loop)
                )
            if "idle" in cases:
                report.refer(bench_aio_idle(ports["tls_sink"], idle, str(rsa_ca_file), args.loop))
    finally:
        server.kill()
        server.join(5)
        ports_queue.close()
        ports_queue.join_thread()
    if args.json:
        text = json.dumps(report.as_json(), indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
