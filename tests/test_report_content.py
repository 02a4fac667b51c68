"""The report's tables and the dashboard's vendored scripts, as ``make test`` checks them in seconds: the
report written from a synthetic store (a default-grid run of three entries and a workload run, in the formats
softgrad and asv write) and its choice, scaling, workloads and agreement tables read back from report.md and
index.html; asv's own dashboard page pointed at the copies softgrad ships. The slow tests in
tests/test_main_job.py do the same from real runs.
"""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path

import helpers
import pytest

from softgrad.history import dashboard

RID_GRID, RID_WORKLOAD = "20260101T000000000000Z-aaaaaaaa", "20260102T000000000000Z-aaaaaaaa"
OPS, DTYPE = ("softmax", "vjp"), "float32"
NS = (16, 64, 256, 1024, 4096)  # at batch 256: the choice table's three size bands, four sizes from n = 64
#: seconds per call at batch 256: numpy linear in n, fake-impl quadratic (faster up to n = 64), fast-wrong 10x
#: faster than numpy and failing its check
TIMES = {"numpy": lambda n: 1e-9 * 256 * n, "fake-impl": lambda n: 4e-12 * 256 * n * n,
         "fast-wrong": lambda n: 1e-10 * 256 * n}
#: the workload's one shape (its bytes exceed the 32 MiB cache) and its times
WORKLOAD_SHAPE = "512x32000"
WORKLOAD_TIMES = {("numpy", "softmax"): 0.03, ("numpy", "vjp"): 0.05, ("fake-impl", "softmax"): 0.02,
                  ("fake-impl", "vjp"): 0.1}


def _grid_run() -> dict:
    from softgrad.bench import grid

    params = helpers.asv_params(OPS, [f"256x{n}" for n in NS], (DTYPE,), ("cpu",))
    results = {f"bench_ops.{grid.class_name(impl)}.time_op": helpers.asv_time_op([t(n) for _ in OPS for n in NS],
                                                                                   params)
               for impl, t in TIMES.items()}
    agreement = {"format": "softgrad-agreement/1", "bound": 0.1, "min_call_s": 1e-5, "points": [
        {"key": "numpy vjp 256x1024 float32 cpu", "softgrad_s": 2.6e-4, "independent_s": [2.5e-4, 2.6e-4],
         "softgrad_here_s": [2.6e-4, 2.6e-4], "ratio": 1.02, "stored_ratio": 1.01, "spread": 0.04, "bound": 0.1,
         "held": True, "agrees": True},
        {"key": "fake-impl softmax 256x64 float32 cpu", "softgrad_s": 5.5e-6, "independent_s": [4.2e-6, 4.2e-6],
         "softgrad_here_s": [5.5e-6, 5.5e-6], "ratio": 1.3, "stored_ratio": 1.3, "spread": 0.0, "bound": 0.1,
         "held": True, "agrees": False}]}
    return {(RID_GRID, "meta.json"): helpers.run_meta(RID_GRID, list(TIMES), ["numpy", "plugin"]),
            (RID_GRID, "checks.json"): helpers.check_records(TIMES, OPS, (DTYPE,), failing=("fast-wrong",)),
            (RID_GRID, "asv.json"): helpers.asv_file(results),
            (RID_GRID, "agreement.json"): agreement}


def _workload_run() -> dict:
    from softgrad import workloads
    from softgrad.bench import asv_suite

    w = workloads.parse({"shapes": [WORKLOAD_SHAPE], "ops": list(OPS), "dtypes": [DTYPE]}, "test", "lm")
    params = helpers.asv_params(OPS, (WORKLOAD_SHAPE,), (DTYPE,), ("cpu",))
    impls = sorted({impl for impl, _ in WORKLOAD_TIMES})
    results = {f"bench_workloads.{asv_suite.workload_class_name('lm', impl)}.time_op":
               helpers.asv_time_op([WORKLOAD_TIMES[(impl, op)] for op in OPS], params) for impl in impls}
    return {(RID_WORKLOAD, "meta.json"): helpers.run_meta(RID_WORKLOAD, impls, ["numpy", "plugin"],
                                                          workload=workloads.to_json(w)),
            (RID_WORKLOAD, "checks.json"): helpers.check_records(impls, OPS, (DTYPE,)),
            (RID_WORKLOAD, "asv.json"): helpers.asv_file(results)}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """report.md and index.html written from the synthetic store."""
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    from softgrad.history import report as report_module

    home = tmp_path_factory.mktemp("report-home")
    helpers.write_run_files(home, {**_grid_run(), **_workload_run()})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTGRAD_HOME", str(home))
        index = report_module.write_report(home / "report")
    return (home / "report" / "report.md").read_text(), index.read_text(), home / "report"


def _md_table(md: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first markdown table after ``## heading``, as {column: cell} (cells unescaped)."""
    section = md.split(f"## {heading}\n", 1)[1]
    lines = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    cells = [[html.unescape(c.strip()) for c in line.strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row)) for row in cells[2:]]


def _html_section(page: str, section: str) -> str:
    """index.html from ``<h2 id='section'>`` to the next heading."""
    return page.split(f"<h2 id='{section}'>", 1)[1].split("<h2", 1)[0]


