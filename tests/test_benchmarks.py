"""The benchmark script runs and reports every row (its figures are not judged here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"

ROWS = (
    "connect+close 127.0.0.1",
    "bulk send (write vs sendall)",
    "bulk receive (read_into vs recv_into)",
    "read_line plain (vs makefile readline)",
    "for line in conn plain (vs makefile)",
    "read_line tls (vs SSLSocket makefile)",
    "tls full handshake localhost",
    "tls resumed vs full localhost",
    "tls resumed vs stdlib full localhost",
    "tls full handshake 127.0.0.1",
    "tls resumed vs full 127.0.0.1",
    "tls bulk send (free-threaded handle)",
    "tls bulk receive (free-threaded)",
    "tls idle handle rss (owner thread)",
    "tls idle handle rss (FREETHREAD)",
    "tls connects, 32 threads: time",
    "tls connects, 32 threads: rss per conn",
    "import inetkit vs import socket, ssl",
    "import + first connect",
    # through a local CONNECT proxy against the same connect direct
    "connect+close via http:// proxy",
    "  client cpu per connect+close",
    "tls bulk send via http://",
    "tls bulk receive via http://",
    "  client cpu per MB received",
    "TLS in TLS bulk send via https://",
    "TLS in TLS bulk receive via https://",
    "  client cpu per MB received",
    # inetkit.aio against asyncio's streams (--quick sizes name the counts)
    "aio connect+close 127.0.0.1",
    "aio tls full handshake",
    "aio read_line asyncio (vs readline)",
    "aio tls bulk receive asyncio (vs read)",
    "aio 64 tls connects at once: time",
    "aio 64 tls connects at once: rss",
)
#: The reference printed after the TLS bulk rows (a figure or a reason to skip it).
REFERENCE = "openssl speed aes-128-gcm 16 KiB"
#: The reference printed after the asyncio rows: RSS per idle connection, many held.
AIO_IDLE = "aio 200 idle tls conns: rss each"
#: Width of the name column in the text report.
NAME_WIDTH = 40

#: The lines around the table that ``--update-doc`` rewrites (as in benchmarks/run.py).
TABLE_BEGINS = "<!-- the table below is written by benchmarks/run.py --update-doc -->"
TABLE_ENDS = "<!-- the table above is written by benchmarks/run.py --update-doc -->"

RATIO = re.compile(r"ratio (\d+\.\d{3}|inf) \(of medians (\d+\.\d{3}|inf)\)  target (<=|>=) (\d+\.\d+)$")
ROW_KEYS = {
    "name",
    "inetkit",
    "stdlib",
    "unit",
    "ratio",
    "ratio_of_medians",
    "target",
    "met",
    "rounds",
    "labels",
    "figures",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, Any], str]:
    """One ``--quick`` run with JSON and Markdown to files: its text lines, JSON and table."""
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--json",
            str(out / "rows.json"),
            "--markdown",
            str(out / "table.md"),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "rows.json").read_text(encoding="utf-8"))
    return result.stdout.splitlines(), data, (out / "table.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_quick_run_reports_every_row_as_a_ratio(quick_run: tuple[list[str], dict[str, Any], str]) -> None:
    lines, _, _ = quick_run
    assert lines[0].startswith("inetkit ")
    rows = [line for line in lines[1:] if REFERENCE not in line and AIO_IDLE not in line]
    assert [line[:NAME_WIDTH].rstrip() for line in rows] == list(ROWS)
    for line in rows:
        match = RATIO.search(line)
        assert match is not None, line
        assert float(match.group(1)) > 0 and float(match.group(2)) > 0
    (reference,) = [line for line in lines if REFERENCE in line]
    # Right after the TLS bulk rows: a figure in MB/s, or why it was skipped.
    (bulk,) = [line for line in lines if line.startswith("tls bulk receive (")]
    assert lines.index(reference) == lines.index(bulk) + 1
    assert re.search(r"\d+ MB/s|skipped: ", reference), reference


@pytest.mark.slow
def test_json_has_every_row_and_key(quick_run: tuple[list[str], dict[str, Any], str]) -> None:
    _, data, _ = quick_run
    assert data["quick"] is True
    assert {"inetkit", "python", "openssl"} <= data.keys()
    assert [row["name"] for row in data["rows"]] == list(ROWS)
    for row in data["rows"]:
        assert set(row) == ROW_KEYS, row["name"]
        assert isinstance(row["met"], bool)
        assert row["rounds"] >= 2
        assert len(row["figures"]["baseline"]) == len(row["figures"]["inetkit"]) == row["rounds"]
        assert row["inetkit"] >= 0 and row["stdlib"] >= 0
        op, value = row["target"].split()
        assert op in ("<=", ">=") and float(value) > 0
        assert row["met"] == (row["ratio"] <= float(value) if op == "<=" else row["ratio"] >= float(value))
    reference, idle = data["references"]
    assert reference["name"].strip() == REFERENCE and reference["unit"] == "MB/s"
    assert reference["figure"] is None or reference["figure"] > 0
    assert idle["name"].strip() == AIO_IDLE and idle["unit"] == "KiB" and idle["figure"] > 0


@pytest.mark.slow
def test_markdown_table_has_every_row(quick_run: tuple[list[str], dict[str, Any], str]) -> None:
    _, _, table = quick_run
    lines = table.splitlines()
    assert lines[0].startswith("Measured with inetkit ") and "--quick" in lines[0]
    start = lines.index(next(line for line in lines if line.startswith("| row |")))
    rows = lines[start + 2 : start + 2 + len(ROWS)]
    assert [line.split(" | ")[0].removeprefix("| ") for line in rows] == list(ROWS)
    assert REFERENCE in lines[start + 2 + len(ROWS)]


def test_json_to_stdout_and_the_table_into_a_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    before = f"# Title\n\ntext\n\n{TABLE_BEGINS}\n\nold table\n\n{TABLE_ENDS}\n\nafter\n"
    page.write_text(before, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--only", "connect", "--json", "--update-doc", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # only the JSON on stdout: the text report goes to stderr
    assert [row["name"] for row in data["rows"]] == ["connect+close 127.0.0.1"]
    assert "connect+close 127.0.0.1" in result.stderr
    after = page.read_text(encoding="utf-8")
    assert after.startswith(f"# Title\n\ntext\n\n{TABLE_BEGINS}\n\nMeasured with inetkit ")
    assert after.endswith(f"|\n\n{TABLE_ENDS}\n\nafter\n")
    assert "old table" not in after
    assert "| connect+close 127.0.0.1 |" in after


def test_a_page_without_table_markers_is_refused_before_the_run(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# no markers\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--update-doc", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "the page lacks the lines" in result.stderr
    assert result.stdout == ""  # nothing was measured
    assert page.read_text(encoding="utf-8") == "# no markers\n"


def test_the_performance_page_has_the_table_markers() -> None:
    page = SCRIPT.parent.parent / "docs" / "performance.md"
    text = page.read_text(encoding="utf-8")
    assert text.count(TABLE_BEGINS) == 1 and text.count(TABLE_ENDS) == 1
    assert text.index(TABLE_BEGINS) < text.index(TABLE_ENDS)


def test_unknown_case_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "nothing"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown cases: nothing" in result.stderr
