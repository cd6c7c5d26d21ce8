"""inetkit against the standard library, side by side in one run, as ratios.

Usage::

    python3 benchmarks/run.py                 # full run (about 5 minutes on 2 quiet cores)
    python3 benchmarks/run.py --quick         # every row at tiny sizes (the test suite uses it)
    python3 benchmarks/run.py --only lines,tls-connect
    python3 benchmarks/run.py --json out.json # every row as JSON too (``--json`` alone: stdout)
    python3 benchmarks/run.py --markdown      # the table of docs/performance.md, to stdout
    python3 benchmarks/run.py --update-doc docs/performance.md   # ... or into that page

Every row runs the standard-library version and the inetkit version in
alternating rounds (ABBA...) against the same loopback server (a separate
process, so the client is measured on its own core as far as the machine
allows). It prints the median of each side and the ratio: the median of the
per-round ratios, each round's inetkit figure over the standard library's
figure of the same pair of rounds (the ratio of the two medians is printed
next to it). Pairing cancels what changes from one moment to the next on a
shared machine (other jobs, CPU frequency), which on loopback moves single
rounds by far more than the differences measured. Ratios, not absolute
figures, are the figures to compare.

Rows whose figure exists once per process (memory per handle, import time)
run every sample in a fresh interpreter, the two sides alternating, and pair
sample ``i`` of one side with sample ``i`` of the other.

Only inetkit's public API is measured (``inetkit.connect``, ``Connection``
and its methods), so the rows keep working while the internals change. The
cases (``--only``) and their rows, with the targets from the project's issues
(docs/performance.md explains each):

============  ==========================================================  ========
case          row: ratio                                                  target
============  ==========================================================  ========
connect       connect+close: time / create_connection                     <= 1.10
bulk          bulk send, receive: throughput / sendall, recv_into          >= 0.95
lines         read_line: lines/s / makefile("rb").readline                 >= 0.60
lines         for line in conn: lines/s / for line in makefile("rb")       >= 1.20
tls-lines     read_line over TLS: lines/s / SSLSocket.makefile readline    >= 0.60
tls-connect   full handshake (TLS 1.3, CA file): time / wrap_socket        <= 1.05
tls-connect   resumed: time / inetkit full handshake                       <= 0.80
tls-connect   resumed: time / wrap_socket full handshake                   <= 0.90
tls-bulk      tls bulk send, receive: throughput / SSLSocket               >= 0.95
tls-idle-rss  RSS per idle handle (owner, FREETHREAD) / SSLSocket          <= 1.20
tls-threads   1,000 connects from 32 threads: time, RSS / SSLSocket        <= 1.10, 1.20
import        import inetkit: time / import socket, ssl                    <= 1.50
============  ==========================================================  ========

``tls-bulk`` also prints ``openssl speed -evp aes-128-gcm`` at 16 KiB blocks,
the cipher's own speed on one core: the physical ceiling of TLS bulk.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

ROOT = Path(__file__).resolve().parent.parent
#: This folder: the asyncio and proxy rows live in modules beside this one.
HERE = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT))

import inetkit  # noqa: E402 (after the path line above: this tree, not an installed copy)
from inetkit import Option, SecurityCredentials  # noqa: E402

T = TypeVar("T")

#: Bytes per write and per read in the bulk rows: a typical application buffer.
CHUNK = 65536
#: One line of the line rows: 78 bytes of text plus CRLF, a typical protocol line.
LINE = b"x" * 78 + b"\r\n"
#: Lines per server write: 800 lines are 64,000 bytes, about one CHUNK.
LINES_PER_BLOCK = 800
#: Threads of the many-connects row (the issue's figure).
CONNECT_THREADS = 32
#: Stack of each server thread: the server holds thousands of connections, a
#: thread each; a TLS handshake needs far less than the 8 MiB default.
SERVER_THREAD_STACK = 512 * 1024


# -- servers (run in a child process) ------------------------------------


def raise_open_files_limit() -> None:
    """Raise RLIMIT_NOFILE to the hard limit: the memory rows hold thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _accept_close_server(listener: socket.socket) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        sock.close()


def _send_lines(sock: socket.socket, count: int) -> None:
    block = LINE * LINES_PER_BLOCK
    left = count
    while left:
        n = min(left, LINES_PER_BLOCK)
        sock.sendall(block if n == LINES_PER_BLOCK else LINE * n)
        left -= n


def _sink(sock: socket.socket) -> None:
    """Serve requests of a 17-byte header: a mode byte and a 16-digit size.

    ``s``: swallow that many bytes, answer one byte. ``r``: send that many
    bytes. ``l``: send that many lines. ``L``: send that many lines and close.
    """
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
            elif mode in (b"l", b"L"):  # the client reads lines
                _send_lines(sock, size)
                if mode == b"L":
                    return
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


