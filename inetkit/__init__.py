"""inetkit: client network connections in one call."""

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
from ._options import KeepAlive, Option, Protocol

__version__ = "0.1.0"
