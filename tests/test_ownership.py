"""Thread ownership, attach_thread, cancel, free-threaded handles, close wake-ups."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Server

import inetkit
from inetkit import ErrorCode, Option

#: Upper bound for "promptly" in these tests: generous for a loaded machine.
PROMPT = 2.0


def run_in_thread(fn: Callable[[], Any], timeout: float = 10) -> tuple[Any, BaseException | None]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "thread did not finish"
    return box.get("result"), box.get("error")


def test_other_thread_gets_ownership_error(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        for op in (lambda: conn.write(b"x"), conn.read, conn.shutdown, conn.close, conn.is_readable):
            _, error = run_in_thread(op)
            assert isinstance(error, inetkit.OwnershipError)
            assert error.code is ErrorCode.NOT_HANDLE_OWNER
            assert "attach_thread" in str(error)
        # Properties, fileno, repr and cancel work from anywhere.
        result, error = run_in_thread(lambda: (conn.port, conn.fileno(), repr(conn), conn.cancel()))
        assert error is None
        assert result[0] == echo_server.port


def test_attach_thread_hands_over(echo_server: Server) -> None:
    conn = inetkit.connect("127.0.0.1", echo_server.port, timeout=5)
    me = threading.get_ident()

    def worker() -> tuple[int | None, bytes]:
        previous = conn.attach_thread()
        conn.write(b"from worker\n")
        line = conn.read_line()
        return previous, line

    (previous, line), error = run_in_thread(worker)
    assert error is None
    assert previous == me
    assert line == b"from worker\n"
    assert conn.owner != me
    with pytest.raises(inetkit.OwnershipError):
        conn.read()
    assert conn.attach_thread() is not None
    assert conn.owner == me
    conn.close()


def test_attach_while_blocked_is_handle_busy(echo_server: Server) -> None:
    conn = inetkit.connect("127.0.0.1", echo_server.port, timeout=5, options=Option.NONE)
    started = threading.Event()
    holder: dict[str, Any] = {}

    def blocked_reader() -> None:
        conn.attach_thread()
        started.set()
        try:
            holder["data"] = conn.read()
        except inetkit.InetError as exc:
            holder["error"] = exc

    thread = threading.Thread(target=blocked_reader)
    thread.start()
    assert started.wait(5)
    time.sleep(0.1)  # let it block in read()
    with pytest.raises(inetkit.OwnershipError) as info:
        conn.attach_thread()
    assert info.value.code is ErrorCode.HANDLE_BUSY
    conn.cancel()
    thread.join(PROMPT)
    assert not thread.is_alive()
    assert isinstance(holder.get("error"), inetkit.CancelledError)
    # Nothing blocked now: attach works again.
    conn.attach_thread()
    conn.close()


@pytest.mark.parametrize("options", [Option.NONE, Option.FREETHREAD])
def test_cancel_wakes_blocked_read_promptly(echo_server: Server, options: Option) -> None:
    conn = inetkit.connect("127.0.0.1", echo_server.port, timeout=30, options=options)
    result: dict[str, Any] = {}
    ready = threading.Event()

    def reader() -> None:
        if not options & Option.FREETHREAD:
            conn.attach_thread()
        ready.set()
        start = time.monotonic()
        try:
            conn.read()
        except inetkit.CancelledError as exc:
            result["error"] = exc
        result["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=reader)
    thread.start()
    assert ready.wait(5)
    time.sleep(0.2)
    cancelled_at = time.monotonic()
    conn.cancel()
    thread.join(PROMPT)
    assert not thread.is_alive()
    assert time.monotonic() - cancelled_at < PROMPT
    assert result["error"].code is ErrorCode.CANCELLED
    # The handle stays usable after a cancel; a later call is not affected.
    if not options & Option.FREETHREAD:
        conn.attach_thread()
    conn.write(b"still fine\n")
    assert conn.read_line() == b"still fine\n"
    conn.close()


def test_cancel_with_nothing_blocked_does_nothing(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=5) as conn:
        conn.cancel()
        conn.write(b"x\n")
        assert conn.read_line() == b"x\n"


def test_cancel_wakes_blocked_write(make_server: Callable[..., Server]) -> None:
    release = threading.Event()
    server = make_server(lambda sock: release.wait(10))
    conn = inetkit.connect("127.0.0.1", server.port, timeout=30, options=Option.FREETHREAD)
    result: dict[str, Any] = {}

    def writer() -> None:
        try:
            conn.write(b"\0" * (256 * 1024 * 1024))
        except inetkit.CancelledError as exc:
            result["error"] = exc

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.3)
    conn.cancel()
    thread.join(PROMPT)
    assert not thread.is_alive()
    assert result["error"].code is ErrorCode.CANCELLED
    assert result["error"].bytes_sent is not None and result["error"].bytes_sent > 0
    release.set()
    conn.close()


def test_free_thread_close_wakes_blocked_reader(echo_server: Server) -> None:
    conn = inetkit.connect("127.0.0.1", echo_server.port, timeout=30, options=Option.FREETHREAD)
    assert conn.owner is None
    assert conn.attach_thread() is None
    result: dict[str, Any] = {}

    def reader() -> None:
        try:
            conn.read()
        except inetkit.InetError as exc:
            result["error"] = exc

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.2)
    start = time.monotonic()
    _, error = run_in_thread(conn.close)  # from a third thread
    assert error is None
    thread.join(PROMPT)
    assert not thread.is_alive()
    assert time.monotonic() - start < PROMPT
    assert result["error"].code is ErrorCode.HANDLE_CLOSED
    assert conn.closed


def test_free_thread_reader_and_writer_at_once(echo_server: Server) -> None:
    total = 8 * 1024 * 1024
    chunk = bytes(range(256)) * 64  # 16 KiB
    got = bytearray()
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=30, options=Option.FREETHREAD) as conn:

        def reader() -> None:
            buf = bytearray(65536)
            while len(got) < total:
                n = conn.read_into(buf)
                if not n:
                    return
                got.extend(buf[:n])

        def writer() -> None:
            for _ in range(total // len(chunk)):
                conn.write(chunk)

        threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
    assert len(got) == total
    assert bytes(got) == chunk * (total // len(chunk))


def test_free_thread_two_readers_take_turns(echo_server: Server) -> None:
    lines = [f"line {i}\n".encode() for i in range(200)]
    seen: list[bytes] = []
    lock = threading.Lock()
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=10, options=Option.FREETHREAD) as conn:

        def reader() -> None:
            for _ in range(100):
                line = conn.read_line()
                with lock:
                    seen.append(line)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        conn.write(b"".join(lines))
        for thread in threads:
            thread.join(10)
    assert sorted(seen) == sorted(lines)  # every line whole, none torn or lost


def test_free_thread_is_readable_while_another_thread_reads(echo_server: Server) -> None:
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=10, options=Option.FREETHREAD) as conn:
        assert conn.is_readable() is False  # nobody reading: a plain check
        assert conn.is_writable() is True
        thread = threading.Thread(target=conn.read)
        thread.start()
        time.sleep(0.1)
        # The reader holds the read direction: no data for us, and no error.
        assert conn.is_readable() is False
        conn.write(b"x")
        thread.join(5)
        assert not thread.is_alive()
