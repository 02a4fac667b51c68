"""``softgrad gate`` and :mod:`softgrad.history.history_gate`: the nightly gate that reads the whole history fails
on a new step up that holds on the newest night (naming its likely cause), warns on the newest night's single
outlier until a rerun reproduces it, passes a one-night blip the next night cleared and a step it already
failed on, judges one machine and one workload, and fails with why when it compared nothing.

Synthetic histories: :func:`history_gate.judge` on series with planted moves, and stores of ten nightly runs
(numpy and ``fake-impl`` at the stored-files shapes, numpy's times planted night by night, fake-impl steady).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("pandas")

import helpers  # noqa: E402
from softgrad.bench import grid  # noqa: E402
from softgrad.history import gate, history_gate  # noqa: E402
from test_history_changes import _asv, _date, _run_id  # noqa: E402
from test_stored_files import DTYPES, IMPLS, OPS, SHAPES, _errors, _softgrad  # noqa: E402

#: numpy's benchmarks in each run (each a benchmark of the gate)
COUNT = len(OPS) * len(SHAPES) * len(DTYPES)
NEW_NUMPY = {"versions": {"numpy": "2.5.0", "numba": "", "torch": "", "jax": "", "softgrad": "0.1.0"}}


def _series(levels, noise: float = 0.03, seed: int = 0):
    """(y, asv weights, own sigmas) of a normalized series at ``levels`` with lognormal noise."""
    rng = np.random.default_rng(seed)
    y = [level * float(np.exp(rng.normal(0, noise))) for level in levels]
    return y, [2 / (0.04 * v) for v in y], [0.005] * len(y)


def _kinds(levels, **kw) -> tuple[str, bool] | None:
    s = history_gate.judge(*_series(levels, **kw))
    return None if s is None else (s.kind, s.new)


# --- one series ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_noise_and_a_cleared_blip_are_nothing_and_the_newest_blip_is_an_outlier(seed):
    assert _kinds([1.0] * 30, seed=seed) is None
    assert _kinds([1.0] * 30 + [1.6, 1.0], seed=seed) is None, "a blip the next night cleared"
    assert _kinds([1.0] * 30 + [1.6], seed=seed) == ("outlier", True)
    assert _kinds([1.0] * 30 + [0.6], seed=seed) is None, "faster is no regression"


@pytest.mark.parametrize("seed", range(4))
def test_a_step_that_held_two_nights_is_new_and_then_known(seed):
    for nights in (2, 3):
        s = history_gate.judge(*_series([1.0] * 20 + [1.25] * nights, seed=seed))
        assert (s.kind, s.new, s.event.at, s.event.before_at) == ("step", True, 20, 19)
        assert 0.2 < s.event.after.value / s.event.before.value - 1 < 0.3
    assert _kinds([1.0] * 20 + [1.25] * 4, seed=seed) == ("step", False), "first held 4 runs ago: known"
    assert history_gate.judge(*_series([1.0] * 20 + [1.25] * 4, seed=seed), window=4).new


@pytest.mark.parametrize("seed", range(4))
def test_a_step_the_newest_night_went_back_from_does_not_hold(seed):
    assert _kinds([1.0] * 20 + [1.3] * 2 + [1.0], seed=seed) is None
    assert _kinds([1.0] * 20 + [1.3] * 6 + [1.0], seed=seed) is None


@pytest.mark.parametrize("seed", range(3))
def test_a_creep_of_four_7_percent_nights_is_new_once_past_the_threshold(seed):
    """Judged night by night as the nightly job does: a step at the second night past 10% (14.5%, 22.5%),
    new until it is WINDOW nights old, never a failure before the creep began."""
    y, w, own = _series([1.0] * 20 + [1.07**k for k in range(1, 5)] + [1.07**4] * 4, seed=seed)
    said = [history_gate.judge(y[:n], w[:n], own[:n]) for n in range(5, len(y) + 1)]
    assert not any(s and s.kind != "outlier" for s in said[:20 - 4]), "a step before the creep"
    new = [n for n, s in zip(range(5, len(y) + 1), said) if s and s.kind == "step" and s.new]
    assert new and 22 <= new[0] <= 24 and new == list(range(new[0], new[0] + len(new))), new


def test_too_short_a_history_has_outliers_only():
    assert _kinds([1.0, 1.0, 1.6]) == ("outlier", True)
    assert _kinds([1.0, 1.02]) is None
    assert history_gate.judge([1.0], None, [math.nan]) is None
    # the newest run did not time it: nothing to judge
    assert history_gate.judge([1.0, 1.0, 1.0, 1.0, 2.0, math.nan], None, [math.nan] * 6) is None


# --- a stored history ------------------------------------------------------------------------------------


def _store(home, slow: list[float], metas: dict[int, dict] | None = None, asv: dict[int, dict] | None = None,
           machine: str = "vm", first: int = 0) -> None:
    """One run a night from night ``first``: numpy ``slow[k]`` times its usual speed on night k, fake-impl
    steady; ``metas[k]`` replaces meta.json fields and ``asv[k]`` the asv results of night k."""
    files = {}
    for k, factor in enumerate(slow, start=first):
        rid = _run_id(k, "aaaaaaaa" if machine == "vm" else "bbbbbbbb")
        files[(rid, "meta.json")] = helpers.run_meta(rid, list(IMPLS), ["numpy", "fake"], date=_date(k),
                                                     machine=machine, **(metas or {}).get(k, {}))
        files[(rid, "checks.json")] = helpers.check_records(IMPLS, OPS, DTYPES)
        files[(rid, "asv.json")] = (asv or {}).get(k) or _asv(k, factor)
    helpers.write_run_files(home, files)


def _said(err: str) -> list[str]:
    """The gate's own lines on stderr, less its warnings (a left-out run, a timer disagreement)."""
    return [line for line in _errors(err) if line.startswith("softgrad gate") and "gate: warning" not in line]


