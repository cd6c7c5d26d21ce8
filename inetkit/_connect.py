"""`connect`: the one call that turns a host and port into a `Connection`.

The data path reads top to bottom: check every argument (no I/O), normalize
the host, resolve it under the deadline (IP literals skip this), order the
addresses, race them (RFC 8305, in ``_dialer``), wrap the winner, then TLS
(implicit) or a STARTTLS dialog. One deadline, fixed when `connect` is
called, covers all of it. On any failure every socket opened is closed and
the error carries the trace of what was tried.
"""

from __future__ import annotations

import _socket
import logging
import math
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._connection import Connection, check_timeout
from ._dialer import CONNECTION_ATTEMPT_DELAY, dial, dial_one
from ._errors import ErrorCode, InetError, InvalidArgumentError, translate_os_error
from ._hostname import cached_literal, check_host, check_port, ip_literal, literal_sockaddr
from ._options import (
    SOCKET_FLAGS,
    KeepAlive,
    Option,
    Protocol,
    apply_socket_options,
    bind_reserved_port,
    check_options,
)
from ._resolver import Resolver, order_addresses
from ._trace import Attempt, ConnectTrace, Resolution

if TYPE_CHECKING:
    from ._credentials import SecurityCredentials

__all__ = ["DEFAULT_TIMEOUT", "connect", "connect_url"]

logger = logging.getLogger("inetkit")

#: InetConnect's customary connect timeout, in seconds.
DEFAULT_TIMEOUT = 20.0

#: RFC 8305 §8: the attempt delay should never be below 10 ms.
MIN_ATTEMPT_DELAY = 0.01

_DEFAULT_RESOLVER: Resolver | None = None

# Flag tests on plain ints: IntFlag arithmetic costs about a microsecond per
# operation, and connect is benchmarked against socket.create_connection.
_SECURE = int(Option.SECURE)
_BROADCAST = int(Option.BROADCAST)
_RESERVEDPORT = int(Option.RESERVEDPORT)
_PREFER_IPV6 = int(Option.PREFER_IPV6)
#: Exact types of a timeout that needs no further checks (bool excluded on purpose).
_NUMBER_TYPES = (float, int)
#: Options the short path handles: they change nothing before the connect.
_SHORT_PATH_OPTIONS = int(Option.FREETHREAD | Option.NOINHERIT | Option.PREFER_IPV6)
_TCP = Protocol.TCP
_AF_INET = socket.AF_INET
_monotonic = time.monotonic

#: STARTTLS dialogs known to `connect(starttls=...)`. Filled by ``starttls``
#: (loaded lazily) so that `import inetkit` stays cheap.
STARTTLS_DIALOGS = ("smtp",)


def _default_resolver() -> Resolver:
    global _DEFAULT_RESOLVER
    if _DEFAULT_RESOLVER is None:
        _DEFAULT_RESOLVER = Resolver()
    return _DEFAULT_RESOLVER


def _check_protocol(protocol: object) -> Protocol:
    if protocol is Protocol.TCP or protocol is Protocol.UDP:
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


def _check_local_address(local_address: object) -> tuple[str, int] | None:
    if local_address is None:
        return None
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
    return (name, port)


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


