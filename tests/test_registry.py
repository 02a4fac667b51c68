"""Registration, availability and lazy imports."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import softgrad
from softgrad import registry
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


def test_planning_a_check_on_the_cpu_imports_no_framework():
    """The parent of ``softgrad check`` and ``softgrad run`` lists each entry's tasks and asks whether it
    applies on the CPU: doing so must not load torch's or XLA's thread pools into a process that forks the
    workers (JAX warns of a deadlock when a process that imported it forks)."""
    code = ("import sys, softgrad; from softgrad.check.isolated import CheckSelection, tasks_for; "
            "from softgrad.applicability import applicable; "
            "tasks = [t for i in softgrad.all_implementations() if i.available for t in tasks_for(i, "
            "CheckSelection(quick=True))]; "
            "assert all(t[2] == 'cpu' for t in tasks) or __import__('softgrad').registry.gpu_driver_present(); "
            "[applicable(i, 'vjp', 'float32', 'cpu', (4, 8)) for i in softgrad.all_implementations()]; "
            "print(len(tasks) > 0, sorted(m for m in ('torch', 'jax', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True []", out.stdout + out.stderr


def test_a_gpu_is_asked_of_the_framework_only_where_a_driver_is_installed(monkeypatch):
    entry = registry.get("numpy")
    gpu_entry = dataclasses.replace(entry, devices=("cpu", "cuda"))
    asked = []
    monkeypatch.setattr(registry.Implementation, "available_devices",
                        lambda self: asked.append(self.name) or ("cpu", "cuda"))
    monkeypatch.setattr(registry, "gpu_driver_present", lambda: False)
    assert gpu_entry.present_devices() == ("cpu",) and asked == []
    monkeypatch.setattr(registry, "gpu_driver_present", lambda: True)
    assert gpu_entry.present_devices() == ("cpu", "cuda") and asked == ["numpy"]
    assert not entry.has_device("cuda"), "a device the entry does not declare is never present"


def test_builtin_families_are_registered():
    families = {i.family for i in softgrad.all_implementations()}
    assert {"loops", "numpy", "numba", "torch", "jax"} <= families


def test_numpy_entry_round_trip():
    ops = softgrad.get("numpy").ops_for("cpu")
    s = ops["softmax"](np.array([[0.0, 0.0]]))
    assert s.tolist() == [[0.5, 0.5]]
