"""Every number at the command line's edge goes through one rule, and nothing is written that a reader
would refuse: a hostile or careless value is one line and exit 2 before any file exists.
"""

from __future__ import annotations

import argparse
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softgrad import cli
from softgrad.backends import max_threads
from softgrad.history import store
from softgrad.stored import StoreError

from test_faults import run_cli


def _number_flags() -> list[tuple[str, str, argparse.Action]]:
    """(command, flag, action) of every flag whose type is one of the CLI's number parsers."""
    parsers = {cli.positive_int, cli.per_core, cli.rounds_count, cli.positive_seconds, cli.nonnegative_seconds,
               cli.slowdown_factor}
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [(command, action.option_strings[0], action) for command, p in sub.choices.items()
            for action in p._actions if action.type in parsers]


NUMBER_FLAGS = _number_flags()


def _tree(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_every_integer_and_seconds_flag_is_a_number_flag():
    """The rule covers the flags the issue named (and any new one that takes a count or seconds)."""
    named = {"--n", "--batch", "--rounds", "--jobs", "--threads", "--timeout", "--factor", "--min-delta"}
    assert named <= {flag for _, flag, _ in NUMBER_FLAGS}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flag=st.sampled_from(NUMBER_FLAGS),
       text=st.one_of(st.integers(min_value=-10**450, max_value=10**450).map(str),
                      st.floats(allow_nan=True, allow_infinity=True).map(repr),
                      st.text(max_size=30),
                      st.integers(min_value=1, max_value=6000).map(lambda k: "9" * k)))
def test_a_number_flag_gives_a_value_in_its_range_or_one_argparse_error(flag, text):
    """Any text: a value the flag's range holds (an int where it counts), or ArgumentTypeError with a
    message of bounded length; never OverflowError or the int-string limit's ValueError."""
    _, _, action = flag
    try:
        value = action.type(text)
    except argparse.ArgumentTypeError as exc:
        assert len(str(exc)) < 200 and "\n" not in str(exc)
        return
    assert value == value and abs(value) < float("inf")
    assert value <= 2**63 - 1
    if flag[1] in {"--n", "--batch", "--rounds", "--jobs", "--threads"}:
        assert isinstance(value, int) and value >= 1
    if flag[1] in {"--jobs", "--threads"}:
        assert value <= max_threads()


@pytest.mark.parametrize("argv", [
    ["choose", "--op", "vjp", "--n", "9" * 400],
    ["choose", "--op", "vjp", "--n", "8", "--batch", "9" * 400],
    ["run", "--quick", "--impl", "numpy", "--threads", "9" * 20],
    ["run", "--quick", "--impl", "numpy", "--threads", "1000"],
    ["run", "--quick", "--impl", "numpy", "--rounds", "9" * 400],
    ["check", "--impl", "numpy", "--jobs", "9" * 5000],
    ["check", "--impl", "numpy", "--timeout", "9" * 400],
    ["compare", "--factor", "1e300"],
])
def test_huge_numbers_are_one_line_before_anything_is_written(argv, tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    code, err = run_cli(argv)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert argv[-2] in err
    assert _tree(tmp_path) == []


def test_too_many_threads_in_the_environment_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    monkeypatch.setenv("SOFTGRAD_THREADS", str(max_threads() + 1))
    code, err = run_cli(["run", "--quick", "--impl", "numpy"])
    assert code == 2 and "SOFTGRAD_THREADS" in err and len(err.strip().splitlines()) == 1, err
    assert _tree(tmp_path) == []


def test_more_threads_than_cores_is_said_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    code, err = run_cli(["run", "--resume", "--threads", "3"])  # stops at --resume: nothing to resume
    assert "warning: --threads 3 is more than this machine's 1 cores" in err
    assert code == 2


def test_resume_with_nothing_to_resume_is_refused_and_starts_nothing(tmp_path, monkeypatch):
    """It used to start a new full run of every entry (full grid, full check)."""
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    code, err = run_cli(["run", "--resume", "--no-progress"])
    assert code == 2 and "no interrupted run" in err and len(err.strip().splitlines()) == 1, err
    assert _tree(tmp_path) == []


def test_resume_when_every_run_is_complete_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    run = store.create_run("0" * 40)
    run.update_meta(complete=True, grid="quick", impls=["numpy"], machine="vm")
    before = _tree(tmp_path)
    code, err = run_cli(["run", "--resume"])
    assert code == 2 and "no interrupted run" in err, err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("fields,field", [
    ({"threads": {"requested": 10**20}}, "threads.requested"),
    ({"rounds": 0}, "rounds"),
    ({"impls": "numpy"}, "impls"),
    ({"complete": "yes"}, "complete"),
])
def test_a_meta_the_reader_would_refuse_is_never_written(fields, field, tmp_path, monkeypatch):
    """The writer checks what its reader checks: the stored meta.json stays readable (a 20-digit thread
    count once made every later report, choose and --resume in that home exit 2)."""
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    run = store.create_run("0" * 40)
    run.update_meta(complete=False, grid="quick")
    with pytest.raises(StoreError, match=f"refused to write: .*{field.split('.')[-1]}"):
        run.update_meta(**fields)
    assert run.meta() == {"format": store.FORMAT, "id": run.id, "complete": False, "grid": "quick"}
    assert not [p for p in run.folder.iterdir() if p.name.endswith(".tmp")]


def test_speed_and_agreement_files_are_checked_before_they_are_written(tmp_path):
    from softgrad.bench import agreement, sweep

    with pytest.raises(StoreError, match="refused to write"):
        agreement.store_points(tmp_path / "agreement.json", [{"key": 5}])
    assert not (tmp_path / "agreement.json").exists()
    (tmp_path / "speed.json").write_text(json.dumps(["not", "a", "speed", "file"]))
    with pytest.raises(StoreError, match="speed.json"):
        sweep.store_normalized(tmp_path / "speed.json", [])
