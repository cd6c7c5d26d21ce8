"""The error model: `ErrorCode`, the `InetError` tree, and one translator.

Theory of operation
-------------------
Every failure inetkit reports is an `InetError`, a subclass of `OSError`, with
a stable `ErrorCode` in `.code`. Each subclass also derives from the matching
built-in exception (`ValueError`, `TimeoutError`, `ConnectionRefusedError`,
`ssl.SSLError`, ...) so that ``except`` clauses written for the standard
library keep working.

Three kinds of failure are kept apart, because the user's next step differs:

* "you misused the API" -> `TypeError` or `InvalidArgumentError`, raised
  before any I/O;
* "you closed it" -> `InetError` with `HANDLE_CLOSED`;
* "the network broke it" -> the translated `OSError` / `ssl.SSLError`.

`translate_os_error` is the only place that turns an errno (or a
``getaddrinfo`` EAI_* number) into a class and a code; everything else calls
it, always with ``raise ... from exc``. An
`ssl.SSLError` given to it goes on to its TLS half, ``_tls.errors``
(OpenSSL's reasons and verification results), which in turn classifies the
plain OS errors met during a handshake through this errno table.

Pickling: `OSError.__reduce__` rebuilds an exception from ``args`` only, which
would lose ``code``, ``attempts`` and ``trace``; `InetError.__reduce__`
carries them explicitly.
"""

from __future__ import annotations

import enum
import errno as _errno
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

__all__ = [
    "CancelledError",
    "CertificateError",
    "ConnectionClosedError",
    "ErrorCode",
    "HostNotFoundError",
    "InetConnectionError",
    "InetConnectionRefusedError",
    "InetConnectionResetError",
    "InetError",
    "InetTimeoutError",
    "InvalidArgumentError",
    "OwnershipError",
    "ProxyError",
    "SecurityError",
    "translate_os_error",
]

_C = TypeVar("_C")

if TYPE_CHECKING:
    # What type checkers see: ordinary enum classes.
    IntEnumBody = enum.IntEnum
    IntFlagBody = enum.IntFlag
else:
    # At run time the class statement builds a plain class, and `fast_enum`
    # turns it into the enum.
    IntEnumBody = IntFlagBody = object


def fast_enum(etype: type[enum.Enum]) -> Callable[[type[_C]], type[_C]]:
    """Build the decorated class (members as class attributes) as an ``etype`` enum.

    Python 3.11's `enum.EnumType` takes about 15 us per member to build a
    class (alias scan, descriptor per member, checks); `ErrorCode`, `Option`
    and `Protocol` together cost about a millisecond at ``import inetkit``,
    half of that saved here. The standard library builds its own enums
    (``http.HTTPStatus``, ``re.RegexFlag``) with `enum._simple_enum`, which
    fills the same tables without the checks; its result is the enum the
    class statement would have built (tests/test_values.py compares them).
    Where that private helper does not exist the class is built with the
    functional API instead, the slower way to the same enum. Write the class
    as ``@fast_enum(enum.IntEnum) class Name(IntEnumBody): ...`` (or
    `IntFlagBody`), so that type checkers see an ordinary enum.
    """
    simple = getattr(enum, "_simple_enum", None)
    if simple is not None:
        build = simple(etype)
        return lambda cls: _members_in_class_dict(build(cls))
    return lambda cls: enum_by_functional_api(etype, cls)  # pragma: no cover - Python without _simple_enum


def _members_in_class_dict(built: type[_C]) -> type[_C]:
    """Each member straight in the class's dict, where a class statement puts it.

    Python 3.11's `enum._simple_enum` puts an `enum.property` in front of
    every member, whose Python-level ``__get__`` makes ``Option.SECURE``
    cost about 0.5 us (``http.HTTPStatus.OK`` too) against 0.1 us for a
    class-statement enum's member. A member whose name a base class also
    defines keeps its property, as a class statement would give it.
    """
    inherited: set[str] = set()
    for base in built.__mro__[1:]:
        inherited.update(vars(base))
    own = vars(built)
    members: dict[str, object] = getattr(built, "_member_map_", {})
    for name, member in members.items():
        if name not in inherited and type(own.get(name)) is enum.property:
            type.__setattr__(built, name, member)
    return built


