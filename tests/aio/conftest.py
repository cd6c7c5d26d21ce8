"""asyncio test support: every test runs on the default event loop and on uvloop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

#: The event loops the asyncio tests run on.
LOOPS = ("asyncio", "uvloop")

Run = Callable[[Coroutine[Any, Any, T]], T]


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The factory of a fresh loop of ``kind``; skips the test when uvloop does not import."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            if os.environ.get("INETKIT_REQUIRE_PROGRAMS") == "1":
                pytest.fail("uvloop does not import (pip install -e '.[test]' installs it)")
            pytest.skip("uvloop does not import here (pip install -e '.[test]' installs it)")
        return uvloop.new_event_loop
    return asyncio.new_event_loop


@pytest.fixture(params=LOOPS)
def arun(request: pytest.FixtureRequest) -> Run[Any]:
    """``arun(coro)`` runs ``coro`` to its end on a fresh loop of the test's kind and returns its result."""
    factory = loop_factory(request.param)

    def run(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)

    return run