def _family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def connect(
    host: str,
    port: int | str,
    protocol: Protocol = Protocol.TCP,
    timeout: float | None = DEFAULT_TIMEOUT,
    options: Option = Option.NONE,
    credentials: SecurityCredentials | None = None,
    *,
    local_address: tuple[str, int] | None = None,
    resolver: Resolver | None = None,
    starttls: str | None = None,
    keepalive: KeepAlive | None = None,
    attempt_delay: float = CONNECTION_ATTEMPT_DELAY,
    session_cache: bool = True,
) -> Connection:
    """Connect to ``host`` on ``port`` and return a `Connection`.

    The host is normalized (IDNA 2008, IP literals), resolved (overrides,
    hosts files, then DNS), and its addresses are raced (RFC 8305 Happy
    Eyeballs, IPv4 first unless `Option.PREFER_IPV6`) under ONE deadline,
    ``timeout`` seconds, that also covers the TLS handshake (`Option.SECURE`)
    and any ``starttls`` dialog. The handle's I/O timeout starts as the same
    number of seconds.

    Args:
        host: a name, an IPv4 or IPv6 literal (brackets allowed), or a
            Unicode name. Not a URL: use `connect_url` for those.
        port: 1..65535, or a service name such as ``"https"``.
        protocol: `Protocol.TCP` or `Protocol.UDP` (UDP "connect" sets the
            default destination; one datagram per read/write).
        timeout: seconds for the whole connect, or None for no deadline.
        options: `Option` flags combined with ``|``.
        credentials: TLS settings and client certificate
            (`SecurityCredentials`); also the default for a later
            `Connection.enable_security`.
        local_address: ``(ip, port)`` to bind before connecting (``port`` 0:
            any free port).
        resolver: a `Resolver` (or subclass); None uses the default one.
        starttls: the name of a STARTTLS dialog to run before TLS starts.
        keepalive: `KeepAlive` tuning (implies `Option.KEEPALIVE`).
        attempt_delay: RFC 8305 "Connection Attempt Delay" in seconds.
        session_cache: offer and keep TLS sessions for resumption.

    Raises:
        TypeError: an argument of the wrong type.
        InvalidArgumentError: a value or a combination that cannot work
            (raised before any I/O).
        HostNotFoundError, InetTimeoutError, InetConnectionError,
        SecurityError, ...: the connect failed; ``.trace`` tells how.
    """
    started = _monotonic()
    if (
        protocol is _TCP
        and type(options) is Option
        and not int(options) & ~_SHORT_PATH_OPTIONS
        and type(port) is int
        and 0 < port < 65536
        and type(timeout) in _NUMBER_TYPES
        and 0 < timeout < math.inf  # type: ignore[operator]
        and type(host) is str
        and credentials is None
        and local_address is None
        and resolver is None
        and starttls is None
        and keepalive is None
        and attempt_delay is CONNECTION_ATTEMPT_DELAY
    ):
        literal = cached_literal(host)
        if literal is not None:
            limit = float(timeout)  # type: ignore[arg-type]
            return _connect_literal(literal[0], literal[1], port, limit, options, started, session_cache)
    # -- arguments: types and values, before any I/O -------------------
    proto = _check_protocol(protocol)
    opts = check_options(options)
    if type(timeout) in _NUMBER_TYPES and 0 < timeout < math.inf:  # type: ignore[operator]
        seconds: float | None = float(timeout)  # type: ignore[arg-type]  # the common case, no call
    else:
        seconds = check_timeout(timeout, "timeout")
    name = check_host(host)
    port_number = check_port(port, proto)
    local = None if local_address is None else _check_local_address(local_address)
    delay = (
        attempt_delay if attempt_delay is CONNECTION_ATTEMPT_DELAY else _check_attempt_delay(attempt_delay)
    )
    if keepalive is not None:
        if not isinstance(keepalive, KeepAlive):
            raise TypeError(f"keepalive must be an inetkit.KeepAlive, not {type(keepalive).__name__}")
        opts |= Option.KEEPALIVE
    if resolver is not None and not isinstance(resolver, Resolver):
        raise TypeError(f"resolver must be an inetkit.Resolver, not {type(resolver).__name__}")
    if starttls is not None and not isinstance(starttls, str):
        raise TypeError(f"starttls must be a dialog name (str) or None, not {type(starttls).__name__}")
    if credentials is not None:
        from ._credentials import SecurityCredentials

        if not isinstance(credentials, SecurityCredentials):
            raise TypeError(
                f"credentials must be inetkit.SecurityCredentials, not {type(credentials).__name__}"
            )
    bits = int(opts)
    if bits or starttls is not None or local is not None:
        _check_combinations(bits, proto, local, starttls, name, port_number)
    context = None
    if bits & _SECURE:
        # Credentials are loaded and checked before any network I/O.
        from ._tls import get_context

        context = get_context(credentials, opts, target=f"{name} port {port_number}")
    elif starttls is not None:
        from ._tls import get_context

        # Bad credentials fail before the dialog starts; the upgrade logs any
        # weakening option when it uses the context.
        get_context(credentials, opts, warn=False)

    deadline = None if seconds is None else started + seconds
    trace = ConnectTrace(host=name, port=port_number)
    try:
        conn = _connect(
            name,
            port_number,
            proto,
            opts,
            bits,
            seconds,
            deadline,
            started,
            trace,
            local,
            resolver,
            keepalive,
            delay,
        )
        try:
            conn._credentials = credentials
            conn._session_cache = session_cache
            conn._guard.private = True  # nobody else has the handle yet
            if starttls is not None:
                from .starttls import run_dialog

                dialog_started = time.monotonic()
                run_dialog(starttls, conn, deadline)
                trace.starttls = time.monotonic() - dialog_started - (trace.tls_handshake or 0.0)
            elif bits & _SECURE:
                conn._start_security(credentials, None, deadline, context)
        except BaseException as exc:
            conn._close(check_owner=False)
            if isinstance(exc, InetError):
                _record_on_winner(trace, exc)
            raise
    except InetError as exc:
        trace.total = time.monotonic() - started
        if exc.trace is None:
            exc.trace = trace
        raise
    conn._guard.private = False
    trace.total = time.monotonic() - started
    return conn


