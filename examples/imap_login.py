"""Log in to an IMAP server over STARTTLS, list the mailboxes, select one, log out.

``inetkit.connect(host, port, starttls="imap", ...)`` reads the greeting,
checks that CAPABILITY lists STARTTLS, sends STARTTLS and verifies the
server's certificate, all under the connect timeout. After the upgrade
IMAP wants the client to ask for the capabilities again (RFC 3501 §6.2.1:
what was said in plaintext may have been forged), so the script sends
CAPABILITY, then LOGIN, ``LIST "" "*"``, SELECT and LOGOUT, printing what
the server answers. A server that does not offer STARTTLS (or refuses it)
never sees the password: connect raises ``SecurityError`` with
``STARTTLS_REFUSED``, which the script prints, and it exits 1.

    IMAP_PASSWORD=... python examples/imap_login.py imap.example.org 143 \\
        --user alice [--mailbox INBOX] [--ca-file ca.pem]

It connects only to the host and port given. Without ``--ca-file`` the
server certificate is checked against the certifi bundle. The password is
read from ``$IMAP_PASSWORD``, never from the command line, and is not
printed (the LOGIN line is shown with it masked). User names and passwords
are sent as IMAP quoted strings, so they must be printable ASCII here (a
literal would be needed for the rest). Exit codes: 0 logged in and the
mailbox selected, 1 a connection, TLS or IMAP failure (the reason is
printed), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import inetkit
from inetkit import SecurityCredentials

#: Seconds the connect (STARTTLS dialog and handshake included) and each later step may take.
TIMEOUT = 20.0
#: Longest response line read (RFC 7162 §4 asks clients to accept at least 8192 octets).
MAX_LINE = 8192
#: Most lines one command's response may have (LIST on a large account has many; this bounds a broken server).
MAX_RESPONSE_LINES = 100_000
#: Most literal (``{n}``) bytes accepted in one response line: mailbox names, not messages, come back here.
MAX_LITERAL = 65536
#: The environment variable holding the password.
PASSWORD_ENV = "IMAP_PASSWORD"
#: A line that ends with a literal announcement: ``{n}`` (RFC 3501 §4.3), its n octets follow.
LITERAL = re.compile(rb"\{(\d{1,9})\}\r?\n\Z")


class IMAPFailure(Exception):
    """The server answered a command with something other than OK, or broke the protocol."""


def response_line(conn: inetkit.Connection) -> str:
    """One response line without its line end; literals it carries are read in (bounded) and shown quoted."""
    raw = conn.read_line(MAX_LINE)
    parts: list[bytes] = []
    literal_bytes = 0
    for _ in range(MAX_RESPONSE_LINES):
        if not raw:
            raise IMAPFailure("the server closed the connection")
        literal = LITERAL.search(raw)
        if literal is None:
            parts.append(raw)
            break
        size = int(literal[1])
        literal_bytes += size
        if literal_bytes > MAX_LITERAL:
            raise IMAPFailure(f"literals of over {MAX_LITERAL} bytes in one response line (not read here)")
        parts.append(raw[: literal.start()] + b'"' + conn.read_exactly(size).replace(b'"', b'\\"') + b'"')
        raw = conn.read_line(MAX_LINE)
    return b"".join(parts).decode("utf-8", "replace").rstrip("\r\n")


def command(conn: inetkit.Connection, tag: str, text: str, *, shown: str | None = None) -> list[str]:
    """Send ``tag text``, print it (as ``shown`` when given) and every response; return the untagged ones.

    The tagged response must be OK; NO or BAD raise `IMAPFailure`.
    """
    print(f"C: {tag} {shown or text}")
    conn.write_line(f"{tag} {text}")
    untagged: list[str] = []
    for _ in range(MAX_RESPONSE_LINES):
        line = response_line(conn)
        print(f"S: {line}")
        if line.startswith(f"{tag} "):
            status = line[len(tag) + 1 :]
            if status.split(" ", 1)[0].upper() != "OK":
                raise IMAPFailure(f"{(shown or text).split(' ')[0]} answered {status}")
            return untagged
        if line.upper().startswith("* BYE") and text != "LOGOUT":  # to LOGOUT, BYE is the expected answer
            raise IMAPFailure(f"the server is closing the connection: {line[2:]}")
        untagged.append(line)
    raise IMAPFailure(f"no tagged response to {tag} after {MAX_RESPONSE_LINES} lines")


def quoted(text: str) -> str:
    """An IMAP quoted string (RFC 3501 §4.3): printable ASCII, with ``\\`` and ``"`` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def log_in_and_select(conn: inetkit.Connection, args: argparse.Namespace, password: str) -> None:
    """CAPABILITY again over TLS, LOGIN (the password masked in the output), LIST, SELECT."""
    # The dialog used the tags A1 and A2; any unique tags will do from here.
    untagged = command(conn, "E1", "CAPABILITY")
    capabilities = " ".join(line for line in untagged if line.upper().startswith("* CAPABILITY "))
    if "LOGINDISABLED" in capabilities.upper().split():
        raise IMAPFailure("the server does not allow LOGIN even over TLS (LOGINDISABLED)")
    user = quoted(args.user)
    command(conn, "E2", f"LOGIN {user} {quoted(password)}", shown=f"LOGIN {user} <password not shown>")
    command(conn, "E3", 'LIST "" "*"')
    command(conn, "E4", f"SELECT {quoted(args.mailbox)}")


