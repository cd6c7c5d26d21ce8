"""Address storms and thread storms.

Address storms: one name with 50 black-holed addresses (listeners whose
accept queue is full, on 127.0.1.1 .. 127.0.1.50, from ``black_hole`` in
``tests/conftest.py``), and a mix of refused, black-holed and live ones,
given by a `Resolver` subclass. Thread storms: many threads on one
free-threaded handle while another closes it, concurrent plain and TLS
connect/close cycles, and cancel storms on a blocked read. Every join is
bounded; a thread still alive at the end is a deadlock and fails the case.
"""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Server, black_hole, echo_handler, free_port

import inetkit
from inetkit import (
    CancelledError,
    ErrorCode,
    InetError,
    InetTimeoutError,
    Option,
    Protocol,
    Resolver,
    SecurityCredentials,
)

from .conftest import Measure
from .peers import peer

#: Black-holed addresses for one name.
STORM_SIZE = 50
#: RFC 8305 attempt delay used here: the minimum (10 ms), so 50 attempts start in 0.5 s.
ATTEMPT_DELAY = 0.01
#: The connect deadline of the storm: every attempt has started well before it.
STORM_DEADLINE = 1.5
#: Threads hammering one free-threaded handle.
HANDLE_THREADS = 32
#: Threads doing connect/close cycles at once, and cycles per thread.
CYCLE_THREADS = 16
CYCLES_PER_THREAD = 12
#: Cancel storm: cancelling threads, and cancels each sends.
CANCEL_THREADS = 8
CANCELS_PER_THREAD = 200
#: Bound on every join: a thread alive after it is a deadlock.
JOIN_LIMIT = 20.0


Address = tuple[int, tuple[str, int]]


class FixedResolver(Resolver):
    """Answers every name with the addresses it was given, in that order."""

    def __init__(self, addresses: list[Address]) -> None:
        super().__init__(system_hosts=False, dns=False)
        self.addresses = addresses

    def resolve(self, host: str, port: int, protocol: Protocol, deadline: float | None) -> list[Address]:
        return list(self.addresses)


@contextlib.contextmanager
def black_holes(count: int, subnet: str = "127.0.1") -> Iterator[list[Address]]:
    with contextlib.ExitStack() as stack:
        addresses = []
        for n in range(1, count + 1):
            ip = f"{subnet}.{n}"
            port = stack.enter_context(black_hole(ip))
            addresses.append((socket.AF_INET, (ip, port)))
        yield addresses


def test_fifty_black_holed_addresses_end_at_the_deadline_with_every_attempt_reported(
    measure: Measure,
) -> None:
    with measure(f"{STORM_SIZE} black-holed addresses", f"connect(timeout={STORM_DEADLINE})") as case:
        with black_holes(STORM_SIZE) as addresses:
            resolver = FixedResolver(addresses)
            started = time.monotonic()
            with pytest.raises(InetTimeoutError) as info:
                inetkit.connect(
                    "storm.test", 80, timeout=STORM_DEADLINE, resolver=resolver, attempt_delay=ATTEMPT_DELAY
                )
            case.saw(time.monotonic() - started)
        error = info.value
        assert error.code is ErrorCode.TIMED_OUT
        assert len(error.attempts) == STORM_SIZE
        assert all(a.code is ErrorCode.TIMED_OUT for a in error.attempts)
        assert error.trace is not None
        traced = error.trace.attempts
        assert [a.address for a in traced] == [ip for _, (ip, _) in addresses]
        message = str(error)
        for _, (ip, _) in addresses:
            assert ip in message
        assert case.worst < STORM_DEADLINE + 5  # the deadline ends it, not a per-attempt timeout
        case.outcome = f"InetTimeoutError/TIMED_OUT, {len(error.attempts)} attempts in .attempts and trace"


