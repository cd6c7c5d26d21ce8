"""The asyncio driver of a connect through a proxy (``inetkit.aio.connect(proxy=...)``).

Theory of operation
-------------------
The steps, their order and every decision that is not I/O are the blocking
driver's (``inetkit._proxy``, whose header tells the whole story): the TLS
contexts (`_proxy.Contexts`, loaded before any I/O), which names are
resolved (the proxy's; the target's too for ``socks5://``), the ordered
addresses (`_proxy.resolved_name`), the race to the proxy (`Race`), the
dialog (`new_proxy_dialog`) and its refusals (`_proxy.refusal`), how
failures say that the proxy was the peer (`_proxy.race_lost`,
`_proxy.proxy_unresolved`), the check for stray bytes before a TLS target
(`_proxy.check_after_dialog`), and the trace's proxy phase
(`_proxy._ProxyRecord`). What differs is who waits: names are looked up as
for a direct async connect (``aio._resolve``), the race runs on the loop
(``aio._dialer``), TLS to an ``https://`` proxy is an `AsyncTLS` layer
(``aio._tls``), the dialog runs on the async step loop
(``aio._starttls.drive_steps``), and the target's TLS or STARTTLS is the
direct connect's (``aio._connect._secure``), over the proxy's TLS layer
when there is one (TLS inside TLS).

One deadline covers all of it. Cancellation at any step closes every
socket the connect opened (the proxy's included) before
`asyncio.CancelledError` leaves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from .._connect import _default_resolver, _of_local_family
from .._core.plan import deadline_of
from .._core.proxy import Proxy, new_proxy_dialog
from .._core.race import Address, Race
from .._errors import InetError
from .._proxy import (
    Contexts,
    _ProxyRecord,
    _Readings,
    check_after_dialog,
    failed_early,
    hop_names,
    log_tunnel,
    proxy_unresolved,
    race_lost,
    refusal,
    resolved_name,
    tunnel_failed,
)
from .._types import Option, Protocol
from ._connection import AsyncConnection
from ._dialer import dial
from ._resolve import lookup

if TYPE_CHECKING:
    import socket

    from .._core.plan import Plan

__all__ = ["run_proxied"]

_monotonic = time.monotonic
_TCP = Protocol.TCP


async def run_proxied(plan: Plan, started: float) -> AsyncConnection:
    """Carry out a checked plan whose ``proxy`` is set, on the running loop (see the module header)."""
    from ._connect import _secure

    proxy = plan.proxy
    assert proxy is not None
    deadline = deadline_of(plan, started)
    contexts = Contexts(plan, proxy)
    readings = _Readings()
    loop = asyncio.get_running_loop()
    # 1. The proxy's addresses, then the target's when the client resolves it.
    literal = proxy.literal
    if literal is not None:
        source = "literal"
        addresses: Sequence[Address] = (literal,)
        resolved = 0.0
    else:
        try:
            source, addresses, resolved = await _resolve_name(plan, started, deadline, proxy.host, proxy.port)
        except InetError as exc:
            raise proxy_unresolved(exc, plan, started, proxy, readings) from exc
    target_host = plan.host
    if not proxy.resolves_target:
        target_host = await _target_address(plan, started, deadline, proxy, readings)
    raced = addresses
    local = plan.local
    if local is not None and local[0]:
        raced = _of_local_family(plan, started, local[0], addresses, source, resolved)
    # 2. The race to the proxy, on the loop.
    race = Race(raced, proxy.host, proxy.port, started, _monotonic(), deadline, plan.attempt_delay)
    record = _ProxyRecord(plan, started, True, source, addresses, resolved, raced, race.log, readings)
    prepare = record.prepare if plan.prepare else None
    try:
        sock, index = await dial(race, raced, False, prepare, loop)
    except InetError as exc:
        raise race_lost(exc, plan, proxy, readings, record) from exc
    try:
        # The dialer's sockets are the C-level ``_socket.socket`` (see ``aio._connect.run``).
        conn = AsyncConnection._new(cast("socket.socket", sock), raced[index][1][:2], plan, record, loop)
    except BaseException:
        sock.close()
        raise
    hop, conn._channel.via = hop_names(plan, proxy, str(raced[index][1][0]))
    # 3. TLS to an https:// proxy, then the dialog, inside the deadline.
    try:
        if proxy.tls:
            from ._tls import start_tls

            hop_started = _monotonic()
            try:
                conn._tls, _ = await start_tls(
                    conn._channel,
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
        await _run_dialog(conn, proxy, plan, deadline, target_host)
        readings.dialog = _monotonic() - dialog_started
        check_after_dialog(plan, proxy, len(conn._buffer))
    except BaseException as exc:
        conn._close_now()
        if isinstance(exc, InetError):
            tunnel_failed(started, conn.trace, exc)  # the trace has the proxy phase (`_ProxyRecord.trace`)
        raise
    log_tunnel(plan, started, proxy)
    if plan.bits & int(Option.SECURE) or plan.starttls is not None:
        await _secure(plan, conn, contexts.context, started, deadline)
    else:
        readings.ended = _monotonic()  # the trace, if it is ever asked for, ends here
    record.settle()
    return conn


async def _resolve_name(
    plan: Plan, started: float, deadline: float | None, host: str, port: int
) -> tuple[str, Sequence[Address], float]:
    """``host`` through the plan's resolver (awaited), under the deadline: source, ordered addresses, when."""
    resolver = plan.resolver or _default_resolver()
    found, source = await lookup(resolver, host, port, _TCP, deadline)
    return resolved_name(plan, started, host, found, source)


async def _target_address(
    plan: Plan, started: float, deadline: float | None, proxy: Proxy, readings: _Readings
) -> str:
    """``socks5://``: the client resolves the target (in the deadline) and sends its first address."""
    literal = plan.literal
    if literal is not None:
        address = str(literal[1][0])
    else:
        try:
            _, found, _ = await _resolve_name(plan, started, deadline, plan.host, plan.port)
        except InetError as exc:
            if exc.trace is None:
                exc.trace = failed_early(plan, started, proxy, readings)
            raise
        address = str(found[0][1][0])
    readings.target_address = address
    return address


async def _run_dialog(
    conn: AsyncConnection, proxy: Proxy, plan: Plan, deadline: float | None, target_host: str
) -> None:
    """Drive the proxy dialog on the handle under the connect deadline (the STARTTLS dialogs' loop)."""
    from ._starttls import drive_steps

    saved = conn.timeout
    dialog = new_proxy_dialog(proxy, target_host, plan.port)
    await drive_steps(conn, dialog, None, deadline, saved, lambda _c, _d, step: refusal(plan, proxy, step))
    conn.timeout = saved
