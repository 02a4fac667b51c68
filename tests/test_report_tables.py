"""The report's tables from a synthetic results frame: the choice table's spread verdict and the
write-up's claim."""

from __future__ import annotations

import math

import pytest

pd = pytest.importorskip("pandas")

from softgrad.history import report, units  # noqa: E402


def _row(impl, op, n, t, q25=None, q75=None, passed=True, batch=1, dtype="float64"):
    return {"impl": impl, "op": op, "n": n, "batch": batch, "dtype": dtype, "device": "cpu",
            "shape": f"{batch}x{n}", "time_s": t, "q25_s": q25 or t * 0.95, "q75_s": q75 or t * 1.05,
            "passed": passed, "compile_s": 0.0}


def test_choice_table_says_when_the_winner_is_within_the_spread():
    df = pd.DataFrame([
        _row("a", "vjp", 128, 1.00, 0.90, 1.10), _row("b", "vjp", 128, 1.05, 0.95, 1.20),  # overlapping
        _row("a", "softmax", 128, 1.00, 0.98, 1.02), _row("b", "softmax", 128, 2.0, 1.9, 2.1),
        _row("fast-but-wrong", "softmax", 128, 0.1, passed=False),
    ])
    table = report.choice_table(df).set_index("op")
    assert table.loc["vjp", "fastest"] == "a" and table.loc["vjp", "clear win"] == "no (spread)"
    assert table.loc["softmax", "fastest"] == "a" and table.loc["softmax", "clear win"] == "yes"
    assert table.loc["softmax", "margin"] == pytest.approx(2.0)


def test_writeup_claim_is_answered_from_the_measurements():
    rows = []
    for n, loops, tloops, autograd, formula in ((8, 1e-5, 5e-5, 2e-4, 2e-6), (1024, 0.2, 9.0, 0.05, 1e-3)):
        rows += [_row("loops", "jacobian", n, loops), _row("torch-loops", "jacobian", n, tloops),
                 _row("torch-autograd", "jacobian", n, autograd), _row("numpy", "jacobian", n, formula)]
    rows.append(_row("numpy", "jacobian", 4096, 0.01))  # past the three's size limits: left out
    rows += [_row("torch-autograd", "jacobian", 2048, 0.1), _row("numpy", "jacobian", 2048, 0.002)]  # alone
    table, verdict = report.writeup_claim(pd.DataFrame(rows), "float64")
    assert list(table["fastest of the three"]) == ["loops", "torch-autograd", "(only one measured)"]
    assert list(table["fastest overall"]) == ["numpy", "numpy", "numpy"]
    assert table["torch-autograd / fastest"].iloc[1] == pytest.approx(50.0)
    assert "fastest at n = 1024 and not at n = 8." in verdict
    assert "50x slower than numpy at n = 2048" in verdict


def test_writeup_claim_needs_the_claimed_entry():
    table, verdict = report.writeup_claim(pd.DataFrame([_row("numpy", "jacobian", 8, 1e-6)]), "float64")
    assert table.empty and verdict == ""
    assert math.isnan(report._geomean([]))


def test_compile_cost_between_tracked_sizes_comes_from_the_nearest_tracked_n():
    from softgrad.history import results

    df = pd.DataFrame({"run": "r", "impl": "jit", "op": "vjp", "batch": 1, "dtype": "float32", "device": "cpu",
                       "n": [2, 4, 16, 32, 512, 2048, 4096]})
    first_call_excess = pd.Series([0.5, math.nan, math.nan, 0.3, 0.2, math.nan, 0.1])
    filled = results._nearest_tracked(first_call_excess, df)
    assert list(filled) == [0.5, 0.5, 0.3, 0.3, 0.2, 0.1, 0.1]
    other = df.assign(dtype="float64")  # another group with nothing tracked stays unknown
    assert results._nearest_tracked(pd.Series([math.nan] * 7), other).isna().all()


@pytest.mark.parametrize("seconds, text", [
    (7.88e-06, "7.88 us"), (0.00189, "1.89 ms"), (2.123, "2.12 s"), (4.2e-9, "4.2 ns"), (0.0, "0"),
    (float("nan"), "-"), (1e-3, "1 ms"), (999.7e-6, "1 ms"), (-2e-6, "-2 us"),
])
def test_durations_print_with_their_unit(seconds, text):
    assert units.format_seconds(seconds) == text


@pytest.mark.parametrize("size, text", [(64 << 10, "64 KiB"), (480 << 20, "480 MiB"), (3 << 29, "1.5 GiB"),
                                        (512, "512 B"), (float("nan"), "-")])
def test_sizes_print_in_binary_units(size, text):
    assert units.format_bytes(size) == text


def test_tables_print_only_the_named_columns_as_durations():
    df = pd.DataFrame([{"impl": "a", "time": 2.5e-6, "margin": 1.234}])
    md = report._md_table(df, seconds=("time",))
    assert "| a | 2.5 us | 1.23 |" in md
    assert "2.5 us" in report._html_table(df, seconds=("time",)) and "2.5e-06" in report._md_table(df)


