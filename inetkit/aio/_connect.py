"""`inetkit.aio.connect`: the blocking `connect` path, step for step, as a coroutine.

The steps and their order are those of ``inetkit._connect.run``, and so is
every piece that is not I/O: the checked plan (`make_plan`: every argument
checked once, before any I/O), the TLS context and credentials (loaded
before any I/O), the address order, the race (`inetkit._core.race.Race`),
the trace readings (``_connect._Record``) and the failure bookkeeping. What
differs is only who waits: the resolver's blocking work runs in a helper
thread the coroutine awaits (``aio._resolve``), the race runs on the event
loop (``aio._dialer``), and the handshake or STARTTLS dialog is the
`AsyncConnection`'s. One deadline, fixed when `connect` is called, covers
resolution, every attempt, TLS and STARTTLS.

Cancellation is asyncio's: cancelling the task that awaits `connect` raises
`asyncio.CancelledError` at whichever step it waits in, and every socket the
connect opened is closed on the way out (the race's losers and the winner
alike); an abandoned lookup thread finishes on its own and its answer is
dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from .._connect import (
    DEFAULT_TIMEOUT,
    _default_resolver,
    _of_local_family,
    _Record,
    _resolved,
    _secure_failed,
    _tls_context,
    _unresolved,
    url_plan,
)
from .._core.plan import Plan, deadline_of, make_plan
from .._core.race import Address, Race
from .._dialer import CONNECTION_ATTEMPT_DELAY
from .._errors import InetError
from .._resolver import Resolver
from .._types import KeepAlive, Option, Protocol
from ._connection import AsyncConnection
from ._dialer import dial
from ._resolve import lookup

if TYPE_CHECKING:
    import socket
    import ssl

    from .._credentials import SecurityCredentials

__all__ = ["connect", "connect_url", "run"]

_UDP = Protocol.UDP
_monotonic = time.monotonic
#: The handle constructor, bound once (as the blocking connect does).
_new_handle = AsyncConnection._new


async def connect(
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
) -> AsyncConnection:
    """Connect to ``host`` on ``port`` and return an `AsyncConnection` (see `inetkit.connect`).

    Everything is as for `inetkit.connect`: the arguments (checked before any
    I/O), the names, resolution order, the RFC 8305 race, one deadline of
    ``timeout`` seconds over resolution, every attempt, the TLS handshake
    and the STARTTLS dialog, the TLS policy and session cache, the errors
    (classes, codes, messages) and ``trace``. The handle belongs to the
    running event loop.

    A resolver whose class overrides `Resolver.aresolve` is awaited (and
    cancelled when it overruns the deadline); otherwise DNS, or an overridden
    `Resolver.resolve`, runs in a helper thread bounded by the deadline.

    ``proxy`` is a proxy URL, as for `inetkit.connect` (``aio._proxy``: the
    proxy is resolved and raced on the loop, its TLS and dialog run under
    the same deadline).

    Cancelling the awaiting task raises `asyncio.CancelledError` and closes
    every socket the connect opened (a proxy's included).
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
    return await run(plan, started)


async def connect_url(
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
) -> AsyncConnection:
    """Connect to the host and port a URL names (see `inetkit.connect_url`); an `AsyncConnection`."""
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
    return await run(plan, started)


async def run(plan: Plan, started: float) -> AsyncConnection:
    """Carry out a checked plan on the running loop: resolve, race, then TLS or STARTTLS.

    Raises the `InetError` of the phase that failed, with ``.trace`` set;
    every socket opened is closed by then (also when cancelled). A plan with
    a proxy goes to ``aio._proxy.run_proxied``, which races to the proxy.
    """
    if plan.proxy is not None:
        from ._proxy import run_proxied

        return await run_proxied(plan, started)
    private = plan.tls_follows
    context = _tls_context(plan) if private else None
    deadline = deadline_of(plan, started)
    loop = asyncio.get_running_loop()
    literal = plan.literal
    if literal is not None:  # an IP literal: nothing to resolve
        source = "literal"
        addresses: Sequence[Address] = (literal,)
        resolved = 0.0
    else:
        source, addresses, resolved = await _resolve(plan, started, deadline)
    raced = addresses
    local = plan.local
    if local is not None and local[0]:
        raced = _of_local_family(plan, started, local[0], addresses, source, resolved)
    race = Race(raced, plan.host, plan.port, started, started, deadline, plan.attempt_delay)
    record = _Record(plan, started, private, source, addresses, resolved, raced, race.log)
    prepare = record.prepare if plan.prepare else None
    try:
        sock, index = await dial(race, raced, plan.protocol is _UDP, prepare, loop)
    except BaseException as exc:
        if isinstance(exc, InetError) and exc.trace is None:
            exc.trace = record.failed()
        raise
    try:
        # (ip, port): an IPv4 sockaddr is that tuple itself (slicing all of a tuple returns it).
        # The dialer's sockets are the C-level ``_socket.socket`` (as for the blocking
        # handle), which has every method the handle uses.
        conn = _new_handle(cast("socket.socket", sock), raced[index][1][:2], plan, record, loop)
    except BaseException:
        sock.close()
        raise
    if private:
        await _secure(plan, conn, context, started, deadline)
    record.settle()
    return conn


async def _secure(
    plan: Plan, conn: AsyncConnection, context: ssl.SSLContext | None, started: float, deadline: float | None
) -> None:
    """The TLS handshake or the STARTTLS dialog, inside the connect deadline; closes ``conn`` on failure."""
    try:
        if plan.starttls is not None:
            await conn._run_dialog(plan.starttls, deadline)
        else:
            await conn._start_tls(plan.credentials, None, deadline, context)
    except BaseException as exc:
        conn._close_now()
        if isinstance(exc, InetError):
            _secure_failed(started, conn.trace, exc)
        raise
    conn._note_times(total=_monotonic() - started)


async def _resolve(
    plan: Plan, started: float, deadline: float | None
) -> tuple[str, Sequence[Address], float]:
    """Ask the resolver for the plan's host under the deadline (``_connect._resolve``, awaited)."""
    resolver = plan.resolver or _default_resolver()
    try:
        found, source = await lookup(resolver, plan.host, plan.port, plan.protocol, deadline)
    except InetError as exc:
        _unresolved(plan, started, exc)
        raise
    return _resolved(plan, started, found, source)
