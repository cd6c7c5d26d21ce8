"""inetkit through a local CONNECT proxy against the same connect direct, as ratios.

Usage::

    python3 benchmarks/proxy.py            # full run (about a minute on 2 quiet cores)
    python3 benchmarks/proxy.py --quick    # tiny sizes: a smoke run
    python3 benchmarks/proxy.py --profile  # also: client-side calls per MiB, direct vs proxied

Rows (each pairs the direct connect with the proxied one in alternating
rounds, as ``run.py`` does, and prints the paired-median ratio):

=====================================================  =================================
row                                                    ratio
=====================================================  =================================
connect+close through http:// proxy                    time / the same connect direct
  client cpu per connect+close                         CPU time / the same, direct
tls bulk send, receive through http:// proxy           throughput / the same TLS direct
  client cpu per MB received                           CPU time / the same, direct
tls bulk send, receive through https:// (TLS in TLS)   throughput / the same TLS direct
  client cpu per MB received                           CPU time / the same, direct
=====================================================  =================================

On 2 cores the client, the target server and the proxy share the CPUs, so
the bulk rows through a proxy also pay for the proxy's copies (and, for
``https://``, its decryption) on the same cores.

The proxy is this module's own (`proxy_main`), in a child process of its
own, not squid: squid's per-connection cost (its ACLs, its logging, its
DNS layer) is several times a loopback connect and would be what the
connect row measures. It is the smallest honest CONNECT proxy: one thread,
``selectors`` (epoll), the request read and parsed, a blocking loopback
connect to the target, ``200``, then each readable side's bytes copied to
the other (``recv_into`` one 64 KiB buffer, ``sendall``). The ``https://``
listener wraps the client in TLS (Python's ``ssl``) and relays with a
thread per direction. The targets are ``run.py``'s server (its ``plain``
accept-and-close listener and its ``tls_sink``).

The proxy adds work on its own process; what it adds on the client is the
dialog (one request, one answer) and, with TLS to the target, nothing per
byte: ``--profile`` counts the client's calls per MiB of TLS bulk receive
direct and through the ``http://`` proxy (the same socket receives, the
same engine steps), and through the ``https://`` proxy (each per-byte call
twice: the second TLS layer, nothing else).
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import pstats
import selectors
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from run import CHUNK, Report, Result, Sizes, alternate, per_call_us

import inetkit
from inetkit import Option, SecurityCredentials

#: Bytes the proxy's relay reads per call: one buffer, as a bulk client uses.
RELAY_CHUNK = 65536
#: Longest CONNECT request the benchmark proxy takes (its requests are ~60 bytes).
MAX_REQUEST = 8192
#: Listen backlog of the proxy (the connect row opens one connection at a time).
BACKLOG = 128


# -- the proxy (a child process) ---------------------------------------------------------


def _tunnel_threads(client: socket.socket, target: socket.socket) -> None:
    """Relay both directions with a thread each (the https:// listener: SSLSocket reads block)."""

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(RELAY_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    back = threading.Thread(target=pump, args=(target, client), daemon=True)
    back.start()
    pump(client, target)
    back.join()
    client.close()
    target.close()


def _read_request(sock: socket.socket) -> tuple[str, int] | None:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(MAX_REQUEST)
        if not chunk or len(head) > MAX_REQUEST:
            return None
        head += chunk
    host, _, port = head.split(b" ", 2)[1].decode().rpartition(":")
    return host.strip("[]"), int(port)


def _serve_https(listener: socket.socket, context: ssl.SSLContext) -> None:
    def one(raw: socket.socket) -> None:
        try:
            client = context.wrap_socket(raw, server_side=True)
            where = _read_request(client)
            if where is None:
                client.close()
                return
            target = socket.create_connection(where)
            target.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        except OSError:
            raw.close()
            return
        _tunnel_threads(client, target)

    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=one, args=(sock,), daemon=True).start()


class _Relay:
    """One select loop for every plain tunnel: accept, read CONNECT, connect, copy."""

    def __init__(self, listener: socket.socket) -> None:
        self.selector = selectors.DefaultSelector()
        self.listener = listener
        self.peer: dict[socket.socket, socket.socket] = {}
        self.pending: dict[socket.socket, bytes] = {}
        self.buffer = bytearray(RELAY_CHUNK)
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ)

    def run(self) -> None:
        view = memoryview(self.buffer)
        while True:
            for key, _ in self.selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    self._accept()
                elif sock in self.pending:
                    self._request(sock)
                else:
                    self._copy(sock, view)

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending[sock] = b""
        self.selector.register(sock, selectors.EVENT_READ)

    def _close(self, sock: socket.socket) -> None:
        for one in (sock, self.peer.pop(sock, None)):
            if one is None:
                continue
            self.peer.pop(one, None)
            self.pending.pop(one, None)
            try:
                self.selector.unregister(one)
            except (KeyError, ValueError):
                pass
            one.close()

    def _request(self, sock: socket.socket) -> None:
        data = self.pending[sock] + sock.recv(MAX_REQUEST)
        if b"\r\n\r\n" not in data:
            if not data or len(data) > MAX_REQUEST:
                self._close(sock)
            else:
                self.pending[sock] = data
            return
        del self.pending[sock]
        host, _, port = data.split(b" ", 2)[1].decode().rpartition(":")
        try:
            target = socket.create_connection((host.strip("[]"), int(port)))
        except OSError:
            sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
            self._close(sock)
            return
        target.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.peer[sock] = target
        self.peer[target] = sock
        self.selector.register(target, selectors.EVENT_READ)

    def _copy(self, sock: socket.socket, view: memoryview) -> None:
        try:
            count = sock.recv_into(view)
        except OSError:
            count = 0
        other = self.peer.get(sock)
        if not count or other is None:
            self._close(sock)  # either end leaving ends the tunnel (the benchmark's peers close last)
            return
        try:
            other.sendall(view[:count])  # blocking: the benchmark's peers always read
        except OSError:
            self._close(sock)


