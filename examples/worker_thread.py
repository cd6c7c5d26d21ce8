"""Hand a connection to a worker thread with `Connection.attach_thread`.

A handle belongs to the thread that made it. Another thread that uses it
gets `OwnershipError` until it calls ``attach_thread()``, which makes it the
owner and returns the previous owner's thread id.

    python examples/worker_thread.py
"""

from __future__ import annotations

import socket
import threading

import inetkit

#: Seconds any step may take; loopback answers in microseconds.
TIMEOUT = 5.0


def serve_echo(listener: socket.socket) -> None:
    sock, _ = listener.accept()
    with sock, sock.makefile("rb") as lines:
        sock.settimeout(TIMEOUT)
        for line in lines:
            sock.sendall(line)


def worker(conn: inetkit.Connection, results: list[str]) -> None:
    try:
        conn.write_line("from the worker, before attaching")
    except inetkit.OwnershipError as exc:
        results.append(f"worker before attach_thread: {exc.code.name}")
    previous = conn.attach_thread()  # this thread owns the handle now
    results.append(f"worker attached; previous owner was thread {previous}")
    conn.write_line("from the worker")
    results.append(f"worker echoed: {conn.read_line().decode().rstrip()}")


def main() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=serve_echo, args=(listener,), daemon=True)
        server.start()
        port = listener.getsockname()[1]

        conn = inetkit.connect("127.0.0.1", port, timeout=TIMEOUT)
        try:
            print(f"main thread {threading.get_ident()} connected; owner is {conn.owner}")
            results: list[str] = []
            thread = threading.Thread(target=worker, args=(conn, results))
            thread.start()
            thread.join(TIMEOUT)
            print("\n".join(results))
            try:
                conn.write_line("from main, after handing the handle over")
            except inetkit.OwnershipError as exc:
                print(f"main after the hand-over: {exc.code.name}")
            conn.attach_thread()  # take it back to close it
        finally:
            conn.close()
        server.join(TIMEOUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
