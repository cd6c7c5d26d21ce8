"""`connect`: the one call that turns a host and port into a `Connection`.

The data path reads top to bottom: check every argument and normalize the
request once (`make_plan`, no I/O), resolve the host under the deadline (an
IP literal needs no resolution: the plan carries its address), order the
addresses, race them (RFC 8305: the sans-I/O race in ``_core.race`` driven
by ``_dialer.dial``; one address is a race of one), keep the winner's
handle (each attempt's is built around its socket before it connects), then
TLS (implicit) or a STARTTLS dialog. One deadline, fixed when `connect` is
called (``started`` plus the plan's timeout: the plan itself holds no clock
value, so connects with the same arguments share one), covers all of it.
On any failure every socket opened is closed and the error carries the
trace of what was tried.

The trace is kept as raw readings (`_Record`: the resolution's source and
time, the race's clock values) and built into a `ConnectTrace` only when
somebody asks (``conn.trace``) or an error carries it: most handles never
look, and a plain connect is benchmarked against ``socket.create_connection``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._connection import Connection
from ._core.plan import Plan, dialog_names, make_plan
from ._core.race import Address, Race, attempts_of
from ._dialer import CONNECTION_ATTEMPT_DELAY, Socket, dial
from ._errors import ErrorCode, InetError, InvalidArgumentError, translate_os_error
from ._log import DEBUG, logger
from ._options import apply_socket_options, bind_reserved_port
from ._resolver import Resolver, order_addresses
from ._trace import ConnectTrace, Resolution
from ._types import KeepAlive, Option, Protocol

if TYPE_CHECKING:
    import ssl

    from ._credentials import SecurityCredentials

__all__ = ["DEFAULT_TIMEOUT", "connect", "connect_url", "run", "url_plan"]


#: InetConnect's customary connect timeout, in seconds.
DEFAULT_TIMEOUT = 20.0

_DEFAULT_RESOLVER: Resolver | None = None

# Flag tests on plain ints: IntFlag arithmetic costs about a microsecond per
# operation, and connect is benchmarked against socket.create_connection.
_SECURE = int(Option.SECURE)
_RESERVEDPORT = int(Option.RESERVEDPORT)
_PREFER_IPV6 = int(Option.PREFER_IPV6)
_UDP = Protocol.UDP
_monotonic = time.monotonic
#: The handle constructor, bound once: ``Connection._new`` would bind the classmethod on every attempt.
_new_handle = Connection._new
#: What a settled `_Record` holds instead of its handles (none: the connect is over).
_SETTLED: Final[dict[int, Any]] = {}
#: ``_tls.get_context`` once the first TLS or STARTTLS connect loaded it (`_context_getter`):
#: a plain connect never loads TLS, and a function-level import costs on every connect.
_get_context: Callable[..., ssl.SSLContext] | None = None


def __getattr__(name: str) -> Any:
    """``STARTTLS_DIALOGS``: the dialog names, read from `inetkit.starttls` when first asked."""
    if name == "STARTTLS_DIALOGS":
        return tuple(dialog_names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _default_resolver() -> Resolver:
    global _DEFAULT_RESOLVER
    if _DEFAULT_RESOLVER is None:
        _DEFAULT_RESOLVER = Resolver()
    return _DEFAULT_RESOLVER


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
    proxy: str | None = None,
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
        proxy: a proxy URL (``http://``, ``https://``, ``socks5://``,
            ``socks5h://``, ``socks4a://``; ``scheme://[user:password@]host:port``)
            to connect through, or None (direct; the environment is not
            read). See ``docs/proxies.md``.

    Raises:
        TypeError: an argument of the wrong type.
        InvalidArgumentError: a value or a combination that cannot work
            (raised before any I/O).
        HostNotFoundError, InetTimeoutError, InetConnectionError,
        SecurityError, ProxyError, ...: the connect failed; ``.trace`` tells how.
    """
    started = _monotonic()
    plan = make_plan(
        host,
        port,
        protocol,
        timeout,
        options,
        credentials,
        local_address,
        resolver,
        starttls,
        keepalive,
        attempt_delay,
        session_cache,
        proxy=proxy,
    )
    return run(plan, started)


