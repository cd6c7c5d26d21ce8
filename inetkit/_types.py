"""The value types every layer shares: option flags, protocols, keep-alive tuning, and their checks.

The numeric values of `Option` equal SocketWrench's ``INET_OPTION_*``
constants (where SocketWrench defines them) so ported code keeps its numbers;
inetkit's own flags take free bits above them. `Protocol` values are the IP
protocol numbers. Nothing here touches a socket: applying the flags to one is
``inetkit._options``, a driver's business; the sans-I/O core (the connect
plan) and the handles read these types.
"""

from __future__ import annotations

import enum
import math

from ._errors import ErrorCode, IntEnumBody, IntFlagBody, InvalidArgumentError, fast_enum

__all__ = [
    "ALL_OPTIONS",
    "SOCKET_FLAGS",
    "FieldValue",
    "KeepAlive",
    "Option",
    "Protocol",
    "check_options",
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
