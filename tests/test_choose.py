"""``softgrad choose`` from a synthetic results frame: the spread verdict and the sentence it prints, each
entry's newest measurement, the sane distance, and what can be measured on this machine."""

from __future__ import annotations

import contextlib
import io
import math
import re
from datetime import datetime, timezone

import pytest

pd = pytest.importorskip("pandas")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from softgrad import workloads  # noqa: E402
from softgrad.bench import grid  # noqa: E402
from softgrad.cli import build_parser, main  # noqa: E402
from softgrad.history import results  # noqa: E402
from softgrad.history.choose import MAX_EXTRAPOLATION, NoResult, recommend  # noqa: E402

NOW = datetime(2026, 1, 11, tzinfo=timezone.utc)


def _row(impl, t, q25, q75, passed=True, n=1024, batch=256, run="r1", **more):
    return {"impl": impl, "op": "vjp", "n": n, "batch": batch, "dtype": "float32", "device": "cpu",
            "time_s": t, "q25_s": q25, "q75_s": q75, "passed": passed, "checked": True,
            "check_failed": 0 if passed else 3, "check_passed": 71, "error_ratio": 0.1, "compile_s": 0.0,
            "run": run, "commit": "abc", "x_layout": "contiguous", "g_layout": "contiguous", "machine": "vm",
            "date": "2026-01-01T00:00:00+00:00", "copy_gbps": 25.0, **more}


def test_a_win_inside_the_measured_spread_says_either_will_do():
    df = pd.DataFrame([_row("a", 160e-6, 150e-6, 175e-6), _row("b", 165e-6, 158e-6, 170e-6)])
    choice = recommend(df, "vjp", 1024, 256, "float32")
    assert choice.impl == "a" and choice.clear_win is False
    assert "1.03x faster than b (165 us, within the measured spread: either will do)" in choice.sentence()


def test_a_clear_win_is_stated_plainly():
    df = pd.DataFrame([_row("a", 100e-6, 98e-6, 102e-6), _row("b", 200e-6, 190e-6, 210e-6),
                       _row("wrong", 10e-6, 9e-6, 11e-6, passed=False)])
    choice = recommend(df, "vjp", 1024, 256, "float32")
    assert choice.impl == "a" and choice.clear_win is True
    assert choice.sentence().startswith("a: 100 us, 2x faster than b (200 us), passed all 71 correctness cases")
    assert [e["impl"] for e in choice.excluded] == ["wrong"]


def test_a_lone_candidate_has_no_spread_verdict():
    choice = recommend(pd.DataFrame([_row("a", 1e-4, 9e-5, 1.1e-4)]), "vjp", 1024, 256, "float32")
    assert choice.runner_up is None and choice.clear_win is None and "faster than" not in choice.sentence()


def test_far_from_any_measurement_the_nearest_point_is_used_and_said_so():
    df = pd.DataFrame([_row("a", 1e-4, 9e-5, 1.1e-4, n=4096, batch=256), _row("b", 2e-4, 1.9e-4, 2.1e-4, n=4096, batch=256),
                       _row("a", 1e-6, 9e-7, 1.1e-6, n=16, batch=1), _row("b", 5e-7, 4e-7, 6e-7, n=16, batch=1)])
    choice = recommend(df, "vjp", 50257, 4096, "float32")
    assert (choice.impl, choice.measured_batch, choice.measured_n, choice.far) == ("a", 256, 4096, True)
    sentence = choice.sentence()
    assert "(measured at batch 256, n 4096); this is the nearest measured point, 1/16 of the rows and 1/12.3 of " \
           "the row length asked" in sentence and "softgrad run --workload FILE" in sentence
    near = recommend(df, "vjp", 3000, 256, "float32")
    assert near.measured_n == 4096 and not near.far and "nearest measured point" not in near.sentence()
    assert recommend(df, "vjp", 16, 1, "float32").impl == "b", "each size answers for itself"


def test_a_dtype_never_timed_is_no_answer_naming_what_was():
    df = pd.DataFrame([_row("a", 1e-4, 9e-5, 1.1e-4)])
    with pytest.raises(NoResult, match=r"no stored timing for vjp bfloat16 on cpu \(timed here: float32\)"):
        recommend(df, "vjp", 1024, 256, "bfloat16")


