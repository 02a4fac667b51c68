"""The report's change points: the same list ``softgrad history`` prints (changes.find), in a table newest
first with each one's likely cause, and a marker with a one-line cause on the history plot. From the stored
history of tests/test_history_changes.py: eight runs, numpy 1.3x slower from the fifth, where numpy's version
changed (2.4.6 -> 2.5.0) and nothing else did.
"""

from __future__ import annotations

import html
import re

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from test_history_changes import NEW_NUMPY, RUNS, STEP_AT, _run_id, _store  # noqa: E402
from test_report_content import _html_section, _md_table, report  # noqa: E402, F401 (report: its fixture)
from test_stored_files import DTYPES, OPS, SHAPES, _softgrad  # noqa: E402

from softgrad.history import changes, plotting, results, trend  # noqa: E402
from softgrad.history import report as report_module  # noqa: E402

CAUSE = "numpy 2.4.6 -> 2.5.0"


@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    """The stored history with numpy's step, its report written: (home, report.md, index.html, loaded)."""
    home = tmp_path_factory.mktemp("stepped")
    _store(home, NEW_NUMPY, speed=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTGRAD_HOME", str(home))
        index = report_module.write_report(home / "report")
        loaded = results.load()
    return home, (home / "report" / "report.md").read_text(), index.read_text(), loaded


def test_the_table_lists_what_softgrad_history_lists_newest_first_with_the_cause(stepped):
    home, md, page, _ = stepped
    rows = [{k: re.sub(r"\\(.)", r"\1", v) for k, v in r.items()} for r in _md_table(md, "Change points")]
    count = len(OPS) * len(SHAPES) * len(DTYPES)
    assert len(rows) == count and {r["run"] for r in rows} == {_run_id(STEP_AT)}
    assert {r["likely cause / what changed"] for r in rows} == {CAUSE}
    assert all(r["benchmark"].startswith("numpy ") and r["metric"] == "time" for r in rows)
    assert all(re.fullmatch(r"\+(2[5-9]|3[0-5])% \[\+\d+%, \+\d+%\] slower", r["change"]) for r in rows), rows
    # the same change points, in the same order, as the command prints them
    rc, out, _ = _softgrad(home, "history")
    assert rc == 0
    printed = [line.split("  ", 1)[1].split(": time ", 1)[0] for line in out.splitlines()[1:]]
    assert [r["benchmark"] for r in rows] == printed
    section = _html_section(page, "changes")
    assert section.count(html.escape(CAUSE)) == count and f"{RUNS} runs on machine vm" in section


def test_a_long_list_shows_the_newest_and_says_how_many_more(stepped, monkeypatch):
    home, _, _, loaded = stepped
    monkeypatch.setenv("SOFTGRAD_HOME", str(home))
    history = changes.find(loaded, changes.metas(loaded))
    assert [r["benchmark"] for r in trend.table_rows(history, limit=3)] == [c.name() for c in history.changes[:3]]
    assert trend.summary(history, limit=3).endswith(f"The newest 3 are shown; softgrad history lists all "
                                                    f"{len(history.changes)}.")
    assert "are shown" not in trend.summary(history)


def test_the_history_plot_marks_each_change_at_its_run_with_its_cause(stepped, monkeypatch):
    home, md, _, loaded = stepped
    monkeypatch.setenv("SOFTGRAD_HOME", str(home))
    found = changes.find(loaded, changes.metas(loaded)).changes
    shape, dtype = "256x16", "float32"
    drawn = trend.history_plot(loaded, home / "marked.png", shape, dtype, found)
    times, _ = trend.history_tables(loaded, shape, dtype)
    assert drawn.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted((m.panel, m.op, m.impl, m.x) for m, _ in drawn.marked) == [
        ("time", op, "numpy", STEP_AT) for op in sorted(OPS)], "numpy's step on the time panels, nothing else"
    for marker, text in drawn.marked:
        assert marker.y == pytest.approx(times.loc[(marker.op, "numpy"), _run_id(STEP_AT)])
        assert re.fullmatch(r"numpy \+\d+%: " + re.escape(CAUSE), text), text
    assert trend.history_plot(loaded, home / "unmarked.png", shape, dtype).marked == [], "no change, no marker"
    assert "a red triangle marks a change point" in md.split("## History\n", 1)[1]


def test_an_error_change_is_marked_on_the_error_panel_and_a_long_cause_is_cut():
    rows = [{"run": run, "op": "vjp", "impl": "a", "shape": "1x8", "dtype": "float32", "device": "cpu",
             "time_s": 1e-6, "error_ratio": err} for run, err in (("r1", 0.01), ("r2", 0.01), ("r3", 5.0))]
    times, errors = trend.history_tables(pd.DataFrame(rows), "1x8", "float32")
    many = tuple(changes.Difference(f"lib{k}", "1.0", "2.0") for k in range(9))
    error = changes.Change("error", "error/tolerance", "step", ("default", "a", "vjp", "1x64", "float32", "cpu"),
                           "r3", None, "r2", 0.01, 5.0, 100.0, 900.0, 1, changed=many)
    other_dtype = changes.Change("time", "seconds", "step", ("default", "a", "vjp", "1x8", "float64", "cpu"),
                                 "r3", None, "r2", 1.0, 2.0, 0.5, 1.5, 1)
    (marker,) = trend.markers(times, errors, [error, other_dtype], "1x8", "float32")
    assert (marker.panel, marker.op, marker.impl, marker.x, marker.y) == ("error", "vjp", "a", 2, 5.0)
    assert len(marker.label) == trend.LABEL_CHARS and marker.label.startswith("a +49900%: changed: lib0 1.0 -> 2.0")
    assert marker.label.endswith("...")


def test_a_history_too_short_for_change_points_says_so(report):
    md, page, _ = report
    section = md.split("## Change points\n", 1)[1].split("\n## ", 1)[0]
    assert "change points need at least 4" in section and "|" not in section
    assert "change points need at least 4" in _html_section(page, "changes")


def test_log_axes_label_their_ticks_in_plain_text():
    """Text is drawn as written (no mathtext), so matplotlib's own log labels would show as
    ``$\\mathdefault{10^{-4}}$``: the report's log axes label in plain numbers."""
    plt = plotting.plt()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [7e-5, 3e-3])
    ax.set_yscale("log")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
    plt.close(fig)
    assert labels and not any("$" in t or "mathdefault" in t for t in labels), labels
    assert "0.0001" in labels and "0.001" in labels


def test_history_plot_labels_the_runs_where_commit_or_versions_change_and_at_most_a_few():
    """A year of nights is not 365 labels under the plot (drawing them took most of a year's report): the
    first run, each change of commit or versions, the newest, thinned evenly past MAX_LABELLED_RUNS."""
    from softgrad.history.trend import MAX_LABELLED_RUNS, labelled_runs

    assert labelled_runs(["a", "a", "b", "b", "b", "c", "c"]) == [0, 2, 5, 6]
    assert labelled_runs(["a"]) == [0] and labelled_runs([]) == []
    year = [f"commit{k // 3}" for k in range(365)]  # a new commit every third night: 122 changes
    ticks = labelled_runs(year)
    assert len(ticks) == MAX_LABELLED_RUNS and ticks[0] == 0 and ticks[-1] == 364
    assert all(k == 364 or year[k] != year[k - 1] or k == 0 for k in ticks) and ticks == sorted(set(ticks))
