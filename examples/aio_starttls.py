"""SMTP with STARTTLS from asyncio: `inetkit.aio.connect(..., starttls="smtp")`, then commands over TLS.

The connect reads the greeting, says EHLO, asks for STARTTLS, verifies the
server's certificate and says EHLO again over TLS, all under the one connect
timeout; the handle it returns is already secure. A server that does not
offer STARTTLS, or refuses it, is never spoken to in plaintext: the connect
raises `SecurityError` (``STARTTLS_REFUSED``), which is printed (exit 1).

    python examples/aio_starttls.py                      # against a loopback SMTP server of its own
    python examples/aio_starttls.py HOST PORT [--ca-file ca.pem]

Without HOST and PORT the script starts the loopback servers of
``inetkit demo`` (an SMTP responder with STARTTLS and a throwaway CA) and
connects to those; with them it connects only to the host and port given,
checking the certificate against ``--ca-file`` or the certifi bundle.
Exit codes: 0 done, 1 a connection, TLS or SMTP failure, 2 wrong usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterator

import inetkit
import inetkit.aio
from inetkit import SecurityCredentials

#: Seconds the connect (dialog and handshake included) and each later call may take.
TIMEOUT = 20.0
#: Longest reply line read (RFC 5321 allows 512 octets; EHLO replies run longer).
MAX_LINE = 4096
#: Most lines one reply may have before the server is deemed broken.
MAX_REPLY_LINES = 256


class SMTPFailure(Exception):
    """The server's answer is not an SMTP reply."""


async def reply(conn: inetkit.aio.AsyncConnection) -> int:
    """Read one (possibly multi-line) reply, print it, return its code."""
    for _ in range(MAX_REPLY_LINES):
        line = (await conn.read_line(MAX_LINE)).decode("utf-8", "replace").rstrip("\r\n")
        print(f"S: {line}")
        if len(line) < 3 or not line[:3].isdigit():
            raise SMTPFailure(f"malformed SMTP reply {line!r}")
        if line[3:4] != "-":
            return int(line[:3])
    raise SMTPFailure(f"an SMTP reply of more than {MAX_REPLY_LINES} lines")


async def session(host: str, port: int, credentials: SecurityCredentials | None) -> int:
    try:
        conn = await inetkit.aio.connect(
            host, port, starttls="smtp", credentials=credentials, timeout=TIMEOUT
        )
    except inetkit.InetError as exc:
        print(f"connect failed: {exc.code.name}: {exc}")
        return 1
    async with conn:
        info = conn.security_info
        trace = conn.trace
        assert info is not None
        print(f"secure: {info.protocol}, {info.cipher}")
        print(
            f"STARTTLS dialog {(trace.starttls or 0) * 1000:.1f} ms, "
            f"handshake {(trace.tls_handshake or 0) * 1000:.1f} ms, "
            f"connect {(trace.total or 0) * 1000:.1f} ms in all"
        )
        try:
            for line, expect in (("NOOP", 250), ("QUIT", 221)):
                print(f"C: {line}")
                await conn.write_line(line)
                if await reply(conn) != expect:
                    return 1
        except (inetkit.InetError, SMTPFailure) as exc:
            print(f"SMTP failed: {exc}")
            return 1
    return 0


@contextlib.contextmanager
def demo_server() -> Iterator[tuple[str, int, SecurityCredentials]]:
    """The loopback servers of ``inetkit demo``: its SMTP port and its CA."""
    from inetkit._demo_server import DemoServer

    with DemoServer() as server:
        assert server.smtp_port is not None and server.certificates is not None
        yield "localhost", server.smtp_port, SecurityCredentials(ca_data=server.certificates.ca_pem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("host", nargs="?")
    parser.add_argument("port", nargs="?", type=int)
    parser.add_argument("--ca-file", help="trust this CA file instead of the certifi bundle")
    args = parser.parse_args(argv)
    if (args.host is None) != (args.port is None):
        parser.error("give both HOST and PORT, or neither")
    if args.host is None:
        with demo_server() as (host, port, credentials):
            return asyncio.run(session(host, port, credentials))
    trust = SecurityCredentials(ca_file=args.ca_file) if args.ca_file else None
    return asyncio.run(session(args.host, args.port, trust))


if __name__ == "__main__":
    sys.exit(main())
