"""UDP: "connect" sets the default destination; one datagram per read and write.

Starts a UDP echo server on 127.0.0.1 in a thread, connects to it with
``Protocol.UDP`` and exchanges a few datagrams.

    python examples/udp_client.py
"""

from __future__ import annotations

import socket
import threading

import inetkit
from inetkit import Protocol

#: Seconds any step may take; loopback answers in microseconds.
TIMEOUT = 5.0
MESSAGES = [b"one", b"two", b"three"]


def serve_echo(sock: socket.socket, count: int) -> None:
    """Send ``count`` datagrams back to where they came from."""
    for _ in range(count):
        data, peer = sock.recvfrom(65535)
        sock.sendto(data, peer)


def main() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server_sock:
        server_sock.bind(("127.0.0.1", 0))
        server_sock.settimeout(TIMEOUT)
        server = threading.Thread(target=serve_echo, args=(server_sock, len(MESSAGES)), daemon=True)
        server.start()
        port = server_sock.getsockname()[1]

        with inetkit.connect("127.0.0.1", port, Protocol.UDP, timeout=TIMEOUT) as conn:
            for message in MESSAGES:
                conn.write(message)  # one datagram
                reply = conn.read()  # one datagram
                print(f"sent {message!r}, received {reply!r}")
        server.join(TIMEOUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
