"""Crossovers along n and the break-even of compiled entries (``softgrad choose --explain`` / ``--calls``), from
synthetic frames built as tests/test_choose.py builds them."""

from __future__ import annotations

import json
import math

import pytest

pd = pytest.importorskip("pandas")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_choose import NOW, _row  # noqa: E402
from test_report_content import _html_section, _md_table, report  # noqa: E402, F401 (report: its fixture)

from softgrad.cli import main  # noqa: E402
from softgrad.history import crossovers, results  # noqa: E402
from softgrad.history.choose import candidates, recommend, total  # noqa: E402

NS = (16, 32, 64, 128)


def _curves(spread=0.01, batch=256, **more):
    """a: 2 us at n = 16, linear in n; b: 3 us at n = 16, as sqrt(n): b / a = 1.5 (n / 16)^-0.5, equal at n = 36,
    so a wins at 16 and 32 and b at 64 and 128; quartiles +- ``spread`` of each time."""
    rows = []
    for n in NS:
        for impl, t in (("a", 2e-6 * n / 16), ("b", 3e-6 * (n / 16) ** 0.5)):
            rows.append(_row(impl, t, t * (1 - spread), t * (1 + spread), n=n, batch=batch, **more))
    return rows


def test_the_winner_changes_between_two_measured_n_and_the_curves_cross_where_interpolated():
    along = crossovers.along_n(pd.DataFrame(_curves()), "vjp", 256)
    assert [(s.impl, s.n_first, s.n_last, s.sizes) for s in along.stretches] == [("a", 16, 32, 2), ("b", 64, 128, 2)]
    (change,) = along.crossovers
    assert (change.below, change.above, change.n_lo, change.n_hi, change.clear) == ("a", "b", 32, 64, True)
    assert change.estimate == pytest.approx(36)  # power laws: log-log interpolation is exact
    assert along.lines() == ["n = 16..32: a",
                             "below n = 36 a, above it b (interpolated between the measured n = 32 and 64)",
                             "n = 64..128: b"]


def test_an_entry_that_failed_a_check_is_never_a_winner():
    wrong = [_row("wrong", 1e-9, 1e-9, 1e-9, passed=False, n=n) for n in NS]  # fastest everywhere, but failed
    along = crossovers.along_n(pd.DataFrame(_curves() + wrong), "vjp", 256)
    assert {s.impl for s in along.stretches} == {"a", "b"}
    assert [(c.below, c.above) for c in along.crossovers] == [("a", "b")]
    # a newer run where a fails its check: from then on a is no candidate at any n, so b wins everywhere
    failed_a = [_row("a", 1e-9, 1e-9, 1e-9, passed=False, n=n, run="r2") for n in NS]
    stored = results.newest_per_entry(pd.DataFrame(_curves() + failed_a))
    assert [(s.impl, s.n_first, s.n_last) for s in crossovers.along_n(stored, "vjp", 256).stretches] == [("b", 16, 128)]


def test_a_change_within_the_measured_spread_is_marked_not_clear():
    along = crossovers.along_n(pd.DataFrame(_curves(spread=0.3)), "vjp", 256)
    (change,) = along.crossovers
    assert change.clear is False
    assert change.sentence().endswith("; within each other's measured spread there: not a clear change")
    assert crossovers.table_rows(pd.DataFrame(_curves(spread=0.3)))[0]["crossovers"] == "32..64 (about 36), not clear"


def test_without_both_entries_at_both_ends_there_is_an_interval_but_no_estimate():
    rows = [r for r in _curves() if not (r["impl"] == "a" and r["n"] == 64)]  # a not measured at 64 (a size limit)
    (change,) = crossovers.along_n(pd.DataFrame(rows), "vjp", 256).crossovers
    assert (change.n_lo, change.n_hi, change.estimate) == (32, 64, None)
    assert change.sentence() == "between the measured n = 32 and 64 the fastest changes from a to b"


def test_curves_are_per_rows_layout_and_op_and_a_workload_point_extends_the_grid():
    g_broadcast = [_row("a", 1e-9, 1e-9, 1e-9, n=n, g_layout="broadcast") for n in NS]  # another curve: vjp reads g
    vocab = [_row("a", 5e-3, 4.9e-3, 5.1e-3, n=50257, run="r2"), _row("b", 1e-3, 0.9e-3, 1.1e-3, n=50257, run="r2")]
    stored = results.newest_per_entry(pd.DataFrame(_curves() + _curves(batch=1) + g_broadcast + vocab))
    every = crossovers.every_curve(stored)
    assert [(a.batch, a.g_layout, [s.impl for s in a.stretches]) for a in every] == [
        (1, "contiguous", ["a", "b"]), (256, "broadcast", ["a"]), (256, "contiguous", ["a", "b"])]
    plain = crossovers.along_n(stored, "vjp", 256)
    assert plain.stretches[-1] == crossovers.Stretch("b", 64, 50257, 3)
    # softmax does not read g: its g layout is not part of its curve
    softmax = pd.DataFrame([{**r, "op": "softmax", "g_layout": "broadcast"} for r in _curves()])
    assert crossovers.along_n(softmax, "softmax", 256, g_layout="contiguous").g_layout is None


