"""What softgrad promises under faults: hostile files, names, plugins, flags and a killed run.

Each test plays a hostile or careless user and asserts the promise docs/faults.md ("What softgrad promises
under faults") states: data never runs code, one name is one benchmark, bad input is one line and a non-zero
exit, children die with softgrad and the run's lock covers them, a resumed run keeps its own settings.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import softgrad
from softgrad import cli
from softgrad.registry import Implementation

PLUGINS = Path(__file__).parent / "plugins"
REPO = Path(__file__).resolve().parent.parent


def softgrad_cmd(home: Path, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full = {**os.environ, "SOFTGRAD_HOME": str(home), **(env or {})}
    for key in ("SOFTGRAD_PLUGINS", "SOFTGRAD_PLUGIN_FILES", "SOFTGRAD_THREADS"):
        if key not in (env or {}):
            full.pop(key, None)
    return subprocess.run([sys.executable, "-m", "softgrad.cli", *args], capture_output=True, text=True,
                          env=full, timeout=timeout, cwd=str(home))


def one_line_error(out: subprocess.CompletedProcess, code: int = 2) -> str:
    assert out.returncode == code, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


# --- 1. data never runs code --------------------------------------------------------------------------

@pytest.mark.slow
def test_python_files_planted_in_results_or_the_working_folder_are_never_imported(tmp_path):
    """The nightly job restores results/ from a branch: a results/asv.py or json.py there (or in the folder
    softgrad is started from) must not run, in asv's processes or any other child."""
    pytest.importorskip("asv")
    (tmp_path / "results").mkdir()
    names = ("asv", "json", "re", "subprocess", "numpy", "softgrad", "asv_runner", "pandas")
    for folder in (tmp_path, tmp_path / "results"):
        for name in names:
            (folder / f"{name}.py").write_text(
                f"open({str(tmp_path / 'PLANTED-RAN')!r}, 'a').write({name!r} + ' ' + __file__ + '\\n')\n")
    # started as the console script starts it: its own folder, not the working one, heads sys.path (-P)
    out = subprocess.run([sys.executable, "-P", "-m", "softgrad.cli", "run", "--quick", "--impl", "numpy", "--no-check",
                          "--no-report", "--no-progress"], capture_output=True, text=True, cwd=str(tmp_path),
                         env={**os.environ, "SOFTGRAD_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (tmp_path / "PLANTED-RAN").exists(), (tmp_path / "PLANTED-RAN").read_text()
    run = next((tmp_path / "results" / "runs").iterdir())
    assert "bench_ops.Impl_numpy.time_op" in json.loads((run / "asv.json").read_text())["results"]


def test_child_pythons_start_with_a_safe_path_in_an_empty_folder(tmp_path, monkeypatch):
    from softgrad import children

    (tmp_path / "json.py").write_text("raise SystemExit('planted json imported')\n")
    monkeypatch.chdir(tmp_path)
    out = subprocess.run(children.python("-c", "import json, sys; print(sys.path[0] != '')"), capture_output=True,
                         text=True, env=children.python_env(), cwd=str(tmp_path))
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr
    assert os.listdir(children.neutral_cwd()) == []


# --- 2. one name, one benchmark -----------------------------------------------------------------------

def _ops(device):
    return {"softmax": lambda x: x, "jacobian": lambda x: x, "vjp": lambda x, g: x}


def test_names_that_would_share_a_benchmark_are_refused():
    softgrad.register(Implementation("t-col-x", "test", _ops))
    try:
        with pytest.raises(ValueError, match="'t_col_x' is too close to 't-col-x'"):
            softgrad.register(Implementation("t_col_x", "test", _ops))
        with pytest.raises(ValueError, match="too close"):
            softgrad.register(Implementation("t.col.x", "test", _ops))
        with pytest.raises(KeyError):
            softgrad.get("t_col_x")
    finally:
        softgrad.unregister("t-col-x")


@pytest.mark.parametrize("name", ["", "a b", "../../etc", "x/y", "a\nb", "-lead", "é" * 3, "x" * 65])
def test_names_and_families_are_plain_words(name):
    with pytest.raises(ValueError, match="not allowed|needs a name"):
        Implementation(name, "test", _ops)
    with pytest.raises(ValueError, match="not allowed|needs a name"):
        Implementation("fine", name, _ops)


def test_a_plugin_with_twin_names_is_a_one_line_error(tmp_path):
    line = one_line_error(softgrad_cmd(tmp_path, "list", "--plugin", str(PLUGINS / "twin_names.py")))
    assert "twin_names.py" in line and "'col_x' is too close to 'col-x'" in line


def test_a_plugin_reusing_a_builtin_name_is_refused_and_the_builtin_kept(tmp_path):
    for command in (("list",), ("check", "--impl", "numpy", "--quick")):
        line = one_line_error(softgrad_cmd(tmp_path, *command, "--plugin", str(PLUGINS / "reuses_builtin_name.py")))
        assert "reuses_builtin_name.py" in line and "'numpy' is already registered" in line
        assert "implementations/numpy_vectorized.py" in line  # the built-in is the one kept


# --- plugins -------------------------------------------------------------------------------------------

def test_a_plugin_calling_sys_exit_fails_the_command(tmp_path):
    out = softgrad_cmd(tmp_path, "check", "--plugin", str(PLUGINS / "exits_at_import.py"), "--impl", "numpy",
                       "--quick")
    assert "called sys.exit(0)" in one_line_error(out)


def test_a_plugin_path_with_the_path_separator_reaches_child_processes(tmp_path):
    odd = tmp_path / "a:b"
    odd.mkdir()
    plugin = odd / "correct.py"
    plugin.write_text((PLUGINS / "correct.py").read_text())
    env = {**os.environ}
    env.pop("SOFTGRAD_PLUGINS", None)
    code = (f"from softgrad import registry; registry.load_plugin({str(plugin)!r}); registry.export_plugins(); "
            "import os, json; print(os.environ['SOFTGRAD_PLUGIN_FILES'])")
    exported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    env["SOFTGRAD_PLUGIN_FILES"] = exported.stdout.strip()
    child = subprocess.run([sys.executable, "-c", "import softgrad; print(softgrad.get('plugin-correct').source)"],
                           capture_output=True, text=True, env=env)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == str(plugin)


def test_a_missing_plugin_named_in_the_environment_is_one_line_for_every_command(tmp_path):
    env = {"SOFTGRAD_PLUGINS": str(tmp_path / "gone.py")}
    for command in (("report",), ("choose", "--op", "vjp", "--n", "8"), ("compare",), ("list",)):
        line = one_line_error(softgrad_cmd(tmp_path, *command, env=env))
        assert "gone.py" in line, command


# --- where softgrad writes -------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [("run", "--quick", "--impl", "numpy"), ("report",), ("compare",),
                                     ("choose", "--op", "vjp", "--n", "8")])
