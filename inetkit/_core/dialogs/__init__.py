"""STARTTLS dialogs as sans-I/O objects: fed what the server said, answering with what to do next.

One module per protocol (`smtp`, `imap`, `pop3`, `ftp`, `postgres`, `ldap`,
`xmpp`), each a `Dialog` subclass whose script follows the protocol's RFC;
`_steps` defines the steps they answer with (`Send`, `ReadLine`,
`ReadExactly`, `ReadSome`, `StartTLS`, `Done`, `Refused`). Drivers own the
socket and the deadline: the blocking one is ``inetkit.starttls``.
"""

from __future__ import annotations

from ._steps import Dialog, Done, ReadExactly, ReadLine, ReadSome, Refused, Send, StartTLS, Step
from .ftp import FTPDialog
from .imap import IMAPDialog
from .ldap import LDAPDialog
from .pop3 import POP3Dialog
from .postgres import PostgresDialog
from .smtp import SMTPDialog, ehlo_name
from .xmpp import XMPPDialog

__all__ = [
    "NAMES",
    "Dialog",
    "Done",
    "FTPDialog",
    "IMAPDialog",
    "LDAPDialog",
    "POP3Dialog",
    "PostgresDialog",
    "ReadExactly",
    "ReadLine",
    "ReadSome",
    "Refused",
    "SMTPDialog",
    "Send",
    "StartTLS",
    "Step",
    "XMPPDialog",
    "new_dialog",
]

#: Every dialog's name, as ``connect(starttls=...)`` accepts it.
NAMES = ("smtp", "imap", "pop3", "ftp", "postgres", "ldap", "xmpp")


def new_dialog(name: str, host_name: str, local_ip: str, *, client_name: str | None = None) -> Dialog:
    """A fresh dialog ``name`` for a connection to ``host_name`` from ``local_ip``.

    ``host_name`` is what xmpp puts in ``to=``; ``local_ip`` gives smtp its
    EHLO address literal unless ``client_name`` is given. Raises `KeyError`
    for an unknown name.
    """
    if name == "smtp":
        return SMTPDialog(client_name or ehlo_name(local_ip))
    if name == "xmpp":
        return XMPPDialog(host_name)
    simple: dict[str, type[Dialog]] = {
        "imap": IMAPDialog,
        "pop3": POP3Dialog,
        "ftp": FTPDialog,
        "postgres": PostgresDialog,
        "ldap": LDAPDialog,
    }
    return simple[name]()