def test_the_reports_rows_name_each_range_and_winner():
    rows = crossovers.table_rows(pd.DataFrame(_curves()))
    assert rows == [{"op": "vjp", "dtype": "float32", "batch": 256, "device": "cpu",
                     "layouts": "x contiguous, g contiguous", "n range -> winner": "16..32 -> a; 64..128 -> b",
                     "crossovers": "32..64 (about 36)"}]
    assert crossovers.table_rows(pd.DataFrame()) == []


def test_the_report_has_a_crossover_table_from_the_stored_runs(report):
    """The report's synthetic store (tests/test_report_content.py): numpy linear in n, fake-impl quadratic
    (their curves cross at n = 250), fast-wrong 10x faster than numpy but failing its check, and a workload
    run at 512x32000 (a curve of its own rows)."""
    md, page, _ = report
    rows = {(r["op"], r["batch"]): r for r in _md_table(md, "Crossovers along n")}
    assert set(rows) == {(op, batch) for op in ("softmax", "vjp") for batch in ("256", "512")}
    for op in ("softmax", "vjp"):
        assert rows[op, "256"]["n range -> winner"] == "16..64 -> fake-impl; 256..4096 -> numpy"
        # at n = 256 numpy (65.5 us) and fake-impl (67.1 us) are within each other's quartiles
        assert rows[op, "256"]["crossovers"] == "64..256 (about 250), not clear"
    assert rows["softmax", "512"]["n range -> winner"] == "32000 -> fake-impl"
    assert rows["vjp", "512"]["n range -> winner"] == "32000 -> numpy"
    section = _html_section(page, "crossovers")
    assert "16..64 -&gt; fake-impl" in section and "fast-wrong" not in section


# --- break-even: a compiled entry's compile paid once over N calls --------------------------------------------

def _compiled(n=1024):
    """jit: 10 us a call after a 180 ms compile; plain: 85 us, nothing to compile: even after 2,400 calls."""
    return [_row("jit", 10e-6, 9.9e-6, 10.1e-6, n=n, compile_s=0.18), _row("plain", 85e-6, 84e-6, 86e-6, n=n)]


def test_calls_change_the_answer_exactly_at_the_break_even():
    df = pd.DataFrame(_compiled())
    assert crossovers.break_even(0.18, 10e-6, 0.0, 85e-6) == 2400
    assert recommend(df, "vjp", 1024, 256, now=NOW).impl == "jit"
    before, at = (recommend(df, "vjp", 1024, 256, now=NOW, calls=c) for c in (2399, 2400))
    assert (before.impl, before.runner_up, at.impl, at.runner_up) == ("plain", "jit", "jit", "plain")
    assert before.total_s == pytest.approx(2399 * 85e-6) and at.total_s == pytest.approx(0.18 + 2400 * 10e-6)
    assert recommend(df, "vjp", 1024, 256, now=NOW, calls=1).impl == "plain"


@settings(max_examples=200, deadline=None)
@given(compile_s=st.floats(1e-6, 100), fast=st.floats(1e-9, 1e-2), slower=st.floats(1.0001, 1e3),
       other_compile=st.sampled_from([0.0, 1e-4]))
def test_the_break_even_is_where_the_ranking_flips(compile_s, fast, slower, other_compile):
    """Whatever the numbers, :func:`break_even` and the ranking :func:`candidates` makes for N calls agree:
    the compiled entry first from N on, the other first at N - 1."""
    at = pd.DataFrame([_row("jit", fast, fast, fast, compile_s=compile_s + other_compile),
                       _row("plain", fast * slower, fast, fast, compile_s=other_compile)])
    n = crossovers.break_even(compile_s + other_compile, fast, other_compile, fast * slower)
    assert n is not None and n >= 1
    assert candidates(at, n)[0]["impl"].iloc[0] == "jit"
    if n > 1:
        assert candidates(at, n - 1)[0]["impl"].iloc[0] == "plain"
    assert list(total(at, n)) == [compile_s + other_compile + n * fast, other_compile + n * (fast * slower)]


def test_a_compiled_entry_no_faster_per_call_never_pays_back():
    assert crossovers.break_even(0.1, 2e-6, 0.0, 1e-6) is None
    assert crossovers.break_even(0.0, 1e-6, 0.0, 2e-6) == 1
    df = pd.DataFrame([_row("jit", 90e-6, 89e-6, 91e-6, compile_s=0.2), _row("plain", 85e-6, 84e-6, 86e-6)])
    assert recommend(df, "vjp", 1024, 256, now=NOW).payback is None, "plain wins and compiles nothing"


