"""One reader thread and one writer thread on one `Option.FREETHREAD` handle.

A free-threaded handle has no owner: one thread may block in a read while
another writes, with no data race and no deadlock.

    python examples/free_threaded.py
"""

from __future__ import annotations

import socket
import threading

import inetkit
from inetkit import Option

#: Seconds any step may take; loopback answers in microseconds.
TIMEOUT = 5.0
#: Lines the writer sends and the reader expects back.
LINES = 200


def serve_echo(listener: socket.socket) -> None:
    sock, _ = listener.accept()
    with sock:
        sock.settimeout(TIMEOUT)
        while data := sock.recv(65536):
            sock.sendall(data)


def writer(conn: inetkit.Connection) -> None:
    for number in range(LINES):
        conn.write_line(f"line {number}")
    conn.shutdown()  # no more writes: the server sees the end and closes


def reader(conn: inetkit.Connection, received: list[str]) -> None:
    for line in conn:  # iterating yields lines until the peer closes
        received.append(line.decode().rstrip())


def main() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=serve_echo, args=(listener,), daemon=True)
        server.start()
        port = listener.getsockname()[1]

        with inetkit.connect("127.0.0.1", port, timeout=TIMEOUT, options=Option.FREETHREAD) as conn:
            print(f"owner: {conn.owner} (free-threaded)")
            received: list[str] = []
            threads = [
                threading.Thread(target=reader, args=(conn, received)),
                threading.Thread(target=writer, args=(conn,)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(TIMEOUT)
        server.join(TIMEOUT)
    expected = [f"line {number}" for number in range(LINES)]
    print(f"reader got {len(received)} of {LINES} lines, in order: {received == expected}")
    return 0 if received == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
