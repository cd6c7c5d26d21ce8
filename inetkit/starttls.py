"""STARTTLS dialogs: speak a protocol's upgrade request, then `enable_security`.

Each dialog runs on a plain `Connection`, asks the server to start TLS in the
protocol's own words, and then calls `Connection.enable_security` (the same
verification as implicit TLS). They fail closed: a server that does not offer
or refuses the upgrade raises `SecurityError` (``STARTTLS_REFUSED``) and the
handle is closed; nothing ever silently stays in plaintext. Bytes the server
sends after agreeing and before the handshake are refused
(``UNEXPECTED_PLAINTEXT``): they would otherwise be mistaken for protected
data (response injection, see nodemailer/nodemailer#1835, CVE-2021-23222).

The protocol logic lives in ``inetkit._core.dialogs`` (no I/O there); this
module is the blocking driver: it performs each step the dialog asks for on
the connection, with bounded reads (a line of at most the dialog's length, an
exact byte count, or a bounded chunk), every call under the one deadline.
``connect(..., starttls=NAME)`` runs the dialog inside the connect deadline;
the functions here can also be called on a handle you made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Protocol as TypingProtocol

from ._core.dialogs import (
    NAMES,
    Dialog,
    Done,
    ReadExactly,
    ReadLine,
    ReadSome,
    Refused,
    Send,
    SMTPDialog,
    StartTLS,
    new_dialog,
)
from ._errors import ConnectionClosedError, ErrorCode, InetError, InvalidArgumentError, SecurityError
from ._types import Protocol

if TYPE_CHECKING:
    from ._connection import Connection
    from ._credentials import SecurityCredentials

__all__ = ["DIALOGS", "ftp", "imap", "ldap", "pop3", "postgres", "run_dialog", "smtp", "xmpp"]

#: Steps one dialog may take at most (each dialog bounds its own replies; this
#: bounds the driver loop itself, far above the longest real dialog).
MAX_STEPS = 10_000
#: The shortest timeout a step gets once the deadline has passed: the call
#: then fails with TIMED_OUT at once instead of waiting without bound.
MIN_STEP_TIMEOUT = 0.001


def _remaining(deadline: float | None, fallback: float | None) -> float | None:
    if deadline is None:
        return fallback
    return max(deadline - time.monotonic(), MIN_STEP_TIMEOUT)


def _drive(
    conn: Connection,
    dialog: Dialog,
    credentials: SecurityCredentials | None,
    deadline: float | None,
) -> object:
    """Run ``dialog`` on ``conn``: perform each step under the deadline; close the handle on any failure.

    Without a ``deadline`` each step gets the handle's own I/O timeout.
    """
    saved = conn.timeout
    try:
        result = drive_steps(conn, dialog, credentials, deadline, saved, _refusal)
    except BaseException:
        # Fail closed: a handle whose upgrade failed is in an unknown protocol
        # state and must not be used in plaintext by mistake.
        try:
            conn.close()
        except InetError:
            pass  # e.g. not the owner: the original error says more
        raise
    conn.timeout = saved
    return result


def drive_steps(
    conn: Connection,
    dialog: Dialog,
    credentials: SecurityCredentials | None,
    deadline: float | None,
    timeout: float | None,
    refusal: Callable[[Connection, Dialog, Refused], InetError],
) -> object:
    """The driver loop: one I/O call per step, each with what is left of the deadline.

    It runs the STARTTLS dialogs and the proxy dialogs (``inetkit._proxy``)
    alike; ``refusal`` makes the error of a `Refused` step (`SecurityError`
    here, `ProxyError` there), and a refusal the loop makes itself carries
    the dialog's ``oversize_code``.
    """
    step = dialog.start()
    for _ in range(MAX_STEPS):
        if isinstance(step, Done):
            return step.result
        if isinstance(step, Refused):
            raise refusal(conn, dialog, step)
        conn.timeout = _remaining(deadline, timeout)
        if isinstance(step, Send):
            conn.write(step.data)
            step = dialog.proceed()
        elif isinstance(step, ReadLine):
            try:
                line = conn.read_line(step.max_length)
            except InetError as exc:
                if exc.code is not ErrorCode.LINE_TOO_LONG:
                    raise
                too_long = f"a reply line longer than {step.max_length} bytes"
                refused = Refused(dialog.oversize_code, too_long)
                raise refusal(conn, dialog, refused) from None
            step = dialog.receive(line)
        elif isinstance(step, ReadExactly):
            try:
                data = conn.read_exactly(step.count)
            except ConnectionClosedError:
                # The stream ended first: hand over what came before the end
                # (it stayed buffered), and the dialog says the server hung up.
                data = conn.read(step.count) if conn._buffer else b""
            step = dialog.receive(data)
        elif isinstance(step, ReadSome):
            step = dialog.receive(conn.read(step.max_bytes))
        elif isinstance(step, StartTLS):
            conn.enable_security(credentials)
            step = dialog.proceed()
        else:  # pragma: no cover - Step is a closed union
            raise AssertionError(f"unknown dialog step {step!r}")
    raise refusal(conn, dialog, Refused(dialog.oversize_code, f"no end after {MAX_STEPS} steps"))


class _Named(TypingProtocol):
    """What a refusal's message names: the handle's host and port (blocking or asyncio handle)."""

    @property
    def host_name(self) -> str: ...
    @property
    def port(self) -> int: ...


def _refusal(conn: _Named, dialog: Dialog, refused: Refused) -> SecurityError:
    """The error for a `Refused` step, naming the dialog, host and port, and the handle's state."""
    where = f"{conn.host_name} port {conn.port}"
    state = "is closed" if refused.after_tls else "was not upgraded and is closed"
    if refused.code is ErrorCode.STARTTLS_REFUSED:
        message = f"STARTTLS ({dialog.name}) with {where} refused: {refused.reason}; the connection {state}"
    else:
        message = f"STARTTLS ({dialog.name}) with {where}: {refused.reason}; the connection {state}"
    return SecurityError(message, refused.code)


