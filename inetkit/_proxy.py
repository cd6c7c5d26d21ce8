"""The blocking driver of a connect through a proxy (``connect(proxy=...)``).

Theory of operation
-------------------
The proxy is a host like any other: its name goes through the resolver
(a ``resolver=`` resolves it too), its addresses are ordered and raced
(RFC 8305) by the same `Race` and `dial` as a direct connect, under the
same one deadline. The winner's socket becomes the handle, which keeps the
target's host name and port (``remote_address`` is the proxy's: that is the
socket's peer). Then, still inside the deadline:

1. ``https://`` proxies: TLS to the proxy, verified against the connect's
   trust anchors for the PROXY's name; `Option.TRUSTEDSITE`, pins, the
   client certificate and ALPN are the target's and are not used on this
   hop (`proxy_credentials`). The handle's transport becomes that TLS layer.
2. The proxy dialog (``_core.proxy``: HTTP CONNECT or SOCKS, sans-I/O),
   run by the same step loop as the STARTTLS dialogs
   (`inetkit.starttls.drive_steps`) on the handle's own reads and writes,
   so whatever the target sends right behind the proxy's answer stays in
   the handle's buffer. A `Refused` step becomes `ProxyError`.
3. The target's TLS (over the proxy's TLS layer, if there is one: TLS
   inside TLS) or its STARTTLS dialog, exactly as for a direct connect
   (``_connect._secure``), verifying the TARGET's name and certificate.

For ``socks5://`` the client resolves the target first (the resolver,
within the deadline) and sends the first address in the usual order; the
other schemes send the name and the proxy resolves it.

Failures reaching the proxy (refused, reset, timed out, no such host) keep
their class and code; their message says that the proxy was the peer. The
trace (`ConnectTrace.proxy`) names the proxy by ``scheme://host:port``,
never with its credentials.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._connect import _default_resolver, _of_local_family, _Record, _secure
from ._core.dialogs._steps import Dialog, Refused
from ._core.plan import deadline_of
from ._core.proxy import Proxy, new_proxy_dialog
from ._core.race import Address, Race, describe_target
from ._dialer import dial
from ._errors import ErrorCode, InetError, ProxyError, SecurityError
from ._log import DEBUG, logger
from ._resolver import order_addresses
from ._trace import ConnectTrace, ProxyPhase
from ._types import Option, Protocol

if TYPE_CHECKING:
    import ssl

    from ._connection import Connection
    from ._core.plan import Plan
    from ._credentials import SecurityCredentials

__all__ = ["Contexts", "proxy_credentials", "refusal", "resolved_name", "run_proxied"]

_SECURE = int(Option.SECURE)
_PREFER_IPV6 = int(Option.PREFER_IPV6)
_monotonic = time.monotonic


def proxy_credentials(credentials: SecurityCredentials | None) -> SecurityCredentials | None:
    """The credentials of the hop to an ``https://`` proxy: the same trust anchors and versions, nothing else.

    The client certificate, ALPN and pins belong to the target: a proxy is
    not shown the client's identity, offered the target's protocols, or
    held to the target's pins.
    """
    if credentials is None:
        return None
    import dataclasses  # only here: it costs milliseconds to import

    return dataclasses.replace(
        credentials,
        cert_store=None,
        cert_name=None,
        password=None,
        private_key=None,
        alpn_protocols=None,
        pinned_public_keys=None,
    )


def _peer_note(proxy: Proxy, plan: Plan) -> str:
    return f"(the proxy {proxy.endpoint} for {plan.host} port {plan.port} was the peer)"


def _reaching_proxy_failed(exc: InetError, proxy: Proxy, plan: Plan) -> InetError:
    """The same class, code, errno and attempts, with a message that says the proxy was the peer."""
    error = type(exc)(
        f"{exc.message} {_peer_note(proxy, plan)}", exc.code, errno=exc.errno, attempts=exc.attempts
    )
    error.trace = exc.trace
    return error


class _Readings:
    """What the proxy phase measured, kept until the trace is built."""

    __slots__ = ("dialog", "ended", "target_address", "tls_handshake")

    def __init__(self) -> None:
        self.ended: float | None = None
        self.tls_handshake: float | None = None
        self.dialog: float | None = None
        self.target_address: str | None = None


def _with_phase(trace: ConnectTrace, proxy: Proxy, readings: _Readings) -> ConnectTrace:
    trace.proxy = ProxyPhase(proxy.endpoint, readings.tls_handshake, readings.dialog, readings.target_address)
    return trace


class _ProxyRecord(_Record):
    """`_Record` whose trace also has the proxy phase (built only when asked for, as for a direct connect)."""

    __slots__ = ("proxy", "readings")

    def __init__(
        self,
        plan: Plan,
        started: float,
        private: bool,
        source: str,
        addresses: Sequence[Address],
        resolved: float,
        raced: Sequence[Address],
        log: Sequence[list[Any]],
        readings: _Readings,
    ) -> None:
        super().__init__(plan, started, private, source, addresses, resolved, raced, log)
        assert plan.proxy is not None
        self.proxy = plan.proxy
        self.readings = readings

    def trace(self) -> ConnectTrace:
        trace = _with_phase(super().trace(), self.proxy, self.readings)
        ended = self.readings.ended
        if ended is not None and self.ended is None and self.total is None:
            trace.total = ended - self.started
        return trace


class Contexts:
    """The TLS contexts of a proxied connect, loaded before any I/O (both drivers)."""

    __slots__ = ("context", "hop_context", "hop_credentials")

    def __init__(self, plan: Plan, proxy: Proxy) -> None:
        #: The target's context (implicit TLS), None otherwise.
        self.context: ssl.SSLContext | None = None
        #: The hop to an ``https://`` proxy: its credentials (`proxy_credentials`) and context.
        self.hop_credentials: SecurityCredentials | None = None
        self.hop_context: ssl.SSLContext | None = None
        if plan.bits & _SECURE:
            from ._tls import get_context

            self.context = get_context(plan.credentials, plan.options, target=f"{plan.host} port {plan.port}")
        elif plan.starttls is not None:
            from ._tls import get_context

            get_context(plan.credentials, plan.options, warn=False)
        if proxy.tls:
            from ._tls import get_context

            self.hop_credentials = proxy_credentials(plan.credentials)
            self.hop_context = get_context(
                self.hop_credentials, Option.NONE, target=f"proxy {proxy.endpoint}"
            )


def failed_early(plan: Plan, started: float, proxy: Proxy, readings: _Readings) -> ConnectTrace:
    """The trace of a proxied connect that failed before the race to the proxy."""
    return _with_phase(_Record(plan, started, False, None, (), 0.0, (), ()).failed(), proxy, readings)


def proxy_unresolved(
    exc: InetError, plan: Plan, started: float, proxy: Proxy, readings: _Readings
) -> InetError:
    """The proxy's name did not resolve: the error to raise (the proxy named as the peer, with the trace)."""
    error = _reaching_proxy_failed(exc, proxy, plan)
    error.trace = failed_early(plan, started, proxy, readings)
    return error


