"""The merge of several machines' results (the nightly matrix's legs) into one history, and the nightly workflow.

Two legs' result trees are built in the formats softgrad and asv write (tests/helpers.py): each leg restored
the history branch (machine ``ubuntu-leg``'s first night), then ran one night on its own machine. Leg A
(``ubuntu-leg``) pushes first into the branch, leg B (``gpu-leg``, whose asv classes have device ``cuda`` too)
merges into what A pushed.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import helpers
from softgrad import cli
from softgrad.bench import grid
from softgrad.history import index, merge

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
A, B = "ubuntu-leg", "gpu-leg"
ENV_FILE = f"{helpers.COMMIT[:8]}-existing-py.json"
NUMPY = f"bench_ops.{grid.class_name('numpy')}"


def _rid(night: int, machine: str) -> str:
    return f"2026010{night}T021700{123456 + (machine == B):06d}Z-{helpers.COMMIT[:8]}"


def _devices(machine: str) -> tuple[str, ...]:
    return ("cpu", "cuda") if machine == B else ("cpu",)


def _asv_results(machine: str, night: int) -> dict:
    """asv's results file of the machine's commit after ``night``'s run (asv rewrites it at every run of the
    commit): time_op of night 1, track_error_ratio of the newest night, started when that night's run did."""
    params = helpers.asv_params(("softmax",), ("4x8",), ("float64",), _devices(machine))
    count = len(_devices(machine))
    time_op = helpers.asv_time_op([2e-5 * (1 + (machine == B))] * count, params)
    track = helpers.asv_track([0.01 * night] * count, params)
    track[3] = helpers.ASV_DATE_MS + night * 86_400_000  # started_at: that night
    data = helpers.asv_file({f"{NUMPY}.time_op": time_op, f"{NUMPY}.track_error_ratio": track})
    data["params"]["machine"] = machine
    return data


def _machine_json(machine: str) -> dict:
    return {"arch": "x86_64", "cpu": "AMD EPYC" if machine == A else "Intel Xeon", "machine": machine,
            "num_cpu": "4", "os": "Linux 6.8", "ram": "16G", "version": 1}


def _benchmarks(machine: str) -> dict:
    """asv's benchmarks.json as discovery writes it on ``machine`` (its own devices only)."""
    out: dict = {"version": 2}
    for kind, unit in (("time_op", "seconds"), ("track_error_ratio", "error/tolerance")):
        name = f"{NUMPY}.{kind}"
        out[name] = {"code": "def f(): pass", "name": name, "param_names": ["op", "shape", "dtype", "device"],
                     "params": helpers.asv_params(("softmax",), ("4x8",), ("float64",), _devices(machine)),
                     "type": kind.split("_")[0], "unit": unit, "version": "2", "timeout": 120}
    return out


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _night(results: Path, machine: str, night: int) -> None:
    """One night of ``machine`` written into the results folder ``results``: its run folder and asv's files."""
    rid = _rid(night, machine)
    meta = helpers.run_meta(rid, ["numpy"], ["numpy"], machine=machine, date=f"2026-01-0{night}T02:17:00+00:00")
    helpers.write_run_files(results.parent, {
        (rid, "meta.json"): meta,
        (rid, "checks.json"): helpers.check_records(["numpy"], ("softmax",), ("float64",)),
        (rid, "asv.json"): _asv_results(machine, night),
        (rid, "sweep-numpy.jsonl"): '{"kind": "start"}\n'})
    _write_json(results / "asv" / machine / "machine.json", _machine_json(machine))
    _write_json(results / "asv" / machine / ENV_FILE, _asv_results(machine, night))
    _write_json(results / "asv" / "benchmarks.json", _benchmarks(machine))


