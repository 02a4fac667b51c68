"""benchmarks/false_alarms.py: identical quick runs in a row, each compared with the one before."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "false_alarms.py"


def script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_one_run_is_not_a_pair():
    out = script("--runs", "1")
    assert out.returncode == 2 and out.stderr.strip() == "false_alarms: --runs must be at least 2 (one pair)"


@pytest.mark.slow
def test_two_identical_runs_are_one_pair_counted_plain_and_confirmed(tmp_path):
    out = script("--runs", "2", "--impl", "numpy", "--home", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    pair = re.search(r"pair 1: (\d+) benchmarks, (\d+) flagged, (\d+) confirmed", out.stdout)
    # numpy's three ops at the quick grid's three shapes, less what its declared limits skip
    assert pair and 6 <= int(pair.group(1)) <= 9, out.stdout
    assert int(pair.group(3)) <= int(pair.group(2))
    assert re.search(rf"1 pairs in \d+ s: {pair.group(1)} comparisons, {pair.group(2)} flagged", out.stdout), out.stdout
    assert len(list((tmp_path / "results" / "runs").iterdir())) == 2, "the runs went to the scratch home"


def test_a_planted_slowdown_must_be_above_one_and_times_the_plugin_alone():
    for args in (("--slowdown", "1"), ("--slowdown", "1.5", "--impl", "numpy")):
        out = script(*args)
        assert out.returncode == 2 and out.stderr.strip() == (
            "false_alarms: --slowdown must be above 1, and times the slowable plugin alone (no --impl)")


@pytest.mark.slow
def test_a_planted_slowdown_is_counted_as_caught(tmp_path):
    out = script("--runs", "2", "--slowdown", "3", "--home", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"pair 1: slowed 3x, [1-9]\d* of \d+ benchmarks confirmed slower, gate failed \(caught\)",
                     out.stdout), out.stdout
    assert re.search(r"1 pairs in \d+ s: 1 of 1 slowdowns of 3x caught", out.stdout), out.stdout
    assert len(list((tmp_path / "results" / "runs").iterdir())) == 2, "one run as it is, one slowed"
