"""inetkit for asyncio: the same connect on the same core, as coroutines.

``await inetkit.aio.connect(host, port, ...)`` takes exactly the arguments
of `inetkit.connect` and does the same thing (names, resolution order, the
RFC 8305 race, one deadline over resolution, every attempt, TLS and
STARTTLS, the TLS policy and session cache, errors and ``trace``), driving
the same sans-I/O core on the event loop instead of blocking a thread. It
returns an `AsyncConnection`, whose members are `inetkit.Connection`'s as
coroutines. `aresolve` is the asyncio twin of `Resolver.resolve`.

See ``docs/asyncio.md`` for how the two APIs map and for the cancellation
rules.
"""

import time as _time

from .._connect import DEFAULT_TIMEOUT as _DEFAULT_TIMEOUT
from .._connect import _default_resolver
from .._core.plan import deadline_of as _deadline_of
from .._core.plan import make_plan as _make_plan
from .._dialer import CONNECTION_ATTEMPT_DELAY as _CONNECTION_ATTEMPT_DELAY
from .._resolver import AddressInfo as _AddressInfo
from .._resolver import Resolver as _Resolver
from .._types import Option as _Option
from .._types import Protocol as _Protocol
from ._connect import connect, connect_url
from ._connection import AsyncConnection
from ._resolve import lookup as _lookup

__all__ = ["AsyncConnection", "aresolve", "connect", "connect_url"]


async def aresolve(
    host: str,
    port: int | str,
    protocol: _Protocol = _Protocol.TCP,
    timeout: float | None = _DEFAULT_TIMEOUT,
    *,
    resolver: _Resolver | None = None,
) -> list[_AddressInfo]:
    """Look ``host`` up as `connect` would, without connecting: ``(family, sockaddr)`` pairs.

    The host is normalized and the arguments are checked as `connect` checks
    them (the same errors, before any I/O); ``resolver`` (default: the
    default `Resolver`) is asked as `connect` asks it, within ``timeout``
    seconds: its `Resolver.aresolve` when a subclass overrides it, else the
    overrides and hosts files at once and DNS (or an overridden
    `Resolver.resolve`) in a helper thread. The pairs are in the source's
    order, as `Resolver.resolve` returns them (`connect` orders them for its
    race); an IP literal gives itself.

    Raises:
        TypeError, InvalidArgumentError: a bad argument.
        HostNotFoundError: no source knows the name.
        InetTimeoutError: (``TIMED_OUT``) no answer within ``timeout``.
    """
    started = _time.monotonic()
    plan = _make_plan(
        host,
        port,
        protocol,
        timeout,
        _Option.NONE,
        None,
        None,
        resolver,
        None,
        None,
        _CONNECTION_ATTEMPT_DELAY,
        True,
    )
    if plan.literal is not None:
        return [plan.literal]
    chosen = plan.resolver or _default_resolver()
    found, _ = await _lookup(chosen, plan.host, plan.port, plan.protocol, _deadline_of(plan, started))
    return found
