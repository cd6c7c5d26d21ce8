"""Hostile peers on loopback for the reliability suite.

Each peer is a real listening socket served by a thread that this module
starts and joins (bounded); ``peer(handler)`` yields the port and, on exit,
closes the listener and every accepted socket, so that a case measured
around it ends with the descriptors it started with.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator

#: Seconds a peer thread may block on its socket before it gives up (a hang fails fast).
PEER_TIMEOUT = 10.0
#: Seconds to wait for a peer thread to end.
JOIN_LIMIT = 10.0

Handler = Callable[[socket.socket], None]


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_some(sock: socket.socket, limit: float = PEER_TIMEOUT) -> bytes:
    """Whatever arrives first (the ClientHello, a request), or b"" at the end."""
    sock.settimeout(limit)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""


@contextlib.contextmanager
def peer(handler: Handler, *, connections: int = 1) -> Iterator[int]:
    """Serve ``connections`` accepted connections with ``handler`` (one thread each); yield the port."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=max(connections, 16))
    listener.settimeout(PEER_TIMEOUT)
    accepted: list[socket.socket] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def serve_one(sock: socket.socket) -> None:
        try:
            handler(sock)
        except (OSError, ssl.SSLError, ValueError) as exc:
            errors.append(exc)
        finally:
            sock.close()

    def accept_loop() -> None:
        workers = []
        for _ in range(connections):
            try:
                sock, _ = listener.accept()
            except OSError:
                break
            if stop.is_set():
                sock.close()
                break
            sock.settimeout(PEER_TIMEOUT)
            accepted.append(sock)
            worker = threading.Thread(target=serve_one, args=(sock,), daemon=True)
            worker.start()
            workers.append(worker)
        for worker in workers:
            worker.join(JOIN_LIMIT)

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes a pending accept
        for sock in accepted:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # wakes a worker blocked in recv
        thread.join(JOIN_LIMIT)
        listener.close()
        for sock in accepted:
            sock.close()
        assert not thread.is_alive(), "a peer thread did not end"


def tls_server(context: ssl.SSLContext, sock: socket.socket) -> ssl.SSLSocket:
    """Do the server side of the handshake on ``sock`` (bounded by its timeout)."""
    return context.wrap_socket(sock, server_side=True)


class Trickle:
    """Forwards a TLS server's bytes to the client one byte per send, with a pause between.

    The server runs on a socket pair inside the peer thread; the client sees
    a ServerHello (and everything after it) arrive one byte at a time.
    """

    def __init__(self, context: ssl.SSLContext, pause: float, stop: threading.Event) -> None:
        self.context = context
        self.pause = pause
        self.stop = stop
        self.completed = False

    def __call__(self, client: socket.socket) -> None:
        inner, outer = socket.socketpair()
        server_thread = threading.Thread(target=self._server, args=(inner,), daemon=True)
        server_thread.start()
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.setblocking(False)
            outer.setblocking(False)
            while not self.stop.is_set():
                # Client -> server: as it comes. Server -> client: one byte per pause.
                with contextlib.suppress(BlockingIOError):
                    data = client.recv(65536)
                    if not data:
                        return
                    outer.sendall(data)
                try:
                    byte = outer.recv(1)
                except BlockingIOError:
                    time.sleep(0.001)  # nothing from the server yet
                    continue
                if not byte:
                    return
                client.setblocking(True)
                client.sendall(byte)
                client.setblocking(False)
                if self.pause:
                    time.sleep(self.pause)
        finally:
            outer.close()
            server_thread.join(JOIN_LIMIT)
            inner.close()

    def _server(self, sock: socket.socket) -> None:
        sock.settimeout(PEER_TIMEOUT)
        try:
            with self.context.wrap_socket(sock, server_side=True) as tls:
                self.completed = True
                data = tls.recv(100)
                tls.sendall(data)
                tls.unwrap()
        except (OSError, ssl.SSLError, ValueError):
            pass