def _lines(out: str, start: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(start)]


def test_a_steady_history_passes(tmp_path):
    _store(tmp_path, [1.0] * 10)
    rc, out, err = _softgrad(tmp_path, "gate")
    assert rc == 0 and not _said(err), out + err
    head, tail = out.splitlines()
    assert head == (f"softgrad gate: run {_run_id(9)} (workload default) against 9 earlier runs on machine vm: "
                    f"{2 * COUNT} benchmarks judged, threshold 10%")
    assert tail == "softgrad gate: 0 slower, 0 correctness regressions (no regression)"


def test_a_new_step_that_holds_fails_and_names_its_likely_cause(tmp_path):
    _store(tmp_path, [1.0] * 8 + [1.3] * 2, metas={8: NEW_NUMPY, 9: NEW_NUMPY})
    rc, out, err = _softgrad(tmp_path, "gate", "--min-delta", "0")
    assert rc == 1 and not _said(err), out + err
    slower = _lines(out, "SLOWER")
    assert len(slower) == COUNT and all(" numpy " in line and "fake-impl" not in line for line in slower), out
    for line in slower:
        assert f"{_run_id(8)}  numpy " in line and " slower (seconds: " in line, line
        assert line.endswith("; likely cause: numpy 2.4.6 -> 2.5.0"), line
    assert out.splitlines()[-1] == f"softgrad gate: {COUNT} slower, 0 correctness regressions"
    # the smallest absolute slowdown that counts: numpy's 100 us benchmarks moved by 30 us
    rc, out, _ = _softgrad(tmp_path, "gate")
    assert rc == 1 and len(_lines(out, "SLOWER")) == COUNT - 3


def test_the_newest_night_alone_only_warns_and_a_blip_cleared_next_night_passes(tmp_path):
    _store(tmp_path, [1.0] * 9 + [1.6])
    rc, out, err = _softgrad(tmp_path, "gate", "--min-delta", "0")
    assert rc == 0 and not _said(err), out + err
    outliers = _lines(out, "OUTLIER")
    assert len(outliers) == COUNT and not _lines(out, "SLOWER"), out
    assert all("[the newest run alone: a warning until a second night or a rerun (--confirm) reproduces it]"
               in line for line in outliers)
    assert out.splitlines()[-1] == (f"softgrad gate: 0 slower, 0 correctness regressions, {COUNT} outliers warned "
                                    f"(no regression)")
    _store(tmp_path, [1.0], first=10)  # the next night is back at the level
    rc, out, err = _softgrad(tmp_path, "gate", "--min-delta", "0")
    assert rc == 0 and out.splitlines()[-1].endswith("(no regression)") and len(out.splitlines()) == 2, out