@pytest.fixture
def legs(tmp_path):
    """(branch, leg A's results, leg B's results): the branch after night 1 of A, each leg after night 2."""
    branch = tmp_path / "branch" / "results"
    _night(branch, A, 1)
    trees = []
    for machine, name in ((A, "a"), (B, "b")):
        tree = tmp_path / name / "results"
        shutil.copytree(branch, tree)  # the leg restored the branch
        _night(tree, machine, 2)
        trees.append(tree)
    return branch, *trees


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_two_legs_merge_into_one_history_the_index_holds_both_and_merging_again_is_a_no_op(legs, monkeypatch):
    branch, leg_a, leg_b = legs
    for leg, machine in ((leg_a, A), (leg_b, B)):  # A pushes first, then B merges into what A pushed
        code, out, err = _cli("merge-results", str(leg), str(branch), "--machine", machine)
        assert code == 0 and err == "", err
        assert out.startswith("merge-results: ") and "1 run folder(s) added" in out, out
    runs = sorted(p.name for p in (branch / "runs").iterdir())
    assert runs == sorted([_rid(1, A), _rid(2, A), _rid(2, B)])
    assert sorted(p.name for p in (branch / "asv").iterdir()) == ["benchmarks.json", B, A]
    for leg in (leg_a, leg_b):  # every run file of both legs, byte for byte
        for f in (leg / "runs").rglob("*.*"):
            assert (branch / f.relative_to(leg)).read_bytes() == f.read_bytes(), f
    # A's asv file of the commit: night 2's rewrite (its newer rows) replaced night 1's
    assert json.loads((branch / "asv" / A / ENV_FILE).read_text()) == _asv_results(A, 2)
    assert json.loads((branch / "asv" / B / ENV_FILE).read_text()) == _asv_results(B, 2)
    # asv's benchmarks.json: every machine's results readable through it (device cuda from B's)
    bench = json.loads((branch / "asv" / "benchmarks.json").read_text())
    assert bench[f"{NUMPY}.time_op"]["params"][3] == ["'cpu'", "'cuda'"]
    assert bench["version"] == 2 and set(bench) == set(_benchmarks(B))

    # the index built from the merged tree holds both machines' runs and points
    monkeypatch.setenv("SOFTGRAD_HOME", str(branch.parent))
    monkeypatch.delenv(index.ENV, raising=False)
    code, out, err = _cli("index", "--rebuild")
    assert code == 0, err
    con = sqlite3.connect(index.path())
    try:
        machines = dict(con.execute("SELECT machine, count(*) FROM runs GROUP BY machine").fetchall())
        points = {m for (m,) in con.execute("SELECT DISTINCT machine FROM points")}
    finally:
        con.close()
    assert machines == {A: 2, B: 1} and points == {A, B}

    # merging again changes nothing: no file written, none removed
    (branch / "index.sqlite").unlink()  # never merged: not part of the comparison either
    before = _snapshot(branch)
    for leg, machine in ((leg_a, A), (leg_b, B)):
        done = merge.merge(leg, branch, machine)
        assert not done.changed and "nothing to merge" in done.line()
    assert merge.merge(leg_b, branch).changed is False  # the whole of B's tree, A's restored night 1 included
    assert _snapshot(branch) == before


def test_a_file_that_differs_is_refused_in_one_line_and_nothing_is_written(legs):
    branch, leg_a, leg_b = legs
    # planted: B's copy of A's night-1 run was changed (a rewritten run folder must not overwrite the history's)
    checks = leg_b / "runs" / _rid(1, A) / "checks.json"
    checks.write_text(json.dumps(helpers.check_records(["numpy"], ("softmax",), ("float64",), failing=("numpy",))))
    before = _snapshot(branch)
    code, out, err = _cli("merge-results", str(leg_b), str(branch))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("softgrad merge-results: error: ") and "checks.json: differs from" in err, err
    assert _snapshot(branch) == before  # B's own new run was not copied either: nothing half-written
    # B's own part alone merges (the changed file is not B's)
    assert merge.merge(leg_b, branch, B).runs_added == [_rid(2, B)]