def _check(name: str, conn: object, deadline: object, client_name: object) -> None:
    """Misuse is refused before any I/O, and the handle is left as it was."""
    from ._connection import Connection

    if not isinstance(conn, Connection):
        raise TypeError(f"starttls.{name}() needs an inetkit.Connection, not {type(conn).__name__}")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, int | float)):
        raise TypeError(f"deadline must be a time.monotonic() value or None, not {type(deadline).__name__}")
    if client_name is not None:
        if not isinstance(client_name, str):
            raise TypeError(f"client_name must be a str or None, not {type(client_name).__name__}")
        if not client_name or any(c.isspace() for c in client_name):
            raise InvalidArgumentError(
                f"client_name must be one word (a domain or an address literal), got {client_name!r}",
                ErrorCode.INVALID_ARGUMENT,
            )
    where = f"{conn.host_name} port {conn.port}"
    if conn.protocol is Protocol.UDP:
        raise InvalidArgumentError(
            f"STARTTLS ({name}) with {where}: the handle is UDP; STARTTLS needs TCP",
            ErrorCode.INVALID_ARGUMENT,
        )
    if conn.is_secure:
        raise SecurityError(
            f"STARTTLS ({name}) with {where}: the connection is already secure", ErrorCode.ALREADY_SECURE
        )


def _run(
    name: str,
    conn: Connection,
    credentials: SecurityCredentials | None,
    deadline: float | None,
    client_name: str | None = None,
) -> object:
    """Check the arguments, make the dialog ``name`` for this connection, and drive it."""
    _check(name, conn, deadline, client_name)
    dialog = new_dialog(name, conn.host_name, conn.local_address[0], client_name=client_name)
    result = _drive(conn, dialog, credentials, deadline)
    if isinstance(dialog, SMTPDialog):
        conn._starttls_extensions = dialog.extensions
    return result


