"""Helpers of the AsyncConnection tests: loops to run on, and handles made without `aio.connect`.

Every test runs on asyncio's default loop and on uvloop (skipped, with the
reason, where uvloop does not import). A handle is made the way the connect
driver makes it: a connected socket, non-blocking, wrapped by the internal
constructor `AsyncConnection._new` with the checked plan and a trace source.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from inetkit import Option, Protocol, SecurityCredentials
from inetkit._core.plan import Plan, deadline_of, make_plan
from inetkit._trace import ConnectTrace
from inetkit.aio import AsyncConnection

_T = TypeVar("_T")

#: Connect and I/O timeout of the handles the tests make (loopback answers in microseconds).
TIMEOUT = 5.0
#: The race's attempt delay handed to the plan (one address: never used).
ATTEMPT_DELAY = 0.25

try:
    import uvloop
except ImportError:  # pragma: no cover - depends on the machine
    uvloop = None

#: The loops every test runs on.
LOOPS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param(
        "uvloop",
        id="uvloop",
        marks=pytest.mark.skipif(uvloop is None, reason="uvloop does not import here (pip install uvloop)"),
    ),
]


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``asyncio.Runner``: None is asyncio's default loop."""
    if name == "uvloop":
        assert uvloop is not None
        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return None


def run(name: str, main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run ``main()`` on a fresh loop of kind ``name``; no task may be left pending at the end."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        result = runner.run(main())

        async def pending() -> set[asyncio.Task[Any]]:
            return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

        left = runner.run(pending())
        assert not left, f"tasks outlived the test: {left}"
        return result


class TraceStub:
    """A trace source as the connect driver gives one (``_connect._Record``): builds a `ConnectTrace`."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.calls = 0
        # What the handle notes before the trace exists (HandleFace._note_times).
        self.tls_handshake: float | None = None
        self.total: float | None = None

    def trace(self) -> ConnectTrace:
        self.calls += 1
        return ConnectTrace(
            host=self.plan.host,
            port=self.plan.port,
            resolution=None,
            attempts=[],
            tls_handshake=self.tls_handshake,
            total=0.0 if self.total is None else self.total,
        )


def plan_for(
    host: str,
    port: int,
    *,
    protocol: Protocol = Protocol.TCP,
    timeout: float | None = TIMEOUT,
    options: Option = Option.NONE,
    credentials: SecurityCredentials | None = None,
    starttls: str | None = None,
    session_cache: bool = True,
) -> Plan:
    return make_plan(
        host,
        port,
        protocol,
        timeout,
        options,
        credentials,
        None,
        None,
        starttls,
        None,
        ATTEMPT_DELAY,
        session_cache,
    )


async def open_handle(
    host: str,
    port: int,
    *,
    ip: str = "127.0.0.1",
    protocol: Protocol = Protocol.TCP,
    timeout: float | None = TIMEOUT,
    options: Option = Option.NONE,
    credentials: SecurityCredentials | None = None,
    session_cache: bool = True,
) -> AsyncConnection:
    """A handle to ``ip``:``port`` for the host name ``host``; `Option.SECURE` runs the handshake."""
    plan = plan_for(
        host,
        port,
        protocol=protocol,
        timeout=timeout,
        options=options,
        credentials=credentials,
        session_cache=session_cache,
    )
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    kind = socket.SOCK_DGRAM if protocol is Protocol.UDP else socket.SOCK_STREAM
    sock = socket.socket(family, kind)
    try:
        sock.settimeout(TIMEOUT)
        sock.connect((ip, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    conn = AsyncConnection._new(sock, (ip, port), plan, TraceStub(plan), asyncio.get_running_loop())
    if options & Option.SECURE:
        try:
            await conn._start_tls(credentials, None, deadline_of(plan, time.monotonic()), None)
        except BaseException:
            conn._close_now()
            raise
    return conn


def registered(conn: AsyncConnection, fd: int) -> bool:
    """Is a reader or writer callback still registered for ``fd`` on the handle's loop? (removes it)."""
    loop = conn._loop
    return bool(loop.remove_reader(fd)) or bool(loop.remove_writer(fd))
