"""The report's roofline table from a synthetic store: each op's limit (the copy for softmax and the VJP, the
fill for the Jacobian), its bandwidth and each entry's fraction of it, hand-computed for planted times; a run
stored before the fill was measured still reads, and says "not measured" where the fill would be."""

from __future__ import annotations

import json

import helpers
import pytest

pytest.importorskip("pandas")

from test_report_content import _md_table  # noqa: E402

RID = "20260103T000000000000Z-aaaaaaaa"
DTYPE = "float32"
COPY_GBPS, FILL_GBPS = 25.0, 10.0
#: (op, shape): seconds per call; every shape moves more than the 32 MiB cache of helpers.run_meta
TIMES = {("softmax", "512x32000"): 0.01, ("vjp", "512x32000"): 0.02, ("jacobian", "4x2048"): 0.01}
#: GB/s over the op's limit, by hand: softmax reads and writes 512*32000 float32 (131072000 bytes) in 10 ms,
#: 13.1 GB/s of a 25 GB/s copy; the VJP also reads g (196608000 bytes) in 20 ms, 9.83 GB/s; the Jacobian
#: reads 4*2048 and writes 4*2048*2048 float32 (67141632 bytes) in 10 ms, 6.71 GB/s of a 10 GB/s fill
OF_LIMIT = {"softmax": 131072000 / 0.01 / 1e9 / COPY_GBPS, "vjp": 196608000 / 0.02 / 1e9 / COPY_GBPS,
            "jacobian": 67141632 / 0.01 / 1e9 / FILL_GBPS}


def _store(home, fill: bool) -> None:
    """One workload run of numpy at TIMES (its Jacobian not timed at 512x32000), with or without the fill."""
    from softgrad import workloads
    from softgrad.bench import asv_suite

    ops, shapes = ("softmax", "jacobian", "vjp"), ("512x32000", "4x2048")
    w = workloads.parse({"shapes": list(shapes), "ops": list(ops), "dtypes": [DTYPE]}, "test", "lm")
    params = helpers.asv_params(ops, shapes, (DTYPE,), ("cpu",))
    times = [TIMES.get((op, shape)) for op in ops for shape in shapes]
    results = {f"bench_workloads.{asv_suite.workload_class_name('lm', 'numpy')}.time_op":
               helpers.asv_time_op(times, params)}
    extra = {"fill_bandwidth": {"gbps": FILL_GBPS, "method": "numba prange fill (2 threads)", "buffer_bytes": 1 << 28,
                                "repeats": 10}} if fill else {}
    meta = helpers.run_meta(RID, ["numpy"], ["numpy"], workload=workloads.to_json(w), **extra)
    meta["copy_bandwidth"]["gbps"] = COPY_GBPS
    helpers.write_run_files(home, {(RID, "meta.json"): meta,
                                   (RID, "checks.json"): helpers.check_records(["numpy"], ops, (DTYPE,)),
                                   (RID, "asv.json"): helpers.asv_file(results)})


def _table(home, monkeypatch):
    from softgrad.history import memory_bound, results

    monkeypatch.setenv("SOFTGRAD_HOME", str(home))
    return memory_bound.roofline_table(results.latest_per_workload(results.load())).set_index("op")


def test_each_op_is_measured_against_its_own_limit(tmp_path, monkeypatch):
    _store(tmp_path, fill=True)
    table = _table(tmp_path, monkeypatch)
    assert list(table.index) == ["jacobian", "softmax", "vjp"]
    for op, fraction in OF_LIMIT.items():
        assert table.loc[op, "of limit"] == pytest.approx(fraction), op
        assert table.loc[op, "fill GB/s"] == "10.0 GB/s"
        assert table.loc[op, "every entry (median of limit, points)"] == f"numpy {fraction:.2f} (1)"
    assert table.loc["softmax", "limit"] == table.loc["vjp", "limit"] == "copy 25.0 GB/s"
    assert table.loc["jacobian", "limit"] == "fill 10.0 GB/s"
    # the Jacobian's fraction of the copy is still shown, and is not its fraction of the limit
    assert table.loc["jacobian", "of copy"] == pytest.approx(OF_LIMIT["jacobian"] * FILL_GBPS / COPY_GBPS)


def test_a_run_stored_before_the_fill_was_measured_says_not_measured(tmp_path, monkeypatch):
    _store(tmp_path, fill=False)
    table = _table(tmp_path, monkeypatch)
    assert table.loc["jacobian", "limit"] == "fill not measured"
    assert table.loc["jacobian", "of limit"] == "not measured"
    assert table.loc["jacobian", "every entry (median of limit, points)"].startswith("of copy: numpy ")
    assert set(table["fill GB/s"]) == {"not measured"}
    assert table.loc["softmax", "of limit"] == pytest.approx(OF_LIMIT["softmax"]), "the copy is still its limit"


def test_a_store_mixing_runs_with_and_without_the_fill_names_the_runs_without():
    from softgrad.history import memory_bound

    pd = pytest.importorskip("pandas")
    rows = [{"run": run, "impl": "a", "op": "jacobian", "shape": "4x2048", "dtype": DTYPE, "device": "cpu",
             "workload": run, "time_s": 0.01, "bytes_moved": 67141632, "llc_bytes": 32 << 20, "gbps": 6.7141632,
             "bw_fraction": 6.7141632 / COPY_GBPS, "copy_gbps": COPY_GBPS, "fill_gbps": fill, "passed": True}
            for run, fill in (("r1", FILL_GBPS), ("r2", float("nan")), ("r3", 8.0))]
    row = memory_bound.roofline_table(pd.DataFrame(rows)).iloc[0]
    assert row["fill GB/s"] == "8.0 to 10.0 GB/s (not measured in 1 run)"
    assert row["of limit"] == pytest.approx((0.67141632 + 6.7141632 / 8.0) / 2), "the median over runs with a fill"


def test_the_written_report_shows_the_fill_and_the_limit(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from softgrad.history import report

    _store(tmp_path, fill=True)
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    page = report.write_report(tmp_path / "report").read_text()
    md = (tmp_path / "report" / "report.md").read_text()
    rows = {r["op"]: r for r in _md_table(md, "Roofline: memory-bound points")}
    assert rows["jacobian"]["limit"] == "fill 10.0 GB/s" and rows["jacobian"]["of limit"] == "0.671"
    assert rows["softmax"]["limit"] == "copy 25.0 GB/s" and rows["vjp"]["of limit"] == "0.393"
    meta = {r["field"]: r["value"] for r in _md_table(md, "Run metadata")}
    assert meta["fill bandwidth"] == "10.0 GB/s (numba prange fill (2 threads))"
    assert "<th>of limit</th>" in page.split("id='roofline'")[1].split("<h2")[0]


@pytest.mark.parametrize("gbps", [0.0, -3.0, float("inf"), float("nan"), "10"])
def test_a_stored_fill_bandwidth_must_be_a_positive_finite_number(tmp_path, monkeypatch, gbps):
    from softgrad.history import store

    _store(tmp_path, fill=True)
    path = tmp_path / "results" / "runs" / RID / "meta.json"
    meta = json.loads(path.read_text())
    meta["fill_bandwidth"]["gbps"] = gbps
    path.write_text(json.dumps(meta))  # inf and nan as JSON's Infinity and NaN, which Python reads back
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    with pytest.raises(store.StoreError, match="field 'fill_bandwidth.gbps' must be a positive finite number"):
        store.Run(path.parent).meta()