class _Record:
    """What one connect made: a handle per attempt, and raw readings for the trace.

    The handle of an attempt is built as soon as its socket exists, before
    the socket connects: the kernel does the handshake meanwhile, and work
    done after it would delay whatever the caller does next (on loopback, a
    close that comes a few microseconds later meets the server's own close
    and costs twice as much). The winner's handle is the result; the others
    are abandoned with their sockets.

    The trace (a resolution record, one `Attempt` per address) costs several
    objects that most callers never look at, so it is built from the
    readings kept here on first access (`trace`, which the handle calls).
    The race itself is not kept, only its log (`Race.log`), so it goes when
    the connect returns; `settle` lets go of the attempts' handle table. A
    held handle keeps this record until its trace is built, so it should
    cost no more than a trace. The plan stays: the handle holds it anyway
    (plans are shared, `make_plan`).
    """

    __slots__ = (
        "addresses",
        "ended",
        "handles",
        "log",
        "plan",
        "private",
        "raced",
        "resolved",
        "source",
        "started",
        "tls_handshake",
        "total",
    )

    def __init__(
        self,
        plan: Plan,
        started: float,
        private: bool,
        source: str | None,
        addresses: Sequence[Address],
        resolved: float,
        raced: Sequence[Address],
        log: Sequence[list[Any]],
    ) -> None:
        self.plan = plan
        self.started = started
        self.private = private
        self.source = source  # where the addresses came from (None: resolution failed)
        self.addresses = addresses  # all of them, in race order
        self.resolved = resolved  # seconds from the start until they were known
        self.raced = raced  # those raced (of the local address's family)
        self.log = log  # the race's readings (`Race.log`, which the race keeps writing); () before a race
        self.ended: float | None = None  # when the connect failed (None: the winner's end)
        self.handles: dict[int, Connection] = {}  # attempt -> its handle
        # Figures the handle notes before its trace exists (`HandleFace._note_times`).
        self.tls_handshake: float | None = None
        self.total: float | None = None

    def adopt(self, sock: Socket, attempt: int) -> None:
        """Build the handle of attempt ``attempt`` around its fresh socket (a `dial` hook)."""
        # (ip, port): an IPv4 sockaddr is that tuple itself (slicing all of a tuple returns it).
        remote = self.raced[attempt][1][:2]
        self.handles[attempt] = _new_handle(sock, remote, self.plan, self, self.private)

    def prepare(self, sock: Socket, family: int) -> None:
        """Set the plan's socket options and bind its local address on a fresh socket (a `dial` hook)."""
        plan = self.plan
        bits = plan.bits
        apply_socket_options(sock, bits, plan.protocol, plan.keepalive)
        local = plan.local
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

    def abandon(self) -> None:
        """Every handle left is a lost or failed attempt's, whose socket the dialer closed."""
        for handle in self.handles.values():
            handle._abandon()
        self.handles.clear()

    def settle(self) -> None:
        """The connect succeeded: keep only the readings the trace is built from."""
        self.handles = _SETTLED

    def failed(self) -> ConnectTrace:
        """The trace of a connect that failed now."""
        self.ended = _monotonic()
        return self.trace()

    def trace(self) -> ConnectTrace:
        """The `ConnectTrace` of what the readings say (built on each call; the handle keeps one)."""
        source = self.source
        resolution = None
        if source is not None:
            ips = [str(sockaddr[0]) for _, sockaddr in self.addresses]
            resolution = Resolution(source, ips, self.resolved)
        started = self.started
        attempts = attempts_of(self.log, self.raced, started)
        total = self.total
        if total is None:
            ended = self.ended
            if ended is None:  # the handle was complete when its attempt connected
                ended = started
                for attempt in attempts:
                    if attempt.outcome == "connected" and attempt.duration is not None:
                        ended += attempt.start + attempt.duration
            total = ended - started
        return ConnectTrace(
            host=self.plan.host,
            port=self.plan.port,
            resolution=resolution,
            attempts=attempts,
            tls_handshake=self.tls_handshake,
            total=total,
        )