def server_context(identity_pem: bytes) -> ssl.SSLContext:
    """A TLS 1.3 server context holding ``identity_pem`` (certificate + key) in memory only.

    The PEM reaches OpenSSL through an anonymous in-memory file
    (``memfd_create``), so the key never touches the disk.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    fd = os.memfd_create("inetkit-benchmark-identity", os.MFD_CLOEXEC)
    try:
        os.write(fd, identity_pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return context


#: The server's listeners, in the order server_main reports their ports.
LISTENERS = ("plain", "sink", "tls", "tls_sink", "tls_hold")


def server_main(ports: multiprocessing.Queue, rsa_identity: bytes, ec_identity: bytes) -> None:  # type: ignore[type-arg]
    """The loopback server: one listener per kind of peer, a thread per connection.

    ``tls_hold`` uses an ECDSA certificate: it serves the rows that open
    thousands of connections to measure memory and concurrency, where an
    RSA signature per handshake would only make the server the bottleneck.
    """
    raise_open_files_limit()
    threading.stack_size(SERVER_THREAD_STACK)
    listeners = {}
    for name in LISTENERS:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(4096)  # the many-connects row opens 32 at once, the idle row 2,000 in a row
        listeners[name] = sock
    rsa = server_context(rsa_identity)
    ec = server_context(ec_identity)
    threading.Thread(target=_accept_close_server, args=(listeners["plain"],), daemon=True).start()
    handlers = {
        "sink": _sink,
        "tls": _tls_wrap_handler(rsa, _close_after_handshake),
        "tls_sink": _tls_wrap_handler(rsa, _sink),
        "tls_hold": _tls_wrap_handler(ec, _close_after_handshake),
    }
    for name, handler in handlers.items():
        threading.Thread(target=_serve_forever, args=(listeners[name], handler), daemon=True).start()
    ports.put({name: sock.getsockname()[1] for name, sock in listeners.items()})
    threading.Event().wait()


def make_certificate(rsa_leaf: bool = True) -> tuple[bytes, bytes]:
    """A throwaway CA and a leaf for localhost/127.0.0.1 (benchmark only).

    RSA-2048 by default, because most public servers use it and its
    signature is what a resumed handshake saves; ECDSA P-256 otherwise.
    Returns (leaf certificate + key PEM, CA PEM).
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
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if rsa_leaf:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
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


# -- statistics and rows -------------------------------------------------------


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
        # A zero baseline (an RSS growth below one page in a smoke run) gives inf, not a crash.
        return statistics.median(
            b / a if a else math.inf for a, b in zip(self.first, self.second, strict=True)
        )

    def ratio_of_medians(self) -> float:
        first = statistics.median(self.first)
        return statistics.median(self.second) / first if first else math.inf


@dataclass
class Result:
    """One row: the paired rounds, what they are in, and the target of their ratio.

    ``target`` reads ``"<= 1.10"`` (inetkit's figure over the baseline's must
    not exceed 1.10: times, memory) or ``">= 0.95"`` (must reach: rates).
    """

    case: str
    unit: str
    pairs: Paired
    target: str
    labels: tuple[str, str] = ("stdlib", "inetkit")

    def met(self) -> bool:
        op, value = self.target.split()
        ratio = self.pairs.ratio()
        return ratio <= float(value) if op == "<=" else ratio >= float(value)

    def medians(self) -> tuple[float, float]:
        return statistics.median(self.pairs.first), statistics.median(self.pairs.second)

    def line(self) -> str:
        first, second = self.medians()
        one, two = self.labels
        return (
            f"{self.case:<{NAME_WIDTH}} {one:<7} {first:>9.2f} {self.unit:<7} "
            f"{two:<7} {second:>9.2f} {self.unit:<7} "
            f"ratio {self.pairs.ratio():5.3f} (of medians {self.pairs.ratio_of_medians():5.3f})  "
            f"target {self.target}"
        )

    def record(self) -> dict[str, Any]:
        """The row for ``--json``."""
        first, second = self.medians()
        return {
            "name": self.case,
            "inetkit": second,
            "stdlib": first,
            "unit": self.unit,
            "ratio": self.pairs.ratio(),
            "ratio_of_medians": self.pairs.ratio_of_medians(),
            "target": self.target,
            "met": self.met(),
            "rounds": len(self.pairs.first),
            "labels": list(self.labels),
            # Every round's figure, baseline then inetkit, in the order taken.
            "figures": {"baseline": self.pairs.first, "inetkit": self.pairs.second},
        }


#: Width of the row-name column of the text report.
NAME_WIDTH = 40


@dataclass
class Reference:
    """A figure printed next to rows for scale, not compared: e.g. the cipher's own speed."""

    name: str
    figure: float | None
    unit: str
    note: str

    def line(self) -> str:
        if self.figure is None:
            return f"{self.name:<{NAME_WIDTH}} skipped: {self.note}"
        return f"{self.name:<{NAME_WIDTH}} {self.figure:>9.0f} {self.unit:<7} {self.note}"

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "figure": self.figure, "unit": self.unit, "note": self.note}


