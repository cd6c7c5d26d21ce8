"""Submit one mail message over SMTP with STARTTLS, printing each reply and the TLS version.

``inetkit.connect(host, port, starttls="smtp", ...)`` reads the greeting,
says EHLO, asks for STARTTLS, verifies the server's certificate and says
EHLO again over TLS, all under the connect timeout. The handle it returns
is ready for the mail transaction, so this script goes straight to
``MAIL FROM``, ``RCPT TO``, ``DATA`` and ``QUIT``. A server that does not
offer STARTTLS (or refuses it) is never spoken to in plaintext: connect
raises ``SecurityError`` with ``STARTTLS_REFUSED``, which the script
prints, and it exits 1.

    python examples/smtp_submission.py mail.example.org 587 \\
        --from alice@example.org --to bob@example.net [--ca-file ca.pem] \\
        [--user alice]    # AUTH PLAIN over TLS; the password from $SMTP_PASSWORD

It connects only to the host and port given. Without ``--ca-file`` the
server certificate is checked against the certifi bundle. The password is
read from the environment, never from the command line, and is not
printed. Exit codes: 0 the message was accepted, 1 a connection, TLS or
SMTP failure (the reason is printed), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import base64
import email.policy
import email.utils
import os
import sys
from email.message import EmailMessage

import inetkit
from inetkit import SecurityCredentials

#: Seconds the connect (STARTTLS dialog and handshake included) and each later step may take.
TIMEOUT = 20.0
#: Longest reply line read (RFC 5321 §4.5.3.1.5 allows 512 octets; servers send more in EHLO).
MAX_LINE = 4096
#: Most lines one reply may have before the server is deemed broken (real replies have a few).
MAX_REPLY_LINES = 256
#: The environment variable holding the AUTH password.
PASSWORD_ENV = "SMTP_PASSWORD"


class SMTPFailure(Exception):
    """The server answered a command with something other than what the transaction needs."""


def reply(conn: inetkit.Connection) -> tuple[int, list[str]]:
    """Read one (possibly multi-line) reply; print it; return its code and text lines."""
    lines: list[str] = []
    for _ in range(MAX_REPLY_LINES):
        raw = conn.read_line(MAX_LINE)
        if not raw:
            raise SMTPFailure("the server closed the connection")
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        print(f"S: {text}")
        code = text[:3]
        if len(code) < 3 or not code.isdigit() or text[3:4] not in ("", " ", "-"):
            raise SMTPFailure(f"malformed reply line {text!r}")
        lines.append(text[4:])
        if text[3:4] != "-":
            return int(code), lines
    raise SMTPFailure(f"a reply of more than {MAX_REPLY_LINES} lines")


def command(conn: inetkit.Connection, line: str, expect: int, *, shown: str | None = None) -> None:
    """Send one command (printed as ``shown`` when given) and require the reply code ``expect``."""
    print(f"C: {shown or line}")
    conn.write_line(line)
    code, text = reply(conn)
    if code != expect:
        raise SMTPFailure(f"{(shown or line).split(' ')[0]} answered {code} {' '.join(text)}")


def build_message(sender: str, recipients: list[str], subject: str, body: str) -> bytes:
    """The message as DATA sends it: CRLF line ends, dot-stuffed (RFC 5321 §4.5.2), ending in CRLF.CRLF."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid()
    message.set_content(body)
    data = message.as_bytes()
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in data.split(b"\r\n"))
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def transaction(conn: inetkit.Connection, args: argparse.Namespace, password: str | None) -> None:
    """AUTH (when asked for), MAIL FROM, RCPT TO for each recipient, DATA and the message."""
    # The dialog has already sent EHLO again over TLS: the session is ready for AUTH or MAIL.
    if args.user is not None and password is not None:
        token = base64.b64encode(f"\0{args.user}\0{password}".encode()).decode("ascii")
        command(conn, f"AUTH PLAIN {token}", 235, shown="AUTH PLAIN <credentials not shown>")
    command(conn, f"MAIL FROM:<{args.sender}>", 250)
    for recipient in args.recipients:
        command(conn, f"RCPT TO:<{recipient}>", 250)
    command(conn, "DATA", 354)
    message = build_message(args.sender, args.recipients, args.subject, args.body)
    print(f"C: <{len(message)} bytes of message>")
    conn.write(message)
    code, text = reply(conn)
    if code != 250:
        raise SMTPFailure(f"the message was refused: {code} {' '.join(text)}")


def submit(args: argparse.Namespace, password: str | None) -> int:
    """Connect with STARTTLS, run the transaction, say QUIT (also after a refusal)."""
    credentials = SecurityCredentials(ca_file=args.ca_file)
    with inetkit.connect(
        args.host, args.port, starttls="smtp", credentials=credentials, timeout=TIMEOUT
    ) as conn:
        info = conn.security_info
        assert info is not None  # starttls= returns only secure handles
        print(f"connected to {conn.host_name} port {conn.port} over {info.protocol} ({info.cipher})")
        if info.peer_certificate is not None:
            print(f"server certificate: {info.peer_certificate.subject}")
        try:
            transaction(conn, args, password)
        except SMTPFailure:
            try:
                command(conn, "QUIT", 221)  # a polite end; the refusal is what gets reported
            except (SMTPFailure, inetkit.InetError):
                pass
            raise
        command(conn, "QUIT", 221)
    print("message accepted")
    return 0


def address(text: str) -> str:
    """An envelope address: one word without angle brackets or line breaks (the server checks the rest)."""
    if not text or any(c.isspace() or c in "<>" for c in text):
        raise argparse.ArgumentTypeError(f"not a mail address: {text!r}")
    return text


def header(text: str) -> str:
    """A header value on one line (a line break would start a header of the caller's choosing)."""
    if any(c in "\r\n\0" for c in text):
        raise argparse.ArgumentTypeError(f"a header value must be one line: {text!r}")
    return text


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Submit one message over SMTP with STARTTLS.")
    parser.add_argument("host", help="the submission server's name or address")
    parser.add_argument("port", type=int, nargs="?", default=587, help="its port (default: 587)")
    parser.add_argument("--from", dest="sender", type=address, required=True, help="envelope sender")
    parser.add_argument(
        "--to", dest="recipients", type=address, action="append", required=True, help="recipient (repeatable)"
    )
    parser.add_argument(
        "--subject", type=header, default="inetkit STARTTLS example", help="the Subject header"
    )
    parser.add_argument("--body", default="Sent over SMTP after STARTTLS.\n", help="the message text")
    parser.add_argument("--ca-file", help="PEM file of trust anchors (default: the certifi bundle)")
    parser.add_argument(
        "--user", help=f"log in with AUTH PLAIN as this user; the password from ${PASSWORD_ENV}"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    password = None
    if args.user is not None:
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            print(f"--user needs the password in ${PASSWORD_ENV}", file=sys.stderr)
            return 2
    try:
        return submit(args, password)
    except inetkit.InetError as exc:
        print(f"{exc.code.name}: {exc}", file=sys.stderr)
        return 1
    except SMTPFailure as exc:
        print(f"SMTP failure: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
