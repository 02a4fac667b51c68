"""The example files (shown exactly in the README and docs/library-authors.md) import their library as a
user's test file would: where the library is not installed (the NumPy-only install), the file is reported as
skipped with the reason instead of failing collection. An example whose check the fast suite already makes
another way runs with the slow tests only (:data:`SLOW`), the file unchanged."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

#: example file -> the package it imports at its top without a guard
NEEDS = {"test_check_scipy_softmax.py": "scipy"}
#: example file -> why ``make test`` leaves it to ``make test-slow``
SLOW = {"test_check_jax_softmax.py": "jax.jit compiles each case's shape (36-60 s of make test); the conformance "
                                     "suite's jax-jit entry is the same jit(jax.nn.softmax) and jax.vjp on every "
                                     "quick case, and tests/test_callers.py takes check()'s jax route"}


class _Absent(pytest.Module):
    def collect(self):
        pytest.skip(f"{self.path.name} needs {NEEDS[self.path.name]}, which is not installed")


def pytest_pycollect_makemodule(module_path, parent):
    package = NEEDS.get(module_path.name)
    if package is not None and importlib.util.find_spec(package) is None:
        return _Absent.from_parent(parent, path=module_path)
    return None


@pytest.hookimpl(tryfirst=True)  # before ``-m "not slow"`` deselects
def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.parent == Path(__file__).parent and item.path.name in SLOW:
            item.add_marker(pytest.mark.slow)
