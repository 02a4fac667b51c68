"""Registration, availability and lazy imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import softgrad
from softgrad.registry import Implementation


def _ops(device):
    return {"softmax": lambda x: x, "jacobian": lambda x: x, "vjp": lambda x, g: x}


def test_register_and_unregister():
    impl = softgrad.register(Implementation("t-reg", "test", _ops, source="test"))
    try:
        assert softgrad.get("t-reg") is impl
        with pytest.raises(ValueError, match="already registered"):
            softgrad.register(Implementation("t-reg", "test", _ops))
    finally:
        softgrad.unregister("t-reg")
    with pytest.raises(KeyError, match="unknown implementation"):
        softgrad.get("t-reg")


def test_entries_declare_what_they_support():
    impl = Implementation("t-lim", "test", _ops, ops=("softmax",), dtypes=("float64",), max_n={"softmax": 8})
    assert impl.unsupported("softmax", "float64", "cpu", 8) is None
    assert "limited to n <= 8" in impl.unsupported("softmax", "float64", "cpu", 9)
    assert "does not implement jacobian" in impl.unsupported("jacobian", "float64")
    assert "does not support float32" in impl.unsupported("softmax", "float32")
    assert "does not run on cuda" in impl.unsupported("softmax", "float64", "cuda")
    with pytest.raises(ValueError, match="unknown dtype"):
        Implementation("t-bad", "test", _ops, dtypes=("float8",))


def test_missing_package_is_a_status_not_a_crash():
    impl = Implementation("t-missing", "test", _ops, requires=("surely_not_a_real_module_xyz",))
    assert not impl.available
    assert impl.unavailable_reason() == "not installed: surely_not_a_real_module_xyz"
    assert impl.available_devices() == ()
    with pytest.raises(RuntimeError, match="not installed"):
        impl.ops_for("cpu")


def test_build_must_provide_declared_ops():
    impl = Implementation("t-partial", "test", lambda d: {"softmax": lambda x: x})
    with pytest.raises(RuntimeError, match="no callable for jacobian, vjp"):
        impl.ops_for("cpu")


def test_importing_softgrad_and_listing_imports_no_framework():
    code = ("import sys, softgrad; softgrad.all_implementations(); "
            "print(sorted(m for m in ('torch', 'jax', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_builtin_families_are_registered():
    families = {i.family for i in softgrad.all_implementations()}
    assert {"loops", "numpy", "numba", "torch", "jax"} <= families


def test_numpy_entry_round_trip():
    ops = softgrad.get("numpy").ops_for("cpu")
    s = ops["softmax"](np.array([[0.0, 0.0]]))
    assert s.tolist() == [[0.5, 0.5]]
