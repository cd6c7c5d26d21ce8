"""inetkit against the standard library, side by side in one run, as ratios.

Usage::

    python3 benchmarks/run.py            # full run (about a minute)
    python3 benchmarks/run.py --quick    # a smoke run (the test suite uses it)
    python3 benchmarks/run.py --only connect,bulk

Every case runs the standard-library version and the inetkit version in
alternating rounds (ABBA...) against the same loopback server (a separate
process, so the client is measured on its own core as far as the machine
allows). It prints the median of each side and the ratio: the median of the
per-round ratios, each round's inetkit figure over the standard library's
figure of the same pair of rounds (the ratio of the two medians is printed
next to it). Pairing cancels what changes from one moment to the next on a
shared machine (other jobs, CPU frequency), which on loopback moves single
rounds by far more than the differences measured. Ratios, not absolute
times, are the figures to compare.

Targets (from the project's issues):

==========================  ====================================  ========
case                        ratio                                 target
==========================  ====================================  ========
connect                     inetkit time / create_connection      <= 1.15
bulk send, bulk receive     inetkit throughput / sendall,recv_into >= 0.95
tls full handshake          inetkit time / SSLContext.wrap_socket  <= 1.05
tls resumed vs full         inetkit resumed time / inetkit full    <= 0.80
tls bulk send, receive      inetkit throughput / SSLSocket         >= 0.95
==========================  ====================================  ========
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import ssl
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import inetkit
from inetkit import Option, SecurityCredentials
from inetkit._credentials import apply_identity

CHUNK = 65536


# -- servers (run in a child process) ------------------------------------


def _accept_close_server(listener: socket.socket) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        sock.close()


def _sink(sock: socket.socket) -> None:
    """Read a 16-byte size header, swallow that many bytes, answer one byte."""
    with sock:
        buf = bytearray(CHUNK * 4)
        view = memoryview(buf)
        while True:
            header = b""
            while len(header) < 17:
                more = sock.recv(17 - len(header))
                if not more:
                    return
                header += more
            mode, size = header[:1], int(header[1:])
            if mode == b"s":  # the client sends, we swallow
                left = size
                while left:
                    n = sock.recv_into(view[: min(left, len(buf))])
                    if not n:
                        return
                    left -= n
                sock.sendall(b"k")
            else:  # the client receives
                block = bytes(CHUNK * 4)
                left = size
                while left:
                    n = min(left, len(block))
                    sock.sendall(block[:n])
                    left -= n


def _serve_forever(listener: socket.socket, handler: Callable[[socket.socket], None]) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        # Small replies (the one-byte acknowledgement, TLS tickets) must not
        # wait for a delayed ACK (Nagle): that adds 40 ms stalls to both sides.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handler, args=(sock,), daemon=True).start()


def _tls_wrap_handler(
    context: ssl.SSLContext, inner: Callable[[socket.socket], None]
) -> Callable[[socket.socket], None]:
    def handler(sock: socket.socket) -> None:
        try:
            tls = context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            sock.close()
            return
        try:
            inner(tls)
        except (ssl.SSLError, OSError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    return handler


def _close_after_handshake(sock: socket.socket) -> None:
    # Read until the client closes, so TLS 1.3 tickets reach it and close_notify is seen.
    try:
        while sock.recv(1024):
            pass
    except (ssl.SSLError, OSError):
        pass


def server_main(ports: multiprocessing.Queue, identity_pem: bytes) -> None:  # type: ignore[type-arg]
    listeners = []
    for _ in range(4):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        listeners.append(sock)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # inetkit's own loader: the key reaches OpenSSL without touching the disk.
    apply_identity(context, SecurityCredentials(cert_store=identity_pem))
    threading.Thread(target=_accept_close_server, args=(listeners[0],), daemon=True).start()
    threading.Thread(target=_serve_forever, args=(listeners[1], _sink), daemon=True).start()
    threading.Thread(
        target=_serve_forever,
        args=(listeners[2], _tls_wrap_handler(context, _close_after_handshake)),
        daemon=True,
    ).start()
    threading.Thread(
        target=_serve_forever, args=(listeners[3], _tls_wrap_handler(context, _sink)), daemon=True
    ).start()
    ports.put([sock.getsockname()[1] for sock in listeners])
    threading.Event().wait()


def make_certificate() -> tuple[bytes, bytes]:
    """A throwaway CA and an RSA-2048 leaf for localhost/127.0.0.1 (benchmark only).

    RSA-2048 because most public servers use it, and its signature is what a
    resumed handshake saves. Returns (leaf certificate + key PEM, CA PEM).
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inetkit benchmark CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    identity = leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return identity, ca.public_bytes(serialization.Encoding.PEM)


