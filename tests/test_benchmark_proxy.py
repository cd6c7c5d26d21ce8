"""benchmarks/proxy.py runs and prints every row as a ratio (its figures are not judged here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "proxy.py"
ROWS = (
    "connect+close via http:// proxy",
    "client cpu per connect+close",
    "tls bulk send via http://",
    "tls bulk receive via http://",
    "TLS in TLS bulk send via https://",
    "TLS in TLS bulk receive via https://",
)
RATIO = re.compile(r"ratio (\d+\.\d{3}|inf) \(of medians (\d+\.\d{3}|inf)\)  target (<=|>=) (\d+\.\d+)$")
#: Seconds the smoke run may take (about 15 here).
LIMIT = 300


def test_quick_run_prints_every_row_and_the_profile() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--profile"],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for row in ROWS:
        found = [line for line in lines if line.strip().startswith(row)]
        assert found and all(RATIO.search(line) for line in found), (row, found)
    assert len([line for line in lines if "client cpu per MB received" in line]) == 2
    # The profile: the second TLS layer doubles the engine's per-record calls, the CONNECT hop adds none
    # (loose bounds: how many records one receive brings depends on the moment).
    (bio,) = [line for line in lines if "'write' of '_ssl.MemoryBIO'" in line]
    direct, http, https = (float(figure) for figure in bio.split()[-3:])
    assert http < 1.4 * direct
    assert https > 1.6 * direct
