"""asyncio cancellation at random points: 10,000 connects, reads and writes leave nothing behind.

Each cycle starts one operation of `inetkit.aio` in a task and cancels the
task at a random point: after a random number of event-loop iterations (0 to
`MAX_YIELDS`: the points inside a connect, a read or a write on loopback) or
after a random delay below `MAX_DELAY` (the points a fast operation spends
waiting on the kernel or the peer). The operations: plain connects; connects
followed by echo round trips; connects raced over two black-holed addresses
(both sockets in flight); resolutions in a helper thread; TLS connects
(cancelled inside the handshake or the round trip after it); and streams read
in random-sized pieces whose every read is cancelled at a random point, where
the bytes that arrive in the end must be exactly the bytes the peer sent (a
cancelled read loses no data), over plain TCP and over TLS.

The run is seeded (`SEED`; ``INETKIT_CANCEL_SEED`` picks another) and counts,
before and after, the process's descriptors, the loop's tasks and (on the
default loop) the readers, writers and live timers registered with it; the
counts are printed (``-s``) and recorded in the reliability report
(``INETKIT_RELIABILITY_REPORT``). The peers run in a separate process, so
the descriptor count is the client's alone.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from conftest import black_hole

import inetkit.aio
from inetkit import InetError, Option, Protocol, Resolver, SecurityCredentials

from .conftest import Measure, open_fds

#: Cycles per event loop (the issue's figure).
CYCLES = int(os.environ.get("INETKIT_CANCEL_CYCLES", "10000"))
#: The seed of the run (every choice and every cancellation point follows from it).
SEED = int(os.environ.get("INETKIT_CANCEL_SEED", "20261201"))
#: Most event-loop iterations before the cancel (a loopback connect takes 2 to 4).
MAX_YIELDS = 8
#: Longest delay before a time-based cancel, seconds (a loopback TLS handshake takes ~2 ms).
MAX_DELAY = 0.004
#: Bytes each stream cycle receives (several reads of up to STREAM_PIECE each).
STREAM_BYTES = 48 * 1024
#: Largest read of a stream cycle.
STREAM_PIECE = 8192
#: Largest write of a write cycle (bigger than the socket buffers: the write waits).
WRITE_BYTES = 4 << 20
#: One block of the mix, per 100 cycles: what each kind takes.
MIX = (
    ("connect", 35),
    ("connect+echo", 20),
    ("write", 5),
    ("race", 10),
    ("thread lookup", 5),
    ("tls connect", 10),
    ("stream", 10),
    ("tls stream", 5),
)
#: Seconds the whole run may take per loop before the test fails (it takes far less).
RUN_LIMIT = 90.0

#: The peers, in a child process: plain echo, TLS echo, a plain and a TLS stream of STREAM_BYTES.
PEER = """
import asyncio, json, ssl, sys

chain, key, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(chain, key)
payload = bytes(i * 7 % 251 for i in range(size))

async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.transport.abort()

async def stream(reader, writer):
    try:
        writer.write(payload)
        await writer.drain()
        await reader.read(1)  # until the client closes
    except Exception:
        pass
    finally:
        writer.transport.abort()

async def main():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: None)  # clients vanish mid-handshake on purpose
    servers = [
        await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls, backlog=4096)
        for handler, tls in ((echo, None), (echo, context), (stream, None), (stream, context))
    ]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the test closes our stdin