def test_refused_black_holed_and_live_addresses_connect_to_the_live_one(measure: Measure) -> None:
    with measure("mixed refused / black-holed / live", "connect") as case:
        with black_holes(10, "127.0.3") as holes, socket.create_server(("127.0.4.1", 0)) as live:
            refused = [(socket.AF_INET, (f"127.0.2.{n}", free_port(f"127.0.2.{n}"))) for n in range(1, 11)]
            mixed: list[Address] = []
            for hole, refusal in zip(holes, refused, strict=True):
                mixed += [hole, refusal]
            live_address = (socket.AF_INET, ("127.0.4.1", live.getsockname()[1]))
            mixed.append(live_address)
            resolver = FixedResolver(mixed)
            with (
                case.timed(),
                inetkit.connect(
                    "mixed.test", 80, timeout=10, resolver=resolver, attempt_delay=ATTEMPT_DELAY
                ) as conn,
            ):
                assert conn.remote_address[0] == live_address[1][0]  # the port: see the test below
                outcomes = {a.address: a.outcome for a in conn.trace.attempts}
                errors = {a.address: a.error for a in conn.trace.attempts}
                accepted, _ = live.accept()
                accepted.close()
        assert outcomes["127.0.4.1"] == "connected"
        for _, (ip, _) in refused:
            assert outcomes[ip] == "failed"
            assert isinstance(errors[ip], InetError) and errors[ip].code is ErrorCode.CONNECTION_REFUSED
        for _, (ip, _) in holes:
            assert outcomes[ip] == "abandoned"  # still waiting when the live one answered
        case.outcome = f"connected to the live address after {len(outcomes) - 1} failed/lost attempts"


def test_remote_address_is_the_address_actually_connected_to() -> None:
    with socket.create_server(("127.0.0.1", 0)) as live:
        where = live.getsockname()
        resolver = FixedResolver([(socket.AF_INET, where)])
        with inetkit.connect("mapped.test", 80, timeout=5, resolver=resolver) as conn:
            accepted, _ = live.accept()
            accepted.close()
            assert conn.remote_address == where
            assert [(a.address, a.port) for a in conn.trace.attempts] == [where]


# -- thread storms ------------------------------------------------------------------


def run_threads(targets: list[threading.Thread]) -> None:
    for thread in targets:
        thread.start()
    for thread in targets:
        thread.join(JOIN_LIMIT)
    alive = [t.name for t in targets if t.is_alive()]
    assert not alive, f"deadlock: {alive} still running after {JOIN_LIMIT} s"


def echo(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := sock.recv(65536):
            sock.sendall(data)


def tls_echo(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    def handler(sock: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError), context.wrap_socket(sock, server_side=True) as tls:
            echo(tls)

    return handler


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "TLS"])
def test_thirty_two_threads_on_one_free_threaded_handle_while_another_closes_it(
    secure: bool, pki: Any, measure: Measure
) -> None:
    unexpected: list[BaseException] = []
    codes: set[str] = set()
    kind = "TLS" if secure else "plain"
    handler = tls_echo(pki.servers["valid"].context()) if secure else echo
    with (
        measure(
            f"{HANDLE_THREADS} threads on one {kind} FREETHREAD handle + close", "random I/O, then close()"
        ) as case,
        peer(handler) as port,
    ):
        options = Option.FREETHREAD | (Option.SECURE if secure else Option.NONE)
        creds = SecurityCredentials(ca_file=pki.ca_file) if secure else None
        conn = inetkit.connect("localhost", port, timeout=5, options=options, credentials=creds)
        start = threading.Barrier(HANDLE_THREADS + 1)

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            start.wait(JOIN_LIMIT)
            for _ in range(10_000):  # bounded; the close ends it long before
                try:
                    action = rng.randrange(5)
                    if action == 0:
                        conn.write(b"x" * rng.randrange(1, 4096))
                    elif action == 1:
                        conn.timeout = 0.05
                        conn.read(rng.randrange(1, 8192))
                    elif action == 2:
                        conn.is_readable(0.01)
                    elif action == 3:
                        conn.is_writable(0.01)
                    else:
                        conn.read_line(64)
                except InetError as exc:
                    codes.add(exc.code.name)
                    if exc.code is ErrorCode.HANDLE_CLOSED:
                        return
                except BaseException as exc:
                    unexpected.append(exc)
                    return

        threads = [threading.Thread(target=worker, args=(i,), name=f"io-{i}") for i in range(HANDLE_THREADS)]

        def closer() -> None:
            start.wait(JOIN_LIMIT)
            time.sleep(0.3)
            started = time.monotonic()
            conn.close()
            case.saw(time.monotonic() - started)

        run_threads([*threads, threading.Thread(target=closer, name="closer")])
        assert conn.closed
    assert not unexpected, unexpected
    assert "HANDLE_CLOSED" in codes
    case.outcome = f"only InetError ({', '.join(sorted(codes))}); all threads joined"


