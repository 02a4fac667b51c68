"""The report's first screen answers: per stored workload a picture of which entry to use (op x row length,
coloured by the fastest entry that passed every check, its margin, a mark where the runner-up is within the
spread), before the choice tables, under a short table of contents. From test_report_content's synthetic
store: numpy linear in n, fake-impl quadratic (faster up to n = 64, within the spread of numpy at 256),
fast-wrong 10x faster than numpy and failing its check; the workload ``lm`` at 512 x 32000.
"""

from __future__ import annotations

import re

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from test_report_content import NS, OPS, report  # noqa: E402, F401 (report: its fixture)

from softgrad.history import heatmap, results  # noqa: E402
from softgrad.history.choose import recommend  # noqa: E402

#: per n of the default grid (batch 256): the winner, the runner-up's time over its, whether the win is clear
EXPECTED = {16: ("fake-impl", 15.625, True), 64: ("fake-impl", 3.90625, True), 256: ("numpy", 1.024, False),
            1024: ("numpy", 4.096, True), 4096: ("numpy", 16.384, True)}


@pytest.fixture(scope="module")
def loaded(report):
    _, _, out = report
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTGRAD_HOME", str(out.parent))
        return results.load()


def test_each_cell_is_the_fastest_entry_that_passed_with_its_margin_and_whether_it_is_clear(loaded):
    found = heatmap.panels(loaded)
    assert list(found) == ["default", "lm"], "every stored workload, the default grid first"
    (panel,) = found["default"]
    assert (panel.dtype, panel.batch, panel.device, panel.ns) == ("float32", 256, "cpu", NS)
    assert panel.ops() == list(OPS)
    for op in OPS:
        got = {n: panel.cell(op, n) for n in NS}
        assert {n: (c.impl, c.runner_up) for n, c in got.items()} == {
            n: (impl, "fake-impl" if impl == "numpy" else "numpy") for n, (impl, _, _) in EXPECTED.items()}
        for n, (_, margin, clear) in EXPECTED.items():
            assert got[n].margin == pytest.approx(margin) and got[n].clear is clear, (op, n)
    assert "fast-wrong" not in {c.impl for c in panel.cells}, "10x faster than numpy, but it failed its check"
    assert [panel.cell("vjp", n).text() for n in NS] == ["15.6x", "3.91x", "\u22481.02x", "4.1x", "16.4x"]
    (lm,) = found["lm"]
    assert (lm.batch, lm.ns) == (512, (32000,))
    assert [(c.op, c.impl, c.margin, c.clear) for c in lm.cells] == [
        ("softmax", "fake-impl", pytest.approx(1.5), True), ("vjp", "numpy", pytest.approx(2.0), True)]


def test_the_picture_follows_chooses_rule_at_every_point(loaded):
    """The same rule as ``softgrad choose`` (choose.candidates), not a second one: at every cell its answer."""
    newest = results.newest_per_entry(loaded)
    for workload, panels in heatmap.panels(loaded).items():
        for panel in panels:
            for c in panel.cells:
                answer = recommend(newest, c.op, c.n, batch=panel.batch, dtype=panel.dtype)
                assert (answer.impl, answer.runner_up, answer.clear_win) == (c.impl, c.runner_up, c.clear), (
                    workload, c)


def test_a_point_where_only_one_entry_passed_says_so_and_one_where_none_did_has_no_cell():
    rows = []
    for impl, passed in (("a", True), ("b", False)):
        rows.append({"run": "r1", "machine": "vm", "workload": "default", "impl": impl, "op": "softmax", "batch": 1,
                     "n": 8, "x_layout": "contiguous", "g_layout": "contiguous", "dtype": "float32", "device": "cpu",
                     "time_s": 1e-6, "q25_s": 0.9e-6, "q75_s": 1.1e-6, "compile_s": 0.0, "passed": passed})
    rows.append({**rows[-1], "n": 16})  # at n = 16 only b, which failed
    (panel,) = heatmap.panels(pd.DataFrame(rows))["default"]
    assert panel.ns == (8, 16) and panel.cell("softmax", 16) is None
    only = panel.cell("softmax", 8)
    assert (only.impl, only.runner_up, only.text()) == ("a", None, "only")


