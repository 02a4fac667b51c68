"""The isolated checker's worker protocol and start-up limit, driven through real spawned workers.

Each test's plugin misbehaves only under the environment variable the test sets (see tests/plugins),
so the entries stay harmless once loaded into this process's registry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from softgrad.check import isolated as check_run
from softgrad import registry
from softgrad.check.isolated import run_plan
from softgrad.check.checker import Record

PLUGINS = Path(__file__).parent / "plugins"
CASES = ("normal-1", "normal-10")


def _plan(entry: str, plugin: str, dtypes: tuple[str, ...] = ("float64",), cases: tuple[str, ...] = CASES):
    registry.load_plugin(PLUGINS / plugin)
    impl = registry.get(entry)
    return [(impl, [("softmax", dt, "cpu", c) for dt in dtypes for c in cases])]


def _run(plan, **kw) -> tuple[dict[tuple[str, str], Record], float]:
    """Records by (dtype, case), and the seconds the check took."""
    t0 = time.perf_counter()
    records = run_plan(plan, progress=False, **kw)
    return {(r.dtype, r.case): r for r in records}, time.perf_counter() - t0


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie left for a non-reaping init counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def _spawned(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


@pytest.fixture
def slow_start(tmp_path, monkeypatch):
    """Set how plugin-slow-start's build behaves; the file its workers log their pids to."""
    log = tmp_path / "spawned"
    monkeypatch.setenv("SOFTGRAD_TEST_SPAWN_LOG", str(log))

    def start(how: str) -> Path:
        monkeypatch.setenv("SOFTGRAD_TEST_START", how)
        return log

    return start


def test_a_start_up_past_the_limit_but_within_one_case_limit_fails_its_cases_and_does_not_crash(
        slow_start, monkeypatch):
    # the module constant is the override here: on the old protocol this reproduced the crash, a late
    # "ready" read as the first case's record (TypeError: unexpected keyword argument 'ready')
    monkeypatch.setattr(check_run, "STARTUP_TIMEOUT_S", 2.0)
    log = slow_start("sleep:3")
    records, _ = _run(_plan("plugin-slow-start", "slow_start.py"), timeout_s=2)
    assert sorted(records) == [("float64", c) for c in sorted(CASES)]
    for rec in records.values():
        assert rec.verdict == "fail" and rec.failed == ["timeout"], rec.line()
        assert "start-up" in rec.message and "import or build" in rec.message and "2 s" in rec.message
    assert len(_spawned(log)) == 1


#: the case limit of the start-up tests: long, so that waiting it even once is told from the 2 s start-up limit
#: (and the spawn, 2.0 s together on an idle machine) under any load, without a bound on the machine's speed
CASE_LIMIT_S = 60


def test_a_hanging_build_fails_every_remaining_case_at_once_after_one_start_up_limit(slow_start):
    """The one wall-clock bound: less than one case limit in all. A check that waited the case limit for
    each remaining case (2 + 3 x 60 s) or for one of them exceeds it; the start-up limit and a spawn stay
    far below it on a loaded machine."""
    log = slow_start("sleep:3600")
    cases = ("normal-1", "normal-10", "two-element")
    records, seconds = _run(_plan("plugin-slow-start", "slow_start.py", cases=cases), timeout_s=CASE_LIMIT_S,
                            startup_timeout_s=2)
    assert {r.failed[0] for r in records.values()} == {"timeout"} and len(records) == 3
    assert all("start-up limit" in r.message for r in records.values())
    pids = _spawned(log)
    assert len(pids) == 1, "one worker, not one per case"
    assert not _running(pids[0]), "the hung worker is killed"
    assert seconds < CASE_LIMIT_S, seconds


def test_once_a_unit_fails_start_up_the_entrys_other_units_fail_at_once_without_a_worker(slow_start):
    """As above: one spawn in all, and less than one case limit."""
    log = slow_start("sleep:3600")
    plan = _plan("plugin-slow-start", "slow_start.py", dtypes=("float64", "float32"))
    records, seconds = _run(plan, timeout_s=CASE_LIMIT_S, startup_timeout_s=2, jobs=1)  # two units, in turn
    assert len(records) == 4 and {r.failed[0] for r in records.values()} == {"timeout"}
    assert len({r.message for r in records.values()}) == 1
    assert len(_spawned(log)) == 1
    assert seconds < CASE_LIMIT_S, seconds


@pytest.mark.parametrize("how,code", [("exit:7", "exit code 7"), ("segfault", f"exit code -{signal.SIGSEGV}")])
def test_a_worker_that_dies_during_start_up_fails_every_case_at_once_with_its_exit_code(slow_start, how, code):
    log = slow_start(how)
    records, _ = _run(_plan("plugin-slow-start", "slow_start.py"), timeout_s=2, startup_timeout_s=30)
    assert len(records) == 2
    for rec in records.values():
        assert rec.failed == ["error"], rec.line()
        assert "died during start-up (import or build)" in rec.message and code in rec.message, rec.message
    assert len(_spawned(log)) == 1