def test_two_machines_under_one_name_are_refused(legs):
    branch, leg_a, _ = legs
    _write_json(leg_a / "asv" / A / "machine.json", {**_machine_json(A), "cpu": "another CPU"})
    before = _snapshot(branch)
    with pytest.raises(merge.MergeConflict, match="machine.json: differs.*two machines under the name"):
        merge.merge(leg_a, branch)
    assert _snapshot(branch) == before
    # the machine's own leg (--machine): its newest description replaces the old one, said in a note
    done = merge.merge(leg_a, branch, A)
    assert json.loads((branch / "asv" / A / "machine.json").read_text())["cpu"] == "another CPU"
    assert any("replaced" in n for n in done.notes)


def test_asv_results_of_one_commit_merge_benchmark_by_benchmark_the_newest_row_wins(tmp_path):
    old, new = _asv_results(A, 1), _asv_results(A, 2)
    new["results"].pop(f"{NUMPY}.time_op")  # night 2 ran the track only: night 1's time_op stays
    new["results"]["bench_ops.Impl_loops.time_op"] = new["results"][f"{NUMPY}.track_error_ratio"]
    merged = merge.merge_asv_results(new, old, tmp_path / "f.json")
    assert merged["results"] == {f"{NUMPY}.time_op": old["results"][f"{NUMPY}.time_op"],
                                 f"{NUMPY}.track_error_ratio": new["results"][f"{NUMPY}.track_error_ratio"],
                                 "bench_ops.Impl_loops.time_op": new["results"][f"{NUMPY}.track_error_ratio"]}
    assert merge.merge_asv_results(old, merged, tmp_path / "f.json") == merged  # the older side changes nothing
    # a different row started at the same instant cannot be ordered: refused
    same_time = copy.deepcopy(old)
    same_time["results"][f"{NUMPY}.track_error_ratio"][0] = [9.0]
    with pytest.raises(merge.MergeConflict, match="started at the same time"):
        merge.merge_asv_results(same_time, old, tmp_path / "f.json")
    other_commit = {**new, "commit_hash": "b" * 40}
    with pytest.raises(merge.MergeConflict, match="'commit_hash'"):
        merge.merge_asv_results(other_commit, old, tmp_path / "f.json")


def _gzip(path: Path) -> None:
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()


def test_a_file_and_its_compressed_form_are_one_file(legs):
    branch, leg_a, _ = legs
    run = _rid(1, A)
    _gzip(leg_a / "runs" / run / "sweep-numpy.jsonl")  # A pruned its old run: the compressed form wins
    merge.merge(leg_a, branch, A)
    assert sorted(p.name for p in (branch / "runs" / run).iterdir()) == \
        ["asv.json", "checks.json", "meta.json", "sweep-numpy.jsonl.gz"]
    shutil.copy2(branch / "runs" / run / "sweep-numpy.jsonl.gz", leg_a / "runs" / run)  # both forms in SRC
    (leg_a / "runs" / run / "sweep-numpy.jsonl").write_text('{"kind": "start"}\n')
    assert not merge.merge(leg_a, branch, A).changed  # a plain copy of a compressed file: nothing to do
    (leg_a / "runs" / run / "sweep-numpy.jsonl.gz").unlink()
    (leg_a / "runs" / run / "sweep-numpy.jsonl").write_text('{"kind": "done"}\n')  # planted: not the same file
    with pytest.raises(merge.MergeConflict, match="sweep-numpy.jsonl: differs"):
        merge.merge(leg_a, branch, A)


def test_a_folder_inside_a_run_folder_is_merged_the_same_way(legs):
    branch, leg_a, _ = legs
    extra = leg_a / "runs" / _rid(1, A) / "extra"
    extra.mkdir()
    (extra / "notes.txt").write_text("a newer softgrad's file\n")
    done = merge.merge(leg_a, branch, A)
    assert (done.run_files, done.runs_added) == (1, [_rid(2, A)])  # notes.txt into night 1; night 2 new
    assert (branch / "runs" / _rid(1, A) / "extra" / "notes.txt").read_text() == "a newer softgrad's file\n"
    assert not merge.merge(leg_a, branch, A).changed
    (extra / "notes.txt").write_text("changed\n")
    with pytest.raises(merge.MergeConflict, match="notes.txt: differs"):
        merge.merge(leg_a, branch, A)


