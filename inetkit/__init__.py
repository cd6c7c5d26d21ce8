"""inetkit: client network connections in one call.

``inetkit.connect(host, port, ...)`` resolves a host (hosts files, then DNS,
with IDNA 2008), applies socket option flags, races the IPv4/IPv6 addresses
(RFC 8305) under one deadline, optionally starts TLS, and returns a
`Connection` handle owned by one thread, handed to another, or shared.
"""

from ._connect import DEFAULT_TIMEOUT, connect, connect_url
from ._connection import Connection
from ._credentials import SecurityCredentials
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
    SecurityError,
)
from ._hostname import normalize_host_name
from ._options import KeepAlive, Option, Protocol
from ._resolver import Resolver
from ._tls import CertificateInfo, SecurityInfo
from ._trace import Attempt, ConnectTrace, Resolution

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
