"""Name resolution for the asyncio driver: `Resolver`'s sources and answers, never blocking the loop.

Theory of operation
-------------------
The blocking `Resolver` asks overrides, hosts files and then DNS
(``getaddrinfo``), and runs DNS (or an overridden `Resolver.resolve`) in a
daemon helper thread that its caller abandons at the deadline. This module
is the same lookup for a coroutine: the sources that need no thread
(`Resolver._resolve_locally`: literal, overrides, hosts files) answer inline,
and whatever may block runs in a daemon thread whose result comes back to
the loop through ``call_soon_threadsafe`` into a future the connect awaits
until the deadline. The answers, the source names of the trace and the
errors are the blocking resolver's own (same helpers, same messages).

Why not ``loop.run_in_executor``: a pool has a fixed number of workers, so
lookups stuck on a dead DNS server would hold up every later lookup behind
them, and ``asyncio.run`` waits for the default executor's threads at exit,
so one stuck ``getaddrinfo`` would hang the program's end. A thread per
lookup, abandoned when its caller stops waiting, has neither problem; the
blocking resolver's semaphore bounds how many exist at once (the slots are
shared with the blocking resolver), and a coroutine waits for a free slot by
polling it (`SLOT_POLL`), never by blocking the loop.

A `Resolver` subclass that overrides `Resolver.aresolve` is awaited instead,
under the deadline: when it overruns, it is cancelled and the connect gets
``TIMED_OUT``, as with a slow DNS server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final, TypeVar

from .. import _resolver
from .._errors import InetError, translate_os_error
from .._resolver import AddressInfo, Resolver, _check_custom, _from_dns, _getaddrinfo, _lookup_timed_out
from .._types import Protocol

__all__ = ["SLOT_POLL", "default_lookup", "in_thread", "lookup"]

_T = TypeVar("_T")

#: Seconds between looks at the lookup slots when all are taken (only when
#: `MAX_LOOKUP_THREADS` lookups are stuck at once: a dead DNS server).
SLOT_POLL: Final = 0.01

_monotonic = time.monotonic


async def lookup(
    resolver: Resolver, host: str, port: int, protocol: Protocol, deadline: float | None
) -> tuple[list[AddressInfo], str]:
    """Resolve a normalized ``host`` for `inetkit.aio.connect`: the addresses and the source's name.

    A resolver whose class overrides `Resolver.aresolve` is awaited (source
    ``"custom"``), cancelled when it overruns ``deadline``; any other goes
    through `default_lookup`.
    """
    cls = type(resolver)
    if cls.aresolve is Resolver.aresolve:
        return await default_lookup(resolver, host, port, protocol, deadline)
    hook = f"{cls.__name__}.aresolve"
    answer = _bounded(resolver.aresolve(host, port, protocol, deadline), deadline, host, hook)
    found = await _custom(host, hook, answer)
    return _check_custom(found, hook, host), "custom"


async def default_lookup(
    resolver: Resolver, host: str, port: int, protocol: Protocol, deadline: float | None
) -> tuple[list[AddressInfo], str]:
    """`Resolver._lookup` for a coroutine: what may block runs in a helper thread (`in_thread`)."""
    cls = type(resolver)
    if cls.resolve is not Resolver.resolve:  # a custom blocking resolve: in a thread, as the blocking side
        hook = f"{cls.__name__}.resolve"
        call = partial(resolver.resolve, host, port, protocol, deadline)
        answer = await _custom(host, hook, in_thread(deadline, host, hook, call))
        return _check_custom(answer, hook, host), "custom"
    known = resolver._resolve_locally(host, port)
    if known is not None:
        return known
    found = await in_thread(deadline, host, "DNS", partial(_getaddrinfo, host, port, protocol))
    return _from_dns(host, found), "dns"


async def _custom(host: str, hook: str, answer: Awaitable[object]) -> object:
    """Await a custom resolver's answer; its `OSError` becomes the `InetError` the blocking side raises."""
    try:
        return await answer
    except InetError:
        raise
    except OSError as exc:  # socket.gaierror included: HOST_NOT_FOUND
        raise translate_os_error(exc, action="resolve", target=host) from exc


async def _bounded(answer: Awaitable[_T], deadline: float | None, host: str, what: str) -> _T:
    """Await ``answer`` until ``deadline``; past it, cancel it and raise ``TIMED_OUT`` naming ``host``."""
    if deadline is None:
        return await answer
    left = deadline - _monotonic()
    if left <= 0:
        if isinstance(answer, asyncio.Future | asyncio.Task):
            answer.cancel()
        elif hasattr(answer, "close"):  # a coroutine never started: no "never awaited" warning
            answer.close()
        raise _lookup_timed_out(host, what)
    scope = asyncio.timeout(left)
    try:
        async with scope:
            return await answer
    except TimeoutError:
        if scope.expired():  # our deadline, not a TimeoutError of the resolver's own
            raise _lookup_timed_out(host, what) from None
        raise


def _settle(future: asyncio.Future[_T], value: _T | None, error: BaseException | None) -> None:
    """On the loop: hand a helper thread's outcome to the waiting coroutine, unless it stopped waiting."""
    if future.done():  # cancelled or timed out: the answer is dropped
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)  # type: ignore[arg-type]  # no error: ``call`` returned a _T


async def in_thread(deadline: float | None, host: str, what: str, call: Callable[[], _T]) -> _T:
    """Run ``call`` in a daemon helper thread; await its result until ``deadline``.

    When the deadline passes first (or the awaiting task is cancelled) the
    thread is abandoned: its result is dropped when it arrives, it holds no
    loop resource meanwhile, and the next lookup starts its own thread. An
    exception raised by ``call`` is raised here.
    """
    if deadline is not None and deadline <= _monotonic():
        raise _lookup_timed_out(host, what)
    slots = _resolver._lookup_slots  # read each time: a fork replaces it
    while not slots.acquire(blocking=False):
        if deadline is not None and _monotonic() >= deadline:
            raise _lookup_timed_out(host, what)
        await asyncio.sleep(SLOT_POLL)
        slots = _resolver._lookup_slots
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def work() -> None:
        value: _T | None = None
        error: BaseException | None = None
        try:
            value = call()
        except BaseException as exc:  # handed to the waiting coroutine
            error = exc
        finally:
            slots.release()
        try:
            loop.call_soon_threadsafe(_settle, future, value, error)
        except RuntimeError:  # the loop is closed: nobody waits for the answer
            pass

    thread = threading.Thread(target=work, name=f"inetkit-resolve {host}", daemon=True)
    try:
        thread.start()
    except BaseException:
        slots.release()
        raise
    return await _bounded(future, deadline, host, what)
