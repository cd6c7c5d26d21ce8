"""SocketWrench-style code ported with `inetkit.compat`: integer handles and last errors.

The calls keep SocketWrench's names and shapes; failures return
``INVALID_SOCKET``, ``False``, ``-1`` or ``None`` and set the calling
thread's last error, read with ``InetGetLastError()``.

    python examples/compat_port.py
"""

from __future__ import annotations

import socket
import threading

from inetkit.compat import (
    INET_OPTION_NODELAY,
    INET_PROTOCOL_TCP,
    INVALID_SOCKET,
    InetConnect,
    InetDisconnect,
    InetGetErrorString,
    InetGetLastError,
    InetReadLine,
    InetWriteLine,
)

#: Seconds any step may take (InetConnect's nTimeout).
TIMEOUT = 5


def serve_echo(listener: socket.socket) -> None:
    sock, _ = listener.accept()
    with sock, sock.makefile("rb") as lines:
        sock.settimeout(TIMEOUT)
        for line in lines:
            sock.sendall(line)


def free_port() -> int:
    """A loopback port nothing listens on (a connect there is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=serve_echo, args=(listener,), daemon=True)
        server.start()
        port = listener.getsockname()[1]

        h_socket = InetConnect("127.0.0.1", port, INET_PROTOCOL_TCP, TIMEOUT, INET_OPTION_NODELAY)
        if h_socket == INVALID_SOCKET:
            print(f"InetConnect failed: {InetGetErrorString(InetGetLastError())}")
            return 1
        print(f"InetConnect returned handle {h_socket}")
        if not InetWriteLine(h_socket, "HELLO"):
            print(f"InetWriteLine failed: {InetGetErrorString(InetGetLastError())}")
        print(f"InetReadLine returned {InetReadLine(h_socket)!r}")
        InetDisconnect(h_socket)
        server.join(TIMEOUT)

    # Failures do not raise: they return the failure value and set the last error.
    h_socket = InetConnect("127.0.0.1", free_port(), INET_PROTOCOL_TCP, TIMEOUT)
    error = InetGetLastError()
    print(f"refused connect: handle {h_socket}, last error {error} ({InetGetErrorString(error)})")
    return 0 if h_socket == INVALID_SOCKET else 1


if __name__ == "__main__":
    raise SystemExit(main())
