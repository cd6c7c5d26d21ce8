"""Measurements for the reliability suite, and the JSON report they make.

Every case runs inside ``measure(name, action)``: the context records the
descriptors, threads and resident memory of the process before and after the
case (after waiting, bounded, for in-process peer threads to close their
ends), the time the case took and the worst single operation it timed, and
what inetkit did (``case.outcome``). It also *checks* hygiene: a case that
ends with more descriptors than it started with fails, unless it says that
its peers keep descriptors (``leak_check=False``).

With ``INETKIT_RELIABILITY_REPORT=path`` the session writes every record as
JSON to ``path`` at its end; ``python3 tests/reliability/report.py path``
turns that file into the table of ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import pytest

#: Environment variable naming the JSON file the session writes its records to.
REPORT_ENV = "INETKIT_RELIABILITY_REPORT"
#: Seconds a case waits for descriptors and threads to settle back after it ends.
SETTLE_LIMIT = 5.0
#: How often the settle wait looks again.
SETTLE_POLL = 0.02
#: Bytes per page of /proc/self/statm.
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE // 1024


@dataclass
class Case:
    """One row of the reliability table."""

    name: str
    action: str
    outcome: str = ""
    seconds: float = 0.0
    worst: float = 0.0  # the slowest single timed operation, seconds
    fds_before: int = 0
    fds_after: int = 0
    threads_before: int = 0
    threads_after: int = 0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    notes: list[str] = field(default_factory=list)

    def saw(self, seconds: float) -> None:
        """Remember one operation's duration (the row shows the worst)."""
        self.worst = max(self.worst, seconds)

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Time the block as one operation."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.saw(time.monotonic() - started)

    def note(self, text: str) -> None:
        self.notes.append(text)


class Recorder:
    """The session's records."""

    def __init__(self) -> None:
        self.cases: list[Case] = []

    @contextlib.contextmanager
    def measure(self, name: str, action: str, *, leak_check: bool = True) -> Iterator[Case]:
        case = Case(name, action)
        case.fds_before = open_fds()
        case.threads_before = threading.active_count()
        case.rss_before_kib = rss_kib()
        started = time.monotonic()
        yield case
        case.seconds = time.monotonic() - started
        if case.worst == 0.0:
            case.worst = case.seconds
        end = time.monotonic() + SETTLE_LIMIT
        while (
            open_fds() > case.fds_before or threading.active_count() > case.threads_before
        ) and time.monotonic() < end:
            time.sleep(SETTLE_POLL)
        case.fds_after = open_fds()
        case.threads_after = threading.active_count()
        case.rss_after_kib = rss_kib()
        self.cases.append(case)
        if leak_check:
            assert case.fds_after <= case.fds_before, (
                f"{name}: {case.fds_after - case.fds_before} descriptor(s) leaked"
            )
            assert case.threads_after <= case.threads_before, (
                f"{name}: {case.threads_after - case.threads_before} thread(s) left running"
            )

    def write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as out:
            json.dump([asdict(case) for case in self.cases], out, indent=1)
            out.write("\n")


@pytest.fixture(scope="session")
def recorder() -> Iterator[Recorder]:
    records = Recorder()
    yield records
    path = os.environ.get(REPORT_ENV)
    if path:
        records.write(path)


Measure = Callable[..., contextlib.AbstractContextManager[Case]]


@pytest.fixture
def measure(recorder: Recorder) -> Measure:
    """``with measure("case", "what is done") as case:`` records one table row."""
    return recorder.measure
