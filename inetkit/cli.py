"""The ``inetkit`` command: ``inetkit demo``, ``inetkit probe HOST PORT``, ``inetkit --version``.

``demo`` starts echo servers on loopback inside this process (TCP lines, UDP
datagrams and, when inetkit's TLS support imports, TLS with a certificate
made at run time) and walks through connecting to them, printing the connect
trace, the round trips and the TLS details. It needs nothing but Python and
inetkit's dependencies, and sends nothing beyond loopback.

``probe`` connects to a real host and prints how it went: the name
resolution, every address attempt with its timing, the TLS handshake and
the server certificate. On failure it prints the error and the trace of what
was tried.

Exit codes: 0 success, 1 the connection (or a demo check) failed, 2 the
command line or an argument was invalid.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from . import __version__
from ._errors import InetError, InvalidArgumentError
from ._options import Option, Protocol

if TYPE_CHECKING:
    from ._connection import Connection
    from ._demo_server import DemoServer
    from ._resolver import Resolver
    from ._tls import SecurityInfo

__all__ = ["main"]

logger = logging.getLogger("inetkit")

#: Exit status: the connection or a demo check failed.
EXIT_FAILURE = 1
#: Exit status: the command line or an argument was invalid (argparse's own code).
EXIT_USAGE = 2
#: Seconds allowed for each demo connect and each demo I/O call: loopback
#: answers in microseconds, so this only bounds a broken run.
DEMO_TIMEOUT = 5.0
#: The demo's exchanges are small request/response writes: NODELAY sends each
#: at once instead of letting Nagle's algorithm hold it for an ACK.
DEMO_OPTIONS = Option.NODELAY
#: Default ``probe --timeout``: InetConnect's customary connect timeout.
PROBE_TIMEOUT = 20.0
#: Indentation of detail lines under a step's title.
INDENT = "   "


# -- command line ---------------------------------------------------------------


def _port(text: str) -> int | str:
    """A port number, or a service name such as ``https`` (checked by connect)."""
    return int(text) if text.isdigit() else text


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


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
        description="Client network connections in one call: try inetkit on loopback, or probe a server.",
        parents=[verbose],
    )
    parser.add_argument("--version", action="version", version=f"inetkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser(
        "demo",
        parents=[verbose],
        help="run echo servers on loopback and connect to them (TCP, UDP, TLS)",
        description=(
            "Start TCP, UDP and TLS echo servers on loopback in this process, connect to them "
            "with inetkit and report what happened. Sends nothing beyond loopback."
        ),
    )

    probe = commands.add_parser(
        "probe",
        parents=[verbose],
        help="connect to HOST PORT and print the connect trace and TLS details",
        description="Connect to HOST on PORT and print how it went; exit 1 when the connect fails.",
    )
    probe.add_argument("host", metavar="HOST", help="host name, IPv4 or IPv6 address")
    probe.add_argument("port", metavar="PORT", type=_port, help="port number or service name")
    probe.add_argument("--udp", action="store_true", help="UDP instead of TCP")
    probe.add_argument("--secure", action="store_true", help="implicit TLS (Option.SECURE)")
    probe.add_argument(
        "--trusted-site",
        action="store_true",
        help="do not verify the server certificate (Option.TRUSTEDSITE)",
    )
    probe.add_argument(
        "--prefer-ipv6", action="store_true", help="try IPv6 addresses first (Option.PREFER_IPV6)"
    )
    probe.add_argument(
        "--timeout",
        type=_seconds,
        default=PROBE_TIMEOUT,
        metavar="S",
        help=f"one deadline in seconds for the whole connect (default {PROBE_TIMEOUT:g})",
    )
    probe.add_argument("--starttls", metavar="NAME", help="run the STARTTLS dialog NAME (smtp, ...)")
    probe.add_argument("--ca-file", metavar="PEM", help="trust the CA certificates in this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``inetkit`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    with _debug_logging(getattr(args, "verbose", False)):
        if args.command == "demo":
            return run_demo(sys.stdout, sys.stderr)
        return _probe(args, sys.stdout, sys.stderr)


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


# -- shared formatting ------------------------------------------------------------


def _indent(text: str, prefix: str = INDENT) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _where(address: tuple[str, int]) -> str:
    ip, port = address
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def format_security(info: SecurityInfo) -> list[str]:
    """The TLS details of a connection, one fact per line."""
    alpn = info.alpn_protocol or "none"
    lines = [
        f"{info.protocol}, {info.cipher} ({info.cipher_bits} bits), ALPN {alpn}, "
        f"session reused: {'yes' if info.session_reused else 'no'}"
    ]
    cert = info.peer_certificate
    if cert is not None:
        lines.append(f"server certificate: {cert.subject}")
        lines.append(f"  issued by: {cert.issuer}")
        if cert.subject_alt_names:
            lines.append(f"  names: {', '.join(cert.subject_alt_names)}")
        lines.append(f"  valid: {cert.not_before:%Y-%m-%d %H:%M} to {cert.not_after:%Y-%m-%d %H:%M} UTC")
        lines.append(f"  sha256: {cert.fingerprint_sha256}")
    return lines


# -- probe ------------------------------------------------------------------------


def _probe(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._connect import connect  # the connect stack loads only when used

    options = Option.NONE
    if args.secure:
        options |= Option.SECURE
    if args.trusted_site:
        options |= Option.TRUSTEDSITE
    if args.prefer_ipv6:
        options |= Option.PREFER_IPV6
    protocol = Protocol.UDP if args.udp else Protocol.TCP
    try:
        credentials = None
        if args.ca_file is not None:
            from ._credentials import SecurityCredentials

            credentials = SecurityCredentials(ca_file=args.ca_file)
        conn = connect(
            args.host,
            args.port,
            protocol,
            args.timeout,
            options,
            credentials,
            starttls=args.starttls,
        )
    except InvalidArgumentError as exc:
        print(f"inetkit probe: {exc}", file=err)
        return EXIT_USAGE
    except InetError as exc:
        print(f"inetkit probe: {exc}", file=err)
        if exc.trace is not None:  # each attempt's line carries its own error
            print(exc.trace.format(), file=out)
        return EXIT_FAILURE
    with conn:
        print(conn.trace.format(), file=out)
        kind = "UDP" if protocol is Protocol.UDP else "TCP"
        print(f"{kind} {_where(conn.local_address)} -> {_where(conn.remote_address)}", file=out)
        if conn.security_info is not None:
            for line in format_security(conn.security_info):
                print(line, file=out)
    return 0


# -- demo -------------------------------------------------------------------------


class DemoFailed(Exception):
    """A demo check did not hold (the message says which)."""


def _tls_problem() -> str | None:
    """Why the TLS part of the demo cannot run, or None when it can."""
    for module in ("inetkit._tls_io", "inetkit._credentials", "inetkit._tls"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} does not import ({exc})"
    return None


def _line_round_trip(conn: Connection, text: str) -> float:
    """Send ``text`` as a line, read the echo, check it; return the seconds taken."""
    started = time.monotonic()
    conn.write_line(text)
    echoed = conn.read_line()
    took = time.monotonic() - started
    if echoed.rstrip(b"\r\n").decode("utf-8", errors="replace") != text:
        raise DemoFailed(f"sent the line {text!r} but {echoed!r} came back")
    return took


def run_demo(out: TextIO, err: TextIO) -> int:
    """Run ``inetkit demo``: write the report to ``out``; return the exit code."""
    from ._demo_server import DemoServer

    tls_problem = _tls_problem()
    started = time.monotonic()
    step = "starting the loopback servers"
    try:
        with DemoServer(tls=tls_problem is None) as server:
            services = f"TCP port {server.tcp_port}, UDP port {server.udp_port}"
            if server.tls_port is not None:
                services += f", TLS port {server.tls_port}"
            print(
                f"inetkit {__version__} demo: echo servers on {' and '.join(server.addresses)} ({services})",
                file=out,
            )
            steps: list[tuple[str, Callable[[DemoServer, TextIO], None]]] = [
                ("TCP connect and line round trip", _demo_tcp),
                ("UDP datagram round trip", _demo_udp),
            ]
            if tls_problem is None:
                steps.append(("TLS connect, round trip and resumption", _demo_tls))
            for number, (title, run) in enumerate(steps, 1):
                step = title
                print(f"\n{number}. {title}", file=out)
                run(server, out)
            if tls_problem is not None:
                print(f"\nTLS skipped: {tls_problem}", file=out)
    except DemoFailed as exc:
        print(f"inetkit demo failed during {step}: {exc}", file=err)
        return EXIT_FAILURE
    except InetError as exc:
        print(f"inetkit demo failed during {step}: {exc}", file=err)
        if exc.trace is not None:
            print(_indent(exc.trace.format()), file=err)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"inetkit demo failed during {step}: {exc}", file=err)
        return EXIT_FAILURE
    print(f"\nall checks passed in {_ms(time.monotonic() - started)}", file=out)
    return 0


def _demo_resolver(server: DemoServer) -> Resolver:
    """A resolver that knows ``localhost`` as exactly the addresses the servers listen on."""
    from ._resolver import Resolver

    return Resolver(system_hosts=False, dns=False, overrides={"localhost": list(server.addresses)})


def _demo_tcp(server: DemoServer, out: TextIO) -> None:
    from ._connect import connect

    with connect(
        "localhost",
        server.tcp_port,
        timeout=DEMO_TIMEOUT,
        options=DEMO_OPTIONS,
        resolver=_demo_resolver(server),
    ) as conn:
        print(_indent(conn.trace.format()), file=out)
        print(f"{INDENT}connected {_where(conn.local_address)} -> {_where(conn.remote_address)}", file=out)
        took = _line_round_trip(conn, "hello over TCP")
        print(f"{INDENT}line round trip: 'hello over TCP' came back in {_ms(took)}", file=out)


def _demo_udp(server: DemoServer, out: TextIO) -> None:
    from ._connect import connect

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


def _demo_tls(server: DemoServer, out: TextIO) -> None:
    from ._connect import connect
    from ._credentials import SecurityCredentials

    assert server.certificates is not None and server.tls_port is not None
    credentials = SecurityCredentials(ca_data=server.certificates.ca_pem)
    resolver = _demo_resolver(server)
    print(f"{INDENT}(the client trusts only the demo CA made for this run)", file=out)
    with connect(
        "localhost",
        server.tls_port,
        timeout=DEMO_TIMEOUT,
        options=DEMO_OPTIONS | Option.SECURE,
        credentials=credentials,
        resolver=resolver,
    ) as conn:
        print(_indent(conn.trace.format()), file=out)
        info = conn.security_info
        if info is None:
            raise DemoFailed("the connection is not secure after Option.SECURE")
        for line in format_security(info):
            print(INDENT + line, file=out)
        took = _line_round_trip(conn, "hello over TLS")
        print(f"{INDENT}line round trip: 'hello over TLS' came back in {_ms(took)}", file=out)
        first_handshake = conn.trace.tls_handshake
    # Closing kept the session; the next connect to the same server offers it.
    with connect(
        "localhost",
        server.tls_port,
        timeout=DEMO_TIMEOUT,
        options=DEMO_OPTIONS | Option.SECURE,
        credentials=credentials,
        resolver=resolver,
    ) as again:
        info = again.security_info
        if info is None or not info.session_reused:
            raise DemoFailed("the second TLS connect did not resume the first one's session")
        _line_round_trip(again, "hello again")
        handshake = again.trace.tls_handshake
        timing = ""
        if handshake is not None and first_handshake is not None:
            timing = f", handshake {_ms(handshake)} (first: {_ms(first_handshake)})"
        print(f"{INDENT}reconnect: session reused: yes{timing}", file=out)


if __name__ == "__main__":
    sys.exit(main())
