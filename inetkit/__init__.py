"""inetkit: client network connections in one call.

``inetkit.connect(host, port, ...)`` resolves a host (hosts files, then DNS,
with IDNA 2008), applies socket option flags, races the IPv4/IPv6 addresses
(RFC 8305) under one deadline, optionally starts TLS, and returns a
`Connection` handle owned by one thread, handed to another, or shared.

``import inetkit`` stays cheap: the TLS names (`SecurityCredentials`,
`SecurityInfo`, `CertificateInfo`) load their modules, and with them
`hashlib`, `datetime` and the TLS machinery, the first time one of them is
used (PEP 562 module ``__getattr__``); everything else is imported here.
"""

import typing as _typing

from ._connect import DEFAULT_TIMEOUT, connect, connect_url
from ._connection import Connection
from ._dialer import CONNECTION_ATTEMPT_DELAY
from ._errors import (
    CancelledError,
    CertificateError,
    ConnectionClosedError,
    ErrorCode,
    HostNotFoundError,
    InetConnectionError,
    InetConnectionRefusedError,
    InetConnectionResetError,
    InetError,
    InetTimeoutError,
    InvalidArgumentError,
    OwnershipError,
    ProxyError,
    SecurityError,
)
from ._hostname import normalize_host_name
from ._options import KeepAlive, Option, Protocol
from ._resolver import Resolver
from ._trace import Attempt, ConnectTrace, ProxyPhase, Resolution

if _typing.TYPE_CHECKING:
    from ._credentials import SecurityCredentials
    from ._tls import CertificateInfo, SecurityInfo

__version__ = "0.1.0"

__all__ = [
    "CONNECTION_ATTEMPT_DELAY",
    "DEFAULT_TIMEOUT",
    "Attempt",
    "CancelledError",
    "CertificateError",
    "CertificateInfo",
    "ConnectTrace",
    "Connection",
    "ConnectionClosedError",
    "ErrorCode",
    "HostNotFoundError",
    "InetConnectionError",
    "InetConnectionRefusedError",
    "InetConnectionResetError",
    "InetError",
    "InetTimeoutError",
    "InvalidArgumentError",
    "KeepAlive",
    "Option",
    "OwnershipError",
    "Protocol",
    "ProxyError",
    "ProxyPhase",
    "Resolution",
    "Resolver",
    "SecurityCredentials",
    "SecurityError",
    "SecurityInfo",
    "__version__",
    "connect",
    "connect_url",
    "normalize_host_name",
]

#: Public names whose modules load on first use: name -> module in this package.
_LAZY = {
    "SecurityCredentials": "_credentials",
    "CertificateInfo": "_tls",
    "SecurityInfo": "_tls",
}

# Hidden from type checkers, which see the names through the imports above:
# a visible module __getattr__ would make them accept any misspelled
# ``inetkit.name`` as an `object`.
if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Load a TLS name's module the first time the name is used (PEP 562)."""
        module_name = _LAZY.get(name)
        if module_name is None:
            raise AttributeError(f"module 'inetkit' has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(f".{module_name}", __name__), name)
        globals()[name] = value  # later look-ups find it directly, without this function
        return value

    def __dir__() -> list[str]:
        """The module's names, the ones not loaded yet included."""
        return sorted({*globals(), *_LAZY})
