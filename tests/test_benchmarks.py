"""The benchmark script runs and reports every case (its figures are not judged here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"

CASES = (
    "connect+close 127.0.0.1",
    "bulk send (write vs sendall)",
    "bulk receive (read_into vs recv_into)",
    "tls full handshake localhost",
    "tls resumed vs full localhost",
    "tls full handshake 127.0.0.1",
    "tls resumed vs full 127.0.0.1",
    "tls bulk send (free-threaded handle)",
    "tls bulk receive (free-threaded)",
)

RATIO = re.compile(r"ratio (\d+\.\d{3}) \(of medians (\d+\.\d{3})\)  target (<=|>=) (\d+\.\d+)$")


def test_quick_run_reports_every_case_as_a_ratio() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("inetkit ")
    body = lines[1:]
    assert [line[:38].rstrip() for line in body] == list(CASES)
    for line in body:
        match = RATIO.search(line)
        assert match is not None, line
        assert float(match.group(1)) > 0 and float(match.group(2)) > 0


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