def test_benchmarks_json_is_the_union_of_the_benchmarks(tmp_path):
    a, b = _benchmarks(A), _benchmarks(B)
    b["bench_ops.Impl_loops.time_op"] = {**b[f"{NUMPY}.time_op"], "name": "bench_ops.Impl_loops.time_op"}
    merged = merge.merge_benchmarks(a, b, tmp_path / "benchmarks.json")
    assert set(merged) == set(b)
    assert merged[f"{NUMPY}.time_op"]["params"][3] == ["'cpu'", "'cuda'"]  # DEST's order first
    assert merge.merge_benchmarks(b, merged, tmp_path / "benchmarks.json") == merged
    with pytest.raises(merge.MergeConflict, match="asv format version"):
        merge.merge_benchmarks({**a, "version": 3}, b, tmp_path / "benchmarks.json")


def test_what_is_not_a_results_folder_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    (tmp_path / "empty").mkdir()
    for argv, said in ((["merge-results", str(tmp_path / "empty")], "holds neither runs/ nor asv/"),
                       (["merge-results", str(tmp_path / "empty"), "--machine", "gpu-box"], "machine 'gpu-box'"),
                       (["merge-results", str(tmp_path), "--machine", ""], "--machine"),
                       (["merge-results", str(tmp_path / "empty"), str(tmp_path / "empty")], "neither")):
        code, out, err = _cli(*argv)
        assert code == 2 and err.count("\n") == 1 and said in err, (argv, err)
    _night(tmp_path / "results", A, 1)
    code, _, err = _cli("merge-results", str(tmp_path), str(tmp_path / "results"))
    assert code == 2 and "the same folder" in err, err
    # DEST defaults to this home's results
    other = tmp_path / "other" / "results"
    _night(other, B, 2)
    code, out, err = _cli("merge-results", str(other.parent))
    assert code == 0 and (tmp_path / "results" / "runs" / _rid(2, B) / "meta.json").is_file(), err


# --- the nightly workflow: a matrix of legs that merge into one history ---------------------------------------

def _workflow() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(WORKFLOW.read_text())


def _expr(text: str, matrix: dict | None = None, variables: dict | None = None):
    """A GitHub Actions expression of the workflow (``${{ ... }}``, or a text with some inside), evaluated for one
    leg and repository variables (the small grammar it uses: ``&&`` and ``||`` return an operand, as GitHub's do;
    an unset variable reads as '')."""
    def value(body: str):
        body = re.sub(r"\bvars\.(\w+)", lambda m: repr((variables or {}).get(m.group(1), "")), body)
        body = re.sub(r"\bmatrix\.(\w+)", lambda m: repr((matrix or {})[m.group(1)]), body)
        body = body.replace("&&", " and ").replace("||", " or ")
        names = {"fromJSON": json.loads, "startsWith": lambda a, b: str(a).lower().startswith(str(b).lower())}
        return eval(body, {"__builtins__": {}}, names)  # noqa: S307 - the repository's own workflow text

    whole = re.fullmatch(r"\s*\$\{\{(.*)\}\}\s*", text, re.S)
    if whole and "${{" not in whole.group(1):
        return value(whole.group(1))
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(value(m.group(1))), text)