def alternate_many(rounds: int, measures: Sequence[Callable[[], T]]) -> list[list[T]]:
    """Run measurements in alternating rounds (ABC CBA ...); return each one's figures.

    Round ``i`` of every measurement is taken next to round ``i`` of every
    other, in forward order on even rounds and backward on odd ones, so that
    neither side always runs first (warmer caches, a fresher scheduler slot).
    """
    figures: list[list[T]] = [[] for _ in measures]
    order = list(range(len(measures)))
    for index in range(rounds):
        for which in order if index % 2 == 0 else reversed(order):
            figures[which].append(measures[which]())
    return figures


def alternate(rounds: int, first: Callable[[], float], second: Callable[[], float]) -> Paired:
    """Run two measurements in alternating rounds (ABBA...); return the pairs."""
    a, b = alternate_many(rounds, (first, second))
    return Paired(a, b)


def per_call_us(count: int, call: Callable[[], None]) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        for _ in range(count):
            call()
        return (time.perf_counter() - start) / count * 1e6

    return measure


def _header(mode: bytes, size: int) -> bytes:
    return mode + str(size).rjust(16, "0").encode()


# -- plain connect and bulk ------------------------------------------------------


def bench_connect(port: int, rounds: int, count: int) -> Result:
    address = ("127.0.0.1", port)

    def stdlib() -> None:
        socket.create_connection(address, timeout=10).close()

    def ours() -> None:
        inetkit.connect("127.0.0.1", port, timeout=10).close()

    pairs = alternate(rounds, per_call_us(count, stdlib), per_call_us(count, ours))
    return Result("connect+close 127.0.0.1", "us", pairs, "<= 1.10")


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
            sock.sendall(_header(b"s", size))
            for _ in range(size // CHUNK):
                sock.sendall(block)
            assert sock.recv(1) == b"k"
            return size / (time.perf_counter() - start) / 1e6

    def our_send() -> float:
        with open_ours() as conn:
            start = time.perf_counter()
            conn.write(_header(b"s", size))
            for _ in range(size // CHUNK):
                conn.write(block)
            assert conn.read(1) == b"k"
            return size / (time.perf_counter() - start) / 1e6

    def std_recv() -> float:
        with open_std() as sock:
            start = time.perf_counter()
            sock.sendall(_header(b"r", size))
            left = size
            while left:
                left -= sock.recv_into(buf)
            return size / (time.perf_counter() - start) / 1e6

    def our_recv() -> float:
        with open_ours() as conn:
            start = time.perf_counter()
            conn.write(_header(b"r", size))
            left = size
            while left:
                left -= conn.read_into(buf)
            return size / (time.perf_counter() - start) / 1e6

    return alternate(rounds, std_send, our_send), alternate(rounds, std_recv, our_recv)


def _open_std_plain(port: int) -> Callable[[], socket.socket]:
    def open_std() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    return open_std


def _open_ours_plain(port: int) -> Callable[[], inetkit.Connection]:
    def open_ours() -> inetkit.Connection:
        return inetkit.connect("127.0.0.1", port, timeout=30, options=Option.NODELAY)

    return open_ours


def bench_bulk(port: int, rounds: int, size: int) -> list[Result]:
    send, receive = _measure_bulk(_open_std_plain(port), _open_ours_plain(port), rounds, size)
    return [
        Result("bulk send (write vs sendall)", "MB/s", send, ">= 0.95"),
        Result("bulk receive (read_into vs recv_into)", "MB/s", receive, ">= 0.95"),
    ]


# -- lines -------------------------------------------------------------------------


def _lines_per_call(
    open_std: Callable[[], socket.socket],
    open_ours: Callable[[], inetkit.Connection],
    rounds: int,
    count: int,
) -> Paired:
    """``count`` lines per round read one call at a time; Mlines/s.

    The standard library's side is ``sock.makefile("rb").readline``, what
    a protocol client written on ``socket`` calls per line.
    """

    def std() -> float:
        with open_std() as sock, sock.makefile("rb") as lines:
            readline = lines.readline
            start = time.perf_counter()
            sock.sendall(_header(b"l", count))
            for _ in range(count):
                line = readline()
            elapsed = time.perf_counter() - start
        assert line == LINE, line
        return count / elapsed / 1e6

    def ours() -> float:
        with open_ours() as conn:
            read_line = conn.read_line
            start = time.perf_counter()
            conn.write(_header(b"l", count))
            for _ in range(count):
                line = read_line()
            elapsed = time.perf_counter() - start
        assert line == LINE, line
        return count / elapsed / 1e6

    return alternate(rounds, std, ours)


def bench_lines(port: int, rounds: int, count: int) -> list[Result]:
    open_std, open_ours = _open_std_plain(port), _open_ours_plain(port)

    def std_iter() -> float:
        with open_std() as sock, sock.makefile("rb") as lines:
            seen = 0
            start = time.perf_counter()
            sock.sendall(_header(b"L", count))
            for _line in lines:
                seen += 1
            elapsed = time.perf_counter() - start
        assert seen == count, seen
        return count / elapsed / 1e6

    def our_iter() -> float:
        with open_ours() as conn:
            seen = 0
            start = time.perf_counter()
            conn.write(_header(b"L", count))
            for _line in conn:
                seen += 1
            elapsed = time.perf_counter() - start
        assert seen == count, seen
        return count / elapsed / 1e6

    return [
        Result(
            "read_line plain (vs makefile readline)",
            "Mline/s",
            _lines_per_call(open_std, open_ours, rounds, count),
            ">= 0.60",
        ),
        Result(
            "for line in conn plain (vs makefile)",
            "Mline/s",
            alternate(rounds, std_iter, our_iter),
            ">= 1.20",
        ),
    ]


def _open_tls(
    port: int, ca_file: str
) -> tuple[Callable[[], socket.socket], Callable[[], inetkit.Connection]]:
    context = ssl.create_default_context(cafile=ca_file)
    creds = SecurityCredentials(ca_file=ca_file)

    def open_std() -> socket.socket:
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return context.wrap_socket(raw, server_hostname="127.0.0.1")

    def open_ours() -> inetkit.Connection:
        return inetkit.connect(
            "127.0.0.1", port, options=Option.SECURE | Option.NODELAY, credentials=creds, timeout=30
        )

    return open_std, open_ours


def bench_tls_lines(port: int, rounds: int, count: int, ca_file: str) -> list[Result]:
    open_std, open_ours = _open_tls(port, ca_file)
    pairs = _lines_per_call(open_std, open_ours, rounds, count)
    return [Result("read_line tls (vs SSLSocket makefile)", "Mline/s", pairs, ">= 0.60")]


# -- TLS handshakes and bulk ---------------------------------------------------------


def bench_tls_connect(port: int, rounds: int, count: int, ca_file: str, host: str) -> list[Result]:
    """TLS 1.3 handshakes with the trust anchors from a CA file, both sides reusing their context.

    Three measurements alternate (ABC CBA): the standard library's full
    handshake, inetkit's full handshake (``session_cache=False``) and
    inetkit's resumed one (its session cache on, primed once).
    """
    context = ssl.create_default_context(cafile=ca_file)
    creds = SecurityCredentials(ca_file=ca_file)

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

    with inetkit.connect(host, port, options=Option.SECURE, credentials=creds, timeout=10) as conn:
        info = conn.security_info
        assert info is not None and info.protocol == "TLSv1.3", info  # and the cache is primed
    std, full, resumed = alternate_many(
        rounds, [per_call_us(count, call) for call in (stdlib, ours_full, ours_resumed)]
    )
    results = [
        Result(f"tls full handshake {host}", "us", Paired(std, full), "<= 1.05"),
        Result(f"tls resumed vs full {host}", "us", Paired(full, resumed), "<= 0.80", ("full", "resumed")),
    ]
    if host == "localhost":
        results.append(
            Result(
                f"tls resumed vs stdlib full {host}",
                "us",
                Paired(std, resumed),
                "<= 0.90",
                ("stdlib", "resumed"),
            )
        )
    return results


def bench_tls_bulk(port: int, rounds: int, size: int, ca_file: str) -> list[Result]:
    context = ssl.create_default_context(cafile=ca_file)
    creds = SecurityCredentials(ca_file=ca_file)

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


#: 16 KiB: the largest TLS record, so the block size of TLS bulk transfer.
SPEED_BLOCK = 16384


def openssl_speed() -> Reference:
    """``openssl speed -evp aes-128-gcm`` at 16 KiB blocks, one second: the cipher alone, one core."""
    name = "  openssl speed aes-128-gcm 16 KiB"
    program = shutil.which("openssl")
    if program is None:
        return Reference(name, None, "MB/s", "openssl is not installed")
    base = [program, "speed", "-evp", "aes-128-gcm", "-seconds", "1", "-mr"]
    for command in ([*base, "-bytes", str(SPEED_BLOCK)], base):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Reference(name, None, "MB/s", f"{' '.join(command)}: {exc}")
        if done.returncode != 0:
            continue
        # Machine-readable output: "+H:16:64:...:16384" names the block sizes,
        # "+F:n:AES-128-GCM:v1:v2:..." gives bytes per second for each.
        sizes: list[str] = []
        for line in done.stdout.splitlines():
            fields = line.split(":")
            if fields[0] == "+H":
                sizes = fields[1:]
            elif fields[0] == "+F" and str(SPEED_BLOCK) in sizes:
                rate = float(fields[3 + sizes.index(str(SPEED_BLOCK))])
                return Reference(
                    name, rate / 1e6, "MB/s", "(the cipher alone on one core: TLS bulk's ceiling)"
                )
    return Reference(name, None, "MB/s", "no 16384-byte figure in the output of openssl speed")


# -- rows measured in fresh interpreters ------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set size now (``/proc/self/statm``, second field, in pages)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


#: Handles each memory child opens and keeps before its baseline, so that what
#: the first connect allocates once (the context's store, lazy imports, caches)
#: is not counted per handle.
WARMUP_HANDLES = 3


def _opener(spec: dict[str, Any]) -> Callable[[], Any]:
    """The child's way to open one TLS handle: ``SSLContext.wrap_socket`` or ``inetkit.connect``.

    Both full handshakes (inetkit's session cache off) so that both sides
    hold the same kind of session.
    """
    port, ca_file = spec["port"], spec["ca_file"]
    if spec["side"] == "stdlib":
        context = ssl.create_default_context(cafile=ca_file)

        def open_std() -> ssl.SSLSocket:
            raw = socket.create_connection(("127.0.0.1", port), timeout=60)
            return context.wrap_socket(raw, server_hostname="127.0.0.1")

        return open_std
    creds = SecurityCredentials(ca_file=ca_file)
    options = Option.SECURE | (Option.FREETHREAD if spec.get("freethread") else Option.NONE)

    def open_ours() -> inetkit.Connection:
        return inetkit.connect(
            "127.0.0.1", port, options=options, credentials=creds, timeout=60, session_cache=False
        )

    return open_ours


def child_idle(spec: dict[str, Any]) -> dict[str, float]:
    """Open ``count`` TLS handles and hold them: RSS growth per handle, KiB."""
    open_one = _opener(spec)
    warm = [open_one() for _ in range(WARMUP_HANDLES)]
    gc.collect()
    before = rss_bytes()
    handles = [open_one() for _ in range(spec["count"])]
    gc.collect()
    after = rss_bytes()
    for handle in handles + warm:
        handle.close()
    return {"rss": (after - before) / spec["count"] / 1024}


def child_threads(spec: dict[str, Any]) -> dict[str, float]:
    """``count`` TLS connects from CONNECT_THREADS threads, each holding its handles.

    Returns the wall time from the start signal until every handle is open
    (s) and the RSS growth per connection (KiB). The threads exist before the
    baseline (their stacks are not counted); each closes its own handles
    after the measurement (an inetkit handle belongs to the thread that made it).
    """
    open_one = _opener(spec)
    count, threads = spec["count"], spec["threads"]
    shares = [count // threads + (1 if index < count % threads else 0) for index in range(threads)]
    go, release = threading.Event(), threading.Event()
    opened = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def worker(share: int) -> None:
        held: list[Any] = []
        try:
            go.wait()
            try:
                held.extend(open_one() for _ in range(share))
            except BaseException as exc:
                errors.append(exc)
            opened.wait()
            release.wait()
        finally:
            for handle in held:
                handle.close()

    workers = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in workers:
        thread.start()
    warm = [open_one() for _ in range(WARMUP_HANDLES)]
    gc.collect()
    before = rss_bytes()
    start = time.perf_counter()
    go.set()
    opened.wait()
    elapsed = time.perf_counter() - start
    gc.collect()
    after = rss_bytes()
    release.set()
    for thread in workers:
        thread.join()
    for handle in warm:
        handle.close()
    if errors:
        raise errors[0]
    return {"time": elapsed, "rss": (after - before) / count / 1024}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, float]]] = {
    "idle": child_idle,
    "threads": child_threads,
}


