"""The ``inetkit`` command: ``demo``, ``probe``, ``connect`` and ``--version``.

``demo`` starts loopback servers inside this process (TCP and UDP echo, TLS
echo, an SMTP responder that offers STARTTLS) and walks through implicit
TLS, explicit TLS, UDP, an `attach_thread` hand-off and a free-threaded
transfer, printing what each step negotiated. It sends nothing beyond
loopback.

``probe (URL | HOST PORT)`` connects once and reports how it went: every
resolved address, every attempt with its timing and outcome, the TLS
parameters and the server's certificate, as text or (``--json``) as one
JSON object whose keys are fixed (see docs/cli.md).

``connect (URL | HOST PORT)`` is an interactive client in the manner of
``ncat`` and ``openssl s_client``. Theory of operation: the handle is made
with `Option.FREETHREAD`; one thread copies standard input to the
connection while another copies the connection to standard output, and the
main thread waits for the outcome. Threads rather than a selector loop,
because a TLS handle may hold decrypted bytes that no selector sees, and
because a blocking write to a peer that does not read (an echo server fed
a large paste) must not stop us from reading what it sends back. Standard
input is read with `os.read` on its descriptor: a daemon thread blocked
there holds no interpreter-level lock, so the process can exit as soon as
the peer closes even while the user has typed nothing.

The command uses inetkit's public API only (``inetkit.connect``,
``connect_url``, ``Connection.trace``, ``security_info``, ``ErrorCode``).

Exit codes: 0 success, 1 the connection (or a demo check) failed, 2 the
command line or an argument was invalid.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, TextIO

from . import (
    Attempt,
    ConnectTrace,
    ErrorCode,
    InetError,
    InvalidArgumentError,
    Option,
    OwnershipError,
    Protocol,
    SecurityCredentials,
    __version__,
)
from ._credentials import DEFAULT_TRUST, TRUST_CHOICES

if TYPE_CHECKING:
    from . import Connection, Resolver, SecurityInfo
    from ._demo_server import DemoServer

__all__ = ["main", "probe_report", "run_connect", "run_demo"]

logger = logging.getLogger("inetkit")

#: Exit status: the connection (or a demo check) failed.
EXIT_FAILURE = 1
#: Exit status: the command line or an argument was invalid (argparse's own code).
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
#: Seconds allowed for each demo connect and each demo I/O call: loopback
#: answers in microseconds, so this only bounds a broken run.
DEMO_TIMEOUT = 5.0
#: The demo's exchanges are small request/response writes: NODELAY sends each
#: at once instead of letting Nagle's algorithm hold it for an ACK.
DEMO_OPTIONS = Option.NODELAY
#: Lines the free-threaded demo step sends while reading the echo back:
#: enough that both directions are busy at once, small enough to take milliseconds.
DEMO_TRANSFER_LINES = 2000
#: Default ``--timeout``: InetConnect's customary connect timeout.
CONNECT_TIMEOUT = 20.0
#: Indentation of detail lines under a step's title.
INDENT = "   "
#: Bytes ``connect`` reads from standard input or the connection at a time.
CHUNK = 65536
#: ``connect --udp``: after the end of input, exit once no datagram has come
#: for this many seconds (UDP has no end of stream to wait for).
UDP_QUIET = 0.5
#: How often ``connect --udp`` checks for that quiet spell (a tenth of it).
UDP_QUIET_CHECK = UDP_QUIET / 10
#: Seconds ``connect`` gives its closing TLS close_notify: the handle has no
#: I/O timeout while interactive, and ending must not wait on a stuck peer.
CLOSE_TIMEOUT = 5.0
#: How long a failed half-close at the end of the input waits for the reader:
#: a peer that reset the connection first makes the half-close fail with
#: NOT_CONNECTED, and the reader's CONNECTION_RESET says what happened.
SHUTDOWN_GRACE = 1.0
#: Seconds in a day, for a certificate's days left.
SECONDS_PER_DAY = 86400

_SGR_RESET = "\x1b[0m"
_SGR = {"bold": "1", "green": "32", "red": "31", "yellow": "33", "dim": "2"}


class UsageError(Exception):
    """The command line asks for something that cannot work (exit 2)."""


# -- command line ---------------------------------------------------------------


def _port(text: str) -> int | str:
    """A port number, or a service name such as ``https`` (checked by connect)."""
    return int(text) if text.isascii() and text.isdigit() else text


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def _connect_flags() -> argparse.ArgumentParser:
    """The flags ``probe`` and ``connect`` share: how to connect."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("target", metavar="URL|HOST", help="a URL (https://host:port/), or a host name")
    flags.add_argument(
        "port", metavar="PORT", nargs="?", type=_port, help="port number or service name (with HOST)"
    )
    group = flags.add_argument_group("connect options")
    group.add_argument("--secure", action="store_true", help="implicit TLS (Option.SECURE)")
    group.add_argument("--starttls", metavar="NAME", help="run the STARTTLS dialog NAME (smtp, ...)")
    group.add_argument("--udp", action="store_true", help="UDP instead of TCP")
    group.add_argument(
        "--prefer-ipv6", action="store_true", help="try IPv6 addresses first (Option.PREFER_IPV6)"
    )
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=CONNECT_TIMEOUT,
        metavar="S",
        help=f"one deadline in seconds for the whole connect (default {CONNECT_TIMEOUT:g})",
    )
    group.add_argument("--ca-file", metavar="PEM", help="trust the CA certificates in this file")
    group.add_argument(
        "--trust",
        choices=TRUST_CHOICES,
        metavar="certifi|system|both",
        help="trust anchors without --ca-file: the certifi bundle (default), the system store "
        "(OpenSSL's default paths; SSL_CERT_FILE, SSL_CERT_DIR), or both",
    )
    group.add_argument(
        "--trusted-site",
        action="store_true",
        help="do not verify the server certificate (Option.TRUSTEDSITE)",
    )
    group.add_argument(
        "--secure-fallback",
        action="store_true",
        help="allow TLS 1.0/1.1 and weak suites (Option.SECURE_FALLBACK)",
    )
    group.add_argument("--cert", metavar="STORE", help="client certificate: a PEM or PKCS#12 file")
    group.add_argument("--cert-name", metavar="N", help="which certificate of STORE (name or thumbprint)")
    group.add_argument(
        "--password-env", metavar="VAR", help="read STORE's password from environment variable VAR"
    )
    group.add_argument("--alpn", metavar="P,...", help="offer these ALPN protocols (h2,http/1.1)")
    group.add_argument(
        "--proxy",
        metavar="URL",
        help="connect through a proxy: (http|https|socks5|socks5h|socks4a)://[user:pass@]host:port",
    )
    return flags