def test_the_nightly_matrix_has_a_gpu_leg_only_where_a_gpu_runner_is_named():
    job = _workflow()["jobs"]["sweep"]
    assert job["strategy"]["fail-fast"] is False
    legs = job["strategy"]["matrix"]["leg"]
    assert _expr(legs) == ["cpu"]  # no GPU_RUNNER: no gpu leg waits for a runner that does not exist
    for runner, labels in (("gpu", "gpu"), ('["self-hosted", "gpu"]', ["self-hosted", "gpu"])):
        variables = {"GPU_RUNNER": runner}
        assert _expr(legs, variables=variables) == ["cpu", "gpu"]
        on = {leg: _expr(job["runs-on"], {"leg": leg}, variables) for leg in ("cpu", "gpu")}
        assert on == {"cpu": "ubuntu-latest", "gpu": labels}
        names = {leg: _expr(job["env"]["SOFTGRAD_MACHINE"], {"leg": leg}, variables) for leg in ("cpu", "gpu")}
        assert names["cpu"] != names["gpu"], "each leg writes its own machine folder"
        assert _expr(job["env"]["SOFTGRAD_MACHINE"], {"leg": "gpu"}, {**variables, "GPU_MACHINE": "box"}) == "box"
    # one night of a leg at a time, per leg (a queued GPU leg never holds back the cpu leg of the next night)
    assert {leg: _expr(job["concurrency"]["group"], {"leg": leg}) for leg in ("cpu", "gpu")} == \
        {"cpu": "nightly-cpu", "gpu": "nightly-gpu"}
    assert job["concurrency"]["cancel-in-progress"] is False and "concurrency" not in _workflow()
    # every artifact named per leg (two legs uploading one name fail the second), the dashboard of the merged
    # history published once, after the legs
    for step in job["steps"]:
        if str(step.get("uses", "")).startswith("actions/upload"):
            assert step["uses"].startswith("actions/upload-artifact") and "matrix.leg" in step["with"]["name"], step
    assert _workflow()["jobs"]["pages"]["needs"] == "sweep"


def test_each_gate_judges_its_own_machine():
    job = _workflow()["jobs"]["sweep"]
    gates = [s for s in job["steps"] if "softgrad gate" in str(s.get("run", ""))]
    assert len(gates) == 2
    assert "SOFTGRAD_MACHINE" in job["env"]  # every softgrad command of the leg runs as that machine
    # and the leg restores no other machine's runs: its gate cannot take one for its newest
    restore = next(s["run"] for s in job["steps"] if s.get("name", "").startswith("Restore"))
    assert 'softgrad merge-results "$hist/results" results --machine "$SOFTGRAD_MACHINE"' in restore
    assert "checkout origin/asv-results" not in restore
    steps = [s.get("name", "") for s in job["steps"]]
    assert steps.index(next(n for n in steps if n.startswith("Restore"))) < steps.index(
        next(n for n in steps if n.startswith("Regression gate")))


def test_the_dashboard_job_s_script_names_what_softgrad_has():
    import importlib

    run = next(s["run"] for s in _workflow()["jobs"]["pages"]["steps"] if "asv_config" in str(s.get("run", "")))
    code = run.split("<<'PY'\n", 1)[1].rsplit("PY", 1)[0]
    compile(code, "nightly.yml", "exec")
    for module, names in re.findall(r"from (softgrad[\w.]*) import (.+)", code):
        for name in names.split(","):
            assert hasattr(importlib.import_module(module), name.strip()), (module, name)


def _sh(cwd: Path, *argv: str, env: dict | None = None) -> str:
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, (argv, out.stdout, out.stderr)
    return out.stdout + out.stderr