def _connect_literal(
    name: str, family: int, port: int, seconds: float, options: Option, started: float, session_cache: bool
) -> Connection:
    """The short path: plain TCP to an IP literal with nothing to prepare.

    Every argument was checked by `connect` (the literal on an earlier call,
    see `cached_literal`). Same result as the full path, less work: no
    resolution, no race, and the trace is kept as clock readings until
    somebody asks for it. Plain connects to addresses are what benchmarks
    and connection pools do over and over.
    """
    sockaddr = (name, port) if family == _AF_INET else (name, port, 0, 0)
    conn = Connection._new(name, port, _TCP, options, seconds, None, (name, port))
    conn._session_cache = session_cache
    failed: list[Attempt] = []
    try:
        # The handle takes the socket as it is made, before it connects.
        _, begun, ended = dial_one(
            family, sockaddr, started + seconds, conn._attach, name, port, started, failed
        )
    except BaseException as exc:
        conn._abandon()
        if isinstance(exc, InetError) and exc.trace is None:
            exc.trace = ConnectTrace(
                name, port, Resolution("literal", [name], 0.0), failed, total=_monotonic() - started
            )
        raise
    conn._lazy_trace = (started, begun, ended, family)
    return conn


def _record_on_winner(trace: ConnectTrace, exc: InetError) -> None:
    """A failure after the race (TLS, STARTTLS) is final and is that address's attempt."""
    for attempt in reversed(trace.attempts):
        if attempt.outcome == "connected":
            attempt.outcome = "failed"
            attempt.error = exc
            return


def _check_combinations(
    bits: int, proto: Protocol, local: tuple[str, int] | None, starttls: str | None, name: str, port: int
) -> None:
    def refuse(message: str) -> None:
        raise InvalidArgumentError(f"connect to {name} port {port}: {message}", ErrorCode.INVALID_ARGUMENT)

    if proto is Protocol.TCP and bits & _BROADCAST:
        refuse("Option.BROADCAST applies to datagram (UDP) sockets only")
    if proto is Protocol.UDP:
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
    if starttls is not None and starttls not in STARTTLS_DIALOGS:
        refuse(f"unknown starttls dialog {starttls!r}; known: {', '.join(STARTTLS_DIALOGS)}")


