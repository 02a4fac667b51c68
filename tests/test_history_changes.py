"""``softgrad history`` and :mod:`softgrad.history.changes`: change points found where they were planted and
nowhere else, and what changed named.

Synthetic histories with known moves, their runs given out of order (a sudden 25% step, a 2x step, a creep
of four 7% steps, a step that partly recovers, a one-night blip and pure noise: the last two must give no
change point); a stored history (the run folders of ``tests/test_stored_files.py``) in which one library
version changes at the step (named as the likely cause) and one in which two things do (both listed, no
cause claimed); the command's flags and its one-line errors.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import helpers  # noqa: E402
from softgrad.bench import grid  # noqa: E402
from softgrad.cli import main  # noqa: E402
from softgrad.history import changes  # noqa: E402
from test_stored_files import DTYPES, IMPLS, OPS, SHAPES, _errors, _softgrad  # noqa: E402

BENCH = {"workload": "default", "impl": "numpy", "op": "vjp", "shape": "256x16", "dtype": "float32", "device": "cpu"}
CREEP = [1.0] * 6 + [1.07] * 5 + [1.07**2] * 5 + [1.07**3] * 5 + [1.07**4] * 5


def _run_id(k: int, commit: str = "aaaaaaaa") -> str:
    return f"2026{1 + k // 28:02d}{1 + k % 28:02d}T000000000000Z-{commit[:8]}"


def _date(k: int) -> str:
    return f"2026-{1 + k // 28:02d}-{1 + k % 28:02d}T00:00:00+00:00"


def _frame(levels, noise: float = 0.02, seed: int = 0, column: str = "time_s", scale: float = 1e-4,
           normalized: bool = False):
    """results.load()'s columns for one benchmark, run k at ``levels[k]`` x ``scale`` with lognormal noise, the
    rows shuffled (the order must come from the dates, not the rows)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, level in enumerate(levels):
        v = level * scale * float(np.exp(rng.normal(0, noise)))
        row = {"run": _run_id(k), "date": _date(k), "machine": "vm", **BENCH, "time_s": 1e-4, "error_ratio": 0.01,
               "peakmem_bytes": 1e8, "ci99_low_s": math.nan, "ci99_high_s": math.nan}
        row[column] = v
        if column == "time_s":
            row.update(ci99_low_s=0.97 * v, ci99_high_s=1.03 * v)
        if normalized:
            row.update(norm=v / 3e-5, norm_q25=0.98 * v / 3e-5, norm_q75=1.02 * v / 3e-5)
        rows.append(row)
    return pd.DataFrame(rows).sample(frac=1, random_state=seed).reset_index(drop=True)


def _only(found, kind: str | None = None):
    """The one change found (of ``kind``), asserting there is exactly one."""
    found = [c for c in found if kind is None or c.kind == kind]
    assert len(found) == 1, [c.line() for c in found]
    return found[0]


# --- detection over synthetic histories ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_sudden_25_percent_step_is_found_at_its_run_with_its_size(seed):
    c = _only(changes.detect(_frame([1.0] * 10 + [1.25] * 8, seed=seed)))
    assert (c.kind, c.metric, c.basis, c.direction) == ("step", "time", "seconds", "slower")
    assert (c.before_run, c.run) == (_run_id(9), _run_id(10))
    assert c.low < 0.25 < c.high and 0.2 < c.size < 0.3 and c.low > 0.15


def test_a_2x_step_and_a_2x_speed_up_are_found():
    up = _only(changes.detect(_frame([1.0] * 8 + [2.0] * 8)))
    assert up.run == _run_id(8) and up.low < 1.0 < up.high and up.direction == "slower"
    down = _only(changes.detect(_frame([2.0] * 8 + [1.0] * 8)))
    assert down.run == _run_id(8) and down.low < -0.5 < down.high and down.direction == "faster"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_creep_of_four_7_percent_steps_is_one_creep_past_the_threshold(seed):
    """Each 7% step is under the 10% threshold; together they are 31%. asv's levels read the staircase as one
    level: the creep is the stretch's trend, holding from the third plateau (14.5%, past 10%)."""
    found = changes.detect(_frame(CREEP, seed=seed))
    c = _only(found)
    assert c.kind == "creep" and c.direction == "slower"
    assert c.low < 1.07**4 - 1 < c.high and 0.25 < c.size < 0.37
    # the third plateau (runs 11 to 15) is 4.5% past the threshold, two noise sigmas: give or take a run or two
    assert _run_id(10) <= c.run <= _run_id(13), c.line()
    assert c.before_run <= _run_id(10) and c.until_run >= _run_id(21)
    assert f"crept {c.size:+.0%} [" in c.line()