def _build_parser() -> argparse.ArgumentParser:
    # -v is accepted before and after the subcommand; SUPPRESS keeps the
    # subcommand's default from overwriting a -v given before it.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log inetkit's debug messages to stderr",
    )
    parser = argparse.ArgumentParser(
        prog="inetkit",
        description="Client network connections in one call: try inetkit on loopback, probe a server, "
        "or talk to one.",
        parents=[verbose],
    )
    parser.add_argument("--version", action="version", version=f"inetkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        parents=[verbose],
        help="run servers on loopback and connect to them (TLS, STARTTLS, UDP, threads)",
        description=(
            "Start echo, TLS and SMTP servers on loopback in this process, connect to them with "
            "inetkit and report what each step negotiated. Sends nothing beyond loopback."
        ),
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="keep the servers running (until Ctrl-C) and print probe/connect commands to try on them",
    )
    demo.add_argument(
        "--for",
        dest="serve_for",
        type=float,
        metavar="S",
        help="with --serve: stop after S seconds",
    )
    connect_flags = _connect_flags()
    probe = commands.add_parser(
        "probe",
        parents=[verbose, connect_flags],
        help="connect once and report resolution, attempts, TLS and certificates",
        description="Connect to URL or HOST PORT and report how it went; exit 1 when the connect fails.",
    )
    probe.add_argument("--json", action="store_true", help="print one JSON object (keys in docs/cli.md)")
    talk = commands.add_parser(
        "connect",
        parents=[verbose, connect_flags],
        help="interactive client: stdin to the connection, the connection to stdout",
        description=(
            "Connect to URL or HOST PORT; send standard input (each line ends with CRLF), print what "
            "arrives. End of input half-closes; exit 0 when the peer closes."
        ),
    )
    talk.add_argument("--raw", action="store_true", help="send input bytes as they are (no CRLF)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``inetkit`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    with _debug_logging(getattr(args, "verbose", False)):
        try:
            if args.command == "demo":
                if args.serve:
                    return serve_demo(sys.stdout, args.serve_for)
                if args.serve_for is not None:
                    parser.error("--for goes with --serve")
                return run_demo(sys.stdout, sys.stderr)
            if args.command == "probe":
                return run_probe(args, sys.stdout, sys.stderr)
            return run_connect(args, sys.stderr)
        except KeyboardInterrupt:
            # Ctrl-C during a connect: every socket it opened is closed already.
            return EXIT_INTERRUPTED


@contextmanager
def _debug_logging(enabled: bool) -> Iterator[None]:
    """With ``-v``: the "inetkit" logger's debug messages go to stderr for this run."""
    if not enabled:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("inetkit %(levelname)s: %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


# -- what to connect to, and how ---------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What the command line names: a URL, or a host and a port."""

    url: str | None
    host: str
    port: int | str | None

    @classmethod
    def from_args(cls, target: str, port: int | str | None) -> Target:
        """Read ``URL`` or ``HOST PORT``; `UsageError` when neither form is complete.

        For a URL, ``host`` and ``port`` are only what reports show when the
        connect fails before it starts; `inetkit.connect_url` does the real parse.
        """
        if "://" in target:
            if port is not None:
                raise UsageError(f"give a URL or HOST PORT, not both ({target!r} and {port!r})")
            parts = urllib.parse.urlsplit(target)
            try:
                url_port: int | str | None = parts.port
            except ValueError:
                url_port = None  # connect_url names the bad port
            if url_port is None and parts.scheme:
                url_port = parts.scheme
            return cls(target, parts.hostname or target, url_port)
        if port is None:
            raise UsageError(f"{target!r} needs a PORT (or give a URL such as https://{target}/)")
        return cls(None, target, port)

    def numeric_port(self) -> int | None:
        """The port as a number, for reports about a connect that never started."""
        if isinstance(self.port, int):
            return self.port
        if self.port is None:
            return None
        try:
            return socket.getservbyname(self.port, "tcp")
        except OSError:
            return None


@dataclass(frozen=True)
class Plan:
    """The connect call the flags describe."""

    target: Target
    protocol: Protocol
    options: Option
    credentials: SecurityCredentials | None
    timeout: float
    starttls: str | None
    proxy: str | None = None


def plan_from_args(args: argparse.Namespace, *, extra: Option = Option.NONE) -> Plan:
    """Turn the shared connect flags into a `Plan`; `UsageError` for what cannot work."""
    target = Target.from_args(args.target, args.port)
    options = extra
    for enabled, flag in (
        (args.secure, Option.SECURE),
        (args.trusted_site, Option.TRUSTEDSITE),
        (args.secure_fallback, Option.SECURE_FALLBACK),
        (args.prefer_ipv6, Option.PREFER_IPV6),
    ):
        if enabled:
            options |= flag
    protocol = Protocol.UDP if args.udp else Protocol.TCP
    if target.url is not None and protocol is Protocol.UDP:
        raise UsageError("--udp takes HOST PORT, not a URL")
    if (args.cert_name is not None or args.password_env is not None) and args.cert is None:
        raise UsageError("--cert-name and --password-env need --cert STORE")
    password: str | None = None
    if args.password_env is not None:
        password = os.environ.get(args.password_env)
        if password is None:
            raise UsageError(f"--password-env: the environment variable {args.password_env} is not set")
    alpn: list[str] | None = None
    if args.alpn is not None:
        alpn = [name.strip() for name in args.alpn.split(",") if name.strip()]
        if not alpn:
            raise UsageError("--alpn needs at least one protocol name, such as h2,http/1.1")
    credentials = None
    if any(value is not None for value in (args.ca_file, args.cert, alpn, args.trust)):
        credentials = SecurityCredentials(
            cert_store=args.cert,
            cert_name=args.cert_name,
            password=password,
            ca_file=args.ca_file,
            alpn_protocols=alpn,
            trust=args.trust or DEFAULT_TRUST,
        )
    return Plan(target, protocol, options, credentials, args.timeout, args.starttls, args.proxy)


def open_connection(plan: Plan) -> Connection:
    """Make the connection a `Plan` describes (`inetkit.connect` or `inetkit.connect_url`)."""
    from . import connect, connect_url

    target = plan.target
    if target.url is not None:
        return connect_url(
            target.url, plan.timeout, plan.options, plan.credentials, starttls=plan.starttls, proxy=plan.proxy
        )
    assert target.port is not None
    return connect(
        target.host,
        target.port,
        plan.protocol,
        plan.timeout,
        plan.options,
        plan.credentials,
        starttls=plan.starttls,
        proxy=plan.proxy,
    )


# -- shared formatting ------------------------------------------------------------


class Paint:
    """ANSI colours when writing to a terminal (never with ``--json``; ``NO_COLOR`` wins)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def for_stream(cls, stream: TextIO) -> Paint:
        # https://no-color.org: a set, non-empty NO_COLOR turns colour off.
        if os.environ.get("NO_COLOR"):
            return cls(False)
        try:
            return cls(stream.isatty())
        except (AttributeError, ValueError):  # a closed or unusual stream
            return cls(False)

    def __call__(self, style: str, text: str) -> str:
        if not self.enabled:
            return text
        return f"\x1b[{_SGR[style]}m{text}{_SGR_RESET}"


_PLAIN = Paint(False)


def _indent(text: str, prefix: str = INDENT) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _where(address: tuple[str, int]) -> str:
    ip, port = address
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def days_left(not_after: datetime.datetime, now: datetime.datetime | None = None) -> int:
    """Whole days from ``now`` until ``not_after``, rounded down (negative once expired)."""
    now = now or datetime.datetime.now(datetime.UTC)
    return math.floor((not_after - now).total_seconds() / SECONDS_PER_DAY)


def attempt_outcome(attempt: Attempt) -> str:
    """An attempt's outcome in the probe's words: ``connected``, ``lost`` or an error code name."""
    if attempt.outcome == "connected":
        return "connected"
    if attempt.outcome == "abandoned":
        return "lost"
    error = attempt.error
    if isinstance(error, InetError):
        return error.code.name
    if attempt.outcome == "timed out":
        return ErrorCode.TIMED_OUT.name
    return attempt.outcome.upper().replace(" ", "_")


def format_trace(trace: ConnectTrace, paint: Paint = _PLAIN) -> list[str]:
    """The connect trace, one phase per line (the attempts' outcomes coloured on a terminal)."""

    def attempt_line(attempt: Attempt) -> str:
        outcome = attempt_outcome(attempt)
        if outcome == "connected":
            said = paint("green", "connected")
        elif outcome == "lost":
            said = paint("yellow", "lost (another attempt connected first)")
        else:
            said = paint("red", f"failed ({outcome})")
        took = "" if attempt.duration is None else f" after {_ms(attempt.duration)}"
        detail = f": {attempt.error}" if attempt.error is not None else ""
        where = _where((attempt.address, attempt.port))
        return f"{where} started at +{_ms(attempt.start)}, {said}{took}{detail}"

    lines = trace.lines(attempt_line)
    lines[0] = paint("bold", lines[0])
    return lines


def format_security(info: SecurityInfo, paint: Paint = _PLAIN) -> list[str]:
    """The TLS details of a connection, one fact per line."""
    alpn = info.alpn_protocol or "none"
    lines = [
        paint("bold", f"{info.protocol}, {info.cipher} ({info.cipher_bits} bits)")
        + f", ALPN {alpn}, session reused: {'yes' if info.session_reused else 'no'}"
    ]
    cert = info.peer_certificate
    if cert is not None:
        left = days_left(cert.not_after)
        expiry = f"{left} days left" if left >= 0 else "EXPIRED"
        lines.append(f"server certificate: {cert.subject}")
        lines.append(f"  issued by: {cert.issuer}")
        if cert.subject_alt_names:
            lines.append(f"  names: {', '.join(cert.subject_alt_names)}")
        lines.append(
            f"  valid: {cert.not_before:%Y-%m-%d %H:%M} to {cert.not_after:%Y-%m-%d %H:%M} UTC "
            f"({paint('green' if left >= 0 else 'red', expiry)})"
        )
        lines.append(f"  sha256: {cert.fingerprint_sha256}")
    return lines


# -- probe ------------------------------------------------------------------------


def probe_report(
    target: Target,
    conn: Connection | None = None,
    error: InetError | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, object]:
    """The ``probe --json`` object for a connect that made ``conn`` or raised ``error``.

    Keys (fixed): ``host, port, ok, addresses, attempts, tls, proxy, error``; see
    docs/cli.md. Through a proxy, ``addresses`` and ``attempts`` are the proxy's.
    """
    trace = conn.trace if conn is not None else (error.trace if error is not None else None)
    if trace is not None:
        host: str = trace.host
        port: int | None = trace.port
    else:
        host, port = target.host, target.numeric_port()
    addresses = list(trace.resolution.addresses) if trace is not None and trace.resolution else []
    attempts = [
        {
            "address": attempt.address,
            "start_ms": round(attempt.start * 1000, 3),
            "duration_ms": None if attempt.duration is None else round(attempt.duration * 1000, 3),
            "outcome": attempt_outcome(attempt),
        }
        for attempt in (trace.attempts if trace is not None else [])
    ]
    tls: dict[str, object] | None = None
    info = conn.security_info if conn is not None else None
    if info is not None:
        certificates = []
        if info.peer_certificate is not None:
            cert = info.peer_certificate
            certificates.append(
                {
                    "subject": cert.subject,
                    "issuer": cert.issuer,
                    "names": list(cert.subject_alt_names),
                    "not_after": cert.not_after.isoformat(),
                    "days_left": days_left(cert.not_after, now),
                    "sha256": cert.fingerprint_sha256,
                }
            )
        tls = {
            "protocol": info.protocol,
            "cipher": info.cipher,
            "alpn": info.alpn_protocol,
            "session_reused": info.session_reused,
            "certificates": certificates,
        }
    phase = trace.proxy if trace is not None else None
    proxy: dict[str, object] | None = None
    if phase is not None:
        proxy = {
            "endpoint": phase.endpoint,
            "tls_handshake_ms": None if phase.tls_handshake is None else round(phase.tls_handshake * 1000, 3),
            "dialog_ms": None if phase.dialog is None else round(phase.dialog * 1000, 3),
            "target_address": phase.target_address,
        }
    return {
        "host": host,
        "port": port,
        "ok": conn is not None,
        "addresses": addresses,
        "attempts": attempts,
        "tls": tls,
        "proxy": proxy,
        "error": None if error is None else {"code": error.code.name, "message": error.message},
    }


def _usage(command: str, err: TextIO, message: str) -> int:
    print(f"inetkit {command}: {message}", file=err)
    return EXIT_USAGE


def run_probe(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``inetkit probe``: connect once, report on ``out``, errors on ``err``; return the exit code."""
    try:
        plan = plan_from_args(args)
    except UsageError as exc:
        return _usage("probe", err, str(exc))
    except InvalidArgumentError as exc:
        return _usage("probe", err, f"{exc.code.name}: {exc.message}")
    paint = _PLAIN if args.json else Paint.for_stream(out)
    try:
        conn = open_connection(plan)
    except InetError as exc:
        status = EXIT_USAGE if isinstance(exc, InvalidArgumentError) else EXIT_FAILURE
        if args.json:
            print(json.dumps(probe_report(plan.target, error=exc), ensure_ascii=False), file=out)
        else:
            print(f"inetkit probe: {exc.code.name}: {exc.message}", file=err)
            if exc.trace is not None:  # each attempt's line carries its own error
                print("\n".join(format_trace(exc.trace, paint)), file=out)
        return status
    with conn:
        if args.json:
            print(json.dumps(probe_report(plan.target, conn), ensure_ascii=False), file=out)
            return 0
        lines = format_trace(conn.trace, paint)
        kind = "UDP" if conn.protocol is Protocol.UDP else "TCP"
        lines.append(f"{kind} {_where(conn.local_address)} -> {_where(conn.remote_address)}")
        if conn.security_info is not None:
            lines.extend(format_security(conn.security_info, paint))
        print("\n".join(lines), file=out)
    return 0


# -- connect ----------------------------------------------------------------------


class _Session:
    """The state the three threads of ``inetkit connect`` share."""

    def __init__(self, conn: Connection, out: BinaryIO, raw: bool) -> None:
        self.conn = conn
        self.out = out
        self.raw = raw
        self.done = threading.Event()
        self.input_ended = threading.Event()
        self.closing = False
        self.output_closed = False
        self.error: InetError | OSError | None = None
        self.last_arrival = time.monotonic()
        self.input_end = 0.0
        self._lock = threading.Lock()

    def fail(self, exc: InetError | OSError) -> None:
        with self._lock:
            if self.error is None and not self.closing:
                self.error = exc
        self.done.set()

    # -- the connection to standard output -------------------------------

    def receive(self) -> None:
        udp = self.conn.protocol is Protocol.UDP
        try:
            while True:
                data = self.conn.read(CHUNK)
                self.last_arrival = time.monotonic()
                if not data and not udp:
                    break  # the peer closed its side
                self.out.write(data)
                self.out.flush()
        except BrokenPipeError:
            # Whoever reads our output stopped (`| head -1`): nothing left to do.
            self.output_closed = True
        except (InetError, OSError) as exc:
            self.fail(exc)
        finally:
            self.done.set()

    # -- standard input to the connection ---------------------------------

    def send(self, stdin: int) -> None:
        pending = b""
        try:
            while True:
                chunk = os.read(stdin, CHUNK)
                if not chunk:
                    break
                if self.raw:
                    self._write(chunk)
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._write(line.removesuffix(b"\r") + b"\r\n")
            if pending:
                self._write(pending)  # a last line that was never ended goes as it is
            self.input_end = time.monotonic()
            self.input_ended.set()
            if self.conn.protocol is Protocol.TCP:
                self._half_close()
        except (InetError, OSError) as exc:
            self.fail(exc)

    def _half_close(self) -> None:
        try:
            self.conn.shutdown()
        except (InetError, OSError) as exc:
            # Reported only when the reader has no error of its own (see SHUTDOWN_GRACE).
            self.done.wait(SHUTDOWN_GRACE)
            self.fail(exc)

    def _write(self, data: bytes) -> None:
        # On UDP each write is one datagram: one per line (or per read with --raw).
        self.conn.write(data)

    def quiet(self) -> bool:
        """UDP: the input has ended and nothing arrived for `UDP_QUIET` seconds since."""
        if not self.input_ended.is_set():
            return False
        return time.monotonic() - max(self.last_arrival, self.input_end) > UDP_QUIET

    def end(self) -> None:
        """Close the handle; a writer blocked on it wakes (free-threaded handle) and is ignored."""
        self.closing = True
        self.conn.timeout = CLOSE_TIMEOUT
        self.conn.close()


def run_connect(
    args: argparse.Namespace, err: TextIO, stdin: int | None = None, out: BinaryIO | None = None
) -> int:
    """Run ``inetkit connect``: ``stdin`` (a descriptor) to the connection, the connection to ``out``.

    ``stdin`` and ``out`` default to the process's standard input descriptor
    and standard output (bytes), looked up once the connection is made.
    """
    try:
        plan = plan_from_args(args, extra=Option.FREETHREAD)
    except UsageError as exc:
        return _usage("connect", err, str(exc))
    except InvalidArgumentError as exc:
        return _usage("connect", err, f"{exc.code.name}: {exc.message}")
    try:
        conn = open_connection(plan)
    except InetError as exc:
        print(f"inetkit connect: {exc.code.name}: {exc.message}", file=err)
        return EXIT_USAGE if isinstance(exc, InvalidArgumentError) else EXIT_FAILURE
    # Interactive: a quiet peer or a slow typist is no error.
    conn.timeout = None
    info = conn.security_info
    kind = "UDP" if conn.protocol is Protocol.UDP else "TCP"
    security = f", {info.protocol} {info.cipher}" if info is not None else ", no TLS"
    print(
        f"inetkit connect: {kind} {_where(conn.local_address)} -> {_where(conn.remote_address)} "
        f"({conn.host_name}){security}",
        file=err,
        flush=True,
    )
    if stdin is None:
        stdin = sys.stdin.fileno()
    session = _Session(conn, sys.stdout.buffer if out is None else out, args.raw)
    reader = threading.Thread(target=session.receive, name="inetkit-connect-reader")
    writer = threading.Thread(target=session.send, args=(stdin,), name="inetkit-connect-writer")
    writer.daemon = True  # may stay blocked reading a terminal after the peer closed
    reader.start()
    writer.start()
    try:
        if conn.protocol is Protocol.UDP:
            # No end of stream: after the input ends, wait for a quiet spell.
            while not session.done.is_set() and not session.quiet():
                session.done.wait(UDP_QUIET_CHECK)
        else:
            session.done.wait()
    except KeyboardInterrupt:
        session.end()
        reader.join()
        return EXIT_INTERRUPTED
    session.end()
    reader.join()
    if session.output_closed and out is None:
        # Python flushes sys.stdout at exit; pointed at /dev/null that cannot
        # fail again with "Exception ignored ... BrokenPipeError".
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    error = session.error
    if error is None:
        return 0
    name = error.code.name if isinstance(error, InetError) else type(error).__name__
    message = error.message if isinstance(error, InetError) else str(error)
    print(f"inetkit connect: {name}: {message}", file=err)
    return EXIT_FAILURE


# -- demo -------------------------------------------------------------------------


class DemoFailed(Exception):
    """A demo check did not hold (the message says which)."""


def _line_round_trip(conn: Connection, text: str) -> float:
    """Send ``text`` as a line, read the echo, check it; return the seconds taken."""
    started = time.monotonic()
    conn.write_line(text)
    echoed = conn.read_line()
    took = time.monotonic() - started
    if echoed.rstrip(b"\r\n").decode("utf-8", errors="replace") != text:
        raise DemoFailed(f"sent the line {text!r} but {echoed!r} came back")
    return took


def serve_demo(out: TextIO, seconds: float | None) -> int:
    """Run ``inetkit demo --serve``: the demo's servers until Ctrl-C (or ``seconds``).

    The throwaway CA goes to a file in a new temporary folder (removed at
    the end), so ``inetkit probe`` and ``inetkit connect`` in another
    terminal can verify the servers' certificate.
    """
    import tempfile

    from ._demo_server import DemoServer

    if seconds is not None and not (seconds > 0 and seconds < float("inf")):
        print("inetkit demo: --for takes a number of seconds > 0", file=sys.stderr)
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="inetkit-demo-") as folder, DemoServer() as server:
        assert server.certificates is not None  # made when TLS is on, as here
        ca_file = f"{folder}/ca.pem"
        with open(ca_file, "wb") as file:
            file.write(server.certificates.ca_pem)
        trust = f"--ca-file {ca_file}"
        lines = [
            f"inetkit {__version__} demo servers on {' and '.join(server.addresses)}; "
            f"they trust nothing but the CA in {ca_file}",
            f"{INDENT}TCP line echo {server.tcp_port}, UDP echo {server.udp_port}, "
            f"TLS line echo {server.tls_port}, SMTP with STARTTLS {server.smtp_port}",
            "Try, in another terminal:",
            f"{INDENT}inetkit probe localhost {server.tls_port} --secure {trust}",
            f"{INDENT}inetkit probe localhost {server.smtp_port} --starttls smtp {trust} --json",
            f"{INDENT}inetkit connect localhost {server.tls_port} --secure {trust}",
            f"{INDENT}inetkit connect 127.0.0.1 {server.udp_port} --udp",
            "Serving until Ctrl-C" + (f" or for {seconds:g} s." if seconds is not None else "."),
        ]
        print("\n".join(lines), file=out, flush=True)
        stopped = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            import signal

            # SIGTERM stops the servers as Ctrl-C does: the CA's folder is removed.
            previous = signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
        try:
            # The servers run in their own threads; this one only waits.
            stopped.wait(seconds)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    return 0


def run_demo(out: TextIO, err: TextIO) -> int:
    """Run ``inetkit demo``: write the report to ``out``; return the exit code."""
    from ._demo_server import DemoServer

    started = time.monotonic()
    step = "starting the loopback servers"
    try:
        with DemoServer() as server:
            print(
                f"inetkit {__version__} demo: servers on {' and '.join(server.addresses)} "
                f"(TCP echo {server.tcp_port}, UDP echo {server.udp_port}, TLS echo {server.tls_port}, "
                f"SMTP {server.smtp_port})",
                file=out,
            )
            print(f"{INDENT}(TLS clients trust only the demo CA made for this run)", file=out)
            steps: list[tuple[str, Callable[[DemoServer, TextIO], None]]] = [
                ("Implicit TLS: connect, round trip, resumption", _demo_tls),
                ("Explicit TLS: an SMTP STARTTLS dialog", _demo_starttls),
                ("UDP datagram round trip", _demo_udp),
                ("attach_thread(): handing a connection to a worker thread", _demo_attach),
                ("Free-threaded: one thread writes while another reads", _demo_free_thread),
            ]
            for number, (title, run) in enumerate(steps, 1):
                step = title
                print(f"\n{number}. {title}", file=out)
                run(server, out)
    except DemoFailed as exc:
        print(f"inetkit demo failed during {step}: {exc}", file=err)
        return EXIT_FAILURE
    except InetError as exc:
        print(f"inetkit demo failed during {step}: {exc.code.name}: {exc}", file=err)
        if exc.trace is not None:
            print(_indent("\n".join(format_trace(exc.trace))), file=err)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"inetkit demo failed during {step}: {exc}", file=err)
        return EXIT_FAILURE
    print(f"\nall checks passed in {_ms(time.monotonic() - started)}", file=out)
    return 0


def _demo_resolver(server: DemoServer) -> Resolver:
    """A resolver that knows ``localhost`` as exactly the addresses the servers listen on."""
    from . import Resolver

    return Resolver(system_hosts=False, dns=False, overrides={"localhost": list(server.addresses)})


def _port_of(port: int | None) -> int:
    if port is None:
        raise DemoFailed("the demo server was started without TLS")
    return port


def _demo_credentials(server: DemoServer) -> SecurityCredentials:
    """Trust only the CA the demo made for this run."""
    if server.certificates is None:
        raise DemoFailed("the demo server was started without TLS")
    return SecurityCredentials(ca_data=server.certificates.ca_pem)


def _demo_connect(
    port: int | None,
    options: Option,
    credentials: SecurityCredentials,
    resolver: Resolver,
    starttls: str | None = None,
) -> Connection:
    """Connect to one of the demo's TLS servers by the name ``localhost``, as a user would.

    ``resolver`` (`_demo_resolver`) knows the name as the servers' addresses
    and ``credentials`` (`_demo_credentials`) trust only the demo's CA; a
    connect that means to resume an earlier session passes the earlier one's
    credentials, which hold the session.
    """
    from . import connect

    return connect(
        "localhost",
        _port_of(port),
        timeout=DEMO_TIMEOUT,
        options=options,
        credentials=credentials,
        resolver=resolver,
        starttls=starttls,
    )


def _print_lines(out: TextIO, lines: Sequence[str]) -> None:
    for line in lines:
        print(INDENT + line, file=out)


def _demo_tls(server: DemoServer, out: TextIO) -> None:
    credentials = _demo_credentials(server)
    resolver = _demo_resolver(server)
    with _demo_connect(server.tls_port, DEMO_OPTIONS | Option.SECURE, credentials, resolver) as conn:
        _print_lines(out, format_trace(conn.trace))
        info = conn.security_info
        if info is None:
            raise DemoFailed("the connection is not secure after Option.SECURE")
        _print_lines(out, format_security(info))
        took = _line_round_trip(conn, "hello over TLS")
        print(f"{INDENT}line round trip: 'hello over TLS' came back in {_ms(took)}", file=out)
        first_handshake = conn.trace.tls_handshake
    # Closing kept the session; the next connect to the same server offers it.
    with _demo_connect(server.tls_port, DEMO_OPTIONS | Option.SECURE, credentials, resolver) as again:
        info = again.security_info
        if info is None or not info.session_reused:
            raise DemoFailed("the second TLS connect did not resume the first one's session")
        _line_round_trip(again, "hello again")
        handshake = again.trace.tls_handshake
        timing = ""
        if handshake is not None and first_handshake is not None:
            timing = f", handshake {_ms(handshake)} (first: {_ms(first_handshake)})"
        print(f"{INDENT}reconnect: session reused: yes{timing}", file=out)


def _demo_starttls(server: DemoServer, out: TextIO) -> None:
    print(f'{INDENT}connect(..., starttls="smtp"): greeting, EHLO, STARTTLS, TLS, EHLO again', file=out)
    with _demo_connect(
        server.smtp_port, DEMO_OPTIONS, _demo_credentials(server), _demo_resolver(server), starttls="smtp"
    ) as conn:
        _print_lines(out, format_trace(conn.trace))
        info = conn.security_info
        if info is None:
            raise DemoFailed("the SMTP connection is not secure after the STARTTLS dialog")
        _print_lines(out, format_security(info))
        conn.write_line("QUIT")
        reply = conn.read_line().rstrip(b"\r\n").decode("utf-8", errors="replace")
        if not reply.startswith("221"):
            raise DemoFailed(f"QUIT over TLS was answered {reply!r}, not 221")
        print(f"{INDENT}QUIT over TLS: {reply}", file=out)


def _demo_udp(server: DemoServer, out: TextIO) -> None:
    from . import connect

    payload = b"hello over UDP"
    with connect("127.0.0.1", server.udp_port, Protocol.UDP, timeout=DEMO_TIMEOUT) as conn:
        print(f"{INDENT}UDP {_where(conn.local_address)} -> {_where(conn.remote_address)}", file=out)
        started = time.monotonic()
        conn.write(payload)
        echoed = conn.read()
        took = time.monotonic() - started
        if echoed != payload:
            raise DemoFailed(f"sent the datagram {payload!r} but {echoed!r} came back")
        print(f"{INDENT}sent {len(payload)} bytes, the same {len(echoed)} came back in {_ms(took)}", file=out)


def _run_thread(target: Callable[[], None], name: str) -> None:
    """Run ``target`` in a thread, wait for it (bounded), and re-raise what it raised."""
    failures: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=body, name=name)
    thread.start()
    thread.join(DEMO_TIMEOUT)
    if thread.is_alive():
        raise DemoFailed(f"the thread {name} did not finish within {DEMO_TIMEOUT:g} s")
    if failures:
        raise failures[0]


def _demo_attach(server: DemoServer, out: TextIO) -> None:
    from . import connect

    main_id = threading.get_ident()
    with connect("127.0.0.1", server.tcp_port, timeout=DEMO_TIMEOUT, options=DEMO_OPTIONS) as conn:
        print(f"{INDENT}main thread {main_id} connected; owner: {conn.owner}", file=out)
        report: list[str] = []

        def worker() -> None:
            try:
                conn.write_line("too early")
            except OwnershipError as exc:
                report.append(f"worker before attach_thread(): {exc.code.name}")
            else:
                raise DemoFailed("a thread that is not the owner could write")
            previous = conn.attach_thread()
            if previous != main_id:
                raise DemoFailed(f"attach_thread() returned {previous}, not the main thread {main_id}")
            report.append(f"worker {threading.get_ident()} attached; previous owner: {previous}")
            took = _line_round_trip(conn, "hello from the worker")
            report.append(f"worker line round trip: 'hello from the worker' came back in {_ms(took)}")

        _run_thread(worker, "inetkit-demo-worker")
        for line in report:
            print(INDENT + line, file=out)
        try:
            conn.write_line("from main")
        except OwnershipError as exc:
            print(f"{INDENT}main after the hand-off: {exc.code.name}", file=out)
        else:
            raise DemoFailed("the main thread could still write after handing the connection over")
        conn.attach_thread()  # take it back, so that this thread may close it
        print(f"{INDENT}main took it back with attach_thread(); owner: {conn.owner}", file=out)


def _demo_free_thread(server: DemoServer, out: TextIO) -> None:
    lines = [
        f"line {number:05d} of the free-threaded transfer".encode() for number in range(DEMO_TRANSFER_LINES)
    ]
    with _demo_connect(
        server.tls_port,
        DEMO_OPTIONS | Option.SECURE | Option.FREETHREAD,
        _demo_credentials(server),
        _demo_resolver(server),
    ) as conn:
        info = conn.security_info
        assert info is not None
        print(
            f"{INDENT}Option.FREETHREAD over {info.protocol} ({info.cipher}); owner: {conn.owner}",
            file=out,
        )
        received: list[bytes] = []
        failures: list[BaseException] = []
        started = time.monotonic()

        def write_all() -> None:
            try:
                for line in lines:
                    conn.write_line(line)
            except BaseException as exc:
                failures.append(exc)

        writer = threading.Thread(target=write_all, name="inetkit-demo-writer")
        writer.start()
        try:
            for _ in lines:
                received.append(conn.read_line().rstrip(b"\r\n"))
        finally:
            writer.join(DEMO_TIMEOUT)
        if failures:
            raise failures[0]
        took = time.monotonic() - started
        if received != lines:
            raise DemoFailed("the lines read back differ from the lines written")
        size = sum(len(line) + 2 for line in lines)
        print(
            f"{INDENT}writer thread sent {len(lines)} lines ({size} bytes) while this thread read them back: "
            f"all {len(received)} in order in {_ms(took)}",
            file=out,
        )


if __name__ == "__main__":
    sys.exit(main())
