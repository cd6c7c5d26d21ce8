"""The connect plan: a `connect` request checked and normalized once, before any I/O.

Theory of operation
-------------------
`connect` and `connect_url` take a dozen arguments. Every one is checked
here, in one function (`make_plan`), before anything touches the network:
types (`TypeError`), values (`InvalidArgumentError` with the field's name
and a code), and the combinations that cannot work (`BROADCAST` on TCP,
`SECURE` or ``starttls`` on UDP, both TLS modes at once, `RESERVEDPORT`
with a fixed local port, an unknown STARTTLS dialog). What comes out is a
`Plan`: the normalized request (the host in its one spelling, the port as a
number, the flags as a plain int, the timeout in seconds, the address
itself when the host is an IP literal, whether TLS follows the race) that
the drivers (``inetkit._connect``, ``inetkit.aio._connect``) run. Nothing
downstream checks or normalizes again.

Speed. A plan holds no clock value (the driver takes the moment the
connect started and counts the deadline from it), so one plan serves every
connect made with the same arguments: `make_plan` remembers the plans it
checked (`PLAN_CACHE_SIZE` of them), keyed by the arguments and the types
of those whose equality crosses types (``True == 1``, ``80.0 == 80`` check
differently). Connecting to the same place again, the common case, costs
one dictionary look-up instead of every check; on loopback, right after the
kernel's work, the checks cost about 5 µs a connect (cold caches) against
2 µs in a tight loop. A call with a ``local_address`` or a ``resolver`` is
checked every time (a tuple's items and a resolver's equality are the
caller's; the cache would also keep resolvers alive). The checks
themselves are ordered cheapest first and test exact types (``type(x) is
int``) before falling back to the general checks; host normalization is
cached (`check_host`); flags are tested on ints, never with enum arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import TYPE_CHECKING, Final

from .._errors import ErrorCode, InvalidArgumentError
from .._hostname import cached_literal, check_host, check_port, ip_literal, literal_sockaddr
from .._resolver import Resolver
from .._types import ALL_OPTIONS, SOCKET_FLAGS, KeepAlive, Option, Protocol, check_options, check_timeout
from .race import CONNECTION_ATTEMPT_DELAY, Address

if TYPE_CHECKING:
    from .._credentials import SecurityCredentials
    from .proxy import Proxy

__all__ = ["MIN_ATTEMPT_DELAY", "PLAN_CACHE_SIZE", "Plan", "deadline_of", "dialog_names", "make_plan"]

#: RFC 8305 section 8: the attempt delay should never be below 10 ms.
MIN_ATTEMPT_DELAY: Final = 0.01

#: How many checked plans `make_plan` remembers; when full, it forgets them all.
PLAN_CACHE_SIZE: Final = 256

_SECURE: Final = int(Option.SECURE)
_BROADCAST: Final = int(Option.BROADCAST)
_RESERVEDPORT: Final = int(Option.RESERVEDPORT)
_KEEPALIVE: Final = int(Option.KEEPALIVE)
#: Flags that need a hook on each fresh socket before it connects.
_PREPARE_FLAGS: Final = SOCKET_FLAGS | _RESERVEDPORT
_UNKNOWN_FLAGS: Final = ~ALL_OPTIONS
_TCP: Final = Protocol.TCP
_UDP: Final = Protocol.UDP
_NONE: Final = Option.NONE
_INF: Final = math.inf
_AF_INET: Final = 2  # socket.AF_INET, the same on every platform


class Plan:
    """A checked, normalized connect request (see the module header).

    Only `make_plan` makes one, and nothing changes it afterwards: one plan
    is shared by every connect with the same arguments, in any thread. It
    holds no clock value; `deadline_of` counts a connect's deadline from
    its start. A class with ``__slots__`` rather than a named tuple: the
    driver reads about twenty fields per connect, and slot reads are the
    attribute access that the interpreter specializes (a named tuple's
    field getter is not).
    """

    __slots__ = (
        "attempt_delay",
        "bits",
        "credentials",
        "host",
        "keepalive",
        "literal",
        "local",
        "options",
        "port",
        "prepare",
        "protocol",
        "proxy",
        "resolver",
        "session_cache",
        "starttls",
        "timeout",
        "tls_follows",
    )

    host: str
    """The host, normalized (`check_host`)."""
    port: int
    protocol: Protocol
    options: Option
    bits: int
    """``options`` as a plain int, for cheap flag tests."""
    timeout: float | None
    """The connect timeout in seconds (None: no deadline); also the handle's first I/O timeout."""
    credentials: SecurityCredentials | None
    session_cache: bool
    local: tuple[str, int] | None
    """``(ip, port)`` to bind (``ip`` normalized, ``""`` for any), or None."""
    resolver: Resolver | None
    """The `Resolver` to ask (None: the default one)."""
    starttls: str | None
    """The STARTTLS dialog to run, or None."""
    keepalive: KeepAlive | None
    attempt_delay: float
    """The race's attempt delay in seconds; infinite for UDP (the next address only after a local failure)."""
    literal: Address | None
    """``(family, sockaddr)`` when the host is an IP literal (no resolution needed), else None."""
    prepare: bool
    """Whether each fresh socket needs socket options or a bind before it connects."""
    proxy: Proxy | None
    """The checked ``proxy=`` URL (`parse_proxy`), or None for a direct connect."""
    tls_follows: bool
    """Whether TLS (`Option.SECURE`) or a STARTTLS dialog follows the race (the handle stays private)."""