def run(plan: Plan, started: float) -> Connection:
    """Carry out a checked plan: resolve, race, keep the winner's handle, then TLS or STARTTLS.

    ``started`` is the clock value (`time.monotonic`) when the connect
    began: its deadline is ``started + plan.timeout`` (`deadline_of`).

    Raises the `InetError` of the phase that failed, with ``.trace`` set;
    every socket opened is closed by then. A plan with a proxy goes to
    ``_proxy.run_proxied``, which races to the proxy instead.
    """
    if plan.proxy is not None:
        from ._proxy import run_proxied

        return run_proxied(plan, started)
    private = plan.tls_follows  # connect keeps the handle to itself until TLS is up
    context = _tls_context(plan) if private else None
    timeout = plan.timeout
    deadline = None if timeout is None else started + timeout  # deadline_of, inlined: every connect
    literal = plan.literal
    if literal is not None:  # an IP literal: nothing to resolve
        source = "literal"
        addresses: Sequence[Address] = (literal,)
        resolved = 0.0
    else:
        source, addresses, resolved = _resolve(plan, started, deadline)
    raced = addresses
    local = plan.local
    if local is not None and local[0]:
        raced = _of_local_family(plan, started, local[0], addresses, source, resolved)
    # Positional arguments: this runs on every connect. ``now`` is the start:
    # the first attempt is due at once.
    race = Race(raced, plan.host, plan.port, started, started, deadline, plan.attempt_delay)
    record = _Record(plan, started, private, source, addresses, resolved, raced, race.log)
    prepare = record.prepare if plan.prepare else None
    try:
        conn = record.handles.pop(dial(race, raced, plan.protocol is _UDP, prepare, record.adopt)[1])
    except BaseException as exc:
        record.abandon()
        if isinstance(exc, InetError) and exc.trace is None:
            exc.trace = record.failed()
        raise
    if record.handles:
        record.abandon()
    if private:
        _secure(plan, conn, context, started, deadline)
    record.settle()
    return conn


def _tls_context(plan: Plan) -> ssl.SSLContext | None:
    """The TLS context of a plan that TLS or STARTTLS follows (`Plan.tls_follows`; both drivers).

    Credentials are loaded and checked here, before any network I/O. A
    STARTTLS plan gets None: its upgrade takes the context when it starts.
    """
    get_context = _get_context or _context_getter()
    if plan.bits & _SECURE:
        return get_context(plan.credentials, plan.options, target=f"{plan.host} port {plan.port}")
    # Bad credentials fail before the dialog starts; the upgrade logs any
    # weakening option when it uses the context.
    get_context(plan.credentials, plan.options, warn=False)
    return None


def _context_getter() -> Callable[..., ssl.SSLContext]:
    global _get_context
    from ._tls import get_context

    _get_context = get_context
    return get_context


def _secure(
    plan: Plan, conn: Connection, context: ssl.SSLContext | None, started: float, deadline: float | None
) -> None:
    """The TLS handshake or the STARTTLS dialog, inside the connect deadline; closes ``conn`` on failure."""
    try:
        if plan.starttls is not None:
            from .starttls import run_dialog

            dialog_started = _monotonic()
            run_dialog(plan.starttls, conn, deadline)
            trace = conn.trace
            trace.starttls = _monotonic() - dialog_started - (trace.tls_handshake or 0.0)
        else:
            conn._start_tls(plan.credentials, None, deadline, context)
    except BaseException as exc:
        conn._close(check_owner=False)
        if isinstance(exc, InetError):
            _secure_failed(started, conn.trace, exc)
        raise
    conn._publish()
    conn._note_times(total=_monotonic() - started)