def run_child(spec: dict[str, Any]) -> dict[str, float]:
    """Run one sample in a fresh interpreter (``run.py --child SPEC``); its figures."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {spec} failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


#: Descriptors one held handle may cost the client (its socket, a wake-up
#: descriptor pair) plus slack; the server holds one per connection.
FDS_PER_HANDLE = 4
#: Descriptors left for everything else in a process (the interpreter, pipes, listeners).
FD_RESERVE = 64


def handles_within_fd_limit(count: int) -> int:
    """``count``, or fewer when the hard RLIMIT_NOFILE cannot hold that many handles (said on stderr)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or count * FDS_PER_HANDLE + FD_RESERVE <= hard:
        return count
    fitting = max(1, (hard - FD_RESERVE) // FDS_PER_HANDLE)
    print(
        f"note: the hard open-files limit is {hard} (ulimit -Hn); holding {fitting} handles, not {count}",
        file=sys.stderr,
    )
    return fitting


def bench_idle_rss(port: int, samples: int, count: int, ca_file: str) -> list[Result]:
    """RSS per idle TLS handle: stdlib, owner-thread and free-threaded handles, one process each."""
    spec = {"kind": "idle", "port": port, "ca_file": ca_file, "count": handles_within_fd_limit(count)}

    def sample(side: str, freethread: bool = False) -> Callable[[], float]:
        return lambda: run_child({**spec, "side": side, "freethread": freethread})["rss"]

    std, owner, free = alternate_many(samples, [sample("stdlib"), sample("inetkit"), sample("inetkit", True)])
    return [
        Result("tls idle handle rss (owner thread)", "KiB", Paired(std, owner), "<= 1.20"),
        Result("tls idle handle rss (FREETHREAD)", "KiB", Paired(std, free), "<= 1.20"),
    ]


def bench_threads(port: int, samples: int, count: int, ca_file: str) -> list[Result]:
    """``count`` TLS connects from 32 threads in a fresh process per sample: time and RSS."""
    count = handles_within_fd_limit(count)
    spec = {"kind": "threads", "port": port, "ca_file": ca_file, "count": count, "threads": CONNECT_THREADS}

    def sample(side: str) -> Callable[[], dict[str, float]]:
        return lambda: run_child({**spec, "side": side})

    std, ours = alternate_many(samples, [sample("stdlib"), sample("inetkit")])
    time_pairs = Paired([s["time"] * 1e3 for s in std], [o["time"] * 1e3 for o in ours])
    rss_pairs = Paired([s["rss"] for s in std], [o["rss"] for o in ours])
    return [
        Result("tls connects, 32 threads: time", "ms", time_pairs, "<= 1.10"),
        Result("tls connects, 32 threads: rss per conn", "KiB", rss_pairs, "<= 1.20"),
    ]


def _import_env() -> dict[str, str]:
    """The environment for import timing: bytecode on (``.pyc`` read and written)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _import_code(modules: str) -> str:
    # Our tree first, then only the import itself on the clock (not the interpreter's start).
    return (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); start = time.perf_counter(); "
        f"import {modules}; print(time.perf_counter() - start)"
    )


def bench_import(samples: int) -> list[Result]:
    """``import inetkit`` against ``import socket, ssl`` (which inetkit includes), fresh interpreters.

    One warm-up import with bytecode writing on first, so that both sides
    load ``.pyc`` files, as an installed package does.
    """
    env = _import_env()
    subprocess.run(
        [sys.executable, "-c", _import_code("inetkit, socket, ssl")], env=env, check=True, capture_output=True
    )
    import importlib.util

    spec = importlib.util.find_spec("inetkit")
    assert spec is not None and spec.origin is not None
    if not Path(importlib.util.cache_from_source(spec.origin)).exists():
        print(f"warning: no bytecode next to {spec.origin}: import times include compiling", file=sys.stderr)

    def sample(modules: str) -> Callable[[], float]:
        def measure() -> float:
            done = subprocess.run(
                [sys.executable, "-c", _import_code(modules)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            return float(done.stdout) * 1e3

        return measure

    pairs = alternate(samples, sample("socket, ssl"), sample("inetkit"))
    # ``import inetkit`` defers the connect driver to first use: the second
    # row shows the sum a program that connects at once pays, next to the
    # standard library's import and first create_connection.
    listener = socket.create_server(("127.0.0.1", 0), backlog=4 * samples + 8)
    port = listener.getsockname()[1]
    threading.Thread(target=_accept_close_server, args=(listener,), daemon=True).start()
    try:
        first_std = f"socket, ssl; socket.create_connection(('127.0.0.1', {port})).close()"
        first_ours = f"inetkit; inetkit.connect('127.0.0.1', {port}).close()"
        first = alternate(samples, sample(first_std), sample(first_ours))
    finally:
        listener.close()
    return [
        Result("import inetkit vs import socket, ssl", "ms", pairs, "<= 1.50", ("socket", "inetkit")),
        Result("import + first connect", "ms", first, "<= 1.50", ("socket", "inetkit")),
    ]


# -- the run ----------------------------------------------------------------------------


CASES = (
    "connect",
    "bulk",
    "lines",
    "tls-lines",
    "tls-connect",
    "tls-bulk",
    "tls-idle-rss",
    "tls-threads",
    "import",
    "aio",
    "proxy",
)


@dataclass
class Sizes:
    """How much each row measures: ``--quick`` is a smoke run, the default a real one."""

    rounds: int  # alternating rounds of the in-process rows
    count: int  # plain connects per round
    size: int  # bytes per bulk round
    tls_rounds: int  # rounds of the handshake rows
    tls_count: int  # handshakes per round and side
    lines: int  # lines per round of the line rows
    process_samples: int  # fresh processes per side of the memory rows
    idle_handles: int  # TLS handles each memory sample holds
    connects: int  # connects of the 32-thread row
    thread_samples: int  # fresh processes per side of the 32-thread row
    import_samples: int  # fresh processes per side of the import row
    aio_size: int  # bytes per round of the asyncio TLS bulk row
    aio_concurrent: int  # TLS connects gathered at once (asyncio)
    aio_idle: int  # idle TLS connections held by one asyncio process

    @classmethod
    def pick(cls, quick: bool) -> Sizes:
        if quick:
            # Tiny, only to show every row still works; 200 idle handles
            # because fewer grow the RSS by too few pages to divide.
            return cls(
                rounds=3,
                count=20,
                size=4 << 20,
                tls_rounds=3,
                tls_count=3,
                lines=5000,
                process_samples=2,
                idle_handles=200,
                connects=64,
                thread_samples=2,
                import_samples=3,
                aio_size=4 << 20,
                aio_concurrent=64,
                aio_idle=200,
            )
        # 31 rounds: a few disturbed pairs cannot move the median. 200,000
        # lines (16 MB) take about 0.05-0.5 s a round here. 2,000 idle
        # handles and 1,000 connects are the issues' figures; 4 samples a
        # side keep the memory rows under a minute. The 32-thread row's time
        # moves by 10-20% from one process to the next (the scheduler and the
        # GIL decide which thread runs): 9 samples a side.
        return cls(
            rounds=31,
            count=300,
            size=64 << 20,
            tls_rounds=15,
            tls_count=30,
            lines=200_000,
            process_samples=4,
            idle_handles=2000,
            connects=1000,
            thread_samples=9,
            import_samples=15,
            # issue 10's figures: 256 MiB, 1,000 at once, 10,000 held
            aio_size=256 << 20,
            aio_concurrent=1000,
            aio_idle=10_000,
        )


@dataclass
class Report:
    """Everything one run measured, in the order it was printed."""

    header: dict[str, Any]
    stream: TextIO = sys.stdout
    rows: list[Result] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)

    def add(self, results: list[Result]) -> None:
        for result in results:
            self.rows.append(result)
            print(result.line(), file=self.stream, flush=True)

    def refer(self, reference: Reference) -> None:
        self.references.append(reference)
        print(reference.line(), file=self.stream, flush=True)

    def as_json(self) -> dict[str, Any]:
        return {
            **self.header,
            "rows": [row.record() for row in self.rows],
            "references": [ref.record() for ref in self.references],
        }

    def markdown(self) -> str:
        """The table of docs/performance.md, after a line naming what it was measured with."""
        lines = [
            f"Measured with inetkit {self.header['inetkit']}, Python {self.header['python']}, "
            f"{self.header['openssl']}, {self.header['cpus']} CPUs"
            f"{' (a --quick run: the figures mean nothing)' if self.header['quick'] else ''}.",
            "",
            "| row | baseline | inetkit | unit | ratio (paired median) | ratio of medians "
            "| target | met | rounds |",
            "|---|---:|---:|---|---:|---:|---|---|---:|",
        ]
        for row in self.rows:
            first, second = row.medians()
            one, two = row.labels
            lines.append(
                f"| {row.case} | {first:.2f} ({one}) | {second:.2f} ({two}) | {row.unit} "
                f"| {row.pairs.ratio():.3f} | {row.pairs.ratio_of_medians():.3f} | {row.target} "
                f"| {'yes' if row.met() else '**no**'} | {len(row.pairs.first)} |"
            )
        for ref in self.references:
            figure = "skipped" if ref.figure is None else f"{ref.figure:.0f}"
            lines.append(f"| {ref.name.strip()} (reference) | | {figure} | {ref.unit} | | | | | |")
        return "\n".join(lines) + "\n"


#: The lines between which ``--update-doc`` puts the table.
TABLE_BEGINS = "<!-- the table below is written by benchmarks/run.py --update-doc -->"
TABLE_ENDS = "<!-- the table above is written by benchmarks/run.py --update-doc -->"


def split_doc(path: str) -> tuple[str, str]:
    """The page at ``path`` before its table (through TABLE_BEGINS) and after it (from TABLE_ENDS).

    Exits with a message when the page or its markers are missing: checked
    before the run as well, so that a full run is not wasted on a typo.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
        head, rest = text.split(TABLE_BEGINS + "\n", 1)
        _, tail = rest.split(TABLE_ENDS, 1)
    except OSError as exc:
        raise SystemExit(f"--update-doc {path}: {exc.strerror}") from None
    except ValueError:
        raise SystemExit(
            f"--update-doc {path}: the page lacks the lines {TABLE_BEGINS!r} and {TABLE_ENDS!r}"
        ) from None
    return head + TABLE_BEGINS + "\n", TABLE_ENDS + tail


def update_doc(path: str, table: str) -> None:
    """Replace the table between the markers of the page at ``path`` with ``table``."""
    head, tail = split_doc(path)
    Path(path).write_text(f"{head}\n{table}\n{tail}", encoding="utf-8")


def _write(destination: str, text: str) -> None:
    if destination == "-":
        sys.stdout.write(text)
    else:
        Path(destination).write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="every row at tiny sizes (a smoke run)")
    parser.add_argument("--only", default=",".join(CASES), help=f"comma-separated cases: {', '.join(CASES)}")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write every row as JSON to PATH (- or none: stdout)",
    )
    parser.add_argument(
        "--markdown",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write the Markdown table to PATH (- or none: stdout)",
    )
    parser.add_argument(
        "--update-doc",
        metavar="PAGE",
        help="put the Markdown table into PAGE between its table markers (docs/performance.md)",
    )
    parser.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        raise_open_files_limit()
        spec = json.loads(args.child)
        print(json.dumps(CHILDREN[spec["kind"]](spec)))
        return 0
    cases = set(args.only.split(","))
    unknown = cases - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    if args.update_doc:
        split_doc(args.update_doc)
    sizes = Sizes.pick(args.quick)
    raise_open_files_limit()

    rsa_identity, rsa_ca = make_certificate()
    ec_identity, ec_ca = make_certificate(rsa_leaf=False)
    ports_queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    ctx = multiprocessing.get_context("fork")
    server = ctx.Process(target=server_main, args=(ports_queue, rsa_identity, ec_identity), daemon=True)
    server.start()
    header = {
        "inetkit": inetkit.__version__,
        "python": sys.version.split()[0],
        "openssl": ssl.OPENSSL_VERSION,
        "quick": args.quick,
        "cpus": os.cpu_count(),
    }
    # With JSON or Markdown on stdout, the line report goes to stderr.
    stream = sys.stderr if "-" in (args.json, args.markdown) else sys.stdout
    report = Report(header, stream)
    print(
        f"inetkit {header['inetkit']}, Python {header['python']}, {header['openssl']}",
        file=stream,
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="inetkit-bench-") as scratch:
            # Trust anchors only (no key): the CA-file rows read them from disk, as clients do.
            rsa_ca_file, ec_ca_file = Path(scratch, "rsa-ca.pem"), Path(scratch, "ec-ca.pem")
            rsa_ca_file.write_bytes(rsa_ca)
            ec_ca_file.write_bytes(ec_ca)
            ports = ports_queue.get(timeout=30)
            run_cases(report, cases, sizes, ports, str(rsa_ca_file), str(ec_ca_file), rsa_identity)
    finally:
        server.kill()
        server.join(5)
        ports_queue.close()
        ports_queue.join_thread()
    if args.json:
        _write(args.json, json.dumps(report.as_json(), indent=2) + "\n")
    if args.markdown:
        _write(args.markdown, report.markdown())
    if args.update_doc:
        update_doc(args.update_doc, report.markdown())
    return 0