@pytest.mark.slow  # about 15 s on the loaded 2-core machine: seven softgrad and many git processes
def test_two_legs_push_into_one_branch_and_the_second_retries_after_the_first_pushed(legs, tmp_path):
    """The workflow's own push step, run by bash for each leg against a local origin: leg B's first push is
    rejected because leg A pushed in between (B's pre-push hook runs A's step); B fetches again, merges, pushes."""
    _, leg_a, leg_b = legs
    script = next(s["run"] for s in _workflow()["jobs"]["sweep"]["steps"] if s.get("name", "").startswith("Push"))
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "sleep").write_text("#!/bin/sh\nexit 0\n")  # the retry's pause, skipped
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
           "GIT_CONFIG_NOSYSTEM": "1", "PATH": f"{home / 'bin'}:{os.environ['PATH']}"}
    env.pop("SOFTGRAD_HOME", None)
    origin = tmp_path / "origin.git"
    _sh(tmp_path, "git", "init", "-q", "--bare", "-b", "main", str(origin), env=env)
    seed = tmp_path / "seed"
    _sh(tmp_path, "git", "init", "-q", "-b", "main", str(seed), env=env)
    (seed / "README").write_text("softgrad\n")
    _sh(seed, "git", "add", "README", env=env)
    _sh(seed, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "seed", env=env)
    _sh(seed, "git", "push", "-q", str(origin), "main", env=env)
    clones = {}
    for name, tree in (("a", leg_a), ("b", leg_b)):
        clone = tmp_path / f"clone-{name}"
        _sh(tmp_path, "git", "clone", "-q", str(origin), str(clone), env=env)
        shutil.copytree(tree, clone / "results")
        (clone / ".venv" / "bin").mkdir(parents=True)
        shim = clone / ".venv" / "bin" / "softgrad"
        shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m softgrad.cli \"$@\"\n")
        shim.chmod(0o755)
        (clone / "step.sh").write_text(script)
        clones[name] = clone
    hook = clones["b"] / ".git" / "hooks" / "pre-push"
    hook.write_text(f"#!/bin/sh\nif [ ! -e {tmp_path}/a-pushed ]; then touch {tmp_path}/a-pushed; "
                    f"unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_PREFIX GIT_COMMON_DIR; cd {clones['a']} && SOFTGRAD_MACHINE={A} bash -e step.sh >&2 || exit 1; fi\n")
    hook.chmod(0o755)
    said = _sh(clones["b"], "bash", "-e", "step.sh", env={**env, "SOFTGRAD_MACHINE": B})
    assert "push of attempt 1/5 rejected" in said and "attempt 2/5" not in said, said
    files = _sh(tmp_path, "git", "--git-dir", str(origin), "ls-tree", "-r", "--name-only", "asv-results",
                env=env).split()
    runs = {f.split("/")[2] for f in files if f.startswith("results/runs/")}
    assert runs == {_rid(1, A), _rid(2, A), _rid(2, B)}
    assert {f"results/asv/{m}/{n}" for m in (A, B) for n in ("machine.json", ENV_FILE)} <= set(files)
    assert not any("/sweep-" in f for f in files)  # raw per-pass files stay out of the history
    bench = json.loads(_sh(tmp_path, "git", "--git-dir", str(origin), "show", "asv-results:results/asv/benchmarks.json",
                           env=env))
    assert bench[f"{NUMPY}.time_op"]["params"][3] == ["'cpu'", "'cuda'"]
    # the next night's restore: this machine's part only (no other machine's run for its gate to judge)
    restore = next(s["run"] for s in _workflow()["jobs"]["sweep"]["steps"] if s.get("name", "").startswith("Restore"))
    night3 = tmp_path / "clone-b3"
    _sh(tmp_path, "git", "clone", "-q", str(origin), str(night3), env=env)
    shutil.copytree(clones["b"] / ".venv", night3 / ".venv")
    (night3 / "restore.sh").write_text(restore)
    _sh(night3, "bash", "-e", "restore.sh", env={**env, "SOFTGRAD_MACHINE": B})
    assert sorted(p.name for p in (night3 / "results" / "runs").iterdir()) == [_rid(2, B)]
    assert sorted(p.name for p in (night3 / "results" / "asv").iterdir()) == ["benchmarks.json", B]
    said = _sh(night3, "bash", "-e", "restore.sh", env={**env, "SOFTGRAD_MACHINE": "new-box"})
    assert "its first night" in said
    # a night with nothing new pushes nothing and still succeeds
    head = _sh(tmp_path, "git", "--git-dir", str(origin), "rev-parse", "asv-results", env=env)
    _sh(clones["a"], "bash", "-e", "step.sh", env={**env, "SOFTGRAD_MACHINE": A})
    assert _sh(tmp_path, "git", "--git-dir", str(origin), "rev-parse", "asv-results", env=env) == head
