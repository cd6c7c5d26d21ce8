"""STARTTLS dialogs as sans-I/O objects: fed what the server said, answering with what to do next.

One module per protocol (`smtp`, `imap`, `pop3`, `ftp`, `postgres`, `ldap`,
`xmpp`), each a `Dialog` subclass whose script follows the protocol's RFC;
`_steps` defines the steps they answer with (`Send`, `ReadLine`,
`ReadExactly`, `ReadSome`, `StartTLS`, `Done`, `Refused`). Drivers own the
socket and the deadline: the blocking one is ``inetkit.starttls``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._steps import Dialog, Done, ReadExactly, ReadLine, ReadSome, Refused, Send, StartTLS, Step

if TYPE_CHECKING:
    from .ftp import FTPDialog
    from .imap import IMAPDialog
    from .ldap import LDAPDialog
    from .pop3 import POP3Dialog
    from .postgres import PostgresDialog
    from .smtp import SMTPDialog
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

#: Dialog classes by name, loaded with their module on first use: the proxy
#: dialogs share the step vocabulary and should not load xmpp's XML helpers.
_CLASSES = {
    "FTPDialog": "ftp",
    "IMAPDialog": "imap",
    "LDAPDialog": "ldap",
    "POP3Dialog": "pop3",
    "PostgresDialog": "postgres",
    "SMTPDialog": "smtp",
    "XMPPDialog": "xmpp",
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """A dialog class, its module imported the first time it is asked for (PEP 562)."""
        module = _CLASSES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value


def new_dialog(name: str, host_name: str, local_ip: str, *, client_name: str | None = None) -> Dialog:
    """A fresh dialog ``name`` for a connection to ``host_name`` from ``local_ip``.

    ``host_name`` is what xmpp puts in ``to=``; ``local_ip`` gives smtp its
    EHLO address literal unless ``client_name`` is given. Raises `KeyError`
    for an unknown name.
    """
    if name == "smtp":
        from .smtp import SMTPDialog, ehlo_name

        return SMTPDialog(client_name or ehlo_name(local_ip))
    if name == "xmpp":
        from .xmpp import XMPPDialog

        return XMPPDialog(host_name)
    if name not in NAMES:
        raise KeyError(name)
    import importlib

    module = importlib.import_module(f".{name}", __name__)
    simple: type[Dialog] = getattr(module, next(cls for cls, mod in _CLASSES.items() if mod == name))
    return simple()