def test_a_step_failed_on_before_the_window_is_known_not_failed_again(tmp_path):
    _store(tmp_path, [1.0] * 6 + [1.3] * 4, metas={k: NEW_NUMPY for k in range(6, 10)})
    rc, out, err = _softgrad(tmp_path, "gate", "--min-delta", "0")
    assert rc == 0, out + err
    known = _lines(out, "known")
    assert len(known) == COUNT and all("held since before the newest 3 runs" in line for line in known)
    assert out.splitlines()[-1].endswith(f", {COUNT} known steps (no regression)")
    rc, out, _ = _softgrad(tmp_path, "gate", "--min-delta", "0", "--window", "4")
    assert rc == 1 and len(_lines(out, "SLOWER")) == COUNT


def test_a_creep_over_four_nights_fails_as_it_passes_the_threshold(tmp_path):
    _store(tmp_path, [1.0] * 8 + [1.07**k for k in range(1, 5)])
    rc, out, _ = _softgrad(tmp_path, "gate", "--min-delta", "0")
    assert rc == 1 and len(_lines(out, "SLOWER")) == COUNT, out


def test_only_the_newest_runs_machine_and_workload_are_judged(tmp_path):
    # another machine's history has a step; this machine's is steady
    _store(tmp_path, [1.0] * 6 + [2.0] * 3, machine="other")
    _store(tmp_path, [1.0] * 10, first=10)
    rc, out, _ = _softgrad(tmp_path, "gate", "--min-delta", "0")
    assert rc == 0 and "against 9 earlier runs on machine vm" in out, out
    # the newest run is the first of its workload: nothing to judge it against
    vocab = json.dumps({"table": {"name": "vocab"}, "origin": "preset"})
    _store(tmp_path, [2.0], metas={20: {"workload": vocab}}, first=20)
    rc, out, err = _softgrad(tmp_path, "gate")
    (line,) = _said(err)
    assert rc == 1 and "against 0 earlier runs on machine vm: 0 benchmarks judged" in out
    assert line == (f"softgrad gate: nothing was compared (run {_run_id(20)} is the first "
                                              f"run of workload vocab on machine vm: the gate needs an earlier one "
                                              f"to judge it against)")
    rc, out, _ = _softgrad(tmp_path, "gate", "--workload", "default", "--min-delta", "0")
    assert rc == 0 and f"run {_run_id(19)} (workload default)" in out


def test_an_empty_history_is_refused_as_compare_refuses_it(tmp_path):
    rc, out, err = _softgrad(tmp_path, "gate")
    (line,) = _said(err)
    assert rc == 2 and out == "" and line.startswith("softgrad gate: error: need two complete runs to judge the "
                                                     "newest, found 0 in ")


@pytest.mark.parametrize("setup, says", [
    (lambda home: _store(home, [1.0]), f"run {_run_id(0)} is the first run of workload default on machine vm"),
    (lambda home: _store(home, [1.0] * 3, asv={2: _other_shapes()}),
     f"no benchmark of run {_run_id(2)} was timed by an earlier run of workload default on machine vm: run "
     f"{_run_id(2)} (workload default) timed 32 benchmarks of fake-impl, numpy at shapes 4x32000, 4x50000"),
    (lambda home: _store(home, [1.0] * 3, asv={2: _unknown_entries()}),
     f"run {_run_id(2)} has no benchmark results (its asv.json is missing or holds none)"),
], ids=["one-run", "disjoint", "no-results"])
def test_a_gate_that_compared_nothing_fails_with_why(tmp_path, setup, says):
    setup(tmp_path)
    rc, out, err = _softgrad(tmp_path, "gate")
    (line,) = _said(err)
    assert rc == 1 and line.startswith(f"softgrad gate: nothing was compared ({says}"), (out, err)
    # a preset not run yet compared nothing; a name neither stored nor a preset is a usage error
    rc, out, err = _softgrad(tmp_path, "gate", "--workload", "vocab")
    assert rc == 1 and "nothing was compared (no complete run of workload vocab on machine vm yet (stored: " in err
    rc, out, err = _softgrad(tmp_path, "gate", "--workload", "nosuch")
    (line,) = _said(err)
    assert rc == 2 and line.startswith("softgrad gate: error: no stored run of workload 'nosuch', nor a preset")


def _other_shapes() -> dict:
    """asv's results of a run at shapes no earlier run timed."""
    doc = _asv(2, 1.0)
    for entry in doc["results"].values():
        entry[1][1] = [repr(f"{b}x{n}") for b, n in ((4, 32000), (4, 50000), (8, 32000), (8, 50000))]
    return doc


