"""The gate (``softgrad compare``, :mod:`softgrad.history.gate`) fires on each of its grounds and on nothing else:
an error that crossed its tolerance, a check case that newly fails, a slowdown beyond what the whole machine
drifted (:func:`~softgrad.history.gate.machine_drift` divides a uniformly slower machine out); and a gate
that compared nothing fails, with each run's workload and entries, while a run compared with itself or a
newer run given first is refused.

The stores are the synthetic two runs of ``tests/test_stored_files.py`` (numpy and ``fake-impl``), with the
new run timed as the old one (no slowdown) so that each test's plant is the only thing the gate can see.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest

pytest.importorskip("pandas")

from softgrad.bench import grid  # noqa: E402
from softgrad.history import gate  # noqa: E402
from test_stored_files import (DTYPES, OPS, RUN_IDS, SHAPES, _asv, _checks, _errors, _meta, _softgrad,  # noqa: E402
                               _speed, _write_store)
from test_sweep import _frame  # noqa: E402

OLD, NEW = RUN_IDS
#: fake-impl's speed relative to numpy's in the old run (the stored files' new run has it 3x slower)
STEADY = 0.5
#: the benchmark the correctness plants are made on (timed in both runs)
PLANTED = ("numpy", "vjp", "256x8", "float32")


def _store(home, old: dict | None = None, new: dict | None = None) -> None:
    """The stored files' two runs with the new run timed as the old; ``old``/``new`` map a file name to the
    data that replaces it in that run."""
    replace = {(NEW, "asv.json"): _asv(STEADY), (NEW, "speed.json"): _speed(STEADY)}
    replace.update({(OLD, name): data for name, data in (old or {}).items()})
    replace.update({(NEW, name): data for name, data in (new or {}).items()})
    _write_store(home, {key: json.dumps(data) for key, data in replace.items()})


def _with_error_ratio(ratio: float) -> dict:
    """asv's results of the steady run with ``PLANTED``'s error at ``ratio`` times its tolerance."""
    doc = _asv(STEADY)
    impl, *point = PLANTED
    index = list(itertools.product(OPS, SHAPES, DTYPES)).index(tuple(point))
    doc["results"][f"bench_ops.{grid.class_name(impl)}.track_error_ratio"][0][index] = ratio
    return doc


def _with_failing_case() -> list[dict]:
    """The passing check records with ``PLANTED``'s implementation, op and dtype failing random-normal."""
    records = _checks()
    impl, op, _, dtype = PLANTED
    record = next(r for r in records if (r["impl"], r["op"], r["dtype"]) == (impl, op, dtype))
    record.update(verdict="fail", failed=["oracle"], ratio=3.0, message="max error 3x the tolerance at [1, 5]")
    return records


def _only(doc: dict, impl: str) -> dict:
    """asv's results ``doc`` with the benchmarks of ``impl`` alone."""
    doc["results"] = {k: v for k, v in doc["results"].items() if f".{grid.class_name(impl)}." in k}
    return doc


def _findings(out: str, kind: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(kind.upper())]


# --- the correctness side ------------------------------------------------------------------------------


def test_the_steady_store_passes(tmp_path):
    """The base of the plants below: with nothing planted the gate passes."""
    _store(tmp_path)
    rc, out, err = _softgrad(tmp_path, "compare")
    assert rc == 0, out + err
    assert f"compared 30 benchmarks: {OLD} -> {NEW}" in out and out.rstrip().endswith("(no regression)")
    assert "not compared" not in out  # every benchmark had its counterpart


def test_an_error_that_crossed_its_tolerance_is_an_error_finding(tmp_path):
    _store(tmp_path, new={"asv.json": _with_error_ratio(1.5)})
    rc, out, err = _softgrad(tmp_path, "compare")
    assert rc == 1, out + err
    assert _findings(out, "error") == ["ERROR   numpy vjp 256x8 float32 cpu: error 1.5x the tolerance (was 0.01)"]
    assert not _findings(out, "slower") and "0 slower, 1 correctness regressions" in out


def test_an_error_over_its_tolerance_in_both_runs_is_a_known_failure(tmp_path):
    _store(tmp_path, old={"asv.json": _with_error_ratio(1.5)}, new={"asv.json": _with_error_ratio(1.5)})
    rc, out, err = _softgrad(tmp_path, "compare")
    assert rc == 0 and not _findings(out, "error"), out + err


