"""Real TLS peers on loopback: a threaded Python ``ssl`` server and an ``openssl s_server`` runner.

Both peers speak the same tiny application protocol once TLS is up, that of
``openssl s_server -rev``: every line the client sends comes back reversed
(``b"ping\\n"`` -> ``b"gnip\\n"``). A client can therefore check either peer
with one round trip, and that round trip also takes in what a TLS 1.3 server
sends after its handshake (session tickets, its verdict on a client
certificate).

`PythonTLSServer` runs in this process: it records per connection what it
saw (the SNI name, the protocol, the client certificate, its own error), can
speak plaintext before the handshake (an in-band upgrade, or a server that
talks first), and can serve ``::1``. `OpenSSLServer` runs the ``openssl``
program in a child process: it listens on a port the kernel picks and
reports it on its standard output (``ACCEPT 127.0.0.1:PORT``), which is read
from a file, so the child can never block on a full pipe. It serves one
connection at a time.

`Servers` owns every peer a test starts and stops exactly those: threads are
woken and joined, child processes are terminated and waited for by PID.
Every wait is bounded.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO

from certs import PKI, ServerCert, pem
from cryptography import x509

#: Seconds a server connection waits for its client before giving up (a hang fails fast).
CONNECTION_TIMEOUT = 10.0
#: Seconds a peer may take to start listening (a cold ``openssl`` start takes ~50 ms).
START_TIMEOUT = 10.0
#: Seconds to wait for a stopped peer (thread or process) to end.
STOP_TIMEOUT = 5.0
#: Polling interval while waiting for ``openssl s_server`` to report its port.
START_POLL = 0.01
#: Longest line the reversing application accepts (tests send short lines).
MAX_LINE = 65536
#: Listen backlog of the Python server (tests open a handful of connections at most).
BACKLOG = 16
#: How often the accept loop checks for a stop request when shutting the listener down did not wake it.
ACCEPT_POLL = 0.1


@dataclass
class Seen:
    """What the Python server saw on one connection."""

    sni_called: bool = False
    server_name: str | None = None  # the SNI name, None when the client sent none
    plaintext: bytes = b""  # what the client sent before the handshake
    protocol: str | None = None
    client_subject: str | None = None  # RFC 4514 subject of the client certificate
    error: BaseException | None = None  # the server's own failure, if any
    lines: list[bytes] = field(default_factory=list)  # lines received over TLS


#: Something the plaintext prelude sends: bytes, or an event to wait for (bounded) first.
PreludeStep = bytes | threading.Event


def reverse_lines(tls: socket.socket, seen: Seen) -> None:
    """The ``s_server -rev`` protocol: send every received line back reversed."""
    pending = b""
    while True:
        data = tls.recv(MAX_LINE)
        if not data:
            return
        pending += data
        while b"\n" in pending:
            line, _, pending = pending.partition(b"\n")
            seen.lines.append(line)
            tls.sendall(line.rstrip(b"\r")[::-1] + b"\n")
        if len(pending) > MAX_LINE:
            return


def _read_line(sock: socket.socket) -> bytes:
    """One line from a plain socket, byte by byte (nothing after the line is consumed)."""
    line = b""
    while not line.endswith(b"\n") and len(line) < MAX_LINE:
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
    return line


def _wrap_server_side(context: ssl.SSLContext, sock: socket.socket) -> ssl.SSLSocket:
    """``context.wrap_socket(sock, server_side=True)``, without leaking a socket when it fails.

    When the client has reset the connection before the server wraps it,
    CPython 3.11's ``SSLSocket._create`` detaches ``sock``, then fails in its
    "are we connected" probe (``recv`` raises ECONNRESET) and drops the new
    `ssl.SSLSocket` unclosed: a ResourceWarning later, in whichever test the
    garbage collector runs. That object is still reachable from the
    traceback (``self`` in the failing frame); close it there.
    """
    try:
        return context.wrap_socket(sock, server_side=True)
    except OSError as exc:
        tb = exc.__traceback__
        while tb is not None:
            orphan = tb.tb_frame.f_locals.get("self")
            if isinstance(orphan, ssl.SSLSocket):
                orphan.close()
            tb = tb.tb_next
        raise


class PythonTLSServer:
    """A threaded TLS server on loopback, one thread per connection.

    ``context`` is a server `ssl.SSLContext` (this server sets its SNI
    callback; pass one made for it). ``expect`` and ``reply`` make an in-band
    upgrade: the server reads one plaintext line, checks it equals ``expect``,
    sends the ``reply`` steps, then starts TLS. ``context=None`` with a
    ``reply`` is a plaintext server that only talks (and then drains what the
    client sends); ``context=None`` without one is a server that accepts and
    never answers.
    """

    def __init__(
        self,
        context: ssl.SSLContext | None,
        *,
        host: str = "127.0.0.1",
        expect: bytes | None = None,
        reply: Sequence[PreludeStep] = (),
        app: Callable[[socket.socket, Seen], None] = reverse_lines,
    ) -> None:
        self.context = context
        self.expect = expect
        self.reply = tuple(reply)
        self.app = app
        self.seen: list[Seen] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        if context is not None:
            context.sni_callback = self._on_sni
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.listener.bind((host, 0))
            self.listener.listen(BACKLOG)
            self.listener.settimeout(ACCEPT_POLL)
        except BaseException:
            self.listener.close()
            raise
        self.host = host
        self.port: int = self.listener.getsockname()[1]
        accept_thread = threading.Thread(target=self._accept_loop, name="tls-accept", daemon=True)
        self._threads.append(accept_thread)
        accept_thread.start()

    def _on_sni(self, _sock: object, name: str | None, _ctx: ssl.SSLContext) -> None:
        seen: Seen | None = getattr(self._local, "seen", None)
        if seen is not None:
            seen.sni_called = True
            seen.server_name = name

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(CONNECTION_TIMEOUT)
            with self._lock:
                if self._stop.is_set():
                    sock.close()
                    return
                self._live.add(sock)
                thread = threading.Thread(target=self._serve, args=(sock,), name="tls-conn", daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        seen = Seen()
        self.seen.append(seen)
        self._local.seen = seen
        current = sock
        try:
            if self.expect is not None:
                seen.plaintext = _read_line(sock)
                if seen.plaintext != self.expect:
                    sock.sendall(b"ERR\n")
                    return
            for step in self.reply:
                if isinstance(step, threading.Event):
                    step.wait(CONNECTION_TIMEOUT)
                else:
                    sock.sendall(step)
            if self.context is None:
                while sock.recv(MAX_LINE):  # talk-only or silent: drain until the client leaves
                    pass
                return
            tls = _wrap_server_side(self.context, sock)
            with self._lock:
                self._live.discard(sock)
                self._live.add(tls)
            current = tls
            seen.protocol = tls.version()
            cert = tls.getpeercert(binary_form=True)
            if cert:
                seen.client_subject = x509.load_der_x509_certificate(cert).subject.rfc4514_string()
            self.app(tls, seen)
        except (OSError, ValueError) as exc:
            seen.error = exc
        finally:
            with self._lock:
                self._live.discard(current)
                current.close()

    def wait_idle(self, timeout: float = STOP_TIMEOUT) -> None:
        """Wait until every connection accepted so far has ended (bounded)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [t for t in self._threads if t.name == "tls-conn"]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop accepting, wake every connection thread, and join them all."""
        self._stop.set()
        with self._lock:
            for sock in self._live:
                try:
                    # The plain socket's shutdown wakes a thread blocked in recv,
                    # TLS or not, without touching the TLS state it is using.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass
            try:
                # Wakes the accept loop at once (the poll interval is the fallback).
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(STOP_TIMEOUT)
        self.listener.close()


class OpenSSLServer:
    """``openssl s_server -rev`` in a child process, listening on a kernel-chosen loopback port."""

    def __init__(self, program: str, args: Sequence[str], *, host: str = "127.0.0.1") -> None:
        self.args = [program, "s_server", "-accept", f"{host}:0", "-rev", *args]
        self.host = host
        self._output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        try:
            self.process = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT
            )
        except BaseException:
            self._output.close()
            raise
        try:
            self.port = self._wait_for_port()
        except BaseException:
            self.close()
            raise

    def output(self) -> str:
        """Everything the server printed so far."""
        return os.pread(self._output.fileno(), 1 << 20, 0).decode("utf-8", "replace")

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if line.startswith("ACCEPT "):
                    return int(line.rsplit(":", 1)[1])
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"openssl s_server exited with {self.process.returncode}: {self.output()[-2000:]}\n"
                    f"command: {' '.join(self.args)}"
                )
            time.sleep(START_POLL)
        raise RuntimeError(f"openssl s_server did not start within {START_TIMEOUT} s: {self.output()}")

    def close(self) -> None:
        """Stop the child process we started and wait for it by PID."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self._output.close()