def _connect(
    name: str,
    port: int,
    proto: Protocol,
    opts: Option,
    bits: int,
    seconds: float | None,
    deadline: float | None,
    started: float,
    trace: ConnectTrace,
    local: tuple[str, int] | None,
    resolver: Resolver | None,
    keepalive: KeepAlive | None,
    delay: float,
) -> Connection:
    literal = literal_sockaddr(name, port)
    addresses: Sequence[tuple[int, tuple[Any, ...]]]
    if literal is not None:
        addresses = [literal]
        trace.resolution = Resolution("literal", [literal[1][0]], 0.0)
    else:
        found, source = (resolver or _default_resolver()).resolve_traced(name, port, proto, deadline)
        addresses = order_addresses(found, bool(bits & _PREFER_IPV6))
        took = time.monotonic() - started
        trace.resolution = Resolution(source, [sockaddr[0] for _, sockaddr in addresses], took)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "resolved %s from %s in %.1f ms: %s",
                name,
                source,
                took * 1000,
                ", ".join(sockaddr[0] for _, sockaddr in addresses),
            )
    if local is not None and local[0]:
        family = _family_of(local[0])
        matching = [a for a in addresses if a[0] == family]
        if not matching:
            raise InvalidArgumentError(
                f"connect to {name} port {port}: local_address {local[0]} is "
                f"{'IPv6' if family == socket.AF_INET6 else 'IPv4'}, but {name} resolved only to "
                f"{', '.join(a[1][0] for a in addresses)}",
                ErrorCode.INVALID_ARGUMENT,
            )
        addresses = matching

    def prepare(sock: _socket.socket, family: int) -> None:
        apply_socket_options(sock, bits, proto, keepalive)
        if local is None and not bits & _RESERVEDPORT:
            return
        any_ip = "::" if family == socket.AF_INET6 else "0.0.0.0"
        ip = local[0] if local is not None and local[0] else any_ip
        if bits & _RESERVEDPORT:
            bind_reserved_port(sock, ip)
            return
        assert local is not None
        try:
            sock.bind((ip, local[1]))
        except OSError as exc:
            raise translate_os_error(
                exc, action="bind local address", target=f"{ip} port {local[1]}"
            ) from exc

    # Nothing to prepare is the common case: skip the call per attempt.
    needs_prepare = bits & (SOCKET_FLAGS | _RESERVEDPORT) or local is not None
    sock = dial(
        addresses,
        protocol=proto,
        deadline=deadline,
        attempt_delay=delay,
        prepare=prepare if needs_prepare else None,
        host=name,
        port=port,
        started=started,
        trace_attempts=trace.attempts,
    )
    try:
        return Connection._from_socket(
            sock, name, port, proto, opts, seconds, trace, sock_remote(trace, addresses)
        )
    except BaseException:
        sock.close()
        raise


def sock_remote(trace: ConnectTrace, addresses: Sequence[tuple[int, tuple[Any, ...]]]) -> tuple[str, int]:
    """The winning address, from the trace (no getpeername system call)."""
    for attempt in reversed(trace.attempts):
        if attempt.outcome == "connected":
            return (attempt.address, attempt.port)
    return (addresses[0][1][0], addresses[0][1][1])  # pragma: no cover - dial always records


def connect_url(
    url: str,
    timeout: float | None = DEFAULT_TIMEOUT,
    options: Option = Option.NONE,
    credentials: SecurityCredentials | None = None,
    *,
    local_address: tuple[str, int] | None = None,
    resolver: Resolver | None = None,
    starttls: str | None = None,
    keepalive: KeepAlive | None = None,
    attempt_delay: float = CONNECTION_ATTEMPT_DELAY,
    session_cache: bool = True,
) -> Connection:
    """Connect to the host and port a URL names.

    A scheme's usual port is used when the URL gives none (``https`` -> 443,
    see ``docs/hostnames.md`` for the table); secure schemes (``https``,
    ``ftps``, ``smtps``, ``imaps``, ``pop3s``, ``ldaps``, ...) turn on
    `Option.SECURE`. The path and query are not used (inetkit connects; it
    does not speak HTTP). User information in the URL is never logged.
    Everything else is as for `connect`.

    Raises:
        InvalidArgumentError: no usable host, an unknown scheme without a
            port, a bad port, or a malformed URL.
    """
    from ._url import parse_url

    parsed = parse_url(url)
    opts = check_options(options)
    if parsed.secure and starttls is None:
        opts |= Option.SECURE
    return connect(
        parsed.host,
        parsed.port,
        Protocol.TCP,
        timeout,
        opts,
        credentials,
        local_address=local_address,
        resolver=resolver,
        starttls=starttls,
        keepalive=keepalive,
        attempt_delay=attempt_delay,
        session_cache=session_cache,
    )