def test_the_answer_says_after_how_many_calls_a_compiled_winner_pays_back():
    df = pd.DataFrame(_compiled())
    choice = recommend(df, "vjp", 1024, 256, now=NOW)
    assert choice.payback == crossovers.Payback("jit", 0.18, 10e-6, "plain", 85e-6, 2400)
    assert choice.sentence() == ("jit: 10 us, 8.5x faster than plain (85 us), passed all 71 correctness cases, jit "
                                 "pays back its 180 ms compile after 2,400 calls against plain (10 us a call against "
                                 "85 us)")
    many = recommend(df, "vjp", 1024, 256, now=NOW, calls=10_000)
    assert many.sentence().startswith("for 10,000 calls jit: 280 ms in all (180 ms compile + 10,000 x 10 us), "
                                      "3.04x less than plain (850 ms: 10,000 x 85 us), passed all 71 correctness cases")
    few = recommend(df, "vjp", 1024, 256, now=NOW, calls=100)
    assert few.impl == "plain" and "jit pays back its 180 ms compile after 2,400 calls" in few.sentence()
    alone = recommend(pd.DataFrame(_compiled()[:1]), "vjp", 1024, 256, now=NOW)
    assert alone.payback is None, "nothing that does not compile was measured: nothing to pay back against"

def test_a_missing_compile_time_counts_as_none():
    at = pd.DataFrame([_row("a", 1e-6, 1e-6, 1e-6, compile_s=math.nan)])
    assert list(total(at, 10)) == [10 * 1e-6]


# --- the command line ---------------------------------------------------------------------------------------

def _cli(monkeypatch, capsys, tmp_path, df, *argv):
    """``softgrad choose ARGV`` in this process over the stored rows ``df``: (exit status, stdout, stderr)."""
    monkeypatch.setattr(results, "load", lambda **_: df)
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    rc = main(["choose", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_explain_prints_the_winners_along_n_after_the_answer(monkeypatch, capsys, tmp_path):
    df = pd.DataFrame(_curves() + _compiled(n=256))
    rc, out, err = _cli(monkeypatch, capsys, tmp_path, df, "--op", "vjp", "--n", "40", "--batch", "256", "--explain")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("a: 4 us, ") and lines[0].endswith("(measured at batch 256, n 32)")
    assert lines[-6:] == [
        "along n: vjp, 256 rows, float32, cpu (x contiguous, g contiguous), fastest correct entry per call",
        "  n = 16..32: a",
        "  below n = 36 a, above it b (interpolated between the measured n = 32 and 64)",
        "  n = 64..128: b",
        "  between the measured n = 128 and 256 the fastest changes from b to jit",  # b was not measured at 256
        "  n = 256: jit"]
    rc, calls, _ = _cli(monkeypatch, capsys, tmp_path, df, "--op", "vjp", "--n", "256", "--batch", "256",
                        "--explain", "--calls", "100")
    assert calls.splitlines()[-6] == ("along n: vjp, 256 rows, float32, cpu (x contiguous, g contiguous), "
                                      "fastest correct entry for 100 calls")
    assert calls.splitlines()[-2:] == ["  between the measured n = 128 and 256 the fastest changes from b to plain",
                                       "  n = 256: plain"], "for 100 calls jit's compile does not pay back"
    rc, plain, _ = _cli(monkeypatch, capsys, tmp_path, df, "--op", "vjp", "--n", "40", "--batch", "256")
    assert "along n" not in plain and plain.splitlines()[0] == lines[0]


def test_calls_and_json_carry_the_break_even_and_the_crossovers(monkeypatch, capsys, tmp_path):
    df = pd.DataFrame(_compiled() + _compiled(n=4096))
    for calls, winner in (("2399", "plain"), ("2400", "jit")):
        rc, out, err = _cli(monkeypatch, capsys, tmp_path, df, "--op", "vjp", "--n", "1024", "--batch", "256",
                            "--calls", calls)
        assert rc == 0 and out.startswith(f"for {int(calls):,} calls {winner}: "), (out, err)
    rc, out, _ = _cli(monkeypatch, capsys, tmp_path, df, "--op", "vjp", "--n", "1024", "--batch", "256", "--json")
    d = json.loads(out)
    assert (d["impl"], d["calls"], d["payback"]["calls"], d["payback"]["against"]) == ("jit", None, 2400, "plain")
    assert [s["impl"] for s in d["along_n"]["stretches"]] == ["jit"] and d["along_n"]["crossovers"] == []
    rc, out, _ = _cli(monkeypatch, capsys, tmp_path, pd.DataFrame(_curves()), "--op", "vjp", "--n", "64",
                      "--batch", "256", "--json", "--calls", "5")
    d = json.loads(out)
    assert d["calls"] == 5 and d["along_n"]["calls"] == 5
    assert d["along_n"]["crossovers"][0]["sentence"].startswith("below n = 36 a, above it b")


@pytest.mark.parametrize("calls", ["0", "-3", "abc", "1e3", "2.5", "9" * 400, str(2**63)])
def test_a_bad_calls_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, calls):
    with pytest.raises(SystemExit) as exc:
        _cli(monkeypatch, capsys, tmp_path, pd.DataFrame(_compiled()), "--op", "vjp", "--n", "1024", "--calls", calls)
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and not out and len(err.strip().splitlines()) == 1 and "--calls" in err, err

