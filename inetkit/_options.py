"""Option flags, protocols, and applying the flags to a socket.

The numeric values of `Option` equal SocketWrench's ``INET_OPTION_*``
constants (where SocketWrench defines them) so ported code keeps its numbers;
inetkit's own flags take free bits above them.
"""

from __future__ import annotations

import _socket
import enum
import errno
import math
import socket

from ._errors import (
    ErrorCode,
    InetError,
    IntEnumBody,
    IntFlagBody,
    InvalidArgumentError,
    fast_enum,
    translate_os_error,
)
from ._log import logger

__all__ = [
    "FieldValue",
    "KeepAlive",
    "Option",
    "Protocol",
    "apply_socket_options",
    "bind_reserved_port",
    "check_timeout",
]


@fast_enum(enum.IntFlag)
class Option(IntFlagBody):
    """Connection option flags, combined with ``|``."""

    NONE = 0
    BROADCAST = 0x1
    DONTROUTE = 0x2
    KEEPALIVE = 0x4
    NODELAY = 0x10
    RESERVEDPORT = 0x40
    NOINHERIT = 0x80
    TRUSTEDSITE = 0x800
    SECURE = 0x1000
    SECURE_FALLBACK = 0x2000
    PREFER_IPV6 = 0x4000
    FREETHREAD = 0x8000


@fast_enum(enum.IntEnum)
class Protocol(IntEnumBody):
    """Transport protocol; the values are the IP protocol numbers."""

    TCP = 6
    UDP = 17


#: Every bit `Option` defines; anything else in an ``options`` value is refused.
ALL_OPTIONS = 0
for _flag in Option:
    ALL_OPTIONS |= int(_flag)
del _flag


class FieldValue:  # noqa: PLW1641 - __eq__ alone leaves it unhashable; KeepAlive hashes its fields
    """Equality and repr by fields, for the value classes written out by hand.

    Those classes stand where dataclasses would (``import inetkit`` does not
    load `dataclasses`) and keep what a dataclass gives: a subclass names
    its fields in order in ``__match_args__`` and returns their values in
    the same order from `_fields`; two instances are equal when they are of
    the same class and their fields are, and the repr is
    ``Name(field=value, ...)``. Hashing is each subclass's own choice.
    """

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        raise NotImplementedError  # pragma: no cover - every subclass defines its fields

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value!r}" for name, value in zip(self.__match_args__, self._fields(), strict=True)
        )
        return f"{type(self).__qualname__}({fields})"


