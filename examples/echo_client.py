"""TCP line echo with `Connection.write_line` and `Connection.read_line`.

Starts a one-connection echo server on 127.0.0.1 in a thread, connects to it
with `inetkit.connect`, sends a few lines and prints what came back.

    python examples/echo_client.py
"""

from __future__ import annotations

import socket
import threading

import inetkit

#: Seconds any step may take; loopback answers in microseconds.
TIMEOUT = 5.0


def serve_echo(listener: socket.socket) -> None:
    """Accept one client and send every line back until it closes."""
    sock, _ = listener.accept()
    with sock, sock.makefile("rb") as lines:
        sock.settimeout(TIMEOUT)
        for line in lines:
            sock.sendall(line)


def main() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=serve_echo, args=(listener,), daemon=True)
        server.start()
        port = listener.getsockname()[1]

        with inetkit.connect("127.0.0.1", port, timeout=TIMEOUT) as conn:
            took = conn.trace.total or 0.0  # seconds from the call to the connected handle
            print(f"connected to {conn.remote_address} in {took * 1000:.1f} ms")
            for text in ["hello", "héllo wörld", "bye"]:
                conn.write_line(text)  # str is sent as UTF-8, followed by CRLF
                line = conn.read_line()  # bytes, with the line terminator
                print(f"echoed: {line.decode('utf-8').rstrip()}")
        server.join(TIMEOUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