def test_the_choice_table_names_the_fastest_passing_entry_per_size_band(report):
    md, page, _ = report
    rows = {(r["op"], r["band"]): r for r in _md_table(md, "Choice table")}
    assert set(rows) == {(op, band) for op in OPS for band in ("n <= 64", "64 < n <= 1024", "n > 1024")}
    for op in OPS:
        # geometric means over each band: numpy / fake-impl = 32e-9 / 4.096e-9 at n = 16 and 64, and so on
        assert [(rows[op, b]["fastest"], rows[op, b]["runner-up"], rows[op, b]["margin"], rows[op, b]["clear win"])
                for b in ("n <= 64", "64 < n <= 1024", "n > 1024")] == [
            ("fake-impl", "numpy", "7.81", "yes"), ("numpy", "fake-impl", "2.05", "yes"),
            ("numpy", "fake-impl", "16.4", "yes")]
        assert rows[op, "64 < n <= 1024"]["time (geo-mean)"] == "131 us" and rows[op, "n > 1024"]["sizes"] == "4096..4096"
    choice = _html_section(page, "choice")
    assert "fake-impl" in choice and "numpy" in choice and "fast-wrong" not in choice, "the 10x faster wrong entry"


def test_the_scaling_table_fits_each_entrys_exponent_from_n_64(report):
    md, page, _ = report
    rows = {(r["impl"], r["op"]): (r["exponent"], r["points"]) for r in _md_table(md, "Scaling exponents")}
    assert rows == {(impl, op): (k, "4") for impl, k in (("numpy", "1"), ("fake-impl", "2"), ("fast-wrong", "1"))
                    for op in OPS}
    assert "<td>fake-impl</td><td>softmax</td><td>2</td><td>4</td>" in _html_section(page, "scaling")


def test_the_workloads_table_reads_the_newest_workload_run_with_its_bandwidth(report):
    md, page, _ = report
    rows = {r["op"]: r for r in _md_table(md, "Workloads")}
    assert set(rows) == set(OPS)
    softmax, vjp = rows["softmax"], rows["vjp"]
    assert (softmax["workload"], softmax["shape"], softmax["fastest"], softmax["time"], softmax["runner-up"],
            softmax["margin"]) == ("lm", WORKLOAD_SHAPE, "fake-impl", "20 ms", "numpy", "1.5")
    assert (vjp["fastest"], vjp["time"], vjp["runner-up"], vjp["margin"]) == ("numpy", "50 ms", "fake-impl", "2")
    # bytes that must move / time: 2 x 512 x 32000 x 4 B in 20 ms is 6.55 GB/s, 0.262 of the run's 25 GB/s copy;
    # the VJP reads g too: 3 x ... in 50 ms; over a 32 MiB last-level cache
    assert (softmax["GB/s"], softmax["of copy"], softmax["bytes / LLC"]) == ("6.55", "0.262", "3.91")
    assert (vjp["GB/s"], vjp["of copy"], vjp["bytes / LLC"]) == ("3.93", "0.157", "5.86")
    assert "lm" in _html_section(page, "workloads")


def test_the_agreement_table_shows_each_point_and_its_verdict(report):
    md, page, _ = report
    rows = {r["point"]: r for r in _md_table(md, "softgrad vs the frameworks' own timers")}
    assert set(rows) == {"numpy vjp 256x1024 float32 cpu", "fake-impl softmax 256x64 float32 cpu"}
    within, outside = rows["numpy vjp 256x1024 float32 cpu"], rows["fake-impl softmax 256x64 float32 cpu"]
    assert (within["beside / independent"], within["independent"], within["verdict"]) == ("1.02", "255 us", "within")
    assert (outside["beside / independent"], outside["verdict"]) == ("1.3", "OUTSIDE")
    assert "OUTSIDE" in _html_section(page, "agreement")


def test_every_figure_the_tables_stand_beside_is_drawn(report):
    _, page, out = report
    for png in ("time_vs_n_batch256.png", "speedup_vs_numpy.png", "bandwidth.png", "scaling.png", "errors.png",
                "history.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"src='{png}'" in page, png


# --- the dashboard's vendored scripts ------------------------------------------------------------------------


def test_every_script_and_stylesheet_of_asvs_dashboard_is_served_from_the_vendored_copies(tmp_path):
    """asv's own page (the installed asv's www/index.html): after vendoring nothing is fetched from a CDN."""
    spec = importlib.util.find_spec("asv")
    if spec is None:
        pytest.skip("asv is not installed")
    page = Path(spec.origin).parent / "www" / "index.html"
    (tmp_path / "index.html").write_text(page.read_text())
    assert dashboard.vendor_dashboard(tmp_path) == []
    html = (tmp_path / "index.html").read_text()
    assert not re.findall(r'''(?:src|href)="https?://[^"]*\.(?:js|css)"''', html)
    for src in dashboard.FILES.values():
        assert f'"vendor/{src}"' in html, src
        assert (tmp_path / "vendor" / src).read_bytes() == (dashboard.VENDOR / src).read_bytes()


def test_vendoring_drops_the_cdn_checks_and_names_what_it_cannot_serve(tmp_path):
    (tmp_path / "index.html").write_text(
        '<script src="https://code.jquery.com/jquery-3.3.1.min.js" integrity="sha256-x" crossorigin="anonymous">'
        '</script>\n<link rel="stylesheet" href="https://cdn.example/new/other.min.css">\n'
        '<a href="https://github.com/airspeed-velocity/asv/">asv</a>\n')
    assert dashboard.vendor_dashboard(tmp_path) == ["other.min.css"]
    html = (tmp_path / "index.html").read_text()
    assert '<script src="vendor/jquery-3.3.1.min.js"></script>' in html
    assert 'href="https://cdn.example/new/other.min.css"' in html and "github.com/airspeed-velocity" in html