def test_a_step_that_partly_recovered_says_how_much_and_when():
    found = changes.detect(_frame([1.0] * 8 + [1.5] * 6 + [1.25] * 6))
    up = next(c for c in found if c.direction == "slower")
    assert up.run == _run_id(8) and up.recovered == pytest.approx(0.5, abs=0.1)
    assert up.recovered_at == _run_id(14)
    assert f"recovered {up.recovered:.0%} of it at run {_run_id(14)}" in up.line()
    # the recovery is a change point of its own, listed first (newest first)
    assert found[0].direction == "faster" and found[0].run == _run_id(14) and found[0].recovered is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_one_night_blip_is_not_a_change_point(seed):
    assert changes.detect(_frame([1.0] * 10 + [2.0] + [1.0] * 8, seed=seed)) == []
    assert changes.detect(_frame([1.0] * 10 + [0.5] + [1.0] * 8, seed=seed)) == []


@pytest.mark.parametrize("seed", range(6))
def test_pure_noise_has_no_change_point(seed):
    assert changes.detect(_frame([1.0] * 30, noise=0.03, seed=seed)) == []


def test_the_order_comes_from_the_dates_not_the_rows():
    levels = [1.0] * 8 + [1.5] * 6 + [1.25] * 6
    shuffled = changes.detect(_frame(levels, seed=3))
    ordered = changes.detect(_frame(levels, seed=3).sort_values("run"))
    assert shuffled == ordered and len(shuffled) == 2
    # without dates, the run ids order the runs
    undated = changes.detect(_frame(levels, seed=3).assign(date=None))
    assert [(c.run, c.size) for c in undated] == [(c.run, c.size) for c in ordered]
    # a date puts a run in its place whatever its id says
    late = _frame(levels, seed=3)
    late.loc[late["run"] == _run_id(0), "date"] = _date(40)
    assert _run_id(0) not in {c.before_run for c in changes.detect(late)}


def test_normalized_times_are_used_where_every_run_has_them_else_seconds():
    df = _frame([1.0] * 8 + [1.3] * 8, normalized=True)
    assert _only(changes.detect(df)).basis == "normalized"
    df.loc[3, "norm"] = math.nan
    c = _only(changes.detect(df))
    assert c.basis == "seconds" and "(seconds: " in c.line()


def test_error_and_memory_steps_are_found_and_errors_far_inside_the_tolerance_are_not():
    err = _only(changes.detect(_frame([0.2] * 8 + [0.6] * 8, column="error_ratio", scale=1.0)))
    assert (err.metric, err.direction) == ("error", "larger error")
    # 0.01 -> 0.05 of the tolerance: both count as 0.1
    assert changes.detect(_frame([0.01] * 8 + [0.05] * 8, column="error_ratio", scale=1.0)) == []
    mem = _only(changes.detect(_frame([1.0] * 8 + [1.5] * 8, column="peakmem_bytes", scale=1e8, noise=0.001)))
    assert (mem.metric, mem.direction) == ("memory", "more memory") and "MiB" in mem.line()


def test_only_one_machine_is_read():
    other = _frame([1.0] * 8 + [2.0] * 8).assign(machine="other",
                                                    run=lambda d: d["run"].str.replace("aaaaaaaa", "bbbbbbbb"))
    df = pd.concat([_frame([1.0] * 16, seed=1), other])
    assert len(changes.detect(df, machine="other")) == 1
    assert changes.detect(df, machine="vm") == []


# --- what changed --------------------------------------------------------------------------------------


def _meta(**fields):
    return helpers.run_meta("r", ["numpy"], ["numpy"], **fields)


def test_what_changed_names_each_thing_and_one_thing_is_the_likely_cause():
    base = _meta()
    newer_numpy = _meta(versions={**base["versions"], "numpy": "2.5.0"})
    (d,) = changes.differences(base, newer_numpy)
    assert d.text() == "numpy 2.4.6 -> 2.5.0"
    both = changes.differences(base, _meta(versions=newer_numpy["versions"],
                                           threads={**base["threads"], "requested": 1, "numba": 1}))
    assert [d.thing for d in both] == ["numpy", "threads"]
    assert both[1].text() == "threads requested default -> 1, numba 2 -> 1"
    machine = changes.differences(base, _meta(os="Linux 6.5", copy_bandwidth={**base["copy_bandwidth"], "gbps": 15.0}))
    assert [d.text() for d in machine] == ["machine os Linux 6.1 -> Linux 6.5",
                                           "copy bandwidth 25.0 GB/s -> 15.0 GB/s"]
    # within COPY_CHANGE, a library one run does not record, the same commit: nothing
    quiet = _meta(copy_bandwidth={**base["copy_bandwidth"], "gbps": 27.0},
                  versions={**base["versions"], "llvmlite": "0.44"})
    assert changes.differences(base, quiet) == ()
    assert changes.differences(base, _meta(dirty=True))[0].text() == "commit aaaaaaaa..aaaaaaaa+dirty"


