"""Module paths from before the check/, bench/, history/ layout still import (``softgrad.checker`` is
``softgrad.check.checker``, the same module object), so code written against them keeps working."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

MOVED = {
    **{f"softgrad.{m}": f"softgrad.check.{m}" for m in ("cases", "oracle", "tolerance", "properties", "checker")},
    "softgrad.check_run": "softgrad.check.isolated",
    **{f"softgrad.{m}": f"softgrad.bench.{m}"
       for m in ("grid", "asv_suite", "timer", "bandwidth", "buildtime", "threads", "confirm")},
    **{f"softgrad.{m}": f"softgrad.history.{m}"
       for m in ("store", "results", "choose", "report", "dashboard", "provenance", "units")},
    "softgrad.compare": "softgrad.history.gate",
}


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - importlib's signature
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec) -> ModuleType:  # noqa: ANN001
        module = importlib.import_module(MOVED[spec.name])
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # already executed under its new name; importlib set __spec__ to the old name's: put it back
        module.__spec__ = self._own_spec


def install() -> None:
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())
