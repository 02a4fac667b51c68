"""benchmarks/synthetic_year.py's usage errors: one line and exit 2, before any history is made."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "synthetic_year.py"


@pytest.mark.parametrize("args, line", [
    (["--nights", "3"], "synthetic_year: --nights must be at least 4 (history needs 4 runs)"),
    (["--machines", "0"], "synthetic_year: --machines must be at least 1"),
    (["--from", "{tmp}"], "synthetic_year: --from {tmp}: no results/runs folder there (a SOFTGRAD_HOME with runs)"),
])
def test_usage_errors_are_one_line(tmp_path, args, line):
    out = subprocess.run([sys.executable, str(SCRIPT), *(a.format(tmp=tmp_path) for a in args)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.strip() == line.format(tmp=tmp_path) and out.stdout == ""