def test_a_commit_range_is_listed_from_git_when_the_repository_is_at_hand(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    commits = []
    for k in range(3):
        (tmp_path / "f").write_text(str(k))
        git("add", "f")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"change {k}")
        commits.append(git("rev-parse", "HEAD").strip())
    one = changes.differences(_meta(commit=commits[0]), _meta(commit=commits[1]), tmp_path)
    assert one[0].text() == f"commit {commits[1][:7]} change 1"
    two = changes.differences(_meta(commit=commits[0]), _meta(commit=commits[2]), tmp_path)[0]
    assert two.text() == f"commit {commits[0][:8]}..{commits[2][:8]} (2 commits)"
    assert [line.split(" ", 1)[1] for line in two.commits] == ["change 2", "change 1"]
    listed = changes.Change("time", "seconds", "step", tuple(BENCH.values()), "b", None, "a", 1.0, 1.3, 0.2, 0.4, 1,
                            changed=(two,))
    assert listed.cause == two.text() and listed.commit_lines() == [f"    {c}" for c in two.commits]
    # an unknown commit, or text that is not a commit: no log, no git option
    assert changes.git_log(tmp_path, commits[0], "0" * 40) is None
    assert changes.git_log(tmp_path, "--output=x", commits[0]) is None


# --- a stored history ------------------------------------------------------------------------------------

RUNS = 8
STEP_AT = 4


def _asv(k: int, slow: float) -> dict:
    """asv's results of run ``k``: numpy ``slow`` times its usual speed, fake-impl steady, a little noise."""
    params = helpers.asv_params(OPS, SHAPES, DTYPES, ("cpu",))
    count = len(OPS) * len(SHAPES) * len(DTYPES)
    out = {}
    for impl, factor in (("numpy", slow), ("fake-impl", 1.0)):
        cls = grid.class_name(impl)
        times = [factor * 1e-4 * (1 + j % 7) * (1 + 0.01 * ((3 * k + j) % 5 - 2)) for j in range(count)]
        out[f"bench_ops.{cls}.time_op"] = helpers.asv_time_op(times, params)
        out[f"bench_ops.{cls}.track_error_ratio"] = helpers.asv_track([0.01] * count, params)
    return helpers.asv_file(out)


def _store(home, at_step: dict, runs: int = RUNS, speed: bool = False) -> None:
    """``runs`` runs on machine vm; from run STEP_AT numpy is 1.3x slower and meta.json has ``at_step``."""
    files = {}
    for k in range(runs):
        rid = _run_id(k, "aaaaaaaa")
        slow = 1.3 if k >= STEP_AT else 1.0
        files[(rid, "meta.json")] = helpers.run_meta(rid, list(IMPLS), ["numpy", "fake"], date=_date(k),
                                                     **(at_step if k >= STEP_AT else {}))
        files[(rid, "checks.json")] = helpers.check_records(IMPLS, OPS, DTYPES)
        files[(rid, "asv.json")] = _asv(k, slow)
        if speed:
            files[(rid, "speed.json")] = {"format": "softgrad-speed/1", "reference": "a loop", "benchmarks": {
                f"{impl} {op} {shape} {dtype} cpu": {"norm": m, "norm_q25": 0.98 * m, "norm_q75": 1.02 * m}
                for impl in IMPLS for op in OPS for shape in SHAPES for dtype in DTYPES
                for m in [3.0 * (slow if impl == "numpy" else 1.0) * (1 + 0.01 * (k % 3))]}}
    helpers.write_run_files(home, files)


NEW_NUMPY = {"versions": {"numpy": "2.5.0", "numba": "", "torch": "", "jax": "", "softgrad": "0.1.0"}}


def test_one_library_changed_at_the_step_is_named_the_likely_cause(tmp_path):
    _store(tmp_path, NEW_NUMPY, speed=True)
    rc, out, err = _softgrad(tmp_path, "history")
    assert rc == 0 and not _errors(err), err
    head, *lines = out.splitlines()
    count = len(OPS) * len(SHAPES) * len(DTYPES)
    assert head == f"softgrad history: {RUNS} runs on machine vm, threshold 10%: {count} change points, newest first"
    assert len(lines) == count and all("numpy " in line and "fake-impl" not in line for line in lines)
    for line in lines:
        assert line.startswith(f"2026-01-05 {_run_id(STEP_AT)}  numpy ")
        assert re.search(r"time \+(2[5-9]|3[0-5])% \[\+\d+%, \+\d+%\] slower \(normalized: ", line), line
        assert line.endswith("; likely cause: numpy 2.4.6 -> 2.5.0"), line