def test_history_takes_the_error_from_every_tracked_size_not_only_the_timed_shape():
    """The error is tracked on a coarser grid than the time (n = 512 here, timed at 1024): the history's
    error panel must still show each run's worst error, and a drift between runs."""
    rows = []
    for run, err in (("r1", 0.01), ("r2", 3.0)):
        for n, ratio in ((1024, math.nan), (512, err), (32, 0.001)):
            r = _row("a", "vjp", n, 1e-4, batch=256, dtype="float32")
            rows.append({**r, "run": run, "error_ratio": ratio})
    times, errors = report.history_tables(pd.DataFrame(rows), "256x1024", "float32")
    assert list(times.columns) == ["r1", "r2"] and times.loc[("vjp", "a"), "r1"] == pytest.approx(1e-4)
    assert errors.loc[("vjp", "a")].tolist() == [0.01, 3.0]
    assert report.history_tables(pd.DataFrame(rows), "1x8", "float32")[0].empty


def _mem_row(impl, op, shape, moved, fraction, passed=True, workload="vocab", dtype="float32", llc=100):
    batch, n = (int(v) for v in shape.split("x"))
    return {"impl": impl, "op": op, "shape": shape, "batch": batch, "n": n, "dtype": dtype, "device": "cpu",
            "workload": workload, "time_s": 1e-3, "bytes_moved": moved, "llc_bytes": llc,
            "gbps": moved / 1e-3 / 1e9, "bw_fraction": fraction, "passed": passed}


def test_the_bandwidth_plot_holds_the_jacobian_to_the_fill_and_the_rest_to_the_copy(tmp_path, monkeypatch):
    """Each panel's points are read back from its axes: the Jacobian's at GB/s over the run's fill, softmax's
    at its fraction of the copy; a run without a fill measured draws its Jacobian against the copy, and says so."""
    import matplotlib.figure

    from softgrad.history import memory_bound

    figures = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    jac = {**_mem_row("a", "jacobian", "16x4096", 1000, 0.25), "copy_gbps": 4000.0, "fill_gbps": 2000.0}
    soft = {**_mem_row("a", "softmax", "512x32000", 300, 0.6), "copy_gbps": 500.0, "fill_gbps": 250.0}
    memory_bound.bandwidth_plot(pd.DataFrame([jac, soft]), tmp_path / "bw.png")
    axes = {ax.get_title().split(":")[0]: ax for ax in figures[-1].axes}
    def points(ax):  # the markers (the cache's and 1.0's guide lines have a line style)
        return sorted(y for line in ax.get_lines() if line.get_linestyle() == "None" for y in line.get_ydata())

    ys = {op: points(ax) for op, ax in axes.items()}
    assert ys == {"jacobian": [pytest.approx(1000 / 1e-3 / 1e9 / 2000.0)], "softmax": [pytest.approx(0.6)]}
    assert axes["jacobian"].get_ylabel() == "fraction of fill bandwidth"
    assert axes["softmax"].get_ylabel() == "fraction of copy bandwidth"
    memory_bound.bandwidth_plot(pd.DataFrame([{**jac, "fill_gbps": float("nan")}]), tmp_path / "old.png")
    (ax,) = figures[-1].axes
    assert ax.get_ylabel() == "fraction of copy bandwidth"
    assert points(ax) == [pytest.approx(0.25)]


def test_roofline_table_reads_only_points_past_the_cache_and_only_entries_that_passed():
    from softgrad.history import memory_bound

    df = pd.DataFrame([
        _mem_row("a", "vjp", "512x32000", 300, 0.60), _mem_row("a", "vjp", "512x50257", 500, 0.70),
        _mem_row("b", "vjp", "512x32000", 300, 0.50), _mem_row("b", "vjp", "512x50257", 500, 0.55),
        _mem_row("b", "vjp", "1x16", 50, 9.0, workload="default"),  # in the cache: its 9x is the cache's
        _mem_row("fast-wrong", "vjp", "512x32000", 300, 0.95, passed=False),
        _mem_row("a", "softmax", "1x16", 50, 3.0, workload="default"),  # no softmax point past the cache
    ])
    table = memory_bound.roofline_table(df)
    assert list(table["op"]) == ["vjp"], table
    row = table.iloc[0]
    assert row["best"] == "a" and row["of copy"] == pytest.approx(0.65) and row["points"] == 2
    assert row["bytes / LLC"] == "3 to 5"
    assert row["every entry (median of limit, points)"] == "a 0.65 (2), b 0.53 (2)"  # no fast-wrong, no 9x
    assert memory_bound.roofline_table(df[df["workload"] == "default"]).empty


def test_bandwidth_plot_draws_every_workload_and_is_skipped_without_points(tmp_path):
    from softgrad.history import memory_bound

    df = pd.DataFrame([_mem_row("a", "vjp", "512x32000", 300, 0.6), _mem_row("a", "vjp", "1x16", 50, 3.0,
                                                                             workload="default", dtype="bfloat16"),
                       _mem_row("b", "softmax", "512x32000", 200, 0.4, passed=False)])
    path = memory_bound.bandwidth_plot(df, tmp_path / "bw.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert memory_bound.bandwidth_plot(df.iloc[0:0], tmp_path / "none.png") is None