def test_a_check_case_that_now_fails_is_an_error_finding(tmp_path):
    _store(tmp_path, new={"checks.json": _with_failing_case()})
    rc, out, err = _softgrad(tmp_path, "compare")
    assert rc == 1, out + err
    assert _findings(out, "error") == [
        "ERROR   numpy vjp case random-normal float32 cpu: max error 3x the tolerance at [1, 5]"]


def test_a_check_case_failing_in_both_runs_is_a_known_failure(tmp_path):
    _store(tmp_path, old={"checks.json": _with_failing_case()}, new={"checks.json": _with_failing_case()})
    rc, out, err = _softgrad(tmp_path, "compare")
    assert rc == 0 and not _findings(out, "error"), out + err


# --- the machine's drift -------------------------------------------------------------------------------


def _runs(new_times: list[float], basis: str):
    """An old run of 1 ms per benchmark and a new one at ``new_times``: compared in seconds ("raw") or over
    the machine's speed read beside them ("norm", where the speed reading drifted with the times)."""
    old = _frame([1e-3] * len(new_times), [10.0] * len(new_times))
    new = _frame(new_times, [t * 1e4 for t in new_times])
    if basis == "raw":
        old, new = (df.drop(columns=["norm", "norm_q25", "norm_q75"]) for df in (old, new))
    return old, new


@pytest.mark.parametrize("basis", ["raw", "norm"])
def test_a_uniformly_slower_machine_is_divided_out(basis):
    old, new = _runs([1.5e-3] * 10, basis)
    col = "time_s" if basis == "raw" else "norm"
    assert gate.machine_drift(new[col] / old[col]) == pytest.approx(1.5)
    findings, n = gate.compare_frames(old, new)
    assert n == 10 and findings == []


@pytest.mark.parametrize("basis", ["raw", "norm"])
def test_one_benchmark_slower_than_the_machines_drift_is_flagged_alone(basis):
    old, new = _runs([1.5e-3, 3e-3, *[1.5e-3] * 8], basis)
    findings, n = gate.compare_frames(old, new)
    assert n == 10 and [(f.kind, f.impl) for f in findings] == [("slower", "e1")]
    assert "2.00x" in findings[0].detail and "after a drift of 1.50x" in findings[0].detail


def test_machine_drift_needs_enough_finite_ratios():
    enough = gate.MIN_FOR_DRIFT
    assert gate.machine_drift([]) == 1.0
    assert gate.machine_drift([1.5] * (enough - 1)) == 1.0, "too few to tell"
    assert gate.machine_drift([1.5] * enough) == pytest.approx(1.5)
    # what is not a finite ratio (a benchmark timed at 0, or not at all) neither counts nor poisons the rest
    assert gate.machine_drift([1.5] * (enough - 1) + [math.inf]) == 1.0
    assert gate.machine_drift([1.5] * enough + [math.nan] * 3) == pytest.approx(1.5)


def test_machine_drift_is_never_below_one_and_ignores_a_regressed_half():
    assert gate.machine_drift([0.7] * 10) == 1.0, "a faster machine must not hide a slowdown"
    # half the benchmarks regressed 2x on a machine 1.5x slower: the drift is the machine's, not the median's
    assert gate.machine_drift([1.5] * 5 + [3.0] * 5) == pytest.approx(1.5)


def test_with_too_few_benchmarks_nothing_is_divided_out():
    old, new = _runs([1.5e-3] * (gate.MIN_FOR_DRIFT - 1), "raw")
    findings, n = gate.compare_frames(old, new)
    assert n == gate.MIN_FOR_DRIFT - 1 and len(findings) == n
    assert all("after a drift of 1.00x" in f.detail for f in findings)


# --- a gate that compared nothing ----------------------------------------------------------------------


def _vocab_meta() -> dict:
    meta = _meta(NEW)
    meta["workload"] = json.dumps({"table": {"name": "vocab"}, "origin": "preset"})
    return meta


def _other_shapes() -> dict:
    """asv's results of the steady run at shapes the old run never timed."""
    doc = _asv(STEADY)
    for entry in doc["results"].values():
        entry[1][1] = [repr(f"{b}x{n}") for b, n in ((4, 32000), (4, 50000), (8, 32000), (8, 50000))]
    return doc


def _untimed() -> dict:
    """asv's results of the steady run with every time missing (every benchmark skipped)."""
    doc = _asv(STEADY)
    for name, entry in doc["results"].items():
        if name.endswith(".time_op"):
            entry[0] = [None] * len(entry[0])
    return doc