def test_layouts_are_chosen_for_and_one_entry_is_never_its_own_runner_up():
    df = pd.DataFrame([_row("a", 1e-4, 9e-5, 1.1e-4), _row("a", 5e-5, 4e-5, 6e-5, g_layout="broadcast"),
                       _row("b", 2e-4, 1.9e-4, 2.1e-4), _row("b", 3e-5, 2e-5, 4e-5, g_layout="broadcast"),
                       _row("a", 9e-5, 8e-5, 1e-4, run="r2")])
    plain = recommend(df, "vjp", 1024, 256, "float32")
    assert (plain.impl, plain.time_s, plain.runner_up) == ("a", 9e-5, "b"), "the newest run's a, b second"
    broadcast = recommend(df, "vjp", 1024, 256, "float32", g_layout="broadcast")
    assert (broadcast.impl, broadcast.runner_up) == ("b", "a")


# --- each entry's newest measurement (a newer run of other entries hides nothing) ---------------------------

def test_each_entry_answers_from_its_own_newest_run_not_from_the_newest_run_alone():
    """``run --quick --impl numpy`` then ``run --quick --impl loops``: the newer run holds loops only, and
    numpy's older timing still answers; the answer says which run, date and age each figure comes from."""
    df = pd.DataFrame([
        _row("numpy", 5.5e-6, 5e-6, 6e-6, op="softmax", n=1024, batch=1, run="r1", commit="aaa"),
        _row("loops", 218e-6, 210e-6, 230e-6, op="softmax", n=1024, batch=1, run="r2", commit="bbb",
             date="2026-01-08T00:00:00+00:00")])
    stored = results.newest_per_entry(df)
    choice = recommend(stored, "softmax", 1024, 1, now=NOW)
    assert (choice.impl, choice.run, choice.runner_up, choice.runner_up_run) == ("numpy", "r1", "loops", "r2")
    assert (choice.age_s, choice.runner_up_age_s) == (10 * 86400, 3 * 86400)
    assert choice.sources() == ["numpy: from run r1 (commit aaa), 2026-01-01 00:00, 10 days old",
                                "loops (runner-up): from run r2 (commit bbb), 2026-01-08 00:00, 3 days old"]
    d = choice.to_dict()
    assert (d["date"], d["runner_up_date"], d["runner_up_run"]) == ("2026-01-01T00:00:00+00:00",
                                                                    "2026-01-08T00:00:00+00:00", "r2")
    only_numpy = recommend(stored[stored["impl"] == "numpy"], "softmax", 1024, 1, now=NOW)
    assert (only_numpy.impl, only_numpy.run) == ("numpy", "r1"), "--impl numpy answers from numpy's own run"


def test_the_newest_run_with_the_entry_decides_and_other_machines_never_count():
    df = pd.DataFrame([
        _row("a", 50e-6, 49e-6, 51e-6, run="r1"), _row("b", 90e-6, 88e-6, 92e-6, run="r1"),
        _row("a", 40e-6, 39e-6, 41e-6, passed=False, run="r2"),  # a's newest run fails its check: stale pass ignored
        _row("b", math.nan, math.nan, math.nan, run="r3"),  # r3 could not time b: b's r1 timing stands
        _row("c", 1e-6, 1e-6, 1e-6, run="r0", machine="laptop"),  # another machine's run
    ])
    stored = results.newest_per_entry(df)
    assert sorted(zip(stored["impl"], stored["run"])) == [("a", "r2"), ("b", "r1")]
    choice = recommend(stored, "vjp", 1024, 256, now=NOW)
    assert (choice.impl, choice.run, choice.runner_up) == ("b", "r1", None)
    assert [e["impl"] for e in choice.excluded] == ["a"]


# --- the sane distance and what this machine can hold -----------------------------------------------------

def _grid_df():
    return pd.DataFrame([_row("a", 1e-4, 9e-5, 1.1e-4, n=4096, batch=256), _row("b", 2e-4, 1.9e-4, 2.1e-4, n=4096, batch=256),
                         _row("a", 1e-6, 9e-7, 1.1e-6, n=16, batch=1), _row("b", 5e-7, 4e-7, 6e-7, n=16, batch=1)])


def test_past_the_sane_distance_there_is_no_answer_only_how_to_measure():
    df = _grid_df()
    edge = recommend(df, "vjp", 4096 * MAX_EXTRAPOLATION, 256, now=NOW)
    assert edge.far and (edge.measured_batch, edge.measured_n) == (256, 4096)
    assert recommend(df, "vjp", 4096, 256 * MAX_EXTRAPOLATION, now=NOW).far
    for n, batch in ((4096 * MAX_EXTRAPOLATION + 1, 256), (4096, 256 * MAX_EXTRAPOLATION + 1), (10**6, 1)):
        with pytest.raises(NoResult, match=rf"no measurement within {MAX_EXTRAPOLATION}x of the rows and of the "
                                           r"row length asked.*nearest measured point.*measure it with: "
                                           r"`softgrad choose --op vjp .* --measure`, or, to keep it in the "
                                           r"history, `softgrad run --workload FILE`"):
            recommend(df, "vjp", n, batch, now=NOW)


