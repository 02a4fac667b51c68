"""The command line: list, check, exit codes and plugins, run as a user would (subprocesses)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"


def softgrad(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    [full_env.pop(k, None) for k in ("SOFTGRAD_PLUGINS", "SOFTGRAD_PLUGIN_FILES")] if env is None else None
    return subprocess.run([sys.executable, "-m", "softgrad.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def test_list_json_names_every_family():
    out = softgrad("list", "--json")
    assert out.returncode == 0, out.stderr
    entries = {e["name"]: e for e in json.loads(out.stdout)}
    for name in ("loops", "numpy", "numba", "numba-parallel", "torch-formula", "torch-native", "torch-autograd",
                 "torch-func", "torch-loops", "jax-jit", "jax-jacfwd"):
        assert name in entries, name
    for e in entries.values():
        assert set(e["ops"]) <= {"softmax", "jacobian", "vjp"}
        assert e["available"] == (e["reason"] is None)
    assert entries["numpy"]["available"] and entries["loops"]["available"]


def test_list_table():
    out = softgrad("list")
    assert out.returncode == 0, out.stderr
    assert "numpy" in out.stdout and "loops" in out.stdout


def test_check_passes_on_a_correct_plugin(tmp_path):
    report = tmp_path / "records.json"
    out = softgrad("check", "--plugin", str(PLUGINS / "correct.py"), "--impl", "plugin-correct", "--quick",
                   "--json", str(report))
    assert out.returncode == 0, out.stdout + out.stderr
    records = json.loads(report.read_text())
    assert records and all(r["verdict"] in ("pass", "skip") for r in records)
    assert {"impl", "op", "dtype", "case", "max_abs_err", "max_rel_err", "max_ulp_err", "ratio", "tolerance",
            "verdict"} <= set(records[0])
    assert sum(r["verdict"] == "pass" for r in records) > 20


def test_check_fails_on_a_wrong_plugin_and_names_the_case():
    out = softgrad("check", "--plugin", str(PLUGINS / "wrong_sign.py"), "--impl", "plugin-wrong-sign",
                   "--op", "jacobian", "--quick")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL plugin-wrong-sign jacobian float64 cpu case normal-1" in out.stdout
    assert "accuracy" in out.stdout


def test_plugins_from_the_environment():
    out = softgrad("check", "--impl", "plugin-wrong-sign", "--op", "jacobian", "--case", "normal-1",
                   env={"SOFTGRAD_PLUGINS": str(PLUGINS / "wrong_sign.py")})
    assert out.returncode == 1, out.stdout + out.stderr


@pytest.mark.parametrize("args,message", [
    (("check", "--impl", "no-such-impl"), "unknown implementation 'no-such-impl'"),
    (("check", "--plugin", "/no/such/file.py"), "plugin file not found"),
    (("check", "--case", "no-such-case"), "unknown case"),
    (("check", "--plugin", str(PLUGINS / "broken_import.py")), "failed to import"),
    (("list", "--plugin", "/no/such/file.py"), "plugin file not found"),
    (("check", "--impl", "numpy", "--json", "/no/such/folder/r.json"), "is not a writable folder"),
])
def test_usage_errors_are_one_line_and_exit_2(args, message):
    out = softgrad(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_op_is_a_usage_error():
    out = softgrad("check", "--op", "hessian")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_hanging_and_crashing_implementations_fail_their_case_and_the_check_goes_on(tmp_path):
    report = tmp_path / "r.json"
    out = softgrad("check", "--plugin", str(PLUGINS / "misbehaving.py"), "--impl", "plugin-hangs",
                   "--impl", "plugin-crashes", "--op", "softmax", "--case", "normal-1", "--case", "normal-10", "--timeout", "3",
                   "--json", str(report))
    assert out.returncode == 1, out.stdout + out.stderr
    records = {(r["impl"], r["case"]): r for r in json.loads(report.read_text())}
    assert records[("plugin-hangs", "normal-1")]["failed"] == ["timeout"]
    assert records[("plugin-crashes", "normal-1")]["failed"] == ["error"]
    assert "exit code 3" in records[("plugin-crashes", "normal-1")]["message"]
    # the cases after the failure still ran in a fresh worker
    assert records[("plugin-hangs", "normal-10")]["verdict"] == "pass"
    assert records[("plugin-crashes", "normal-10")]["verdict"] == "pass"


# --- softgrad with no arguments, and an example under each command's --help ------------------------------


def _parses(line: str) -> bool:
    """Whether a shown command line (``softgrad COMMAND ...``) is one softgrad's parser accepts."""
    import contextlib
    import io
    import shlex

    from softgrad import cli

    words = shlex.split(line)
    assert words[0] == "softgrad", line
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            cli.build_parser().parse_args(words[1:])
    except SystemExit:
        return False
    return True


def test_no_arguments_says_what_softgrad_is_and_shows_five_commands_that_parse():
    out = softgrad()
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "softmax" in out.stdout and "oracle" in out.stdout and "error" not in out.stdout
    commands = [line.strip().split("  ")[0] for line in out.stdout.splitlines() if line.startswith("  softgrad ")]
    assert len(commands) == 5 and len({c.split()[1] for c in commands}) == 5, commands
    assert all(_parses(c) for c in commands), commands
    assert "softgrad COMMAND --help" in out.stdout


def test_each_command_help_shows_an_example_that_parses():
    from softgrad import cli

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.EXAMPLES), "a command without an example (or an example without a command)"
    for name, example in cli.EXAMPLES.items():
        command = example.splitlines()[0]
        assert command.split()[:2] == ["softgrad", name] and _parses(command), example
    out = softgrad("choose", "--help")
    assert out.returncode == 0 and "example:\n  softgrad choose --op vjp" in out.stdout, out.stdout


def test_an_example_with_a_flag_softgrad_does_not_take_is_caught():
    assert _parses("softgrad choose --op vjp --n 50257 --batch 512 --dtype bfloat16")
    assert not _parses("softgrad choose --op vjp --rows 512 --n 50257")  # planted: a flag that does not exist
    assert not _parses("softgrad choose --op vjp --n 50257 --dtype bf16")  # planted: a dtype it refuses


def test_choose_in_an_empty_home_points_at_measure(tmp_path):
    out = softgrad("choose", "--op", "vjp", "--n", "50257", "--batch", "512", "--dtype", "bfloat16",
                   env={"SOFTGRAD_HOME": str(tmp_path)})
    assert out.returncode == 2 and out.stdout == "", out.stdout
    (line,) = out.stderr.splitlines()
    assert "no complete run stored yet" in line and "softgrad run --quick" in line and "--measure" in line, line
