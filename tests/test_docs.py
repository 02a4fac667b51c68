"""The README and the documentation site (docs/, mkdocs.yml): their code runs, their links resolve, the site builds.

Every ```python block in README.md and docs/*.md is either an exact copy of a file under tests/examples/
(which pytest runs as tests) or is marked ``<!-- runnable -->`` on the line before it and is run here as a
script; the README stays a door (under 150 lines, links to pages that exist); the slow tests build the site
with ``mkdocs build --strict`` and open it in headless Chromium.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = Path(__file__).parent / "examples"
README = ROOT / "README.md"
#: the page that shows every example file in full
EXAMPLES_PAGE = DOCS / "library-authors.md"
#: the example the README shows (its "Check your own softmax", ten lines)
README_EXAMPLE = EXAMPLES / "test_check_my_softmax.py"
MARKER = "<!-- runnable -->"
PAGES = sorted(DOCS.glob("*.md"))


@dataclass(frozen=True)
class Block:
    """One ```python block of a page: where it is, its code, and whether it is marked runnable."""

    page: Path
    line: int
    code: str
    runnable: bool

    @property
    def name(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    """The ```python blocks of a Markdown page, in order."""
    lines = page.read_text().splitlines(keepends=True)
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].rstrip("\n") == "```python":
            start = i
            i += 1
            while lines[i].rstrip("\n") != "```":
                i += 1
            runnable = start > 0 and lines[start - 1].strip() == MARKER
            blocks.append(Block(page, start + 1, "".join(lines[start + 1:i]), runnable))
        i += 1
    return blocks


def unchecked(blocks: list[Block], examples: dict[str, str]) -> list[str]:
    """The blocks nothing runs: neither marked runnable nor an exact copy of an example file."""
    return [b.name for b in blocks if not b.runnable and b.code not in examples.values()]


def run_block(block: Block, cwd: Path) -> subprocess.CompletedProcess:
    """Run a runnable block as a script in ``cwd`` (a fresh interpreter, softgrad importable)."""
    script = cwd / "block.py"
    script.write_text(block.code)
    return subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=300)


def _examples() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(EXAMPLES.glob("test_*.py"))}


def _all_blocks() -> list[Block]:
    return [b for page in [README, *PAGES] for b in python_blocks(page)]


# --- every example is shown exactly, every other block runs --------------------------------------------


@pytest.mark.parametrize("example", sorted(_examples()))
def test_the_examples_page_shows_each_example_file_exactly(example):
    text = (EXAMPLES / example).read_text()
    assert f"```python\n{text}```" in EXAMPLES_PAGE.read_text(), \
        f"{EXAMPLES_PAGE.name}'s copy of tests/examples/{example} differs from the file"


def test_the_readme_shows_its_ten_line_example_exactly():
    text = README_EXAMPLE.read_text()
    assert len(text.splitlines()) <= 10
    assert f"```python\n{text}```" in README.read_text(), f"README's copy of {README_EXAMPLE.name} differs from the file"


def test_every_python_block_is_an_example_file_or_runnable():
    blocks = _all_blocks()
    assert sum(b.runnable for b in blocks) >= 2 and len(blocks) >= 6
    assert unchecked(blocks, _examples()) == []


@pytest.mark.parametrize("block", [b for b in _all_blocks() if b.runnable], ids=lambda b: b.name)
def test_runnable_blocks_run(block, tmp_path):
    out = run_block(block, tmp_path)
    assert out.returncode == 0, f"{block.name} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}"


def test_a_block_that_fails_or_is_neither_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"text\n\n{MARKER}\n```python\nraise SystemExit(3)\n```\n\n```python\nprint('untested')\n```\n"
                    f"\n```python\nimport this_is_an_example\n```\n")
    failing, loose, copied = python_blocks(page)
    assert failing.runnable and failing.line == 4 and not loose.runnable
    assert run_block(failing, tmp_path).returncode == 3  # planted: a runnable block that fails
    examples = {"test_x.py": "import this_is_an_example\n"}
    assert unchecked([failing, loose, copied], examples) == [loose.name]  # planted: a block nothing runs
    edited = {"test_x.py": "import this_is_an_example  # edited\n"}
    assert unchecked([copied], edited) == [copied.name]  # planted: the copy drifted from its file


# --- the README is a door --------------------------------------------------------------------------------


def test_readme_is_under_150_lines_and_keeps_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) < 150
    assert "make bench " in text and "make test " in text


def _local_links(page: Path) -> list[str]:
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", page.read_text()) if "://" not in t and not t.startswith("#")]


def test_readme_links_and_picture_exist():
    links = _local_links(README)
    assert {f"docs/{p.name}" for p in PAGES} - {t.split("#")[0] for t in links} <= {"docs/index.md"}, \
        "a docs page the README does not link"
    missing = [t for t in links if not (ROOT / t.split("#")[0]).exists()]
    assert missing == []


def test_every_docs_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    assert [p.name for p in PAGES if f": {p.name}" not in nav] == []


def test_the_timing_page_keeps_the_false_alarm_section():
    assert "## Measured false-alarm rate of the gate" in (DOCS / "timing.md").read_text()


# --- the built site, in a browser (slow: mkdocs and Chromium) --------------------------------------------


def _build(site: Path, root: Path = ROOT) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of the site whose mkdocs.yml is in ``root``, into ``site``."""
    import os

    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.mark.slow
def test_the_site_builds_strictly_and_a_broken_link_fails_it(tmp_path):
    import shutil

    out = _build(tmp_path / "site")
    assert out.returncode == 0, out.stderr[-3000:]
    assert {f"{p.stem}.html" for p in PAGES} <= {p.name for p in (tmp_path / "site").glob("*.html")}
    copy = tmp_path / "copy"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy)
    with (copy / "docs" / "history.md").open("a") as page:  # planted: a link to an anchor that does not exist
        page.write("\nSee [the gate](timing.md#no-such-section).\n")
    out = _build(tmp_path / "site2", copy)
    assert out.returncode != 0 and "no-such-section" in out.stderr, out.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.browser
def test_the_site_opens_in_a_browser_home_and_a_page(tmp_path):
    from test_main_job import _browse

    site = tmp_path / "site"
    out = _build(site)
    assert out.returncode == 0, out.stderr[-3000:]
    home = _browse((site / "index.html").as_uri(), tmp_path)
    assert "Where to go" in home and "time_vs_n_batch256.png" in home and 'class="md-nav' in home
    page = _browse((site / "timing.html").as_uri(), tmp_path)
    assert "Measured false-alarm rate of the gate" in page and "Agreement with the frameworks" in page
    assert 'href="library-authors.html"' in page, "the navigation links the other pages"