class KeepAlive(FieldValue):
    """TCP keep-alive tuning, used with `Option.KEEPALIVE`.

    Attributes:
        idle: seconds of silence before the first probe (``TCP_KEEPIDLE``).
        interval: seconds between probes (``TCP_KEEPINTVL``).
        count: unanswered probes before the connection is dropped
            (``TCP_KEEPCNT``).

    A field left ``None`` keeps the operating system's default. Where the
    platform lacks a knob, that field is ignored (logged at debug level).

    An immutable value: equal when the fields are, hashable, and assigning
    a field raises `dataclasses.FrozenInstanceError` (an `AttributeError`),
    as the frozen dataclass it once was did. It is written out by hand so
    that ``import inetkit`` does not load `dataclasses`.
    """

    __slots__ = ("count", "idle", "interval")
    __match_args__ = ("idle", "interval", "count")

    idle: int | None
    interval: int | None
    count: int | None

    def __init__(
        self, idle: int | None = None, interval: int | None = None, count: int | None = None
    ) -> None:
        for name, value in (("idle", idle), ("interval", interval), ("count", count)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"KeepAlive.{name} must be an int or None, not {type(value).__name__}")
            if not 1 <= value <= 32767:  # Linux's MAX_TCP_KEEPIDLE and MAX_TCP_KEEPINTVL
                raise InvalidArgumentError(
                    f"KeepAlive.{name} must be between 1 and 32767, got {value}",
                    ErrorCode.INVALID_ARGUMENT,
                )
        object.__setattr__(self, "idle", idle)
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "count", count)

    def _fields(self) -> tuple[int | None, int | None, int | None]:
        return (self.idle, self.interval, self.count)

    def __hash__(self) -> int:
        return hash(self._fields())

    def __setattr__(self, name: str, value: object) -> None:
        raise _frozen(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise _frozen(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[KeepAlive], tuple[int | None, int | None, int | None]]:
        # Rebuilt through __init__ (which checks the values), since __setattr__ refuses.
        return (type(self), self._fields())


def _frozen(message: str) -> AttributeError:
    """The error for changing a `KeepAlive` field: the one frozen dataclasses raise."""
    from dataclasses import FrozenInstanceError  # only on this mistake: keeps `import inetkit` cheap

    return FrozenInstanceError(message)


def check_options(options: object) -> Option:
    """Validate an ``options`` argument and return it as an `Option`."""
    if type(options) is Option:  # the common case; plain int arithmetic is cheap
        if not int(options) & ~ALL_OPTIONS:
            return options
    elif isinstance(options, bool) or not isinstance(options, int):
        raise TypeError(f"options must be an Option (int flags), not {type(options).__name__}")
    bits = int(options)
    if bits & ~ALL_OPTIONS or bits < 0:
        raise InvalidArgumentError(
            f"options has unknown bits set: {bits & ~ALL_OPTIONS:#x} "
            f"(valid flags are the members of inetkit.Option)",
            ErrorCode.INVALID_ARGUMENT,
        )
    return Option(bits)


#: The flags that `apply_socket_options` acts on.
SOCKET_FLAGS = int(Option.BROADCAST | Option.DONTROUTE | Option.NODELAY | Option.KEEPALIVE)
_BROADCAST = int(Option.BROADCAST)
_DONTROUTE = int(Option.DONTROUTE)
_NODELAY = int(Option.NODELAY)
_KEEPALIVE = int(Option.KEEPALIVE)


def check_timeout(value: object, name: str) -> float | None:
    """Validate a timeout: a finite number > 0, or None for no deadline."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgumentError(
            f"{name} must be a finite number of seconds > 0, or None to wait forever; got {value!r}",
            ErrorCode.INVALID_ARGUMENT,
        )
    return seconds


def apply_socket_options(
    sock: _socket.socket, options: int, protocol: Protocol, keepalive: KeepAlive | None
) -> None:
    """Apply the socket-level flags in ``options`` to a fresh socket.

    Called before ``connect`` so that options that matter for the handshake
    (``SO_DONTROUTE``) already hold. Raises `InetError` from `OSError`.
    """
    try:
        if options & _BROADCAST:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if options & _DONTROUTE:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE, 1)
        if protocol is Protocol.TCP:
            if options & _NODELAY:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if options & _KEEPALIVE:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                if keepalive is not None:
                    _apply_keepalive(sock, keepalive)
    except OSError as exc:
        raise translate_os_error(exc, action="set socket options on", target="a new socket") from exc


_KEEPALIVE_KNOBS = (
    ("idle", "TCP_KEEPIDLE"),
    ("interval", "TCP_KEEPINTVL"),
    ("count", "TCP_KEEPCNT"),
)


def _apply_keepalive(sock: _socket.socket, keepalive: KeepAlive) -> None:
    for field, constant in _KEEPALIVE_KNOBS:
        value = getattr(keepalive, field)
        if value is None:
            continue
        opt = getattr(socket, constant, None)
        if opt is None:  # pragma: no cover - platform without the knob
            logger.debug("keep-alive %s is not tunable on this platform; ignored", field)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, opt, value)


#: RESERVEDPORT searches this range from the top down, as rresvport(3) does.
RESERVED_PORT_HIGH = 1023
RESERVED_PORT_LOW = 512


def bind_reserved_port(sock: _socket.socket, local_ip: str) -> int:
    """Bind ``sock`` to a free port in 1023..512 and return the port.

    Raises `InetError` (`PERMISSION_DENIED`) when the process may not bind
    privileged ports, and `InetConnectionError` (`ADDRESS_IN_USE`) when every
    port in the range is taken.
    """
    for port in range(RESERVED_PORT_HIGH, RESERVED_PORT_LOW - 1, -1):
        try:
            sock.bind((local_ip, port))
        except PermissionError as exc:
            raise InetError(
                f"Option.RESERVEDPORT: binding local port {port} (below 1024) is not "
                "allowed for this process; run with CAP_NET_BIND_SERVICE or as root, "
                "or drop Option.RESERVEDPORT",
                ErrorCode.PERMISSION_DENIED,
                errno=exc.errno,
            ) from exc
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                continue
            raise translate_os_error(
                exc, action="bind reserved port on", target=local_ip or "any address"
            ) from exc
        return port
    raise translate_os_error(
        OSError(errno.EADDRINUSE, f"all ports {RESERVED_PORT_LOW}-{RESERVED_PORT_HIGH} are in use"),
        action="Option.RESERVEDPORT: bind",
        target=local_ip or "any address",
    )