def enum_by_functional_api(etype: type[enum.Enum], cls: type[_C]) -> type[_C]:
    """``etype(name, members)``: `fast_enum` where `enum._simple_enum` is missing."""
    members = [(name, value) for name, value in vars(cls).items() if not name.startswith("_")]
    # Calling an enum class with a name and members creates a new enum class.
    functional = cast("Callable[..., type[_C]]", etype)
    built = functional(cls.__name__, members, module=cls.__module__, qualname=cls.__qualname__)
    built.__doc__ = cls.__doc__
    return built


@fast_enum(enum.IntEnum)
class ErrorCode(IntEnumBody):
    """inetkit's own stable error numbers (documented in ``docs/errors.md``).

    The values are grouped by area and never reused: 0 means success (what
    `compat.InetGetLastError` returns after a call that worked).
    """

    SUCCESS = 0
    # Arguments (1xx)
    INVALID_ARGUMENT = 100
    INVALID_HOST_NAME = 101
    INVALID_PORT = 102
    # Resolution (2xx)
    HOST_NOT_FOUND = 200
    # Connecting and transport (3xx)
    TIMED_OUT = 300
    CONNECTION_REFUSED = 301
    CONNECTION_RESET = 302
    CONNECTION_CLOSED = 303
    NETWORK_UNREACHABLE = 304
    HOST_UNREACHABLE = 305
    ADDRESS_IN_USE = 306
    ADDRESS_NOT_AVAILABLE = 307
    CONNECTION_ABORTED = 308
    NETWORK_ERROR = 309
    #: A TLS stream ended without close_notify (appended: values never move).
    TLS_TRUNCATED = 310
    # Handle state (4xx)
    HANDLE_CLOSED = 400
    NOT_HANDLE_OWNER = 401
    HANDLE_BUSY = 402
    CANCELLED = 403
    LINE_TOO_LONG = 404
    PERMISSION_DENIED = 405
    # Security (5xx)
    HANDSHAKE_FAILED = 500
    PROTOCOL_VERSION = 501
    CLIENT_CERTIFICATE_REQUIRED = 502
    CLIENT_CERTIFICATE_REJECTED = 503
    INVALID_CREDENTIALS = 504
    CERTIFICATE_NOT_FOUND = 505
    PIN_MISMATCH = 506
    STARTTLS_REFUSED = 507
    UNEXPECTED_PLAINTEXT = 508
    ALREADY_SECURE = 509
    CERTIFICATE_UNTRUSTED = 520
    CERTIFICATE_EXPIRED = 521
    CERTIFICATE_NOT_YET_VALID = 522
    CERTIFICATE_NAME_MISMATCH = 523
    # Proxies (6xx)
    #: The proxy denied the target (HTTP status not 2xx, SOCKS reply not 0).
    PROXY_REFUSED = 600
    #: The proxy wants credentials, or refused the ones given (HTTP 407, SOCKS auth).
    PROXY_AUTH_REQUIRED = 601
    #: The proxy's answer is malformed (not HTTP, not SOCKS, oversize, cut short).
    PROXY_PROTOCOL = 602


class InetError(OSError):
    """Base class of every error inetkit reports.

    Attributes:
        code: the `ErrorCode`.
        errno: the operating system's errno when there was one, else ``None``.
        message: what happened, naming the host, port or address.
        attempts: for a connect that tried several addresses, each attempt's
            own error, most preferred address first.
        trace: the connect's trace (see `Connection.trace`) for errors raised
            by `connect`, else ``None``.
        bytes_sent: for a `write` that failed part-way, how much was sent.
    """

    default_code: ErrorCode = ErrorCode.NETWORK_ERROR

    code: ErrorCode
    message: str
    attempts: tuple[InetError, ...]
    trace: Any
    bytes_sent: int | None

    def __init__(
        self,
        message: str,
        code: ErrorCode | None = None,
        *,
        errno: int | None = None,
        attempts: Sequence[InetError] = (),
        trace: Any = None,
        bytes_sent: int | None = None,
    ) -> None:
        # OSError(errno, strerror) fills .errno/.strerror; OSError(message)
        # leaves them None. Either way str(exc) must be our message.
        if errno is not None:
            super().__init__(errno, message)
        else:
            super().__init__(message)
        self.code = code if code is not None else self.default_code
        self.message = message
        self.attempts = tuple(attempts)
        self.trace = trace
        self.bytes_sent = bytes_sent

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code.name})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                type(self),
                self.message,
                int(self.code),
                self.errno,
                self.attempts,
                self.trace,
                self.bytes_sent,
            ),
        )