def openssl_identity_args(server: ServerCert, pki: PKI) -> list[str]:
    """``-cert``/``-key`` (and ``-cert_chain`` for the intermediates) for a server identity.

    ``-cert`` sends only the first certificate of its file; the rest of the
    chain goes in a separate file for ``-cert_chain``.
    """
    args = ["-cert", str(server.chain_file), "-key", str(server.key_file)]
    extra = x509.load_pem_x509_certificates(server.chain_file.read_bytes())[1:]
    if extra:
        chain = pki.directory / f"server-{server.name}-intermediates.pem"
        if not chain.exists():
            pki.write(chain.name, pem(*extra))
        args += ["-cert_chain", str(chain)]
    return args


class Servers:
    """Every peer one test starts; all are stopped when the ``with`` block ends."""

    def __init__(self) -> None:
        self._python: list[PythonTLSServer] = []
        self._openssl: list[OpenSSLServer] = []

    def python(
        self,
        context: ssl.SSLContext | None,
        *,
        host: str = "127.0.0.1",
        expect: bytes | None = None,
        reply: Sequence[PreludeStep] = (),
        app: Callable[[socket.socket, Seen], None] = reverse_lines,
    ) -> PythonTLSServer:
        """Start a `PythonTLSServer` (see there for the arguments)."""
        server = PythonTLSServer(context, host=host, expect=expect, reply=reply, app=app)
        self._python.append(server)
        return server

    def openssl(self, program: str, args: Sequence[str], *, host: str = "127.0.0.1") -> OpenSSLServer:
        server = OpenSSLServer(program, args, host=host)
        self._openssl.append(server)
        return server

    def close(self) -> None:
        for server in self._python:
            server.close()
        for process in self._openssl:
            process.close()
        self._python.clear()
        self._openssl.clear()

    def __enter__(self) -> Servers:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_sockets() -> set[str]:
    """The sockets this process holds open now (``socket:[inode]`` names)."""
    names: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (or the directory's own descriptor)
        if target.startswith("socket:"):
            names.add(target)
    return names


def sockets_left_open(before: set[str], timeout: float = STOP_TIMEOUT) -> set[str]:
    """Sockets opened since ``before`` that are still open once the servers have settled.

    A server running in this process closes its end of a connection shortly
    after the client closes; wait for that (bounded). Sockets that were open
    before and close meanwhile do not count, so the check does not depend on
    what earlier connections left closing.
    """
    deadline = time.monotonic() + timeout
    new = open_sockets() - before
    while new and time.monotonic() < deadline:
        time.sleep(START_POLL)
        new = open_sockets() - before
    return new
