"""The package's layout holds: the import-linter contracts of pyproject.toml (one-way layers; the built-in
implementations use softgrad's public API only), and module paths from before the layout still import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_are_kept():
    pytest.importorskip("importlinter")
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    out = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                         cwd=str(ROOT))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_old_module_paths_are_the_new_modules():
    import softgrad.bench.grid
    import softgrad.check.checker
    import softgrad.history.gate
    from softgrad import grid
    from softgrad.checker import check_case
    from softgrad.compare import compare_runs

    assert grid is softgrad.bench.grid and grid.__spec__.name == "softgrad.bench.grid"
    assert check_case is softgrad.check.checker.check_case
    assert compare_runs is softgrad.history.gate.compare_runs