# object.__new__ and the fields set in make_plan: no Python-level __init__ call per plan.
_new_plan = object.__new__

#: The plans `make_plan` checked, by argument key (see the module header).
_PLANS: dict[tuple[object, ...], Plan] = {}


def deadline_of(plan: Plan, started: float) -> float | None:
    """The clock value by which a connect that began at ``started`` must be done (None: no deadline)."""
    timeout = plan.timeout
    return None if timeout is None else started + timeout


#: `SecurityCredentials` once the first plan with credentials loaded it
#: (`_credentials_class`): a function-level import costs on every connect.
_CREDENTIALS: type[SecurityCredentials] | None = None


def _credentials_class() -> type[SecurityCredentials]:
    global _CREDENTIALS
    from .._credentials import SecurityCredentials

    _CREDENTIALS = SecurityCredentials
    return SecurityCredentials


def make_plan(
    host: object,
    port: object,
    protocol: object,
    timeout: object,
    options: object,
    credentials: object,
    local_address: object,
    resolver: object,
    starttls: object,
    keepalive: object,
    attempt_delay: object,
    session_cache: object,
    normalized: bool = False,
    implicit_tls: bool = False,
    proxy: object = None,
) -> Plan:
    """Check every argument of `connect` and return the plan, or raise before any I/O.

    ``normalized`` says ``host`` is already normalized (`connect_url`
    parsed it); ``implicit_tls`` adds `Option.SECURE` (a secure URL
    scheme). ``proxy`` is the ``proxy=`` URL (checked by `parse_proxy`;
    None: direct). The same arguments again give the same plan, from the
    cache (see the module header); only plans are remembered, never errors.

    Raises:
        TypeError: an argument of the wrong type (the message names it).
        InvalidArgumentError: a value or a combination that cannot work, with
            the field named and ``INVALID_ARGUMENT``, ``INVALID_PORT`` or
            ``INVALID_HOST_NAME``.
    """
    key: tuple[object, ...] = ()  # () for a call that is checked every time
    if local_address is None and resolver is None:
        # With the types of the arguments whose equal values may be of types that check differently.
        key = (
            host, port, protocol, timeout, options, credentials, starttls, keepalive, attempt_delay,
            session_cache, normalized, implicit_tls, proxy, type(host), type(port), type(protocol),
            type(timeout), type(options), type(attempt_delay), type(session_cache),
        )  # fmt: skip
        try:
            known_plan = _PLANS.get(key)
        except TypeError:  # an unhashable argument: checked on every call
            key = ()
        else:
            if known_plan is not None:
                return known_plan
    proto = protocol if protocol is _TCP or protocol is _UDP else _check_protocol(protocol)
    if options is _NONE:  # the default: no flag to check
        opts: Option = _NONE
        bits = given = 0
    else:
        if type(options) is Option and not int(options) & _UNKNOWN_FLAGS:
            opts = options
        else:
            opts = check_options(options)
        bits = given = int(opts)
    if (type(timeout) is float or type(timeout) is int) and 0 < timeout < _INF:
        # The common case without a call; bool is not an int here on purpose.
        seconds: float | None = float(timeout)
    else:
        seconds = check_timeout(timeout, "timeout")  # None, or raises naming the field
    # check_host remembered whether the text it saw is an IP literal, and
    # how it normalizes: one dictionary look-up instead of two.
    known = cached_literal(host) if type(host) is str else None
    if known is not None:
        name = known[0]
    elif normalized and type(host) is str:
        name = host
    else:
        name = check_host(host)
    number = port if type(port) is int and 0 < port < 65536 else check_port(port, proto)
    local = None if local_address is None else _check_local_address(local_address)
    if attempt_delay is CONNECTION_ATTEMPT_DELAY:
        delay: float = CONNECTION_ATTEMPT_DELAY  # the default: nothing to check
    else:
        delay = _check_attempt_delay(attempt_delay)
    if session_cache is not True and session_cache is not False:
        raise TypeError(f"session_cache must be True or False, not {type(session_cache).__name__}")
    tuning: KeepAlive | None = None
    if keepalive is not None:
        if not isinstance(keepalive, KeepAlive):
            raise TypeError(f"keepalive must be an inetkit.KeepAlive, not {type(keepalive).__name__}")
        tuning = keepalive
        bits |= _KEEPALIVE
    chosen: Resolver | None = None
    if resolver is not None:
        if not isinstance(resolver, Resolver):
            raise TypeError(f"resolver must be an inetkit.Resolver, not {type(resolver).__name__}")
        chosen = resolver
    dialog: str | None = None
    if starttls is not None:
        if not isinstance(starttls, str):
            raise TypeError(f"starttls must be a dialog name (str) or None, not {type(starttls).__name__}")
        dialog = starttls
    creds: SecurityCredentials | None = None
    if credentials is not None:
        if not isinstance(credentials, _CREDENTIALS or _credentials_class()):
            raise TypeError(
                f"credentials must be inetkit.SecurityCredentials, not {type(credentials).__name__}"
            )
        creds = credentials
    if implicit_tls and dialog is None:
        bits |= _SECURE
    via: Proxy | None = None
    if proxy is not None:
        from .proxy import parse_proxy

        via = parse_proxy(proxy)
        if proto is _UDP:
            raise InvalidArgumentError(
                f"connect to {name} port {number}: a proxy ({via.endpoint}) carries TCP only",
                ErrorCode.INVALID_ARGUMENT,
            )
    prepare = False
    if bits or dialog is not None or local is not None:
        if bits != given:
            opts = Option(bits)
        _check_combinations(bits, proto, local, dialog, name, number)
        prepare = bool(bits & _PREPARE_FLAGS) or local is not None
    literal: Address | None
    if known is not None:
        literal = (known[1], (name, number) if known[1] == _AF_INET else (name, number, 0, 0))
    else:
        literal = literal_sockaddr(name, number)
    plan = _new_plan(Plan)
    plan.host = name
    plan.port = number
    plan.protocol = proto
    plan.options = opts
    plan.bits = bits
    plan.timeout = seconds
    plan.credentials = creds
    plan.session_cache = session_cache
    plan.local = local
    plan.resolver = chosen
    plan.starttls = dialog
    plan.keepalive = tuning
    plan.attempt_delay = _INF if proto is _UDP else delay
    plan.literal = literal
    plan.prepare = prepare
    plan.proxy = via
    plan.tls_follows = bool(bits & _SECURE) or dialog is not None
    if key:
        if len(_PLANS) >= PLAN_CACHE_SIZE:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def _check_protocol(protocol: object) -> Protocol:
    if protocol is _TCP or protocol is _UDP:
        return protocol
    if isinstance(protocol, bool) or not isinstance(protocol, int):
        raise TypeError(f"protocol must be inetkit.Protocol, not {type(protocol).__name__}")
    try:
        return Protocol(protocol)
    except ValueError:
        raise InvalidArgumentError(
            f"protocol must be Protocol.TCP (6) or Protocol.UDP (17), got {protocol!r}",
            ErrorCode.INVALID_ARGUMENT,
        ) from None