def test_softgrad_home_naming_a_file_is_one_line(tmp_path, command):
    home = tmp_path / "a-file"
    home.write_text("")
    out = subprocess.run([sys.executable, "-m", "softgrad.cli", *command], capture_output=True, text=True,
                         env={**os.environ, "SOFTGRAD_HOME": str(home)})
    assert f"SOFTGRAD_HOME={home} is not a folder" in one_line_error(out)


def test_check_json_naming_a_folder_is_refused_before_checking(tmp_path):
    t0 = time.monotonic()
    out = softgrad_cmd(tmp_path, "check", "--impl", "numpy", "--json", str(tmp_path))
    assert "is a folder" in one_line_error(out)
    assert time.monotonic() - t0 < 30


def test_report_names_the_folder_it_could_not_write(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    from softgrad.history import report

    def fail(out, warn=None, machine=None, note=None):
        raise PermissionError(13, "Permission denied", str(out))

    monkeypatch.setattr(report, "write_reports", fail)
    code, err = run_cli(["report"])
    assert code == 2 and str(tmp_path / "reports" / "latest") in err and "None" not in err


# --- a check that checked nothing ----------------------------------------------------------------------

def test_a_check_that_checked_nothing_fails_with_the_reason(tmp_path):
    out = softgrad_cmd(tmp_path, "check", "--impl", "numpy", "--device", "cuda", "--quick")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "nothing was checked" in out.stderr and "cuda" in out.stderr


def test_an_unknown_device_is_a_usage_error(tmp_path):
    assert "unknown device 'nope'" in one_line_error(softgrad_cmd(tmp_path, "check", "--device", "nope"))
    assert "unknown device 'nope'" in one_line_error(
        softgrad_cmd(tmp_path, "choose", "--op", "vjp", "--n", "8", "--device", "nope"))


# --- every flag, every wrong value ---------------------------------------------------------------------

def run_cli(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, err.getvalue()


#: a selection small enough that a wrongly accepted value costs seconds, not minutes
BASE = {
    "check": ["--impl", "numpy", "--op", "softmax", "--dtype", "float64", "--case", "normal-1"],
    "run": ["--impl", "numpy", "--quick", "--no-check", "--no-report"],
    "choose": ["--op", "vjp", "--n", "8"],
    "list": [], "report": [], "compare": [], "workloads": [], "history": [], "gate": [], "index": [], "prune": [],
    "merge-results": ["/no/such/results"],
}
NUMERIC_BAD = ["abc", "nan", "inf", "-inf", "-1", "0", "1e999", "", "0x10", "2.5.1"]
#: wrong values of flags that take a name, file or folder
NAMED_BAD = {
    "--impl": ["no-such-impl", ""], "--case": ["no-such-case"], "--plugin": ["/no/such/plugin.py", ""],
    "--device": ["nope", ""], "--json": ["/no/such/folder/r.json"], "--out": [],  # any text is a folder name; an unwritable one: test_report_escaping
    "--op": ["hessian"], "--dtype": ["float8"], "--workload": ["no-such-workload", "", "/no/such/w.toml"],
    "--x-layout": ["diagonal"], "--g-layout": ["broadcast-ish"],
}


def _flag_cases():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, p in sub.choices.items():
        for action in p._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[0]
            if action.nargs == 0:  # a switch given a value
                yield command, flag, [f"{flag}=yes"], flag
                continue
            values = NAMED_BAD.get(flag)
            if values is None:
                assert action.type is not None, f"{command} {flag} takes any string: add its wrong values here"
                values = NUMERIC_BAD
            for value in values:
                yield command, flag, [flag, value], value
        for positional in ("nope-run-id",) if command == "compare" else ():
            yield command, "OLD", [positional], positional


@pytest.mark.parametrize("command,flag,args,shown", list(_flag_cases()),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_every_flag_refuses_a_wrong_value_in_one_line(command, flag, args, shown, tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    monkeypatch.delenv("SOFTGRAD_PLUGINS", raising=False)
    base = [a for a in BASE[command]]
    if flag in base:  # replace the base's own value of this flag
        k = base.index(flag)
        del base[k:k + 2]
    code, err = run_cli([command, *base, *args])
    assert code == 2, (command, args, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert flag in lines[0] or (shown and shown in lines[0]) or repr(shown) in lines[0], lines[0]


def test_numbers_that_are_not_finite_are_refused_by_the_gate_and_the_check():
    for argv in (["compare", "--factor", "nan"], ["compare", "--min-delta", "inf"], ["check", "--timeout", "nan"],
                 ["compare", "--factor", "0.5"]):
        code, err = run_cli(argv)
        assert code == 2 and argv[1] in err, (argv, err)


# --- a resumed run keeps its own settings --------------------------------------------------------------

def _incomplete_run(home: Path, **fields) -> Path:
    from softgrad.history import provenance, store

    commit = provenance.git_commit(REPO)
    folder = home / "results" / "runs" / store.new_run_id(commit)
    folder.mkdir(parents=True)
    meta = {"format": store.FORMAT, "id": folder.name, "complete": False, "grid": "quick", "impls": ["numpy"],
            "rounds": 1, "plugins": [], "families_done": [], "commit": commit,
            "threads": {"cores": os.cpu_count(), "requested": None}, "versions": {"numpy": "x"}, "machine": "vm",
            **fields}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("args,env,message", [
    (("--threads", "1"), {}, "with each library's default thread count; drop --threads"),
    ((), {"SOFTGRAD_THREADS": "1"}, "but SOFTGRAD_THREADS is 1: unset it"),
    (("--rounds", "1"), {}, "with --rounds 3; drop --rounds"),
])
def test_resume_refuses_flags_that_contradict_the_stored_run(tmp_path, args, env, message):
    _incomplete_run(tmp_path, rounds=3)
    out = softgrad_cmd(tmp_path, "run", "--resume", "--no-check", "--no-progress", *args, env=env)
    assert message in one_line_error(out)


def test_resume_with_the_stored_thread_count_is_accepted_up_to_the_checkout_check(tmp_path):
    folder = _incomplete_run(tmp_path, threads={"cores": 2, "requested": 1}, commit="0" * 40)
    out = softgrad_cmd(tmp_path, "run", "--resume", "--threads", "1", "--no-check")
    assert f"run {folder.name} was for commit 00000000" in one_line_error(out)


@pytest.mark.slow
def test_a_resumed_run_whose_timings_were_deleted_times_them_again(tmp_path):
    """families_done says numpy is stored, but asv.json is gone: resume must time numpy again, not mark the
    run complete with no timings."""
    pytest.importorskip("asv")
    folder = _incomplete_run(tmp_path, families_done=["numpy"], copy_bandwidth={"gbps": 10.0})
    out = softgrad_cmd(tmp_path, "run", "--resume", "--no-check", "--no-report", "--no-progress")
    assert out.returncode == 0, out.stdout + out.stderr
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["complete"] and meta["families_done"] == ["numpy"]
    assert "bench_ops.Impl_numpy.time_op" in json.loads((folder / "asv.json").read_text())["results"]


# --- children die with softgrad, and the lock covers them -----------------------------------------------

def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_kill_9_of_softgrad_run_takes_its_benchmark_processes_with_it(tmp_path):
    pytest.importorskip("asv")
    pidfile = tmp_path / "pids"
    env = {**os.environ, "SOFTGRAD_HOME": str(tmp_path), "SOFTGRAD_TEST_PIDFILE": str(pidfile)}
    env.pop("SOFTGRAD_PLUGINS", None)
    proc = subprocess.Popen([sys.executable, "-m", "softgrad.cli", "run", "--quick", "--impl", "sleepy", "--no-check",
                             "--no-report", "--no-progress", "--plugin", str(PLUGINS / "sleepy.py")], env=env,
                            cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pidfile.exists(), "no benchmark process started"
    finally:
        proc.send_signal(signal.SIGKILL)  # softgrad alone, not its process group
        proc.wait()
    def survivors() -> list[str]:
        pids = [p for p in pidfile.read_text().split() if _alive(int(p))]
        tree = subprocess.run(["pgrep", "-f", f"asv run --config {tmp_path}"], capture_output=True, text=True)
        return pids + tree.stdout.split()

    deadline = time.monotonic() + 20
    while survivors() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not survivors(), "asv or its benchmark processes outlived softgrad run"
    with open(tmp_path / "results" / ".run.lock", "a+") as lock:  # free once every child is gone
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_guard_holds_the_lock_until_its_whole_tree_is_gone(tmp_path):
    """The guard adopts grandchildren whose parent died, and the lock descriptor it inherited stays open
    until it has killed them."""
    from softgrad import children

    lock_path = tmp_path / "lock"
    grandchild = tmp_path / "grandchild"
    script = ("import subprocess, sys, time; "
              f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True); "
              f"open({str(grandchild)!r}, 'w').write(str(p.pid)); time.sleep(600)")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        guard = subprocess.Popen(children.guarded([sys.executable, "-c", script]), start_new_session=True,
                                 pass_fds=(lock.fileno(),), env=children.python_env())
    try:
        deadline = time.monotonic() + 30
        while not (grandchild.exists() and grandchild.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(grandchild.read_text())
        with open(lock_path, "a+") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held through the guard
        children.stop(guard)
        assert guard.returncode == 128 + signal.SIGTERM
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "a grandchild in its own session outlived the guard"
        with open(lock_path, "a+") as other:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        if guard.poll() is None:
            guard.kill()
