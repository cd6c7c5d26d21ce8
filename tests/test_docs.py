"""The documentation checks: every sample runs, the error table is complete, every link resolves.

``python3 -m pytest tests/test_docs.py`` is the one command that builds and checks
the Markdown pages in ``docs/`` and ``README.md`` (``docs/index.md`` says so);
warnings are errors, as everywhere in the test suite.

How samples run
---------------
* A fenced block tagged ``python`` (or ``py``, ``python3``, ``pycon``) whose
  first line starts with ``>>>`` is a doctest block. All doctest blocks of one
  page form one session, run in order (so a later block may use names an
  earlier one made), with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``.
* Any other such block is a script and runs on its own, as ``python FILE``.
* A block preceded by the line ``<!-- no-run -->`` is not run (for samples that
  would leave loopback, such as a connect to ``example.com``).

Each session and script runs in a fresh interpreter with ``-W error``, in an
empty directory, padded with blank lines so that a traceback's line numbers
are the page's own. A sample that leaks a socket (a ``ResourceWarning`` in a
finalizer) or lets a thread die with an exception fails, too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import inetkit
from inetkit import ErrorCode

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
INDEX = DOCS / "index.md"
ERRORS_PAGE = DOCS / "errors.md"
#: Every page whose samples and links are checked.
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
#: The documented command that checks the docs (index.md must name it).
DOCS_COMMAND = "python3 -m pytest tests/test_docs.py"

#: Fence languages whose blocks run.
PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "pycon"})
#: The marker line that keeps the next fenced block from running.
NO_RUN = "<!-- no-run -->"
#: Seconds one sample may take; the slowest (a deliberate timeout) needs about one.
SAMPLE_LIMIT = 60
#: What a sample's stderr must not contain: a leaked socket under ``-W error``
#: (reported from a finalizer), a thread that died, a traceback.
STDERR_FAILURES = ("Exception ignored", "Exception in thread", "Traceback (most recent call last)")

_FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    first_line: int
    """1-based line number of the block's first content line."""
    language: str
    lines: tuple[str, ...]
    run: bool

    @property
    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)

    @property
    def is_python(self) -> bool:
        return self.language in PYTHON_LANGUAGES

    @property
    def is_doctest(self) -> bool:
        for line in self.lines:
            if line.strip():
                return line.lstrip().startswith(">>>")
        return False

    @property
    def name(self) -> str:
        return f"{self.page.name}:{self.first_line}"


def fenced_blocks(page: Path) -> list[Block]:
    """The page's fenced blocks; raises ValueError for an unclosed fence or a stray marker."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    pending_no_run: int | None = None
    while index < len(lines):
        line = lines[index]
        match = _FENCE.match(line)
        if match is None:
            if line.strip() == NO_RUN:
                pending_no_run = index + 1
            elif line.strip() and pending_no_run is not None:
                raise ValueError(f"{page.name}:{pending_no_run}: {NO_RUN} must come right before a fence")
            index += 1
            continue
        start = index + 1
        end = start
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{page.name}:{index + 1}: the fence opened here is never closed")
        blocks.append(
            Block(
                page=page,
                first_line=start + 1,
                language=match.group(1).lower(),
                lines=tuple(lines[start:end]),
                run=pending_no_run is None,
            )
        )
        pending_no_run = None
        index = end + 1
    if pending_no_run is not None:
        raise ValueError(f"{page.name}:{pending_no_run}: {NO_RUN} is not followed by a fence")
    return blocks


def prose(page: Path) -> str:
    """The page without its fenced blocks and inline code (where links and headings live)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    for block in fenced_blocks(page):
        for number in range(block.first_line - 2, block.first_line + len(block.lines)):
            lines[number] = ""
    return "\n".join(_INLINE_CODE.sub("", line) for line in lines)


def doctest_session(page: Path) -> str | None:
    """The page's runnable doctest blocks as one text, other lines blanked (same line numbers)."""
    lines = [""] * len(page.read_text(encoding="utf-8").splitlines())
    found = False
    for block in fenced_blocks(page):
        if block.run and block.is_python and block.is_doctest:
            found = True
            lines[block.first_line - 1 : block.first_line - 1 + len(block.lines)] = block.lines
    return "\n".join(lines) + "\n" if found else None


def scripts() -> list[Block]:
    return [
        block
        for page in PAGES
        for block in fenced_blocks(page)
        if block.run and block.is_python and not block.is_doctest
    ]


def sessions() -> list[Path]:
    return [page for page in PAGES if doctest_session(page) is not None]


def run_python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The samples must use this tree's inetkit, wherever an installed copy points.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONPATH=path)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, "-W", "error", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=SAMPLE_LIMIT,
        cwd=cwd,
        env=env,
        check=False,
    )


def check_result(what: str, result: subprocess.CompletedProcess[str]) -> None:
    output = f"{result.stdout}{result.stderr}"
    assert result.returncode == 0, f"{what} failed:\n{output}"
    for marker in STDERR_FAILURES:
        assert marker not in result.stderr, f"{what}: {marker!r} on stderr:\n{result.stderr}"