def test_a_build_that_raises_still_fails_each_case_with_its_own_error(slow_start):
    log = slow_start("raise")
    records, _ = _run(_plan("plugin-slow-start", "slow_start.py"), timeout_s=2, startup_timeout_s=30)
    assert len(records) == 2
    for rec in records.values():
        assert rec.failed == ["error"] and "RuntimeError: the framework failed to initialise" in rec.message
        assert "start-up" not in rec.message
    assert len(set(_spawned(log))) == 1, "one worker checks both cases"


@pytest.mark.parametrize("junk", ["ready", "untagged", "bad-record", "other-case", "bytes"])
def test_a_message_out_of_protocol_fails_its_case_and_the_check_goes_on(monkeypatch, junk):
    monkeypatch.setenv("SOFTGRAD_TEST_JUNK", junk)
    records, _ = _run(_plan("plugin-out-of-protocol", "out_of_protocol.py"), timeout_s=10, startup_timeout_s=30)
    assert sorted(records) == [("float64", c) for c in sorted(CASES)]
    bad = records[("float64", "normal-1")]
    assert bad.failed == ["error"] and "protocol" in bad.message and "worker killed" in bad.message, bad.line()
    assert records[("float64", "normal-10")].verdict == "pass"  # in a fresh worker


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_worker_dies_when_softgrad_check_is_killed(tmp_path):
    pid_file = tmp_path / "worker.pid"
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTGRAD_PLUGINS", "SOFTGRAD_PLUGIN_FILES")}
    env["SOFTGRAD_TEST_PID_FILE"] = str(pid_file)
    cmd = [sys.executable, "-m", "softgrad.cli", "check", "--plugin", str(PLUGINS / "hangs_with_pid.py"),
           "--impl", "plugin-hangs-with-pid", "--case", "normal-1", "--timeout", "600"]
    check = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists():
            assert check.poll() is None and time.monotonic() < deadline, "the worker never started"
            time.sleep(0.05)
        worker = int(pid_file.read_text())
        assert _running(worker)
        check.kill()
        check.wait()
        deadline = time.monotonic() + 30  # the kernel signals it at once; the loop ends when it is gone
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(worker), "the worker outlived softgrad check"
    finally:
        check.kill()
        check.wait()
        if worker is not None and _running(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_child_whose_parent_is_already_gone_exits_at_once():
    code = ("import os; from softgrad.children import die_with_parent; "
            "die_with_parent(os.getppid() + 1); print('ran on')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if sys.platform.startswith("linux"):
        assert out.returncode != 0 and "ran on" not in out.stdout
    else:
        assert out.returncode == 0 and "ran on" in out.stdout


def test_a_log_sees_the_check_move_between_summary_lines(monkeypatch):
    """Without a terminal, a line naming the entries at work comes every HEARTBEAT_S (0 here: at each case), before
    the entry's summary line; a cold torch-compile check printed nothing for 20 minutes."""
    import io

    monkeypatch.setattr(check_run, "HEARTBEAT_S", 0.0)
    log = io.StringIO()
    records = run_plan([(registry.get("numpy"), [("softmax", "float64", "cpu", c) for c in CASES])], stream=log)
    assert [r.verdict for r in records] == ["pass", "pass"]
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and all(line.endswith(" s, checking numpy") for line in lines[:2]), lines
    assert lines[0].startswith("check [1/2] ") and lines[1].startswith("check [2/2] ")
    assert lines[2].startswith("check [2/2] numpy: 2 cases, 0 failed (")
    monkeypatch.setattr(check_run, "HEARTBEAT_S", 3600.0)  # a check shorter than the heartbeat: its summary only
    log = io.StringIO()
    run_plan([(registry.get("numpy"), [("softmax", "float64", "cpu", c) for c in CASES])], stream=log)
    assert [line.split(": ")[0] for line in log.getvalue().splitlines()] == ["check [2/2] numpy"]


def test_a_compiled_entrys_first_case_per_dtype_gets_time_to_compile(monkeypatch):
    """A first call past the per-case limit but within the compile allowance passes for an entry that declares
    ``compiles`` (each dtype's first case; the later ones have the plain limit) and times out for its twin
    that does not; past the allowance too, the compiled entry's first case times out, naming both limits."""
    monkeypatch.setattr(check_run, "FIRST_COMPILE_S", 30.0)
    monkeypatch.setenv("SOFTGRAD_TEST_FIRST_CALL_S", "4")
    dtypes = ("float64", "float32")
    records, _ = _run(_plan("plugin-slow-first-call", "slow_first_call.py", dtypes=dtypes), timeout_s=2, jobs=1)
    assert len(records) == 4 and all(r.verdict == "pass" for r in records.values()), \
        [r.line() for r in records.values()]
    records, _ = _run(_plan("plugin-slow-first-call-plain", "slow_first_call.py", dtypes=dtypes), timeout_s=2,
                      jobs=1)
    assert records[("float64", "normal-1")].failed == ["timeout"]
    assert "2 s per-case limit" in records[("float64", "normal-1")].message
    monkeypatch.setattr(check_run, "FIRST_COMPILE_S", 1.0)
    records, _ = _run(_plan("plugin-slow-first-call", "slow_first_call.py"), timeout_s=2)
    first = records[("float64", "normal-1")]
    assert first.failed == ["timeout"] and "2 s per case and 1 s for its first compile" in first.message, first.line()
