"""benchmarks/aio_connect.py runs standalone and reports every row (its figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "aio_connect.py"

ROWS = [
    "aio connect+close 127.0.0.1",
    "aio tls full handshake",
    "aio 64 tls connects at once: time",
    "aio 64 tls connects at once: rss",
]


@pytest.mark.slow
def test_quick_run_reports_every_row(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["quick"] is True and data["loop"] == "asyncio"
    assert [row["name"] for row in data["rows"]] == ROWS
    for row in data["rows"]:
        assert row["labels"] == ["asyncio", "inetkit"]
        assert row["ratio"] > 0 and row["rounds"] >= 2
    (idle,) = data["references"]
    assert idle["name"] == "aio 200 idle tls conns: rss each"
    assert idle["unit"] == "KiB" and idle["figure"] > 0
    assert "200 of 200 usable" in idle["note"]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("inetkit ")
    assert [line[:40].rstrip() for line in lines[1:5]] == ROWS