def smtp(
    conn: Connection,
    credentials: SecurityCredentials | None = None,
    *,
    client_name: str | None = None,
    deadline: float | None = None,
) -> list[str]:
    """SMTP STARTTLS (RFC 3207): greeting, EHLO, STARTTLS, TLS, EHLO again.

    Returns the EHLO keywords the server offers over TLS (upper-cased); the
    handle is ready for MAIL or AUTH. ``client_name`` is sent in EHLO
    (default: an address literal of our end). ``credentials`` default to
    those the connect was given; ``deadline`` (on `time.monotonic`) bounds
    the whole dialog, else each step gets the handle's timeout.
    """
    keywords = _run("smtp", conn, credentials, deadline, client_name)
    assert isinstance(keywords, list)
    return keywords


def imap(
    conn: Connection, credentials: SecurityCredentials | None = None, *, deadline: float | None = None
) -> None:
    """IMAP STARTTLS (RFC 3501 §6.2.1): greeting ``* OK``, CAPABILITY listing STARTTLS, STARTTLS, TLS.

    The caller speaks next over TLS (CAPABILITY again, LOGIN, ...).
    """
    _run("imap", conn, credentials, deadline)


def pop3(
    conn: Connection, credentials: SecurityCredentials | None = None, *, deadline: float | None = None
) -> None:
    """POP3 STLS (RFC 2595 §4): greeting ``+OK``, CAPA (optional), STLS ``+OK``, TLS.

    The caller speaks next over TLS (CAPA, USER/PASS, ...).
    """
    _run("pop3", conn, credentials, deadline)


def ftp(
    conn: Connection, credentials: SecurityCredentials | None = None, *, deadline: float | None = None
) -> None:
    """FTP AUTH TLS (RFC 4217): greeting 220, AUTH TLS 234, TLS, then PBSZ 0 and PROT P (200 each).

    The caller logs in next (USER/PASS) over TLS; data connections are protected.
    """
    _run("ftp", conn, credentials, deadline)


def postgres(
    conn: Connection, credentials: SecurityCredentials | None = None, *, deadline: float | None = None
) -> None:
    """PostgreSQL SSLRequest: the single byte ``S`` is the go-ahead, then TLS.

    The caller sends its StartupMessage next over TLS.
    """
    _run("postgres", conn, credentials, deadline)


def ldap(
    conn: Connection, credentials: SecurityCredentials | None = None, *, deadline: float | None = None
) -> None:
    """LDAP StartTLS extended operation (RFC 4511 §4.14): resultCode 0 is the go-ahead, then TLS.

    The caller binds next over TLS.
    """
    _run("ldap", conn, credentials, deadline)


def xmpp(
    conn: Connection, credentials: SecurityCredentials | None = None, *, deadline: float | None = None
) -> None:
    """XMPP STARTTLS (RFC 6120 §5): a stream to the host name, the starttls feature, ``<proceed/>``, TLS.

    The caller opens a new stream next over TLS.
    """
    _run("xmpp", conn, credentials, deadline)


#: Dialogs by name, as accepted by ``connect(starttls=...)``: one public
#: function per name of `inetkit._core.dialogs.NAMES`, in that order.
DIALOGS: dict[str, Callable[..., object]] = {name: globals()[name] for name in NAMES}


def run_dialog(name: str, conn: Connection, deadline: float | None) -> None:
    """Run the dialog ``name`` on ``conn`` under the connect deadline (inetkit-internal).

    The handshake uses the credentials the connect was given
    (`Connection.enable_security` falls back to them).
    """
    dialog = DIALOGS.get(name)
    if dialog is None:
        raise InvalidArgumentError(
            f"unknown starttls dialog {name!r}; known: {', '.join(DIALOGS)}",
            ErrorCode.INVALID_ARGUMENT,
        )
    dialog(conn, deadline=deadline)