def run_cases(
    report: Report,
    cases: set[str],
    sizes: Sizes,
    ports: dict[str, int],
    rsa_ca: str,
    ec_ca: str,
    rsa_identity: bytes,
) -> None:
    """Run the chosen cases in the documented order, printing each row as it completes."""
    if "connect" in cases:
        report.add([bench_connect(ports["plain"], sizes.rounds, sizes.count)])
    if "bulk" in cases:
        report.add(bench_bulk(ports["sink"], sizes.rounds, sizes.size))
    if "lines" in cases:
        report.add(bench_lines(ports["sink"], sizes.rounds, sizes.lines))
    if "tls-lines" in cases:
        report.add(bench_tls_lines(ports["tls_sink"], sizes.rounds, sizes.lines, rsa_ca))
    if "tls-connect" in cases:
        for host in ("localhost", "127.0.0.1"):
            report.add(bench_tls_connect(ports["tls"], sizes.tls_rounds, sizes.tls_count, rsa_ca, host))
    if "tls-bulk" in cases:
        report.add(bench_tls_bulk(ports["tls_sink"], sizes.rounds, sizes.size, rsa_ca))
        report.refer(openssl_speed())
    if "tls-idle-rss" in cases:
        report.add(bench_idle_rss(ports["tls_hold"], sizes.process_samples, sizes.idle_handles, ec_ca))
    if "tls-threads" in cases:
        report.add(bench_threads(ports["tls_hold"], sizes.thread_samples, sizes.connects, ec_ca))
    if "import" in cases:
        report.add(bench_import(sizes.import_samples))
    # The proxy rows before the asyncio ones: the 10,000 idle connections of
    # the last asyncio row leave the shared server tearing down as many threads.
    if "proxy" in cases:
        run_proxy_cases(report, sizes, ports, rsa_ca, rsa_identity)
    if "aio" in cases:
        run_aio_cases(report, sizes, ports, rsa_ca, ec_ca)