def test_scattered_shapes_share_one_panel_by_rows_x_n_and_a_grid_gets_a_panel_per_rows():
    def row(impl, batch, n, t, dtype="float32"):
        return {"run": "r1", "machine": "vm", "workload": "attention", "impl": impl, "op": "softmax", "batch": batch,
                "n": n, "x_layout": "contiguous", "g_layout": "contiguous", "dtype": dtype, "device": "cpu",
                "time_s": t, "q25_s": 0.99 * t, "q75_s": 1.01 * t, "compile_s": 0.0, "passed": True}

    scattered = [row(impl, b, n, t * f) for b, n, t in ((12288, 128, 1e-3), (512, 16384, 4e-3), (2048, 4096, 2e-3))
                 for impl, f in (("a", 1.0), ("b", 1.5 if n < 10000 else 0.5))]
    grid = [row(impl, b, n, 1e-6 * n * f, "float64") for b in (1, 256) for n in (8, 16, 32)
            for impl, f in (("a", 1.0), ("b", 2.0))]
    mixed, per_rows_1, per_rows_256 = heatmap.panels(pd.DataFrame(scattered + grid))["attention"]
    assert (mixed.dtype, mixed.batch, mixed.points) == ("float32", None, ((12288, 128), (2048, 4096), (512, 16384)))
    assert mixed.labels() == ["12288x128", "2048x4096", "512x16k"] and mixed.title().startswith("rows x n, ")
    assert [(c.batch, c.n, c.impl, round(c.margin, 3)) for c in mixed.cells] == [
        (512, 16384, "b", 2.0), (2048, 4096, "a", 1.5), (12288, 128, "a", 1.5)]
    assert [(p.dtype, p.batch, p.labels()) for p in (per_rows_1, per_rows_256)] == [
        ("float64", 1, ["8", "16", "32"]), ("float64", 256, ["8", "16", "32"])]


def _sections(md: str) -> list[str]:
    return re.findall(r"^## (.+)$", md, flags=re.M)


def test_the_picture_comes_first_and_the_choice_tables_follow_it(report):
    md, page, out = report
    sections = _sections(md)
    assert sections[:3] == ["Which entry to use", "Choice table", "Crossovers along n"]
    glance = md.split("## Which entry to use\n", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\*\*(.+)\*\*$", glance, flags=re.M) == ["default grid", "workload lm"]
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", glance) == ["glance_0.png", "glance_1.png"]
    for png in ("glance_0.png", "glance_1.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.index("<h2 id='glance'>") < page.index("src='glance_0.png'") < page.index("src='glance_1.png'") \
        < page.index("<h2 id='choice'>")


def test_the_page_has_a_short_table_of_contents_whose_links_lead_somewhere(report):
    md, page, _ = report
    (line,) = [line for line in md.splitlines() if line.startswith("Contents: ")]
    links = re.findall(r"\[([^\]]+)\]\(#([^)]+)\)", line)
    assert links[0] == ("Which entry to use", "which-entry-to-use") and ("Plots", "time-vs-n-batch-256") in links
    assert [title for title, _ in links if title != "Plots"] == [s for s in _sections(md) if s in dict(links)]
    assert len(links) <= 14, "a short table: the plots are one entry"
    assert md.index(line) < md.index("## Which entry to use")
    nav = page.split("<nav class='toc'>", 1)[1].split("</nav>", 1)[0]
    targets = re.findall(r"<a href='#([\w-]+)'>", nav)
    assert targets[:2] == ["glance", "choice"] and "plots" in targets and "changes" in targets
    for target in targets:
        assert page.count(f" id='{target}'>") == 1, target
    assert page.index("<nav class='toc'>") < page.index("<h2 id='glance'>")
