"""The measurement recorder and the report it feeds (docs/reliability.md is made from them)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from . import report
from .conftest import Recorder


def test_a_case_is_recorded_written_and_rendered(tmp_path: Path) -> None:
    records = Recorder()
    with records.measure("demo case", "nothing | much") as case:
        with case.timed():
            pass
        case.outcome = "fine"
    path = tmp_path / "records.json"
    records.write(str(path))
    loaded = json.loads(path.read_text())
    assert [r["name"] for r in loaded] == ["demo case"]
    text = report.table(loaded)
    assert "| demo case | nothing \\| much | fine |" in text
    assert loaded[0]["fds_before"] == loaded[0]["fds_after"]


def test_a_leaked_descriptor_fails_the_case(monkeypatch: pytest.MonkeyPatch) -> None:
    from . import conftest

    monkeypatch.setattr(conftest, "SETTLE_LIMIT", 0.1)  # the leak will not go away by waiting
    records = Recorder()
    kept: list[socket.socket] = []
    try:
        with pytest.raises(AssertionError, match="descriptor"), records.measure("leaky", "opens a socket"):
            kept.append(socket.socket())
    finally:
        for sock in kept:
            sock.close()


def test_write_replaces_only_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{report.TABLE_START}\nold\n{report.TABLE_END}\noutro\n")
    records = tmp_path / "r.json"
    records.write_text(json.dumps([{
        "name": "n", "action": "a", "outcome": "o", "seconds": 0.5, "worst": 0.25, "fds_before": 3,
        "fds_after": 3, "threads_before": 1, "threads_after": 1, "rss_before_kib": 2048,
        "rss_after_kib": 3072, "notes": [],
    }]))  # fmt: skip
    monkeypatch.setattr(report, "PAGE", page)
    assert report.main([str(records), "--write"]) == 0
    text = page.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "old" not in text
    assert "| n | a | o | 250 ms | 3 → 3 | 1 → 1 | 2 → 3 |" in text
