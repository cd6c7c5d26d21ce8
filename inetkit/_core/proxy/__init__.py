"""Proxy dialogs as sans-I/O objects, in the step vocabulary of the STARTTLS dialogs.

`parse_proxy` checks a ``proxy=`` URL (``url``); `new_proxy_dialog` makes
the dialog that asks that proxy for a tunnel to the target: HTTP CONNECT
(``http_connect``, for ``http://`` and ``https://`` proxies) or SOCKS
(``socks``: SOCKS5 for ``socks5://``/``socks5h://``, SOCKS4a). Each dialog
is a `Dialog` (``_core.dialogs._steps``): it answers with `Send`,
`ReadLine`, `ReadExactly`, `Done` or `Refused` steps, so the drivers that
run the STARTTLS dialogs run these unchanged (the blocking one:
``inetkit._proxy``). No socket, clock or lock here.
"""

from __future__ import annotations

from ..dialogs._steps import Dialog
from .http_connect import HTTPConnectDialog
from .socks import SOCKS4aDialog, SOCKS5Dialog
from .url import SCHEMES, Proxy, parse_proxy

__all__ = [
    "SCHEMES",
    "HTTPConnectDialog",
    "Proxy",
    "SOCKS4aDialog",
    "SOCKS5Dialog",
    "new_proxy_dialog",
    "parse_proxy",
]


def new_proxy_dialog(proxy: Proxy, host: str, port: int) -> Dialog:
    """The dialog that asks ``proxy`` for a tunnel to ``host`` port ``port``.

    ``host`` is the target's normalized name, or for ``socks5://`` the
    address the client resolved it to.
    """
    scheme = proxy.scheme
    if scheme in ("http", "https"):
        return HTTPConnectDialog(host, port, proxy.username, proxy.password)
    if scheme == "socks4a":
        return SOCKS4aDialog(host, port, proxy.username)
    return SOCKS5Dialog(host, port, proxy.username, proxy.password)
