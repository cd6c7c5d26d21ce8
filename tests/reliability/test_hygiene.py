"""Hygiene: descriptors, threads and memory come back after many cycles; nothing warns.

The mixed run makes 10,000 connect cycles of every kind that ends
differently inside inetkit: plain connects that succeed (some with a data
round trip), refused connects, connect timeouts (a black hole), I/O
timeouts, TLS connects that succeed (resumed sessions, mostly) and TLS
connects that fail certificate verification. TLS is kept a minority (10 %)
so that the run fits the time budget on two cores. Every cycle's
`ResourceWarning` would be recorded (the filter is "always" inside the run,
so none is lost to the once-per-location rule) and the run fails on any.

The memory run counts Python allocations with `tracemalloc` over TLS
connect/close cycles after a warm-up (caches filled), and bounds their
growth.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import ssl
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from conftest import black_hole, free_port

import inetkit
from inetkit import ErrorCode, InetError, Option, SecurityCredentials

from .conftest import Measure, open_fds

#: Connect cycles of the mixed run.
MIXED_CYCLES = 10_000
#: One block of the mix, per 100 cycles: what each kind takes.
MIX = (
    ("plain", 66),
    ("plain+data", 4),
    ("refused", 15),
    ("connect timeout", 1),
    ("read timeout", 4),
    ("tls", 7),
    ("tls bad certificate", 3),
)
#: TLS cycles of the memory run (5,000 take about a minute under tracemalloc on
#: two cores; this many show the same flat line in a fraction of the time).
MEMORY_CYCLES = int(os.environ.get("INETKIT_MEMORY_CYCLES", "5000"))
#: Cycles before the first memory snapshot: caches (contexts, sessions) fill up.
WARM_UP = 100
#: Allowed growth of traced memory over the memory run: a leak of even 100
#: bytes per cycle would exceed it.
MEMORY_GROWTH_LIMIT = 96 << 10
#: Connect timeout of the black-hole cycles, and the I/O timeout of the read cycles.
SHORT_TIMEOUT = 0.01


@contextlib.contextmanager
def serving(backlog: int, handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback listener whose one thread runs ``handle`` on each connection in turn (joined at the end)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=backlog)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            handle(sock)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        thread.join(10)
        listener.close()


def accepting_listener() -> contextlib.AbstractContextManager[int]:
    """A listener that accepts and closes at once."""
    return serving(128, socket.socket.close)


@contextlib.contextmanager
def echo_listener() -> Iterator[int]:
    """One echo connection at a time, served by one thread (joined at the end)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with sock:
                sock.settimeout(5)
                with contextlib.suppress(OSError):
                    while data := sock.recv(65536):
                        sock.sendall(data)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def test_ten_thousand_mixed_cycles_leave_nothing_behind(pki: Any, measure: Measure) -> None:
    from tls_servers import Servers

    good = SecurityCredentials(ca_file=pki.ca_file)
    counts = dict.fromkeys((kind for kind, _ in MIX), 0)
    codes: dict[str, set[str]] = {kind: set() for kind, _ in MIX}
    gc.collect()
    with measure(f"{MIXED_CYCLES} mixed cycles", "plain/refused/timeouts/TLS ok/TLS bad cert") as case:
        with (
            warnings.catch_warnings(record=True) as caught,
            accepting_listener() as plain_port,
            echo_listener() as echo_port,
            black_hole("127.0.5.1") as hole_port,
            Servers() as servers,
        ):
            warnings.simplefilter("always")
            refused_port = free_port()
            tls_port = servers.python(pki.servers["valid"].context()).port
            expired_port = servers.python(pki.servers["expired"].context()).port
            plan = [kind for kind, share in MIX for _ in range(share)]
            assert len(plan) == 100
            for cycle in range(MIXED_CYCLES):
                kind = plan[(cycle * 37) % 100]  # 37 is prime to 100: every kind, spread out
                started = time.monotonic()
                try:
                    if kind == "plain":
                        inetkit.connect("127.0.0.1", plain_port, timeout=5).close()
                    elif kind == "plain+data":
                        with inetkit.connect("127.0.0.1", echo_port, timeout=5) as conn:
                            conn.write_line("ping")
                            assert conn.read_line() == b"ping\r\n"
                    elif kind == "refused":
                        inetkit.connect("127.0.0.1", refused_port, timeout=5)
                    elif kind == "connect timeout":
                        inetkit.connect("127.0.5.1", hole_port, timeout=SHORT_TIMEOUT)
                    elif kind == "read timeout":
                        with inetkit.connect("127.0.0.1", echo_port, timeout=5) as conn:
                            conn.timeout = SHORT_TIMEOUT
                            conn.read(1)
                    elif kind == "tls":
                        with inetkit.connect(
                            "localhost", tls_port, timeout=5, options=Option.SECURE, credentials=good
                        ) as conn:
                            conn.write(b"x\n")
                            assert conn.read_line() == b"x\n"
                    else:
                        inetkit.connect(
                            "localhost", expired_port, timeout=5, options=Option.SECURE, credentials=good
                        )
                except InetError as exc:
                    codes[kind].add(exc.code.name)
                case.saw(time.monotonic() - started)
                counts[kind] += 1
            gc.collect()
        resource_warnings = [w for w in caught if issubclass(w.category, ResourceWarning)]
        assert not resource_warnings, [str(w.message) for w in resource_warnings[:3]]
        assert not caught, [str(w.message) for w in caught[:3]]
    assert sum(counts.values()) == MIXED_CYCLES
    assert codes["plain"] == codes["plain+data"] == codes["tls"] == set()
    assert codes["refused"] == {"CONNECTION_REFUSED"}
    assert codes["connect timeout"] == {"TIMED_OUT"}
    assert codes["read timeout"] == {"TIMED_OUT"}
    assert codes["tls bad certificate"] == {"CERTIFICATE_EXPIRED"}
    case.outcome = "; ".join(f"{kind} x{counts[kind]}" for kind, _ in MIX) + "; no ResourceWarning"