def test_two_things_changed_at_the_step_are_both_listed_and_no_cause_is_claimed(tmp_path):
    threads = {"cores": 2, "requested": 1, "numpy_blas": 1, "numba": 1, "torch_intra_op": 1,
               "xla": "default (all cores)"}
    _store(tmp_path, {**NEW_NUMPY, "threads": threads})
    rc, out, err = _softgrad(tmp_path, "history", "--impl", "numpy", "--op", "vjp", "--json")
    assert rc == 0 and not _errors(err), err
    doc = json.loads(out)
    assert doc["runs"] == RUNS and len(doc["changes"]) == len(SHAPES) * len(DTYPES)
    for c in doc["changes"]:
        assert c["benchmark"]["impl"] == "numpy" and c["benchmark"]["op"] == "vjp" and c["basis"] == "seconds"
        assert c["likely_cause"] is None and c["run"] == _run_id(STEP_AT)
        assert [d["thing"] for d in c["changed"]] == ["numpy", "threads"]
        assert c["interval"][0] < c["size"] < c["interval"][1]
    rc, out, _ = _softgrad(tmp_path, "history", "--impl", "numpy", "--op", "vjp")
    assert out.splitlines()[1].endswith("; changed: numpy 2.4.6 -> 2.5.0, threads requested default -> 1, "
                                        "numba 2 -> 1, numpy_blas 2 -> 1, torch_intra_op 2 -> 1")


# --- the command's flags --------------------------------------------------------------------------------


def test_since_keeps_the_newer_change_points_and_the_filters_choose_benchmarks(tmp_path):
    _store(tmp_path, NEW_NUMPY)
    assert len(_softgrad(tmp_path, "history", "--since", "2026-01-05")[1].splitlines()) > 1
    rc, out, _ = _softgrad(tmp_path, "history", "--since", "2026-01-05T00:00:01")
    assert rc == 0
    assert out.splitlines() == [f"softgrad history: {RUNS} runs on machine vm, threshold 10%: no change points"]
    rc, out, _ = _softgrad(tmp_path, "history", "--impl", "fake-impl")
    assert rc == 0 and "no change points" in out
    rc, out, _ = _softgrad(tmp_path, "history", "--op", "softmax", "--workload", "default", "--threshold", "0.5")
    assert rc == 0 and "threshold 50%: no change points" in out


@pytest.mark.parametrize("argv, says", [
    (["--impl", "nosuch"], "no stored run timed implementation 'nosuch' (stored: fake-impl, numpy)"),
    (["--workload", "llm"], "no stored run timed workload 'llm' (stored: default)"),
    (["--op", "softplus"], "argument --op: invalid choice: 'softplus'"),
    (["--since", "2026-13-45"], "argument --since: '2026-13-45' is not a date"),
    (["--since", "9" * 60], "argument --since: '999999999999'... (60 characters) is not a date"),
    (["--threshold", "0"], "argument --threshold: '0' is not a fraction in (0, 10]"),
    (["--threshold", "nan"], "argument --threshold: 'nan' is not a fraction"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, monkeypatch, argv, says):
    _store(tmp_path, NEW_NUMPY)
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit:
        sys.exit(main(["history", *argv]))  # argparse's errors exit while parsing
    assert exit.value.code == 2 and out.getvalue() == ""
    err = err.getvalue()
    (line,) = _errors(err)
    assert says in line


def test_too_few_runs_is_said_in_one_line_and_fails(tmp_path):
    """Nothing judged is no answer: exit 1 with the reason on stderr (as a gate that compared nothing)."""
    rc, out, err = _softgrad(tmp_path, "history")
    assert rc == 1 and out == "" and err == "softgrad history: 0 runs stored; change points need at least 4 on one machine\n"
    # a registered implementation or a preset workload not timed yet is no usage error
    rc, out, err = _softgrad(tmp_path, "history", "--impl", "numpy", "--workload", "vocab")
    assert rc == 1 and err.startswith("softgrad history: 0 runs stored for implementation numpy and workload vocab;")
    _store(tmp_path, NEW_NUMPY, runs=3)
    rc, out, err = _softgrad(tmp_path, "history", "--op", "vjp")
    assert rc == 1 and out == ""
    assert err == ("softgrad history: 3 runs on machine vm for op vjp; change points need at least 4 (2 on either "
                   "side of a change)\n")
    rc, out, _ = _softgrad(tmp_path, "history", "--json")
    assert rc == 1
    assert json.loads(out)["note"].startswith("3 runs on machine vm") and json.loads(out)["changes"] == []
