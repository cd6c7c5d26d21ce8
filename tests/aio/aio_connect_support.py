"""Helpers of the `inetkit.aio.connect` tests: the ``arun`` fixture runs a test on every loop.

The loops are the asyncio handle tests' (``aio_io_support.LOOPS``: the
default loop and uvloop, skipped with the reason where uvloop does not
import), and so is the runner (a fresh loop per run; no task may be left
pending at its end). A test module makes the fixture its own with
``arun = loop_fixture()``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from aio_io_support import LOOPS, run

T = TypeVar("T")

#: ``arun(coro)``: run ``coro`` to its end on a fresh loop of the test's kind, return its result.
Run = Callable[[Coroutine[Any, Any, T]], T]


def loop_fixture() -> Any:
    """The ``arun`` fixture, parametrized over `LOOPS`."""

    @pytest.fixture(params=LOOPS)
    def arun(request: pytest.FixtureRequest) -> Run[Any]:
        kind: str = request.param

        def run_one(coro: Coroutine[Any, Any, T]) -> T:
            return run(kind, lambda: coro)

        return run_one

    return arun