def _rebuild(
    cls: type[InetError],
    message: str,
    code: int,
    errno: int | None,
    attempts: tuple[InetError, ...],
    trace: Any,
    bytes_sent: int | None,
) -> InetError:
    exc = cls.__new__(cls)
    InetError.__init__(
        exc,
        message,
        ErrorCode(code),
        errno=errno,
        attempts=attempts,
        trace=trace,
        bytes_sent=bytes_sent,
    )
    return exc


class InvalidArgumentError(InetError, ValueError):
    """A value of the right type that is not valid (raised before any I/O)."""

    default_code = ErrorCode.INVALID_ARGUMENT


class HostNotFoundError(InetError):
    """The host name could not be resolved to any address."""

    default_code = ErrorCode.HOST_NOT_FOUND


class InetTimeoutError(InetError, TimeoutError):
    """The deadline ran out (connect) or the I/O timeout expired."""

    default_code = ErrorCode.TIMED_OUT


class InetConnectionError(InetError, ConnectionError):
    """The network refused, reset or could not route the connection."""

    default_code = ErrorCode.NETWORK_ERROR


class InetConnectionRefusedError(InetConnectionError, ConnectionRefusedError):
    """Nothing listens at the address (TCP RST on connect)."""

    default_code = ErrorCode.CONNECTION_REFUSED


class InetConnectionResetError(InetConnectionError, ConnectionResetError):
    """The peer reset the connection."""

    default_code = ErrorCode.CONNECTION_RESET


class ProxyError(InetConnectionError):
    """The proxy refused the target, wanted credentials, or answered in a way that is not its protocol.

    A failure to reach the proxy at all (refused, reset, timed out) is not a
    `ProxyError`: it keeps its usual class and code, and its message says
    that the proxy was the peer.
    """

    default_code = ErrorCode.PROXY_REFUSED


class ConnectionClosedError(InetError, ConnectionError):
    """The peer closed the connection before the expected data arrived."""

    default_code = ErrorCode.CONNECTION_CLOSED


class SecurityError(InetError, ssl.SSLError):
    """TLS could not be set up or was refused.

    ``reason`` and ``library`` carry OpenSSL's names when the failure came
    from OpenSSL, else None.
    """

    default_code = ErrorCode.HANDSHAKE_FAILED
    reason: str | None = None  # type: ignore[assignment]  # None when OpenSSL was not involved
    library: str | None = None  # type: ignore[assignment]


class CertificateError(SecurityError, ssl.SSLCertVerificationError):
    """The server's certificate failed verification."""

    default_code = ErrorCode.CERTIFICATE_UNTRUSTED


class OwnershipError(InetError):
    """The calling thread does not own the handle, or the handle is busy."""

    default_code = ErrorCode.NOT_HANDLE_OWNER


class CancelledError(InetError):
    """A blocked call was interrupted by `Connection.cancel()`."""

    default_code = ErrorCode.CANCELLED


# Tracebacks and reprs name the classes where users import them from
# (``inetkit.InetTimeoutError``, not ``inetkit._errors.InetTimeoutError``);
# pickle finds them there too, since the package exports every one.
for _public in (
    ErrorCode,
    InetError,
    InvalidArgumentError,
    HostNotFoundError,
    InetTimeoutError,
    InetConnectionError,
    InetConnectionRefusedError,
    InetConnectionResetError,
    ProxyError,
    ConnectionClosedError,
    SecurityError,
    CertificateError,
    OwnershipError,
    CancelledError,
):
    _public.__module__ = "inetkit"
del _public