# -- measuring ---------------------------------------------------------------


@dataclass
class Paired:
    """The rounds of two measurements taken in alternation: ``first[i]`` next to ``second[i]``."""

    first: list[float]
    second: list[float]

    def ratio(self) -> float:
        """The median of the per-round ratios ``second[i] / first[i]``.

        Adjacent rounds share the machine's state of the moment (other jobs,
        CPU frequency, where the scheduler put the server), which on a shared
        machine changes from one round to the next by more than the effect
        measured; a ratio per pair cancels it, a ratio of two medians does not.
        """
        return statistics.median(b / a for a, b in zip(self.first, self.second, strict=True))

    def ratio_of_medians(self) -> float:
        return statistics.median(self.second) / statistics.median(self.first)


@dataclass
class Result:
    case: str
    unit: str
    pairs: Paired
    target: str
    labels: tuple[str, str] = ("stdlib", "inetkit")

    def line(self) -> str:
        first, second = statistics.median(self.pairs.first), statistics.median(self.pairs.second)
        one, two = self.labels
        return (
            f"{self.case:<38} {one:<7} {first:>9.2f} {self.unit:<5} {two:<7} {second:>9.2f} {self.unit:<5} "
            f"ratio {self.pairs.ratio():5.3f} (of medians {self.pairs.ratio_of_medians():5.3f})  "
            f"target {self.target}"
        )


def alternate(rounds: int, first: Callable[[], float], second: Callable[[], float]) -> Paired:
    """Run two measurements in alternating rounds (ABBA...); return the pairs."""
    a: list[float] = []
    b: list[float] = []
    for index in range(rounds):
        if index % 2:
            b.append(second())
            a.append(first())
        else:
            a.append(first())
            b.append(second())
    return Paired(a, b)


def per_call_us(count: int, call: Callable[[], None]) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        for _ in range(count):
            call()
        return (time.perf_counter() - start) / count * 1e6

    return measure


def bench_connect(port: int, rounds: int, count: int) -> Result:
    address = ("127.0.0.1", port)

    def stdlib() -> None:
        socket.create_connection(address, timeout=10).close()

    def ours() -> None:
        inetkit.connect("127.0.0.1", port, timeout=10).close()

    pairs = alternate(rounds, per_call_us(count, stdlib), per_call_us(count, ours))
    return Result("connect+close 127.0.0.1", "us", pairs, "<= 1.15")


def _send_header(mode: bytes, size: int) -> bytes:
    return mode + str(size).rjust(16, "0").encode()