def test_a_request_this_machine_cannot_hold_is_refused_not_answered(monkeypatch):
    monkeypatch.setattr(workloads, "_memory_bytes", lambda: 16 << 30)
    df = _grid_df()
    for op, n, batch in (("vjp", 10**12, 10**12), ("jacobian", 10**20, 1), ("softmax", 2**31, 2)):
        with pytest.raises(NoResult, match=r"needs .* for x(, g)? and the result, more than this machine's 16 GiB") as exc:
            recommend(df.assign(op=op), op, n, batch, now=NOW)
        assert "softgrad run" not in str(exc.value)


def test_a_shape_this_machine_could_hold_but_not_measure_gets_no_command_to_measure_it(monkeypatch):
    monkeypatch.setattr(workloads, "_memory_bytes", lambda: 16 << 30)
    # 6 GiB of x and result: held, but x, g and the VJP's result are over the workload check's share
    with pytest.raises(NoResult, match=r"cannot be measured on this machine: .*over 25% of this machine's 16 GiB"):
        recommend(_grid_df().assign(op="softmax"), "softmax", 2**26, 12, now=NOW)
    # a Jacobian of 1 x 20000 x 20000 float32: 1.5 GiB, over the sweep's output budget
    with pytest.raises(NoResult, match=r"cannot be measured on this machine: .*Jacobian .* over the sweep's"):
        recommend(_grid_df().assign(op="jacobian"), "jacobian", 20000, 1, now=NOW)