def _check_local_address(local_address: object) -> tuple[str, int]:
    if not isinstance(local_address, tuple) or len(local_address) != 2:
        raise TypeError("local_address must be a (host, port) tuple or None")
    host, port = local_address
    if not isinstance(host, str):
        raise TypeError(f"local_address host must be a str, not {type(host).__name__}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"local_address port must be an int, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise InvalidArgumentError(
            f"local_address port must be 0..65535 (0 = any free port), got {port}", ErrorCode.INVALID_PORT
        )
    if host == "":
        return ("", port)
    try:
        name = check_host(host)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"local_address: {exc}", exc.code) from None
    if ip_literal(name) is None:
        raise InvalidArgumentError(
            f"local_address host must be an IP address of this machine (or '' for any), got {host!r}",
            ErrorCode.INVALID_HOST_NAME,
        )
    return (name, int(port))


def _check_attempt_delay(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"attempt_delay must be a number of seconds, not {type(value).__name__}")
    delay = float(value)
    if not math.isfinite(delay) or delay < MIN_ATTEMPT_DELAY:
        raise InvalidArgumentError(
            f"attempt_delay must be a finite number of seconds >= {MIN_ATTEMPT_DELAY} "
            f"(RFC 8305 section 8), got {value!r}",
            ErrorCode.INVALID_ARGUMENT,
        )
    return delay