asyncio.run(main())
"""


def payload() -> bytes:
    return bytes(i * 7 % 251 for i in range(STREAM_BYTES))


@contextmanager
def peers(chain: str, key: str) -> Iterator[list[int]]:
    process = subprocess.Popen(
        [sys.executable, "-c", PEER, chain, key, str(STREAM_BYTES)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "the peer process did not start"
        yield json.loads(line)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        assert process.stdout is not None
        process.stdout.close()


class SlowResolver(Resolver):
    """A blocking `resolve` that takes a moment: the lookup runs (and is cancelled) in a helper thread."""

    def resolve(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> list[tuple[int, tuple[Any, ...]]]:
        time.sleep(0.001)
        return [(socket.AF_INET, ("127.0.0.1", port))]


class TwoHoles(Resolver):
    """Two black-holed addresses, so that two attempts are in flight when the cancel comes."""

    def __init__(self, port4: int, port6: int) -> None:
        super().__init__()
        self.answer = [(socket.AF_INET, ("127.0.0.1", port4)), (socket.AF_INET6, ("::1", port6))]

    async def aresolve(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> list[tuple[int, tuple[Any, ...]]]:
        return self.answer


async def cancel_at_random(rng: random.Random, work: Coroutine[Any, Any, Any]) -> str:
    """Run ``work`` in a task and cancel it at a random point; how it ended."""
    task = asyncio.ensure_future(work)
    if rng.random() < 0.5:
        for _ in range(rng.randrange(MAX_YIELDS + 1)):
            await asyncio.sleep(0)
    else:
        await asyncio.sleep(rng.uniform(0, MAX_DELAY))
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    except InetError as exc:
        return exc.code.name
    return "done"


def loop_state(loop: asyncio.AbstractEventLoop) -> dict[str, int]:
    """What is registered with the loop: tasks, and (default loop) readers/writers and live timers."""
    state = {"tasks": len(asyncio.all_tasks(loop))}
    selector = getattr(loop, "_selector", None)
    if selector is not None:
        state["watched"] = len(selector.get_map()) - 1  # less the loop's own wake-up pipe
        scheduled = getattr(loop, "_scheduled", [])
        state["timers"] = sum(1 for handle in scheduled if not handle.cancelled())
    return state


async def run_cycles(ports: list[int], hole4: int, hole6: int, creds: SecurityCredentials) -> dict[str, Any]:
    echo_port, tls_port, stream_port, tls_stream_port = ports
    rng = random.Random(SEED)
    expected = payload()
    plan = [kind for kind, share in MIX for _ in range(share)]
    assert len(plan) == 100
    outcomes: dict[str, dict[str, int]] = {kind: {} for kind, _ in MIX}
    slow = SlowResolver()
    holes = TwoHoles(hole4, hole6)
    reads = {"cancelled": 0, "done": 0}  # the stream cycles' reads
    secure = Option.SECURE

    async def connect_close() -> None:
        conn = await inetkit.aio.connect("127.0.0.1", echo_port, timeout=5)
        await conn.aclose()

    async def echo() -> None:
        async with await inetkit.aio.connect("127.0.0.1", echo_port, timeout=5) as conn:
            for _ in range(3):
                await conn.write_line("ping")
                assert await conn.read_line() == b"ping\r\n"

    async def write() -> None:
        async with await inetkit.aio.connect("127.0.0.1", echo_port, timeout=5) as conn:
            await conn.write(bytes(rng.randrange(1, WRITE_BYTES)))

    async def race() -> None:
        conn = await inetkit.aio.connect("holes.test", 80, resolver=holes, timeout=5, attempt_delay=0.01)
        await conn.aclose()

    async def lookup() -> None:
        conn = await inetkit.aio.connect("slow.test", echo_port, resolver=slow, timeout=5)
        await conn.aclose()

    async def tls() -> None:
        async with await inetkit.aio.connect(
            "localhost", tls_port, options=secure, credentials=creds, timeout=5
        ) as conn:
            await conn.write_line("ping")
            assert await conn.read_line() == b"ping\r\n"

    async def stream(port: int, options: Option) -> str:
        """Every read cancelled at a random point; the bytes read are exactly the peer's."""
        async with await inetkit.aio.connect(
            "localhost", port, options=options, credentials=creds, timeout=5
        ) as conn:
            received = bytearray()
            for _ in range(100_000):  # a bound far above what the stream needs
                if len(received) >= STREAM_BYTES:
                    break
                piece = conn.read(rng.randrange(1, STREAM_PIECE))
                task = asyncio.ensure_future(piece)
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    data = await task
                except asyncio.CancelledError:
                    reads["cancelled"] += 1
                    continue
                reads["done"] += 1
                assert data, "the stream ended early"
                received += data
            assert received == expected
        return "intact"

    works: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
        "connect": connect_close,
        "connect+echo": echo,
        "write": write,
        "race": race,
        "thread lookup": lookup,
        "tls connect": tls,
    }
    started = time.monotonic()
    for cycle in range(CYCLES):
        kind = plan[(cycle * 37) % 100]  # 37 is prime to 100: every kind, spread out
        if kind == "stream":
            outcome = await stream(stream_port, Option.NONE)
        elif kind == "tls stream":
            outcome = await stream(tls_stream_port, secure)
        else:
            outcome = await cancel_at_random(rng, works[kind]())
        counts = outcomes[kind]
        counts[outcome] = counts.get(outcome, 0) + 1
        assert time.monotonic() - started < RUN_LIMIT, f"{cycle} cycles took over {RUN_LIMIT} s"
    outcomes["stream reads"] = reads
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_random_cancellation_leaks_nothing(pki: Any, measure: Measure, loop_kind: str) -> None:
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop does not import here")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    creds = SecurityCredentials(ca_file=str(pki.ca_file))
    server = pki.servers["valid"]
    with asyncio.Runner(loop_factory=factory) as runner:
        # uvloop keeps two process-wide descriptors from its first loop on: not the run's.
        runner.run(asyncio.sleep(0))
    gc.collect()
    with (
        peers(str(server.chain_file), str(server.key_file)) as ports,
        black_hole("127.0.0.1") as hole4,
        black_hole("::1") as hole6,
        warnings.catch_warnings(record=True) as caught,
        measure(
            f"aio: {CYCLES} operations cancelled at random ({loop_kind})",
            "connects, races, lookups, TLS handshakes, reads and writes, each cancelled at a random point",
        ) as case,
        asyncio.Runner(loop_factory=factory) as runner,
    ):
        warnings.simplefilter("always")
        loop = runner.get_loop()

        async def state() -> dict[str, int]:
            await asyncio.sleep(0)
            return loop_state(loop)

        threads = threading.active_count()
        runner.run(inetkit.aio.aresolve("localhost", 80))  # warm-up: lazily made module state
        fds_before, before = open_fds(), runner.run(state())
        outcomes = runner.run(run_cycles(ports, hole4, hole6, creds))
        gc.collect()
        after = runner.run(state())
        deadline = time.monotonic() + 5  # abandoned lookup threads end on their own
        while threading.active_count() > threads and time.monotonic() < deadline:
            time.sleep(0.01)
        fds_after = open_fds()
        counts = {
            "seed": SEED,
            "cycles": CYCLES,
            "descriptors": [fds_before, fds_after],
            **{name: [before[name], after[name]] for name in before},
            "outcomes": outcomes,
        }
        print(f"\nrandom cancellation on {loop_kind}: {json.dumps(counts)}")
        case.note(json.dumps(counts))
        case.outcome = (
            f"descriptors {fds_before} → {fds_after}, tasks {before['tasks']} → {after['tasks']}"
            + (f", loop callbacks {before['watched']} → {after['watched']}" if "watched" in before else "")
            + f"; {sum(o.get('cancelled', 0) for k, o in outcomes.items() if k != 'stream reads')} "
            f"operations and {outcomes['stream reads']['cancelled']} stream reads cancelled, no byte lost"
        )
    assert fds_after == fds_before
    assert after == before
    assert not caught, [str(w.message) for w in caught[:3]]
    for kind in ("stream", "tls stream"):
        assert outcomes[kind] == {"intact": sum(outcomes[kind].values())}
    reads = outcomes.pop("stream reads")
    assert sum(sum(o.values()) for o in outcomes.values()) == CYCLES
    cancelled = sum(o.get("cancelled", 0) for o in outcomes.values())
    assert cancelled > CYCLES // 4, outcomes  # the cancels really landed inside the operations
    assert reads["cancelled"] > 0 and reads["done"] > 0, reads
