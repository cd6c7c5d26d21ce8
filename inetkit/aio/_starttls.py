"""The asyncio driver of the STARTTLS and proxy dialogs: the `Dialog` objects ``inetkit.starttls`` drives.

A dialog (``_core.dialogs``, no I/O) says what to do next: send, read a
line, read exactly n bytes, read some, start TLS, done, refused. This module
performs each step on an `AsyncConnection`, every call under the one
deadline (each step's timeout is what is left of it), exactly as the
blocking driver (``starttls.drive_steps``) does, with its messages
(``starttls._refusal``; the proxy driver ``aio._proxy`` passes the proxy
dialogs' own, ``_proxy.refusal``). A STARTTLS run fails
closed: on any failure, a cancellation included, the handle is closed at
once, never left in plaintext.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .._core.dialogs import (
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
from .._errors import ConnectionClosedError, ErrorCode, InetError, InvalidArgumentError
from ..starttls import MAX_STEPS, _refusal, _remaining

if TYPE_CHECKING:
    from .._credentials import SecurityCredentials
    from ._connection import AsyncConnection

__all__ = ["drive_steps", "run_dialog"]

#: What makes the error of a `Refused` step (`SecurityError` for STARTTLS, `ProxyError` for proxies).
Refusal = Callable[["AsyncConnection", Dialog, Refused], InetError]


async def run_dialog(
    name: str,
    conn: AsyncConnection,
    deadline: float | None,
    credentials: SecurityCredentials | None = None,
    *,
    client_name: str | None = None,
) -> object:
    """Run the dialog ``name`` on ``conn`` under ``deadline``; return what its `Done` step carries.

    Without a ``deadline`` each step gets the handle's own I/O timeout.
    ``credentials`` default to the connect's (`AsyncConnection.enable_security`
    falls back to them). The handle is closed if anything fails.
    """
    if name not in NAMES:
        raise InvalidArgumentError(
            f"unknown starttls dialog {name!r}; known: {', '.join(NAMES)}",
            ErrorCode.INVALID_ARGUMENT,
        )
    saved = conn.timeout
    try:
        dialog = new_dialog(name, conn.host_name, conn.local_address[0], client_name=client_name)
        result = await drive_steps(conn, dialog, credentials, deadline, saved, _refusal)
        if isinstance(dialog, SMTPDialog):
            conn._starttls_extensions = dialog.extensions
    except BaseException:
        # Fail closed: a handle whose upgrade failed is in an unknown protocol state.
        conn._close_now()
        raise
    conn.timeout = saved
    return result


async def drive_steps(
    conn: AsyncConnection,
    dialog: Dialog,
    credentials: SecurityCredentials | None,
    deadline: float | None,
    timeout: float | None,
    refusal: Refusal,
) -> object:
    """The driver loop: one I/O call per step, each with what is left of the deadline.

    ``starttls.drive_steps`` on the event loop: ``refusal`` makes the error
    of a `Refused` step, and a refusal the loop makes itself carries the
    dialog's ``oversize_code``.
    """
    step = dialog.start()
    for _ in range(MAX_STEPS):
        if isinstance(step, Done):
            return step.result
        if isinstance(step, Refused):
            raise refusal(conn, dialog, step)
        conn.timeout = _remaining(deadline, timeout)
        if isinstance(step, Send):
            await conn.write(step.data)
            step = dialog.proceed()
        elif isinstance(step, ReadLine):
            try:
                line = await conn.read_line(step.max_length)
            except InetError as exc:
                if exc.code is not ErrorCode.LINE_TOO_LONG:
                    raise
                too_long = f"a reply line longer than {step.max_length} bytes"
                refused = Refused(dialog.oversize_code, too_long)
                raise refusal(conn, dialog, refused) from None
            step = dialog.receive(line)
        elif isinstance(step, ReadExactly):
            try:
                data = await conn.read_exactly(step.count)
            except ConnectionClosedError:
                # The stream ended first: hand over what came before the end
                # (it stayed buffered), and the dialog says the server hung up.
                data = await conn.read(step.count) if conn._buffer else b""
            step = dialog.receive(data)
        elif isinstance(step, ReadSome):
            step = dialog.receive(await conn.read(step.max_bytes))
        elif isinstance(step, StartTLS):
            await conn.enable_security(credentials)
            step = dialog.proceed()
        else:  # pragma: no cover - Step is a closed union
            raise AssertionError(f"unknown dialog step {step!r}")
    raise refusal(conn, dialog, Refused(dialog.oversize_code, f"no end after {MAX_STEPS} steps"))