def dialog_names() -> Collection[str]:
    """The STARTTLS dialogs `connect(starttls=...)` knows: the names in `inetkit._core.dialogs`.

    Loaded on first use, so that ``import inetkit`` does not load the dialogs.
    """
    from .dialogs import NAMES

    return NAMES


def _check_combinations(
    bits: int, proto: Protocol, local: tuple[str, int] | None, starttls: str | None, name: str, port: int
) -> None:
    def refuse(message: str) -> None:
        raise InvalidArgumentError(f"connect to {name} port {port}: {message}", ErrorCode.INVALID_ARGUMENT)

    if proto is _TCP and bits & _BROADCAST:
        refuse("Option.BROADCAST applies to datagram (UDP) sockets only")
    if proto is _UDP:
        if bits & _SECURE:
            refuse("Option.SECURE needs TCP (inetkit has no DTLS)")
        if starttls is not None:
            refuse("starttls needs TCP")
    if bits & _SECURE and starttls is not None:
        refuse(
            "Option.SECURE (implicit TLS from the first byte) and starttls= (plaintext first, "
            "then upgrade) exclude each other; choose one"
        )
    if bits & _RESERVEDPORT and local is not None and local[1] != 0:
        refuse(
            f"Option.RESERVEDPORT picks the local port itself; local_address port must be 0, got {local[1]}"
        )
    if starttls is not None:
        known = dialog_names()
        if starttls not in known:
            refuse(f"unknown starttls dialog {starttls!r}; known: {', '.join(known)}")