def proxy_main(ports: multiprocessing.Queue, identity: bytes) -> None:  # type: ignore[type-arg]
    """The proxy process: an http:// listener (select loop) and an https:// one (threads)."""
    plain = socket.create_server(("127.0.0.1", 0), backlog=BACKLOG)
    secure = socket.create_server(("127.0.0.1", 0), backlog=BACKLOG)
    context = run.server_context(identity)
    threading.Thread(target=_serve_https, args=(secure, context), daemon=True).start()
    ports.put({"http": plain.getsockname()[1], "https": secure.getsockname()[1]})
    _Relay(plain).run()


# -- the rows -------------------------------------------------------------------------------


def bench_connect(target: int, proxy: int, sizes: Sizes) -> list[Result]:
    url = f"http://127.0.0.1:{proxy}"

    def direct() -> None:
        inetkit.connect("127.0.0.1", target, timeout=10).close()

    def proxied() -> None:
        inetkit.connect("127.0.0.1", target, timeout=10, proxy=url).close()

    pairs = alternate(sizes.rounds, per_call_us(sizes.count, direct), per_call_us(sizes.count, proxied))
    cpu = alternate(sizes.rounds, cpu_per_call_us(sizes.count, direct), cpu_per_call_us(sizes.count, proxied))
    labels = ("direct", "proxied")
    # Wall time holds the proxy's own work and a round trip through it (two TCP
    # handshakes and a request/answer where direct has one handshake); the
    # client's CPU is what inetkit adds: one more socket, one dialog.
    return [
        Result("connect+close via http:// proxy", "us", pairs, "<= 6.00", labels),
        Result("  client cpu per connect+close", "us", cpu, "<= 3.50", labels),
    ]