def _measure_bulk(
    open_std: Callable[[], socket.socket],
    open_ours: Callable[[], inetkit.Connection],
    rounds: int,
    size: int,
) -> tuple[Paired, Paired]:
    """Send and receive ``size`` bytes each round; return both in MB/s, send first.

    Every round uses fresh connections (set up outside the timed part): one
    connection's TCP state (window, buffer autotuning) must not bias a whole
    side of the comparison.
    """
    block = bytes(CHUNK)
    buf = bytearray(CHUNK)

    def std_send() -> float:
        with open_std() as sock:
            start = time.perf_counter()
            sock.sendall(_send_header(b"s", size))
            for _ in range(size // CHUNK):
                sock.sendall(block)
            assert sock.recv(1) == b"k"
            return size / (time.perf_counter() - start) / 1e6

    def our_send() -> float:
        with open_ours() as conn:
            start = time.perf_counter()
            conn.write(_send_header(b"s", size))
            for _ in range(size // CHUNK):
                conn.write(block)
            assert conn.read(1) == b"k"
            return size / (time.perf_counter() - start) / 1e6

    def std_recv() -> float:
        with open_std() as sock:
            start = time.perf_counter()
            sock.sendall(_send_header(b"r", size))
            left = size
            while left:
                left -= sock.recv_into(buf)
            return size / (time.perf_counter() - start) / 1e6

    def our_recv() -> float:
        with open_ours() as conn:
            start = time.perf_counter()
            conn.write(_send_header(b"r", size))
            left = size
            while left:
                left -= conn.read_into(buf)
            return size / (time.perf_counter() - start) / 1e6

    return alternate(rounds, std_send, our_send), alternate(rounds, std_recv, our_recv)


def bench_bulk(port: int, rounds: int, size: int) -> list[Result]:
    def open_std() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def open_ours() -> inetkit.Connection:
        return inetkit.connect("127.0.0.1", port, timeout=30, options=Option.NODELAY)

    send, receive = _measure_bulk(open_std, open_ours, rounds, size)
    return [
        Result("bulk send (write vs sendall)", "MB/s", send, ">= 0.95"),
        Result("bulk receive (read_into vs recv_into)", "MB/s", receive, ">= 0.95"),
    ]


def bench_tls_connect(port: int, rounds: int, count: int, ca_pem: bytes, host: str) -> list[Result]:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    creds = SecurityCredentials(ca_data=ca_pem)

    def stdlib() -> None:
        raw = socket.create_connection((host, port), timeout=10)
        with context.wrap_socket(raw, server_hostname=host):
            pass

    def ours_full() -> None:
        inetkit.connect(
            host, port, options=Option.SECURE, credentials=creds, timeout=10, session_cache=False
        ).close()

    def ours_resumed() -> None:
        inetkit.connect(host, port, options=Option.SECURE, credentials=creds, timeout=10).close()

    ours_resumed()  # prime the session cache
    full = alternate(rounds, per_call_us(count, stdlib), per_call_us(count, ours_full))
    resumed = alternate(rounds, per_call_us(count, ours_full), per_call_us(count, ours_resumed))
    return [
        Result(f"tls full handshake {host}", "us", full, "<= 1.05"),
        Result(f"tls resumed vs full {host}", "us", resumed, "<= 0.80", ("full", "resumed")),
    ]


def bench_tls_bulk(port: int, rounds: int, size: int, ca_pem: bytes) -> list[Result]:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    creds = SecurityCredentials(ca_data=ca_pem)

    def open_std() -> socket.socket:
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return context.wrap_socket(raw, server_hostname="127.0.0.1")

    def open_ours() -> inetkit.Connection:
        return inetkit.connect(
            "127.0.0.1",
            port,
            options=Option.SECURE | Option.FREETHREAD | Option.NODELAY,
            credentials=creds,
            timeout=30,
        )

    send, receive = _measure_bulk(open_std, open_ours, rounds, size)
    return [
        Result("tls bulk send (free-threaded handle)", "MB/s", send, ">= 0.95"),
        Result("tls bulk receive (free-threaded)", "MB/s", receive, ">= 0.95"),
    ]


CASES = ("connect", "bulk", "tls-connect", "tls-bulk")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--only", default=",".join(CASES), help=f"comma-separated cases: {', '.join(CASES)}")
    args = parser.parse_args(argv)
    cases = set(args.only.split(","))
    unknown = cases - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    rounds = 3 if args.quick else 31
    count = 20 if args.quick else 300
    size = (4 if args.quick else 64) * 1024 * 1024
    tls_count = 5 if args.quick else 100

    identity, ca_pem = make_certificate()
    ports_queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    ctx = multiprocessing.get_context("fork")
    server = ctx.Process(target=server_main, args=(ports_queue, identity), daemon=True)
    server.start()
    try:
        plain, sink, tls_plain, tls_sink = ports_queue.get(timeout=30)
        results: list[Result] = []
        print(f"inetkit {inetkit.__version__}, Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}")
        if "connect" in cases:
            results.append(bench_connect(plain, rounds, count))
            print(results[-1].line(), flush=True)
        if "bulk" in cases:
            for result in bench_bulk(sink, rounds, size):
                results.append(result)
                print(result.line(), flush=True)
        if "tls-connect" in cases:
            for host in ("localhost", "127.0.0.1"):
                for result in bench_tls_connect(tls_plain, rounds, tls_count, ca_pem, host):
                    results.append(result)
                    print(result.line(), flush=True)
        if "tls-bulk" in cases:
            for result in bench_tls_bulk(tls_sink, rounds, size, ca_pem):
                results.append(result)
                print(result.line(), flush=True)
    finally:
        server.kill()
        server.join(5)
        ports_queue.close()
        ports_queue.join_thread()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