def _secure_failed(started: float, trace: ConnectTrace, exc: InetError) -> None:
    """The TLS handshake or STARTTLS dialog failed with ``exc``: the trace says so, ``exc`` carries it."""
    _record_on_winner(trace, exc)
    trace.total = _monotonic() - started
    if exc.trace is None:
        exc.trace = trace


def _record_on_winner(trace: ConnectTrace, exc: InetError) -> None:
    """A failure after the race (TLS, STARTTLS) is final and is that address's attempt."""
    for attempt in reversed(trace.attempts):
        if attempt.outcome == "connected":
            attempt.outcome = "failed"
            attempt.error = exc
            return


def _resolve(plan: Plan, started: float, deadline: float | None) -> tuple[str, Sequence[Address], float]:
    """Ask the resolver for the plan's (normalized) host, under the deadline.

    Returns where the addresses came from, the addresses in race order, and
    the seconds from the start until they were known. A failure raises with
    the trace of the connect so far.
    """
    resolver = plan.resolver or _default_resolver()
    try:
        found, source = resolver._lookup(plan.host, plan.port, plan.protocol, deadline)
    except InetError as exc:
        _unresolved(plan, started, exc)
        raise
    return _resolved(plan, started, found, source)


def _unresolved(plan: Plan, started: float, exc: InetError) -> None:
    """Resolution failed with ``exc``: it carries the trace of the connect so far."""
    if exc.trace is None:
        exc.trace = _Record(plan, started, False, None, (), 0.0, (), ()).failed()


def _resolved(
    plan: Plan, started: float, found: Sequence[Address], source: str
) -> tuple[str, Sequence[Address], float]:
    """What the resolver found, in race order, with its source and the seconds it took (both drivers)."""
    addresses = order_addresses(found, bool(plan.bits & _PREFER_IPV6))
    took = _monotonic() - started
    if logger.isEnabledFor(DEBUG):
        logger.debug(
            "resolved %s from %s in %.1f ms: %s",
            plan.host,
            source,
            took * 1000,
            ", ".join(str(sockaddr[0]) for _, sockaddr in addresses),
        )
    return source, addresses, took


def _of_local_family(
    plan: Plan, started: float, local_ip: str, addresses: Sequence[Address], source: str, resolved: float
) -> Sequence[Address]:
    """The addresses of the local address's family: the others cannot be reached from it."""
    family = socket.AF_INET6 if ":" in local_ip else socket.AF_INET
    matching = [a for a in addresses if a[0] == family]
    if not matching:
        error = InvalidArgumentError(
            f"connect to {plan.host} port {plan.port}: local_address {local_ip} is "
            f"{'IPv6' if family == socket.AF_INET6 else 'IPv4'}, but {plan.host} resolved only to "
            f"{', '.join(str(a[1][0]) for a in addresses)}",
            ErrorCode.INVALID_ARGUMENT,
        )
        error.trace = _Record(plan, started, False, source, addresses, resolved, (), ()).failed()
        raise error
    return matching


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
    proxy: str | None = None,
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
    started = _monotonic()
    plan = url_plan(
        url,
        timeout,
        options,
        credentials,
        local_address,
        resolver,
        starttls,
        keepalive,
        attempt_delay,
        session_cache,
        proxy,
    )
    return run(plan, started)


def url_plan(
    url: str,
    timeout: float | None,
    options: Option,
    credentials: SecurityCredentials | None,
    local_address: tuple[str, int] | None,
    resolver: Resolver | None,
    starttls: str | None,
    keepalive: KeepAlive | None,
    attempt_delay: float,
    session_cache: bool,
    proxy: str | None,
) -> Plan:
    """The checked plan for a URL's host and port: `connect_url`'s, blocking and asyncio alike."""
    from ._url import parse_url

    parsed = parse_url(url)
    return make_plan(
        parsed.host,
        parsed.port,
        Protocol.TCP,
        timeout,
        options,
        credentials,
        local_address,
        resolver,
        starttls,
        keepalive,
        attempt_delay,
        session_cache,
        normalized=True,
        implicit_tls=parsed.secure,
        proxy=proxy,
    )