def _sizes():
    """Sizes from 1 to about 10^30, spread over the orders of magnitude."""
    return st.integers(0, 99).flatmap(lambda k: st.integers(max(1, 2**k // 2), 2**k))


def _suggested_workload_parses(text: str) -> None:
    """Every workload a message suggests (`softgrad run --workload FILE` with shapes = [...]) is one that
    softgrad.workloads.parse accepts on this machine."""
    for m in re.finditer(r"shapes = \[\"(\d+)x(\d+)\"\], dtypes = \[\"(\w+)\"\], ops = \[\"(\w+)\"\]", text):
        rows, n, dtype, op = m.groups()
        workloads.parse({"shapes": [[int(rows), int(n)]], "dtypes": [dtype], "ops": [op]}, "suggested", "suggested")
    assert text.count("softgrad run --workload FILE") == len(re.findall(r"shapes = \[", text))
    commands = re.findall(r"`softgrad (choose [^`]*--measure)`", text)
    assert len(commands) == text.count("--measure`")
    for command in commands:  # the same request, in flags choose takes
        args = build_parser().parse_args(command.split())
        assert args.measure and f"{args.batch}x{args.n}" in text


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from(("softmax", "vjp", "jacobian")), n=_sizes(), batch=_sizes())
def test_choose_at_any_size_answers_from_a_sane_point_or_says_why_not_in_one_line(op, n, batch, tmp_path_factory):
    """For any n and batch up to ~10^30: an answer from a point within MAX_EXTRAPOLATION of the rows and of
    the row length asked, or a non-zero exit with one line; never a traceback, never a command to measure a
    shape that the workload check refuses."""
    df = pd.DataFrame([_row(impl, t * (1 + b * n_) * 1e-9, 0, 0, n=n_, batch=b, op=o)
                       for impl, t in (("numpy", 1.0), ("loops", 50.0)) for o in ("softmax", "vjp", "jacobian")
                       for b in (1, 256) for n_ in (16, 1024, 4096)])
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(results, "load", lambda **_: df)
        mp.setenv("SOFTGRAD_HOME", str(home))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(["choose", "--op", op, "--n", str(n), "--batch", str(batch)])
            except SystemExit as exc:  # argparse's one-line refusal of a number past the flag's range
                rc = exc.code
    out, err = out.getvalue(), err.getvalue()
    assert "Traceback" not in out + err and "internal error" not in err, err
    _suggested_workload_parses(out + err)
    if rc == 0:
        m = re.search(r"\(measured at batch (\d+), n (\d+)\)", out)
        at_batch, at_n = (int(m.group(1)), int(m.group(2))) if m else (batch, n)
        assert max(at_batch / batch, batch / at_batch) <= MAX_EXTRAPOLATION
        assert max(at_n / n, n / at_n) <= MAX_EXTRAPOLATION
    else:
        assert rc in (1, 2) and len(err.strip().splitlines()) == 1 and not out, (rc, out, err)


# --- choose --measure: refused up front when one call could not be timed -----------------------------------

def _choose(monkeypatch, tmp_path, df, *argv):
    """``softgrad choose ARGV`` in this process over the stored rows ``df``: (exit status, stderr, the
    workloads it started measuring)."""
    from softgrad import runner

    started = []
    monkeypatch.setattr(results, "load", lambda **_: df)
    monkeypatch.setattr(runner, "run", lambda options: started.append(options.workload))
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["choose", *argv])
    return rc, err.getvalue(), started


def test_measure_refuses_in_one_line_before_any_work_the_issues_request(monkeypatch, tmp_path):
    """The issue's request ran 40 s at 11 GB and stored NaN: a VJP result of 4 x 10^8 float32 is 1.5 GiB, over
    the sweep's output budget, so no call would ever be timed."""
    monkeypatch.setattr(workloads, "_memory_bytes", lambda: 64 << 30)
    rc, err, started = _choose(monkeypatch, tmp_path, _grid_df(), "--measure", "--op", "vjp", "--n", "100000000",
                               "--batch", "4", "--impl", "numpy")
    assert (rc, started) == (2, []), err
    assert len(err.strip().splitlines()) == 1 and "softgrad run" not in err
    assert "cannot be measured on this machine: its result of 4x100000000 is 1.49 GiB, over the sweep's 1 GiB" in err


@pytest.mark.parametrize("stored, says", [
    # numpy timed past the cache at 1 GB/s: its VJP of 2^27 float32 (1.5 GiB moved) takes about 1.6 s a call
    ({"in_cache": False, "gbps": 1.0}, "about 1.6 s at 1 GB/s (the fastest rate an entry reached past the cache"),
    # nothing past the cache and no copy bandwidth stored: the sweep's model, 1.5 GB/s
    ({"copy_gbps": math.nan}, "about 1.1 s at 1.5 GB/s (the sweep's expected rate"),
])
def test_measure_refuses_a_call_over_the_per_call_limit(monkeypatch, tmp_path, stored, says):
    monkeypatch.setattr(workloads, "_memory_bytes", lambda: 64 << 30)
    rc, err, started = _choose(monkeypatch, tmp_path, _grid_df().assign(**stored), "--measure", "--op", "vjp",
                               "--n", str(2**27))
    assert (rc, started) == (2, []) and len(err.strip().splitlines()) == 1, err
    assert says in err and f"over the {grid.MAX_CALL_SECONDS:g} s per-call limit" in err, err


def test_measure_estimates_from_the_stored_rates(monkeypatch, tmp_path):
    monkeypatch.setattr(workloads, "_memory_bytes", lambda: 64 << 30)
    for stored in ({"in_cache": False, "gbps": 8.0}, {}):  # 0.2 s a call past the cache; 0.06 s at the copy's 25
        rc, err, started = _choose(monkeypatch, tmp_path, _grid_df().assign(**stored), "--measure", "--op", "vjp",
                                   "--n", str(2**27))
        assert [w.shapes for w in started] == [((1, 2**27),)], err


@pytest.mark.parametrize("argv, says", [
    (("--op", "jacobian", "--n", "17000"), "over the sweep's 1 GiB output budget"),
    (("--op", "softmax", "--n", str(2**26), "--batch", "12"), "over 25% of this machine's 16 GiB"),
    (("--op", "vjp", "--n", str(10**15), "--batch", str(10**15)), "cannot be measured on this machine"),
])
def test_measure_refuses_what_the_sweep_or_the_workload_check_would(monkeypatch, tmp_path, argv, says):
    monkeypatch.setattr(workloads, "_memory_bytes", lambda: 16 << 30)
    rc, err, started = _choose(monkeypatch, tmp_path, _grid_df(), "--measure", *argv)
    assert (rc, started) == (2, []) and says in err and len(err.strip().splitlines()) == 1, err


def test_a_shape_measured_without_a_time_never_gets_advice_to_measure_it_again():
    """A measurement whose calls were all over the limit stores NaN: the answer says so, never `run` again."""
    untimed = _row("numpy", math.nan, math.nan, math.nan, n=10**6, batch=4, run="r9")
    with pytest.raises(NoResult, match=r"run r9 measured vjp 4x1000000 float32 and timed no call") as exc:
        recommend(pd.DataFrame([untimed]), "vjp", 10**6, 4, now=NOW)
    assert "softgrad run" not in str(exc.value)
    near = pd.DataFrame([untimed, _row("numpy", 1e-3, 1e-3, 1e-3, n=2**17, batch=4)])
    choice = recommend(near, "vjp", 10**6, 4, now=NOW)
    assert choice.far and "timed no call" in choice.sentence() and "softgrad run" not in choice.sentence()