def cpu_per_call_us(count: int, call: Callable[[], None]) -> Callable[[], float]:
    """Like `run.per_call_us`, in this process's CPU time (waits for the peers not counted)."""

    def measure() -> float:
        start = time.process_time()
        for _ in range(count):
            call()
        return (time.process_time() - start) / count * 1e6

    return measure


def _bulk(
    open_direct: Callable[[], inetkit.Connection],
    open_proxied: Callable[[], inetkit.Connection],
    rounds: int,
    size: int,
) -> tuple[run.Paired, run.Paired]:
    """TLS bulk send and receive, MB/s, fresh connections each round (set up outside the timing)."""
    block = bytes(CHUNK)
    buf = bytearray(CHUNK)

    def send(opener: Callable[[], inetkit.Connection]) -> Callable[[], float]:
        def measure() -> float:
            with opener() as conn:
                start = time.perf_counter()
                conn.write(run._header(b"s", size))
                for _ in range(size // CHUNK):
                    conn.write(block)
                assert conn.read(1) == b"k"
                return size / (time.perf_counter() - start) / 1e6

        return measure

    def receive(opener: Callable[[], inetkit.Connection]) -> Callable[[], float]:
        def measure() -> float:
            with opener() as conn:
                start = time.perf_counter()
                conn.write(run._header(b"r", size))
                left = size
                while left:
                    left -= conn.read_into(buf)
                return size / (time.perf_counter() - start) / 1e6

        return measure

    return (
        alternate(rounds, send(open_direct), send(open_proxied)),
        alternate(rounds, receive(open_direct), receive(open_proxied)),
    )


def _opener(port: int, ca_file: str, proxy: str | None) -> Callable[[], inetkit.Connection]:
    credentials = SecurityCredentials(ca_file=ca_file)

    def open_conn() -> inetkit.Connection:
        return inetkit.connect(
            "127.0.0.1",
            port,
            options=Option.SECURE | Option.FREETHREAD | Option.NODELAY,
            credentials=credentials,
            timeout=30,
            proxy=proxy,
        )

    return open_conn


def receive_cpu(opener: Callable[[], inetkit.Connection], size: int) -> Callable[[], float]:
    """This process's CPU microseconds per MB of a TLS bulk receive (what the client itself spends)."""
    buf = bytearray(CHUNK)

    def measure() -> float:
        with opener() as conn:
            start = time.process_time()
            conn.write(run._header(b"r", size))
            left = size
            while left:
                left -= conn.read_into(buf)
            return (time.process_time() - start) / (size / 1e6) * 1e6

    return measure


def bench_tls_bulk(target: int, proxies: dict[str, int], ca_file: str, sizes: Sizes) -> list[Result]:
    """Throughput through each proxy vs direct, and the client's CPU per MB received.

    Targets: the wall-clock rows share 2 cores with the proxy's relay (and
    for https:// its decryption), so they are floors of this setup; the CPU
    rows are the design's own: the CONNECT hop adds nothing per byte (1.10),
    TLS inside TLS adds one TLS layer's work (2.20: about twice the direct).
    """
    results = []
    direct = _opener(target, ca_file, None)
    labels = ("direct", "proxied")
    for scheme, wall, cpu in (("http", ">= 0.60", "<= 1.10"), ("https", ">= 0.40", "<= 2.20")):
        proxied = _opener(target, ca_file, f"{scheme}://localhost:{proxies[scheme]}")
        send, receive = _bulk(direct, proxied, sizes.rounds, sizes.size)
        spent = alternate(sizes.rounds, receive_cpu(direct, sizes.size), receive_cpu(proxied, sizes.size))
        how = "TLS in TLS" if scheme == "https" else "tls"
        results.append(Result(f"{how} bulk send via {scheme}://", "MB/s", send, wall, labels))
        results.append(Result(f"{how} bulk receive via {scheme}://", "MB/s", receive, wall, labels))
        results.append(Result("  client cpu per MB received", "us", spent, cpu, labels))
    return results


# -- the profile: calls per MiB on the client ------------------------------------------------

#: The client-side functions whose calls per MiB show how many times each byte is handled.
PROFILED = ("recv", "recv_into", "receive", "read_into", "read", "write", "data_to_send", "sendall")


def profile_receive(opener: Callable[[], inetkit.Connection], size: int) -> dict[str, float]:
    """Calls per MiB of a TLS bulk receive, by function name (``module:function``), on the client."""
    buf = bytearray(CHUNK)
    with opener() as conn:
        profiler = cProfile.Profile()
        profiler.enable()
        conn.write(run._header(b"r", size))
        left = size
        while left:
            left -= conn.read_into(buf)
        profiler.disable()
    stats = pstats.Stats(profiler)
    mib = size / (1 << 20)
    counts: dict[str, float] = {}
    for (path, _, name), (_, calls, *_) in stats.stats.items():  # type: ignore[attr-defined]
        # Python functions by name (inetkit's); C methods read "<method 'recv' of '_socket.socket' objects>".
        wanted = name in PROFILED and "inetkit" in path
        wanted = wanted or (path == "~" and any(f"'{method}'" in name for method in PROFILED))
        if wanted:
            where = "C" if path == "~" else Path(path).name
            counts[f"{where}:{name}"] = counts.get(f"{where}:{name}", 0) + calls / mib
    return counts


def print_profile(target: int, proxies: dict[str, int], ca_file: str, size: int) -> None:
    rows = {
        "direct": profile_receive(_opener(target, ca_file, None), size),
        "http://": profile_receive(_opener(target, ca_file, f"http://localhost:{proxies['http']}"), size),
        "https://": profile_receive(_opener(target, ca_file, f"https://localhost:{proxies['https']}"), size),
    }
    names = sorted(
        {name for counts in rows.values() for name in counts}, key=lambda n: -rows["direct"].get(n, 0)
    )
    print(f"\nclient calls per MiB of TLS bulk receive ({size >> 20} MiB)")
    print(f"{'function':<60} {'direct':>9} {'http://':>9} {'https://':>9}")
    for name in names:
        figures = [rows[which].get(name, 0.0) for which in ("direct", "http://", "https://")]
        if max(figures) >= 1:
            print(f"{name[:60]:<60} {figures[0]:>9.1f} {figures[1]:>9.1f} {figures[2]:>9.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="every row at tiny sizes (a smoke run)")
    parser.add_argument("--profile", action="store_true", help="also count client calls per MiB")
    args = parser.parse_args(argv)
    sizes = Sizes.pick(args.quick)
    rsa_identity, rsa_ca = run.make_certificate()
    ec_identity, _ = run.make_certificate(rsa_leaf=False)
    ctx = multiprocessing.get_context("fork")
    server_ports: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    proxy_ports: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    server = ctx.Process(target=run.server_main, args=(server_ports, rsa_identity, ec_identity), daemon=True)
    proxy = ctx.Process(target=proxy_main, args=(proxy_ports, rsa_identity), daemon=True)
    server.start()
    proxy.start()
    report = Report({"inetkit": inetkit.__version__, "quick": args.quick}, sys.stdout)
    print(f"inetkit {inetkit.__version__}, Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}")
    try:
        with tempfile.TemporaryDirectory(prefix="inetkit-bench-proxy-") as scratch:
            # One CA for both hops (its leaf serves the target and the https:// proxy alike).
            ca_file = Path(scratch, "ca.pem")
            ca_file.write_bytes(rsa_ca)
            ports = server_ports.get(timeout=30)
            proxies = proxy_ports.get(timeout=30)
            report.add(bench_connect(ports["plain"], proxies["http"], sizes))
            report.add(bench_tls_bulk(ports["tls_sink"], proxies, str(ca_file), sizes))
            if args.profile:
                print_profile(ports["tls_sink"], proxies, str(ca_file), sizes.size)
    finally:
        for process in (server, proxy):
            process.kill()
            process.join(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
