"""STARTTLS dialogs: speak a protocol's upgrade request, then `enable_security`.

Each dialog runs on a plain `Connection`, asks the server to start TLS in the
protocol's own words, and then calls `Connection.enable_security` (the same
verification as implicit TLS). They fail closed: a server that does not offer
or refuses the upgrade raises `SecurityError` (``STARTTLS_REFUSED``); nothing
ever silently stays in plaintext. Bytes the server sends after agreeing and
before the handshake are refused (``UNEXPECTED_PLAINTEXT``): they would
otherwise be mistaken for protected data (response injection, see
nodemailer/nodemailer#1835).

``connect(..., starttls="smtp")`` runs the dialog inside the connect
deadline; the functions here can also be called on a handle you made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._errors import ErrorCode, InetError, InvalidArgumentError, SecurityError

if TYPE_CHECKING:
    from ._connection import Connection
    from ._credentials import SecurityCredentials

__all__ = ["DIALOGS", "smtp"]

#: Longest SMTP reply line we accept (RFC 5321 §4.5.3.1.5 says 512 octets;
#: real servers send longer EHLO lines, so allow some room).
SMTP_MAX_LINE = 4096
#: Most lines one SMTP reply may have (bounds a server that never ends one).
SMTP_MAX_REPLY_LINES = 256


def _remaining(deadline: float | None, conn: Connection) -> float | None:
    if deadline is None:
        return conn.timeout
    left = deadline - time.monotonic()
    return max(left, 0.001)


class _Dialog:
    """Shared helpers for line-based dialogs, bounded by one deadline."""

    def __init__(self, conn: Connection, deadline: float | None, protocol: str) -> None:
        self.conn = conn
        self.deadline = deadline
        self.protocol = protocol
        self.where = f"{conn.host_name} port {conn.port}"

    def _with_deadline(self) -> None:
        self.conn.timeout = _remaining(self.deadline, self.conn)

    def send(self, line: str) -> None:
        self._with_deadline()
        self.conn.write_line(line)

    def read_line(self) -> str:
        self._with_deadline()
        raw = self.conn.read_line(SMTP_MAX_LINE)
        if not raw:
            raise self.refused("the server closed the connection")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    def refused(self, why: str) -> SecurityError:
        return SecurityError(
            f"STARTTLS ({self.protocol}) with {self.where} refused: {why}; "
            "the connection was not upgraded and is closed",
            ErrorCode.STARTTLS_REFUSED,
        )


def _smtp_reply(dialog: _Dialog) -> tuple[int, list[str]]:
    """One SMTP reply: (code, text lines). Multi-line replies use "250-" continuations."""
    lines: list[str] = []
    for _ in range(SMTP_MAX_REPLY_LINES):
        line = dialog.read_line()
        if len(line) < 3 or not line[:3].isdigit():
            raise dialog.refused(f"malformed reply {line[:80]!r}")
        lines.append(line[4:])
        if len(line) == 3 or line[3] == " ":
            return int(line[:3]), lines
        if line[3] != "-":
            raise dialog.refused(f"malformed reply {line[:80]!r}")
    raise dialog.refused(f"a reply longer than {SMTP_MAX_REPLY_LINES} lines")


def _ehlo_name(conn: Connection) -> str:
    # RFC 5321 §4.1.3: an address literal when we have no domain name to give.
    ip = conn.local_address[0]
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


def smtp(
    conn: Connection,
    credentials: SecurityCredentials | None = None,
    *,
    client_name: str | None = None,
    deadline: float | None = None,
) -> list[str]:
    """SMTP STARTTLS (RFC 3207): greeting, EHLO, STARTTLS, TLS, EHLO again.

    Returns the EHLO keywords the server offers over TLS (upper-cased).
    ``client_name`` is sent in EHLO (default: an address literal of our end).
    """
    dialog = _Dialog(conn, deadline, "smtp")
    saved = conn.timeout
    name = client_name or _ehlo_name(conn)
    try:
        return _smtp_dialog(dialog, conn, credentials, name)
    except BaseException:
        # Fail closed: a handle whose upgrade failed is in an unknown protocol
        # state and must not be used in plaintext by mistake.
        try:
            conn.close()
        except InetError:
            pass  # e.g. not the owner: the original error says more
        raise
    finally:
        if not conn.closed:
            conn.timeout = saved


def _smtp_dialog(
    dialog: _Dialog, conn: Connection, credentials: SecurityCredentials | None, name: str
) -> list[str]:
    code, lines = _smtp_reply(dialog)
    if code != 220:
        raise dialog.refused(f"greeting {code} {' '.join(lines)[:120]}")
    dialog.send(f"EHLO {name}")
    code, lines = _smtp_reply(dialog)
    if code != 250:
        raise dialog.refused(f"EHLO answered {code} {' '.join(lines)[:120]}")
    keywords = {line.split(" ", 1)[0].upper() for line in lines[1:]}
    if "STARTTLS" not in keywords:
        raise dialog.refused("the server does not offer STARTTLS in its EHLO reply")
    dialog.send("STARTTLS")
    code, lines = _smtp_reply(dialog)
    if code != 220:
        raise dialog.refused(f"STARTTLS answered {code} {' '.join(lines)[:120]}")
    dialog._with_deadline()
    conn.enable_security(credentials)
    dialog.send(f"EHLO {name}")
    code, lines = _smtp_reply(dialog)
    if code != 250:
        raise dialog.refused(f"EHLO over TLS answered {code} {' '.join(lines)[:120]}")
    return [line.split(" ", 1)[0].upper() for line in lines[1:]]


#: Dialogs by name, as accepted by ``connect(starttls=...)``.
DIALOGS: dict[str, Callable[..., object]] = {"smtp": smtp}


def run_dialog(name: str, conn: Connection, deadline: float | None) -> None:
    """Run the dialog ``name`` on ``conn`` under the connect deadline (inetkit-internal)."""
    dialog = DIALOGS.get(name)
    if dialog is None:
        raise InvalidArgumentError(
            f"unknown starttls dialog {name!r}; known: {', '.join(sorted(DIALOGS))}",
            ErrorCode.INVALID_ARGUMENT,
        )
    dialog(conn, conn._credentials, deadline=deadline)