def sequential_tls_echo(context: ssl.SSLContext) -> contextlib.AbstractContextManager[int]:
    """A TLS echo server that serves one connection after another in one thread.

    It keeps nothing per connection (no thread, no record), so the process's
    memory can only grow through the client side.
    """

    def echo(sock: socket.socket) -> None:
        sock.settimeout(5)
        try:
            with context.wrap_socket(sock, server_side=True) as tls:
                while data := tls.recv(65536):
                    tls.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()

    return serving(16, echo)


def test_tls_cycles_do_not_grow_memory(pki: Any, measure: Measure) -> None:
    good = SecurityCredentials(ca_file=pki.ca_file)
    with measure(
        f"{MEMORY_CYCLES} TLS cycles under tracemalloc", "connect(SECURE), round trip, close"
    ) as case:
        with sequential_tls_echo(pki.servers["valid"].context()) as port:

            def cycle() -> None:
                with inetkit.connect(
                    "localhost", port, timeout=5, options=Option.SECURE, credentials=good
                ) as conn:
                    conn.write(b"m\n")
                    assert conn.read_line() == b"m\n"

            for _ in range(WARM_UP):
                cycle()
            tracemalloc.start()
            try:
                gc.collect()
                first = tracemalloc.take_snapshot()
                before, _ = tracemalloc.get_traced_memory()
                for _ in range(MEMORY_CYCLES):
                    started = time.monotonic()
                    cycle()
                    case.saw(time.monotonic() - started)
                gc.collect()
                after, peak = tracemalloc.get_traced_memory()
                last = tracemalloc.take_snapshot()
            finally:
                tracemalloc.stop()
        growth = after - before
        mine = [tracemalloc.Filter(True, f"{os.sep}inetkit{os.sep}*")]
        inetkit_growth = sum(
            d.size_diff for d in last.filter_traces(mine).compare_to(first.filter_traces(mine), "filename")
        )
        case.note(
            f"traced {before} -> {after} bytes (peak {peak}); allocated in inetkit: {inetkit_growth:+d}"
        )
        top = [str(d) for d in last.compare_to(first, "lineno")[:5]]
        assert growth < MEMORY_GROWTH_LIMIT, f"{growth} bytes more after {MEMORY_CYCLES} TLS cycles: {top}"
        case.outcome = f"traced memory {growth / 1024:+.1f} KiB over {MEMORY_CYCLES} cycles"


def test_failed_connects_close_what_they_opened(measure: Measure) -> None:
    """Every failure path of connect: the descriptor count is exact after each one."""
    with measure("failing connects, descriptor exact per call", "refused / timeout / bad argument") as case:
        with black_hole("127.0.5.2") as hole:
            refused = free_port()
            before = open_fds()
            for _ in range(200):
                for call in (
                    lambda: inetkit.connect("127.0.0.1", refused, timeout=1),
                    lambda: inetkit.connect("127.0.5.2", hole, timeout=SHORT_TIMEOUT),
                    lambda: inetkit.connect("127.0.0.1", 0, timeout=1),
                ):
                    started = time.monotonic()
                    try:
                        call()
                    except InetError as exc:
                        case.saw(time.monotonic() - started)
                        assert exc.code in (
                            ErrorCode.CONNECTION_REFUSED,
                            ErrorCode.TIMED_OUT,
                            ErrorCode.INVALID_PORT,
                        )
                    assert open_fds() == before
        case.outcome = "descriptor count exact after each failure"
