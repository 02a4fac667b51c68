"""The report's first screen in a real browser (Debian's chromium, headless, as tests/test_main_job.py drives
it): the picture of which entry to use is loaded and drawn at a non-zero size for every stored workload, it
comes before the choice table, and at a 1280 px wide window the page does not scroll sideways (wide tables
scroll in their own box). From test_report_content's synthetic store, with an entry whose long name makes
its tables wide. And over a stored history with one library upgrade, the change points' table names it and
the history plot that marks it is loaded.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

import helpers  # noqa: E402
from test_main_job import CHROMIUM_FLAGS, SCREENSHOTS, _chromium  # noqa: E402
from test_report_content import DTYPE, NS, OPS, RID_GRID, TIMES, _grid_run, _workload_run  # noqa: E402

from softgrad.bench import grid  # noqa: E402
from softgrad.history import report as report_module  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WIDTH = 1280
LONG = "a_third_party_entry_" * 10


def _dom(url: str, tmp_path: Path, screenshot: Path) -> str:
    """The DOM after the page's load handlers ran, at a WIDTH px wide window (and a screenshot)."""
    exe = _chromium()
    base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / f'profile-{time.monotonic_ns()}'}",
            "--virtual-time-budget=20000", f"--window-size={WIDTH},900"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    shot = subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    return dom.stdout


def _store(home: Path) -> None:
    """test_report_content's runs, and in the grid run an entry (2x numpy's time, passing) whose name of 200
    characters has nowhere to break: without its own scroll box or wrapping, a table holding it is 1872 px wide."""
    files = {**_grid_run(), **_workload_run()}
    params = helpers.asv_params(OPS, [f"256x{n}" for n in NS], (DTYPE,), ("cpu",))
    times = [2 * TIMES["numpy"](n) for _ in OPS for n in NS]
    files[RID_GRID, "asv.json"]["results"][f"bench_ops.{grid.class_name(LONG)}.time_op"] = \
        helpers.asv_time_op(times, params)
    files[RID_GRID, "meta.json"]["impls"].append(LONG)
    files[RID_GRID, "checks.json"] += helpers.check_records([LONG], OPS, (DTYPE,))
    helpers.write_run_files(home, files)


def test_the_first_screen_shows_the_picture_and_the_page_does_not_scroll_sideways(tmp_path, monkeypatch):
    _store(tmp_path)
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    index = report_module.write_report(tmp_path / "report")
    dom = _dom(index.as_uri(), tmp_path, SCREENSHOTS / "report-first-screen.png")
    glance = re.findall(r"<img [^>]*src=\"(glance_\d+\.png)\"[^>]*>", dom)
    assert glance == ["glance_0.png", "glance_1.png"], "one picture per stored workload, the default grid first"
    for tag in re.findall(r"<img [^>]*>", dom):
        assert 'data-loaded="true"' in tag, tag
        width, height = map(int, re.search(r'data-shown="(\d+)x(\d+)"', tag).groups())
        assert 0 < width <= WIDTH and height > 0, tag
    assert dom.index('src="glance_0.png"') < dom.index('id="choice"')
    root = re.search(r"<html[^>]*>", dom)[0]
    scroll, client = (int(re.search(rf'data-{name}="(\d+)"', root)[1]) for name in ("scroll-width", "client-width"))
    assert client == WIDTH and scroll <= client, f"the page scrolls sideways: {scroll} px wide in a {client} px window"


def test_the_change_points_are_listed_and_the_marked_history_plot_is_loaded(tmp_path, monkeypatch):
    """tests/test_history_changes.py's stored history: numpy's step where its version changed."""
    from test_history_changes import NEW_NUMPY
    from test_history_changes import _store as stepped

    stepped(tmp_path, NEW_NUMPY, speed=True)
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    index = report_module.write_report(tmp_path / "report")
    dom = _dom(index.as_uri(), tmp_path, SCREENSHOTS / "report-change-points.png")
    (history,) = re.findall(r"<img [^>]*src=\"history\.png\"[^>]*>", dom)
    assert 'data-loaded="true"' in history
    section = dom.split('id="changes"', 1)[1].split("<h2", 1)[0]
    assert section.count("<td>numpy 2.4.6 -&gt; 2.5.0</td>") == 16, section[:2000]
    assert dom.index('src="history.png"') < dom.index('id="changes"') < dom.index('id="meta"')