# -- samples --------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", sessions(), ids=lambda page: page.name)
def test_doctest_blocks_run(page: Path, tmp_path: Path) -> None:
    session = doctest_session(page)
    assert session is not None
    copy = tmp_path / page.name
    copy.write_text(session, encoding="utf-8")
    result = run_python(
        ["-m", "doctest", "-o", "ELLIPSIS", "-o", "NORMALIZE_WHITESPACE", str(copy)], tmp_path
    )
    check_result(f"the >>> samples of {page.relative_to(ROOT)}", result)


@pytest.mark.parametrize("block", scripts(), ids=lambda block: block.name)
def test_script_blocks_run(block: Block, tmp_path: Path) -> None:
    script = tmp_path / f"{block.page.name}.py"
    script.write_text("\n" * (block.first_line - 1) + block.text, encoding="utf-8")
    result = run_python([str(script)], tmp_path)
    check_result(f"the sample at {block.page.relative_to(ROOT)} line {block.first_line}", result)


def test_samples_exist() -> None:
    """The discovery above finds samples (a parser bug would otherwise pass everything)."""
    assert len(scripts()) >= 10
    assert {page.name for page in sessions()} >= {"connection.md", "errors.md", "options.md"}


def test_fence_parser_rejects_broken_markup(tmp_path: Path) -> None:
    page = tmp_path / "broken.md"
    page.write_text("text\n```python\nprint(1)\n", encoding="utf-8")
    with pytest.raises(ValueError, match="never closed"):
        fenced_blocks(page)
    page.write_text(f"{NO_RUN}\nprose\n```python\nprint(1)\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="right before a fence"):
        fenced_blocks(page)
    page.write_text(f"{NO_RUN}\n\n```python\nimport nowhere\n```\n```py\n>>> 1\n1\n```\n", encoding="utf-8")
    first, second = fenced_blocks(page)
    assert (first.run, first.first_line, first.is_doctest) == (False, 4, False)
    assert (second.run, second.first_line, second.is_doctest) == (True, 7, True)


# -- the error code table -------------------------------------------------------------------------


def error_table() -> list[list[str]]:
    """The cells of the errors page's table whose header starts with ``| code | value |``.

    Inline code is kept: codes and class names are written as code.
    """
    rows: list[list[str]] = []
    in_table = False
    in_fence = False
    for line in ERRORS_PAGE.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not line.startswith("|"):
            if in_table:
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not in_table:
            in_table = [cell.lower() for cell in cells[:2]] == ["code", "value"]
            continue
        if set("".join(cells)) <= set("-: "):
            continue  # the separator row
        rows.append(cells)
    return rows


def test_error_table_lists_every_code_with_its_value() -> None:
    rows = error_table()
    assert rows, "docs/errors.md has no table whose header starts with | code | value |"
    listed: dict[str, int] = {}
    for cells in rows:
        name = cells[0].strip("`")
        assert name not in listed, f"{name} is listed twice"
        listed[name] = int(cells[1])
    assert listed == {code.name: code.value for code in ErrorCode}


def test_error_table_names_the_classes_that_carry_each_code() -> None:
    classes = {
        name: getattr(inetkit, name)
        for name in inetkit.__all__
        if isinstance(getattr(inetkit, name), type) and issubclass(getattr(inetkit, name), inetkit.InetError)
    }
    for cells in error_table():
        code = ErrorCode[cells[0].strip("`")]
        named = set(re.findall(r"`(\w+)`", cells[2]))
        unknown = named - set(classes)
        assert not unknown, f"{code.name}: {sorted(unknown)} are not inetkit exception classes"
        # A class whose own default code this is must be named in its row.
        owners = {name for name, cls in classes.items() if cls.default_code is code}
        assert owners <= named, f"{code.name}: the row should name {sorted(owners - named)}"
        if code is not ErrorCode.SUCCESS:
            assert named, f"{code.name}: the row names no exception class"


# -- pages and links ------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading (GitHub's rule)."""
    text = re.sub(r"`([^`]*)`", r"\1", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        seen = counts.get(base, 0)
        counts[base] = seen + 1
        found.add(base if seen == 0 else f"{base}-{seen}")
    return found


def local_links(page: Path) -> list[str]:
    return [
        target
        for target in _LINK.findall(prose(page))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:, ...
    ]


def test_index_names_the_docs_command() -> None:
    assert DOCS_COMMAND in INDEX.read_text(encoding="utf-8")


def test_index_links_every_page() -> None:
    linked = {target.split("#", 1)[0] for target in local_links(INDEX)}
    pages = {page.name for page in DOCS.glob("*.md")} - {INDEX.name}
    assert pages - linked == set(), "docs/index.md does not link these pages"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_links_resolve(page: Path) -> None:
    fenced_blocks(page)  # malformed fences fail here too
    broken = []
    for target in local_links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with that anchor in {destination.name}")
    assert broken == [], f"{page.name}: broken links"


def test_slug_follows_the_usual_rule() -> None:
    assert slug("Choosing a certificate") == "choosing-a-certificate"
    assert slug("`inetkit demo`") == "inetkit-demo"
    assert slug("URLs: `connect_url`") == "urls-connect_url"
    assert slug("Two readers (or writers) take turns") == "two-readers-or-writers-take-turns"