def race_lost(exc: InetError, plan: Plan, proxy: Proxy, readings: _Readings, record: _Record) -> InetError:
    """The race to the proxy failed with ``exc``: the error to raise (the proxy named as the peer)."""
    error = _reaching_proxy_failed(exc, proxy, plan)
    error.trace = exc.trace if exc.trace is not None else record.failed()
    if error.trace.proxy is None:
        _with_phase(error.trace, proxy, readings)
    return error


def hop_names(plan: Plan, proxy: Proxy, ip: str) -> tuple[str, str]:
    """How messages name the hop to the proxy (``proxy host port p (ip)``) and the handle through it."""
    hop = f"proxy {describe_target(proxy.host, proxy.port, ip)}"
    return hop, f"{plan.host} port {plan.port} through {hop}"


def check_after_dialog(plan: Plan, proxy: Proxy, buffered: int) -> None:
    """A TLS target: refuse bytes that followed the proxy's answer before the handshake."""
    if plan.bits & _SECURE and buffered:
        raise ProxyError(
            f"proxy {proxy.endpoint} for {plan.host} port {plan.port}: the proxy's answer was followed "
            f"by {buffered} byte(s) before the TLS handshake (the server speaks after the "
            "client in TLS; refusing bytes that did not come from it)",
            ErrorCode.PROXY_PROTOCOL,
        )


def tunnel_failed(started: float, trace: ConnectTrace, exc: InetError) -> None:
    """The proxy's TLS or dialog failed with ``exc`` (the handle is closed): the trace says so."""
    for attempt in reversed(trace.attempts):
        if attempt.outcome == "connected":
            attempt.outcome = "failed"
            attempt.error = exc
            break
    trace.total = _monotonic() - started
    if exc.trace is None:
        exc.trace = trace


def log_tunnel(plan: Plan, started: float, proxy: Proxy) -> None:
    """The debug line of a tunnel that is up (the endpoint has no credentials)."""
    if logger.isEnabledFor(DEBUG):
        logger.debug(
            "tunnel to %s port %s through %s in %.1f ms",
            plan.host,
            plan.port,
            proxy.endpoint,
            (_monotonic() - started) * 1000,
        )


def refusal(plan: Plan, proxy: Proxy, refused: Refused) -> InetError:
    """The error of a `Refused` step of a proxy dialog (both drivers)."""
    message = f"proxy {proxy.endpoint} for {plan.host} port {plan.port}: {refused.reason}"
    if refused.code in (ErrorCode.PROXY_REFUSED, ErrorCode.PROXY_AUTH_REQUIRED, ErrorCode.PROXY_PROTOCOL):
        return ProxyError(message, refused.code)
    return SecurityError(message, refused.code)  # pragma: no cover - proxy dialogs refuse with PROXY_* only