@pytest.mark.parametrize("old, new, says", [
    ({"asv.json": _only(_asv(STEADY), "numpy")}, {"asv.json": _only(_asv(STEADY), "fake-impl")},
     [f"run {OLD} (workload default) timed 15 benchmarks of numpy at",
      f"run {NEW} (workload default) timed 15 benchmarks of fake-impl at"]),
    ({}, {"asv.json": _other_shapes(), "meta.json": _vocab_meta()},
     [f"run {OLD} (workload default) timed 30 benchmarks of fake-impl, numpy at shapes 1x16, 1x8, 256x16, 256x8",
      f"run {NEW} (workload vocab) timed 30 benchmarks of fake-impl, numpy at shapes 4x32000, 4x50000"]),
    ({}, {"asv.json": _untimed()}, [f"run {NEW} (workload default) timed no benchmark"]),
], ids=["disjoint-entries", "other-workload", "nothing-timed"])
def test_a_gate_that_compared_nothing_fails_and_says_what_each_run_has(tmp_path, old, new, says):
    _store(tmp_path, old=old, new=new)
    rc, out, err = _softgrad(tmp_path, "compare", OLD, NEW)
    assert rc == 1, out + err
    assert f"compared 0 benchmarks: {OLD} -> {NEW}" in out and "no regression" not in out
    assert "not compared" not in out  # the reason below says it all
    lines = _errors(err)
    assert len(lines) == 1 and lines[0].startswith("softgrad compare: nothing was compared (no benchmark was "
                                                   "timed in both runs: "), err
    for part in says:
        assert part in lines[0], (part, lines[0])


def test_benchmarks_without_a_counterpart_are_counted_and_the_rest_compared(tmp_path):
    _store(tmp_path, new={"asv.json": _only(_asv(STEADY), "numpy")})
    rc, out, err = _softgrad(tmp_path, "compare")
    assert rc == 0, out + err
    assert f"compared 15 benchmarks: {OLD} -> {NEW}" in out and out.rstrip().endswith("(no regression)")
    assert (f"not compared (no counterpart in the other run): 15 benchmarks of the old run {OLD}, 0 of the new "
            f"run {NEW}") in out.splitlines()


@pytest.mark.parametrize("argv, says", [
    ([NEW, NEW], f"run {NEW} is both the old and the new run"),
    ([NEW], f"run {NEW} is both the old and the new run"),  # the new run defaults to the newest
    ([NEW, OLD], f"the old run {NEW} is newer than the new run {OLD}"),
], ids=["same-run-twice", "newest-as-old", "newer-first"])
def test_a_run_compared_with_itself_or_a_newer_run_first_is_refused(tmp_path, argv, says):
    _store(tmp_path)
    rc, out, err = _softgrad(tmp_path, "compare", *argv)
    lines = _errors(err)
    assert rc == 2 and not out and len(lines) == 1, (rc, out, err)
    assert lines[0].startswith(f"softgrad compare: error: {says}"), lines


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_confirms_scratch_folder_goes_when_the_rerun_is_interrupted_or_fails(stop, tmp_path, monkeypatch):
    """``--confirm`` reruns into a scratch folder under the cache: Ctrl-C (or a failing worker) mid-rerun leaves
    nothing behind, and the interruption still reaches the caller."""
    from softgrad import paths
    from softgrad.bench import confirm, sweep

    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    seen = []

    def interrupted(family, impls, grid_name, rounds, scratch, *args, **kwargs):
        seen.append(scratch)
        assert scratch.is_dir() and scratch.parent == paths.cache_dir()
        raise stop()

    monkeypatch.setattr(sweep, "sweep_family", interrupted)
    with pytest.raises(stop):
        confirm.rerun([("numpy", "softmax", "1x8", "float32", "cpu")], "quick", "0" * 40)
    assert seen and not seen[0].exists() and not list(paths.cache_dir().glob("confirm-*"))


def test_runs_of_two_machines_are_never_compared(tmp_path):
    """Named explicitly, two machines' runs are refused in one line; by default the baseline is the newest
    earlier run of the new run's machine (here none: nothing to compare, exit 2 saying so)."""
    _store(tmp_path, new={"meta.json": {**_meta(NEW), "machine": "gpu-box"}})
    rc, out, err = _softgrad(tmp_path, "compare", OLD, NEW)
    (line,) = _errors(err)
    assert rc == 2 and "timed on machine vm" in line and "on gpu-box: the gate compares runs of one machine" in line
    rc, out, err = _softgrad(tmp_path, "compare")
    # this machine holds no run here: compare answers for the newest run's machine, with a warning saying so
    (line,) = _errors(err)
    assert "warning: no stored run of this machine" in err and "answering for gpu-box, the newest run's" in err
    assert rc == 2 and f"no complete run before {NEW} on the default workload on machine gpu-box" in line