def run_aio_cases(report: Report, sizes: Sizes, ports: dict[str, int], rsa_ca: str, ec_ca: str) -> None:
    """``inetkit.aio`` against asyncio's streams on the default loop (``benchmarks/aio_*.py``).

    Those modules also run on their own, with ``--loop uvloop`` (aio_connect)
    and on both loops (aio_io).
    """
    sys.path.insert(0, str(HERE))
    import aio_connect
    import aio_io

    report.add([aio_connect.bench_aio_connect(ports["plain"], sizes.rounds, sizes.count)])
    report.add([aio_connect.bench_aio_tls_connect(ports["tls"], sizes.tls_rounds, sizes.tls_count, rsa_ca)])
    report.add(aio_io.bench_aio_lines(ports["sink"], sizes.rounds, sizes.lines))
    # 11 rounds of 256 MiB: a round takes about a second on the asyncio side.
    report.add(aio_io.bench_aio_tls_bulk(ports["tls_sink"], min(sizes.rounds, 11), sizes.aio_size, rsa_ca))
    report.add(
        aio_connect.bench_aio_concurrent(
            ports["tls_hold"], sizes.process_samples, sizes.aio_concurrent, ec_ca
        )
    )
    report.refer(aio_connect.bench_aio_idle(ports["tls_sink"], sizes.aio_idle, rsa_ca))


def run_proxy_cases(
    report: Report, sizes: Sizes, ports: dict[str, int], ca_file: str, identity: bytes
) -> None:
    """Through a local CONNECT proxy against the same connect direct (``benchmarks/proxy.py``).

    The proxy's ``https://`` listener serves the target's certificate (one CA for both hops).
    """
    sys.path.insert(0, str(HERE))
    import proxy

    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    process = ctx.Process(target=proxy.proxy_main, args=(queue, identity), daemon=True)
    process.start()
    try:
        proxies = queue.get(timeout=30)
        report.add(proxy.bench_connect(ports["plain"], proxies["http"], sizes))
        report.add(proxy.bench_tls_bulk(ports["tls_sink"], proxies, ca_file, sizes))
    finally:
        process.kill()
        process.join(5)
        queue.close()


if __name__ == "__main__":
    raise SystemExit(main())
