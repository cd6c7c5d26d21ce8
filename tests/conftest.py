"""Shared fixtures: loopback servers, program checks, descriptor counting."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from certs import PKI
    from tls_servers import Servers

#: Set by .ci/run: a test that needs a missing program fails instead of skipping.
REQUIRE_ENV = "INETKIT_REQUIRE_PROGRAMS"

# A developer's SSLKEYLOGFILE would make every TLS context log keys and warn once, and
# tests that count warnings would see it; tests/test_trust.py sets it where it tests it.
os.environ.pop("SSLKEYLOGFILE", None)


def require_program(name: str) -> str:
    """Path of a program the test needs; skip (or fail under CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"needs the program {name!r} (Debian package); .ci/run installs it"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str) -> None:
    """Skip (or fail under CI) when an optional Python test module is missing."""
    try:
        __import__(name)
    except ImportError:
        message = f"needs the Python package {name!r} (pip install -e '.[test]')"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


Handler = Callable[[socket.socket], None]


def settled_fds(expected: int, limit: float = 5.0) -> int:
    """The descriptor count once server threads have closed their ends (bounded wait)."""
    end = time.monotonic() + limit
    count = open_fds()
    while count != expected and time.monotonic() < end:
        time.sleep(0.05)
        count = open_fds()
    return count


@dataclass
class Server:
    """A threaded TCP server on loopback that runs ``handler`` per connection."""

    host: str
    handler: Handler
    family: int = socket.AF_INET
    listener: socket.socket = field(init=False)
    port: int = field(init=False)
    threads: list[threading.Thread] = field(default_factory=list)
    accepted: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.socket(self.family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((self.host, 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(10)
            self.accepted.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        try:
            self.handler(sock)
        except OSError:
            pass
        finally:
            sock.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(5)
        self.listener.close()
        for sock in self.accepted:
            sock.close()


def echo_handler(sock: socket.socket) -> None:
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(handler: Handler = echo_handler, host: str = "127.0.0.1") -> Server:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = Server(host, handler, family)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def echo_server(make_server: Callable[..., Server]) -> Server:
    return make_server(echo_handler)


@pytest.fixture
def udp_echo() -> Iterator[tuple[str, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            sock.sendto(data, peer)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield sock.getsockname()
    stop.set()
    thread.join(5)
    sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on right now (connects are refused)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def black_hole(host: str, port: int = 0) -> Iterator[int]:
    """A listener whose accept queue is full: further SYNs are dropped (PEERS.md)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    filler = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.bind((host, port))
        listener.listen(0)
        bound = listener.getsockname()[1]
        filler.settimeout(2)
        filler.connect((host, bound))
        yield bound
    finally:
        filler.close()
        listener.close()


@contextlib.contextmanager
def dual_stack_port() -> Iterator[int]:
    """A live IPv4 listener on a port number that is also free on ::1."""
    for _ in range(50):
        live = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        live.bind(("127.0.0.1", 0))
        port = int(live.getsockname()[1])
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(("::1", port))
        except OSError:
            live.close()
            continue
        finally:
            probe.close()
        try:
            live.listen(16)
            yield port
        finally:
            live.close()
        return
    pytest.fail("no port free on both 127.0.0.1 and ::1")


@contextlib.contextmanager
def silent_listener(backlog: int) -> Iterator[int]:
    """An IPv4 listener that never accepts; yields its port.

    The kernel completes up to ``backlog`` handshakes on its own, so connects
    succeed, no server-side descriptor enters this process (descriptor counts
    stay exact), and reads wait because nothing is ever sent.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(backlog)
        yield int(listener.getsockname()[1])


# -- TLS test infrastructure shared by the TLS test modules -------------------


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """The test PKI (CAs, server and client certificates), made once per run."""
    from certs import get_pki

    return get_pki(tmp_path_factory)


@pytest.fixture
def servers() -> Iterator[Servers]:
    """TLS servers a test starts; all are stopped when it ends."""
    from tls_servers import Servers

    with Servers() as running:
        yield running


@pytest.fixture
def fresh_tls_caches() -> Iterator[None]:
    """The test starts and ends with empty TLS context and session caches."""
    from inetkit._tls import SESSION_CACHE, clear_context_cache

    clear_context_cache()
    SESSION_CACHE.clear()
    yield
    clear_context_cache()
    SESSION_CACHE.clear()
