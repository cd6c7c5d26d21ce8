"""inetkit: client network connections in one call.

``inetkit.connect(host, port, ...)`` resolves a host (hosts files, then DNS,
with IDNA 2008), applies socket option flags, races the IPv4/IPv6 addresses
(RFC 8305) under one deadline, optionally starts TLS, and returns a
`Connection` handle owned by one thread, handed to another, or shared.

``import inetkit`` stays cheap: it loads the error classes and the option
types, which every caller needs; the rest (the connect driver, the handle,
the resolver, the TLS names with `hashlib`, `datetime` and the TLS
machinery) loads the first time one of its names is used (PEP 562 module
``__getattr__``). A command-line tool that imports inetkit and exits on a
usage error pays for no more than that; the first `connect` pays for the
driver once (the ``import inetkit + first connect`` benchmark row shows the
sum). A program that drops privileges or chroots after importing should
import the names it uses first (``from inetkit import connect``), so that
their modules are loaded while the package's files can still be read.
"""

import typing as _typing

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
from ._types import KeepAlive, Option, Protocol

if _typing.TYPE_CHECKING:
    from ._connect import DEFAULT_TIMEOUT, connect, connect_url
    from ._connection import Connection
    from ._core.race import CONNECTION_ATTEMPT_DELAY
    from ._credentials import SecurityCredentials
    from ._hostname import normalize_host_name
    from ._proxy_env import proxy_from_environment
    from ._resolver import Resolver
    from ._tls import CertificateInfo, SecurityInfo
    from ._trace import Attempt, ConnectTrace, ProxyPhase, Resolution

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
    "proxy_from_environment",
]

#: Public names whose modules load on first use: name -> module in this package.
_LAZY = {
    "CONNECTION_ATTEMPT_DELAY": "_core.race",
    "DEFAULT_TIMEOUT": "_connect",
    "connect": "_connect",
    "connect_url": "_connect",
    "Connection": "_connection",
    "normalize_host_name": "_hostname",
    "Resolver": "_resolver",
    "Attempt": "_trace",
    "ConnectTrace": "_trace",
    "ProxyPhase": "_trace",
    "Resolution": "_trace",
    "SecurityCredentials": "_credentials",
    "proxy_from_environment": "_proxy_env",
    "CertificateInfo": "_tls",
    "SecurityInfo": "_tls",
}

# Hidden from type checkers, which see the names through the imports above:
# a visible module __getattr__ would make them accept any misspelled
# ``inetkit.name`` as an `object`.
if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Load a name's module the first time the name is used (PEP 562)."""
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
