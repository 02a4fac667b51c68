"""The package's layout holds: the import-linter contracts of pyproject.toml (one-way layers; the built-in
implementations use softgrad's public API only); the module paths from before the layout are gone."""

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


@pytest.mark.parametrize("old", ["softgrad.checker", "softgrad.grid", "softgrad.compare", "softgrad.results"])
def test_module_paths_from_before_the_layout_are_gone(old):
    """No shim maps them (nothing outside softgrad used them): each module has one name."""
    import importlib

    import softgrad  # noqa: F401

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)
