"""The example files (shown exactly in the README and docs/library-authors.md) import their library as a
user's test file would: where the library is not installed (the NumPy-only install), the file is reported as
skipped with the reason instead of failing collection."""

from __future__ import annotations

import importlib.util

import pytest

#: example file -> the package it imports at its top without a guard
NEEDS = {"test_check_scipy_softmax.py": "scipy"}


class _Absent(pytest.Module):
    def collect(self):
        pytest.skip(f"{self.path.name} needs {NEEDS[self.path.name]}, which is not installed")


def pytest_pycollect_makemodule(module_path, parent):
    package = NEEDS.get(module_path.name)
    if package is not None and importlib.util.find_spec(package) is None:
        return _Absent.from_parent(parent, path=module_path)
    return None
