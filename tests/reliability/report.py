"""Turn the reliability suite's JSON records into the table of ``docs/reliability.md``.

Usage::

    INETKIT_RELIABILITY_REPORT=/tmp/reliability.json python3 -m pytest -q tests/reliability
    python3 tests/reliability/report.py /tmp/reliability.json            # print the table
    python3 tests/reliability/report.py /tmp/reliability.json --write    # replace it in the page

``--write`` replaces what stands between the two marker lines of the page
(``TABLE_START`` and ``TABLE_END``), so the prose around the table stays.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
TABLE_START = "<!-- reliability-table:start -->"
TABLE_END = "<!-- reliability-table:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _seconds(value: float) -> str:
    if value < 0.001:
        return "< 1 ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| case | what is done to inetkit | what inetkit does | worst time | fds | threads | RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for rec in records:
        rss_before = int(rec["rss_before_kib"]) / 1024
        rss_after = int(rec["rss_after_kib"]) / 1024
        lines.append(
            f"| {_cell(str(rec['name']))} | {_cell(str(rec['action']))} | {_cell(str(rec['outcome']))} "
            f"| {_seconds(float(rec['worst']))} "
            f"| {rec['fds_before']} → {rec['fds_after']} "
            f"| {rec['threads_before']} → {rec['threads_after']} "
            f"| {rss_before:.0f} → {rss_after:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("records", type=Path, help="the JSON file written under INETKIT_RELIABILITY_REPORT")
    parser.add_argument("--write", action="store_true", help=f"replace the table in {PAGE.name}")
    args = parser.parse_args(argv)
    records = json.loads(args.records.read_text(encoding="utf-8"))
    total = sum(float(r["seconds"]) for r in records)
    text = (
        f"{len(records)} cases, {total:.1f} s inside the cases; Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}.\n\n{table(records)}"
    )
    if not args.write:
        sys.stdout.write(text)
        return 0
    page = PAGE.read_text(encoding="utf-8")
    head, start, rest = page.partition(TABLE_START)
    _, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        parser.error(f"{PAGE} has no {TABLE_START} ... {TABLE_END} markers")
    PAGE.write_text(f"{head}{TABLE_START}\n{text}{TABLE_END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