def _unknown_entries() -> dict:
    """asv's results of benchmark classes of no entry softgrad knows (the run is left out, with a warning)."""
    doc = _asv(2, 1.0)
    doc["results"] = {k.replace("bench_ops.", "bench_ops.Unknown"): v for k, v in doc["results"].items()}
    return doc


def test_an_error_that_crossed_its_tolerance_fails_as_compare_does(tmp_path):
    doc = _asv(9, 1.0)
    name = f"bench_ops.{grid.class_name('numpy')}.track_error_ratio"
    doc["results"][name][0][0] = 1.5
    _store(tmp_path, [1.0] * 10, asv={9: doc})
    rc, out, _ = _softgrad(tmp_path, "gate")
    errors = _lines(out, "ERROR")
    assert rc == 1 and len(errors) == 1 and "error 1.5x the tolerance (was 0.01)" in errors[0], out
    assert out.splitlines()[-1] == "softgrad gate: 0 slower, 1 correctness regressions"


@pytest.mark.parametrize("rerun_factor, rc, said", [(1.6, 1, "SLOWER"), (1.0, 0, "OUTLIER")])
def test_the_rerun_decides_the_newest_nights_outlier(tmp_path, monkeypatch, rerun_factor, rc, said):
    """--confirm reruns each outlier (here: a stand-in for the sweep's rerun, at ``rerun_factor`` times the
    usual speed): reproduced, it fails; not, it stays a warning that says so."""
    from softgrad.bench import confirm
    from softgrad.history import provenance

    _store(tmp_path, [1.0] * 9 + [1.6])
    asked = []

    def rerun(keys, grid_name, commit, progress=True):
        asked.extend(keys)
        base = {f"{op} {shape} {dtype}": 1e-4 * (1 + j % 7) for j, (op, shape, dtype) in enumerate(
            (o, s, d) for o in OPS for s in SHAPES for d in DTYPES)}
        return {k: {"time_s": t, "q25_s": 0.98 * t, "q75_s": 1.02 * t} for k in keys
                for t in [base[" ".join(k[1:4])] * rerun_factor]}

    monkeypatch.setattr(confirm, "rerun", rerun)
    monkeypatch.setattr(provenance, "git_commit", lambda root: helpers.COMMIT)
    monkeypatch.setenv(provenance.MACHINE_ENV, "vm")  # the stored runs are this machine's: the rerun is here
    code, out, err = _softgrad(tmp_path, "gate", "--confirm", "--min-delta", "0")
    assert code == rc and len(asked) == COUNT, out + err
    lines = _lines(out, said)
    assert len(lines) == COUNT, out
    assert all(("reproduced by the rerun" if rc else "not reproduced") in line and "rerun" in line for line in lines)
    assert out.splitlines()[-1] == (f"softgrad gate: {COUNT} slower, 0 correctness regressions" if rc else
                                    f"softgrad gate: 0 slower, 0 correctness regressions, {COUNT} cleared by a "
                                    f"rerun (no regression)")


def test_a_rerun_clears_a_step_it_does_not_reproduce():
    """Verdict.after_rerun with compare's own confirm_findings: a step the rerun reads at the old level is
    cleared and the gate passes; one it reproduces still fails."""
    e = history_gate.judge(*_series([1.0] * 20 + [1.3] * 2))
    finding = gate.Finding("slower", "numpy", "vjp", "256x8", "float32", "cpu", "1 ms -> 1.3 ms", old_s=1e-3,
                           old_q75_s=1.02e-3, basis="time", old_time_s=1e-3)
    from softgrad.history import changes

    change = changes.change(e.event, history_gate.TIME, "seconds", ("default", *finding.key),
                            [f"r{k}" for k in range(22)], [None] * 22, [1.0] * 22)
    verdict = history_gate.Verdict("r21", "vm", "default", 21, 1, flags=[history_gate.Flag(e, change, finding)])
    assert verdict.failed and verdict.to_rerun() == [finding]
    for t, fails in ((1.0e-3, False), (1.3e-3, True)):
        kept, cleared = gate.confirm_findings([finding], {finding.key: {"time_s": t, "q25_s": 0.99 * t}}, 1.1, 0.0)
        after = verdict.after_rerun(kept, cleared)
        assert after.failed == fails and after.flags[0].rerun == ("confirmed" if fails else "cleared")
        assert after.lines()[1].startswith("SLOWER " if fails else "cleared ")