def test_sixteen_threads_of_plain_and_tls_connect_close_cycles(pki: Any, measure: Measure) -> None:
    from tls_servers import Servers

    creds = SecurityCredentials(ca_file=pki.ca_file)
    unexpected: list[BaseException] = []
    done = [0]
    lock = threading.Lock()
    with measure(
        f"{CYCLE_THREADS} threads x {CYCLES_PER_THREAD} connect/close (plain+TLS)", "concurrent cycles"
    ) as case:
        plain = Server("127.0.0.1", echo_handler)
        try:
            with Servers() as servers:
                tls_server = servers.python(pki.servers["valid"].context())

                def worker(index: int) -> None:
                    for cycle in range(CYCLES_PER_THREAD):
                        try:
                            started = time.monotonic()
                            if (index + cycle) % 3 == 0:
                                with inetkit.connect(
                                    "localhost",
                                    tls_server.port,
                                    timeout=10,
                                    options=Option.SECURE,
                                    credentials=creds,
                                ) as conn:
                                    conn.write(b"ping\n")
                                    assert conn.read_line() == b"gnip\n"
                            else:
                                with inetkit.connect("127.0.0.1", plain.port, timeout=10) as conn:
                                    conn.write(b"ping\n")
                                    assert conn.read_line() == b"ping\n"
                            case.saw(time.monotonic() - started)
                            with lock:
                                done[0] += 1
                        except BaseException as exc:
                            unexpected.append(exc)
                            return

                run_threads([threading.Thread(target=worker, args=(i,)) for i in range(CYCLE_THREADS)])
                tls_server.wait_idle()
        finally:
            plain.close()
    assert not unexpected, unexpected[:3]
    assert done[0] == CYCLE_THREADS * CYCLES_PER_THREAD
    case.outcome = f"{done[0]} cycles, all succeeded"


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "TLS"])
def test_cancel_storms_on_a_blocked_read(secure: bool, pki: Any, measure: Measure) -> None:
    unexpected: list[BaseException] = []
    cancelled = [0]
    kind = "TLS" if secure else "plain"
    send_now = threading.Event()
    context = pki.servers["valid"].context()

    def handler(sock: socket.socket) -> None:
        stream: socket.socket = context.wrap_socket(sock, server_side=True) if secure else sock
        try:
            send_now.wait(JOIN_LIMIT)
            stream.sendall(b"after the storm")
            stream.recv(1)  # until the client closes
        finally:
            if stream is not sock:
                stream.close()

    with (
        measure(
            f"cancel storm on a {kind} read: {CANCEL_THREADS} x {CANCELS_PER_THREAD}", "cancel()"
        ) as case,
        peer(handler) as port,
    ):
        options = Option.SECURE if secure else Option.NONE
        creds = SecurityCredentials(ca_file=pki.ca_file) if secure else None
        conn = inetkit.connect("localhost", port, timeout=5, options=options, credentials=creds)
        conn.timeout = None
        stop = threading.Event()
        result: list[bytes] = []

        def reader() -> None:
            conn.attach_thread()
            while not stop.is_set():
                try:
                    data = conn.read_exactly(15)
                except CancelledError:
                    cancelled[0] += 1
                    continue
                except BaseException as exc:
                    unexpected.append(exc)
                    return
                result.append(data)
                return

        def canceller() -> None:
            for _ in range(CANCELS_PER_THREAD):
                conn.cancel()
                time.sleep(0.0005)

        try:
            reading = threading.Thread(target=reader, name="reader")
            reading.start()
            time.sleep(0.05)
            started = time.monotonic()
            run_threads(
                [threading.Thread(target=canceller, name=f"cancel-{i}") for i in range(CANCEL_THREADS)]
            )
            case.saw(time.monotonic() - started)
            send_now.set()
            reading.join(JOIN_LIMIT)
            stop.set()
            assert not reading.is_alive(), "the reader is stuck"
        finally:
            send_now.set()
            conn.attach_thread()
            conn.close()
    assert not unexpected, unexpected
    assert result == [b"after the storm"]  # no byte was lost to a cancel
    assert cancelled[0] > 0
    case.outcome = f"{cancelled[0]} CancelledError, then the data; no deadlock"