def run_proxied(plan: Plan, started: float) -> Connection:
    """Carry out a checked plan whose ``proxy`` is set (see the module header); ``started`` as for `run`."""
    proxy = plan.proxy
    assert proxy is not None
    deadline = deadline_of(plan, started)
    private = True  # the handle is connect's until the proxy dialog (and TLS) are done
    contexts = Contexts(plan, proxy)
    readings = _Readings()

    # 1. The proxy's addresses, then the target's when the client resolves it.
    literal = proxy.literal
    if literal is not None:
        source = "literal"
        addresses: Sequence[Address] = (literal,)
        resolved = 0.0
    else:
        try:
            source, addresses, resolved = _resolve_name(plan, started, deadline, proxy.host, proxy.port)
        except InetError as exc:
            raise proxy_unresolved(exc, plan, started, proxy, readings) from exc
    target_host = plan.host
    if not proxy.resolves_target:
        target_host = _target_address(plan, started, deadline, proxy, readings)
    raced = addresses
    local = plan.local
    if local is not None and local[0]:
        raced = _of_local_family(plan, started, local[0], addresses, source, resolved)
    # 2. The race to the proxy.
    race = Race(raced, proxy.host, proxy.port, started, _monotonic(), deadline, plan.attempt_delay)
    record = _ProxyRecord(plan, started, private, source, addresses, resolved, raced, race.log, readings)
    prepare = record.prepare if plan.prepare else None
    try:
        winner = dial(race, raced, False, prepare, record.adopt)[1]
    except BaseException as exc:
        record.abandon()
        if isinstance(exc, InetError):
            raise race_lost(exc, plan, proxy, readings, record) from exc
        raise
    conn = record.handles.pop(winner)
    if record.handles:
        record.abandon()
    hop, conn._guard.via = hop_names(plan, proxy, str(raced[winner][1][0]))
    # 3. TLS to an https:// proxy, then the dialog, inside the deadline.
    try:
        if proxy.tls:
            from ._tls_io import start_tls

            hop_started = _monotonic()
            try:
                conn._transport, _ = start_tls(
                    conn._plain,
                    host=proxy.host,
                    port=proxy.port,
                    options=Option.NONE,
                    credentials=contexts.hop_credentials,
                    server_name=None,
                    deadline=deadline,
                    session_cache=plan.session_cache,
                    context=contexts.hop_context,
                    target=hop,
                )
            finally:
                readings.tls_handshake = _monotonic() - hop_started
        dialog_started = _monotonic()
        _run_dialog(conn, new_proxy_dialog(proxy, target_host, plan.port), proxy, plan, deadline)
        readings.dialog = _monotonic() - dialog_started
        check_after_dialog(plan, proxy, len(conn._buffer))
    except BaseException as exc:
        conn._close(check_owner=False)
        if isinstance(exc, InetError):
            tunnel_failed(started, conn.trace, exc)  # the trace has the proxy phase (`_ProxyRecord.trace`)
        raise
    log_tunnel(plan, started, proxy)
    if plan.bits & _SECURE or plan.starttls is not None:
        _secure(plan, conn, contexts.context, started, deadline)
    else:
        readings.ended = _monotonic()  # the trace, if it is ever asked for, ends here
        conn._publish()
    record.settle()
    return conn


def _resolve_name(
    plan: Plan, started: float, deadline: float | None, host: str, port: int
) -> tuple[str, Sequence[Address], float]:
    """``host`` through the plan's resolver, under the deadline: the source, the ordered addresses, when."""
    resolver = plan.resolver or _default_resolver()
    found, source = resolver._lookup(host, port, Protocol.TCP, deadline)
    return resolved_name(plan, started, host, found, source)


def resolved_name(
    plan: Plan, started: float, host: str, found: Sequence[Address], source: str
) -> tuple[str, Sequence[Address], float]:
    """What the resolver found for ``host`` (the proxy or the target), in race order (both drivers)."""
    addresses = order_addresses(found, bool(plan.bits & _PREFER_IPV6))
    took = _monotonic() - started
    if logger.isEnabledFor(DEBUG):
        logger.debug(
            "resolved %s from %s in %.1f ms: %s",
            host,
            source,
            took * 1000,
            ", ".join(str(sockaddr[0]) for _, sockaddr in addresses),
        )
    return source, addresses, took


def _target_address(
    plan: Plan, started: float, deadline: float | None, proxy: Proxy, readings: _Readings
) -> str:
    """``socks5://``: the client resolves the target (in the deadline) and sends its first address."""
    literal = plan.literal
    if literal is not None:
        address = str(literal[1][0])
    else:
        try:
            _, found, _ = _resolve_name(plan, started, deadline, plan.host, plan.port)
        except InetError as exc:
            if exc.trace is None:
                exc.trace = failed_early(plan, started, proxy, readings)
            raise
        address = str(found[0][1][0])
    readings.target_address = address
    return address


def _run_dialog(conn: Connection, dialog: Dialog, proxy: Proxy, plan: Plan, deadline: float | None) -> None:
    """Drive the proxy dialog on the handle under the connect deadline (the STARTTLS dialogs' loop)."""
    from .starttls import drive_steps

    saved = conn.timeout
    drive_steps(conn, dialog, None, deadline, saved, lambda _c, _d, refused: refusal(plan, proxy, refused))
    conn.timeout = saved