# errno -> (class, code). Anything not listed is a generic InetConnectionError.
_ERRNO_MAP: dict[int, tuple[type[InetError], ErrorCode]] = {
    _errno.ECONNREFUSED: (InetConnectionRefusedError, ErrorCode.CONNECTION_REFUSED),
    _errno.ECONNRESET: (InetConnectionResetError, ErrorCode.CONNECTION_RESET),
    _errno.EPIPE: (InetConnectionResetError, ErrorCode.CONNECTION_RESET),
    _errno.ECONNABORTED: (InetConnectionError, ErrorCode.CONNECTION_ABORTED),
    _errno.ETIMEDOUT: (InetTimeoutError, ErrorCode.TIMED_OUT),
    _errno.ENETUNREACH: (InetConnectionError, ErrorCode.NETWORK_UNREACHABLE),
    _errno.ENETDOWN: (InetConnectionError, ErrorCode.NETWORK_UNREACHABLE),
    _errno.EHOSTUNREACH: (InetConnectionError, ErrorCode.HOST_UNREACHABLE),
    _errno.EHOSTDOWN: (InetConnectionError, ErrorCode.HOST_UNREACHABLE),
    _errno.EADDRINUSE: (InetConnectionError, ErrorCode.ADDRESS_IN_USE),
    _errno.EADDRNOTAVAIL: (InetConnectionError, ErrorCode.ADDRESS_NOT_AVAILABLE),
    _errno.EACCES: (InetError, ErrorCode.PERMISSION_DENIED),
    _errno.EPERM: (InetError, ErrorCode.PERMISSION_DENIED),
    _errno.EAFNOSUPPORT: (InetConnectionError, ErrorCode.ADDRESS_NOT_AVAILABLE),
    _errno.EBADF: (InetError, ErrorCode.HANDLE_CLOSED),
    # A datagram larger than the path allows is the caller's to split.
    _errno.EMSGSIZE: (InvalidArgumentError, ErrorCode.INVALID_ARGUMENT),
}

# What to tell the user to do next, per code, appended to the message.
_HINTS: dict[ErrorCode, str] = {
    ErrorCode.CONNECTION_REFUSED: "nothing is listening there; check the host and port",
    ErrorCode.NETWORK_UNREACHABLE: "no route to that network; check the address family and routes",
    ErrorCode.HOST_UNREACHABLE: "the host does not answer; check that it is up",
    ErrorCode.ADDRESS_IN_USE: "the local address is taken; choose another local port",
    ErrorCode.ADDRESS_NOT_AVAILABLE: (
        "the local address does not exist on this machine or does not fit the address family"
    ),
    ErrorCode.PERMISSION_DENIED: "the operating system refused the operation",
}


def _gai_reason(exc: socket.gaierror) -> str:
    """What a ``getaddrinfo`` failure means, in words a user can act on."""
    code = exc.errno
    if code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
        return "no such host (the name has no address)"
    if code == socket.EAI_AGAIN:
        return "temporary failure in name resolution (the DNS server did not answer; try again later)"
    if code == socket.EAI_FAIL:
        return "the DNS server failed to answer"
    return exc.strerror or str(exc)


def translate_os_error(
    exc: BaseException,
    *,
    action: str,
    target: str,
    hint: str | None = None,
) -> InetError:
    """Turn an `OSError` into the matching `InetError` subclass.

    ``action`` says what was being done ("connect", "read", "write", ...),
    ``target`` names the host/port/address ("example.com port 443 (192.0.2.1)").
    ``hint`` replaces the code's usual advice when the caller knows better
    what to do next. The caller raises the result ``from exc``. An
    `InetError` is returned as it is.
    """
    if isinstance(exc, InetError):
        return exc
    if isinstance(exc, ssl.SSLError):
        # OpenSSL's failures have their own table (verification results,
        # alerts); it lives with the TLS code and is loaded only when needed.
        from ._tls.errors import map_ssl_error

        return map_ssl_error(exc, target=target, credentials_given=False)
    if isinstance(exc, socket.gaierror):
        # getaddrinfo's own numbers (EAI_*), not errnos: the name was not found.
        return HostNotFoundError(
            f"host name {target} not found: {_gai_reason(exc)}", ErrorCode.HOST_NOT_FOUND
        )
    if isinstance(exc, TimeoutError) and getattr(exc, "errno", None) is None:
        return InetTimeoutError(f"{action} {target}: timed out", ErrorCode.TIMED_OUT)
    err = getattr(exc, "errno", None)
    fallback = (InetConnectionError, ErrorCode.NETWORK_ERROR)
    cls, code = _ERRNO_MAP.get(err, fallback) if err else fallback
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    message = f"{action} {target} failed: {reason}"
    if hint is None:
        hint = _HINTS.get(code)
    if hint:
        message = f"{message} ({hint})"
    return cls(message, code, errno=err)