def session(args: argparse.Namespace, password: str) -> int:
    """Connect with STARTTLS, log in, list and select, log out (also after a failure)."""
    credentials = SecurityCredentials(ca_file=args.ca_file)
    with inetkit.connect(
        args.host, args.port, starttls="imap", credentials=credentials, timeout=TIMEOUT
    ) as conn:
        info = conn.security_info
        assert info is not None  # starttls= returns only secure handles
        print(f"connected to {conn.host_name} port {conn.port} over {info.protocol} ({info.cipher})")
        if info.peer_certificate is not None:
            print(f"server certificate: {info.peer_certificate.subject}")
        try:
            log_in_and_select(conn, args, password)
        except IMAPFailure:
            try:
                command(conn, "E9", "LOGOUT")  # a polite end; the failure is what gets reported
            except (IMAPFailure, inetkit.InetError):
                pass
            raise
        command(conn, "E5", "LOGOUT")
    print(f"logged in as {args.user} and selected {args.mailbox}")
    return 0


def imap_string(text: str) -> str:
    """A value for an IMAP quoted string: printable ASCII (a literal would be needed for the rest)."""
    if not text or not all(" " <= c <= "~" for c in text):
        raise argparse.ArgumentTypeError(f"must be non-empty printable ASCII: {text!r}")
    return text


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Log in to an IMAP server over STARTTLS.")
    parser.add_argument("host", help="the IMAP server's name or address")
    parser.add_argument("port", type=int, nargs="?", default=143, help="its port (default: 143)")
    parser.add_argument(
        "--user", type=imap_string, required=True, help=f"user name (the password from ${PASSWORD_ENV})"
    )
    parser.add_argument(
        "--mailbox", type=imap_string, default="INBOX", help="mailbox to select (default: INBOX)"
    )
    parser.add_argument("--ca-file", help="PEM file of trust anchors (default: the certifi bundle)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    password = os.environ.get(PASSWORD_ENV, "")
    if not password or not all(" " <= c <= "~" for c in password):
        print(f"${PASSWORD_ENV} must hold the password, in printable ASCII", file=sys.stderr)
        return 2
    try:
        return session(args, password)
    except inetkit.InetError as exc:
        print(f"{exc.code.name}: {exc}", file=sys.stderr)
        return 1
    except IMAPFailure as exc:
        print(f"IMAP failure: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
