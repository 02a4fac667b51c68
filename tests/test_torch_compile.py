"""torch-compile: unavailable, with the reason, where inductor has no C++ compiler (faked by a ``CXX`` that
names no program); the entry survives a trip to a worker process; and past dynamo's default cache of 8
graphs per function every new shape is still compiled, never run eagerly under the entry's name."""

import json
import os
import pickle
import subprocess
import sys

import pytest

from softgrad import registry
from softgrad.testing import conformance_params

registry.load_builtins()
from softgrad.implementations import torch_compile as tc  # noqa: E402

NO_COMPILER = "/nonexistent/softgrad-test/g++"


@pytest.fixture
def no_compiler(monkeypatch):
    monkeypatch.setenv("CXX", NO_COMPILER)


def test_compiler_is_cxx_else_the_platform_default(monkeypatch):
    monkeypatch.setenv("CXX", "/opt/cc/bin/clang++")
    assert tc.compiler() == "/opt/cc/bin/clang++"
    monkeypatch.delenv("CXX")
    assert tc.compiler() == ("clang++" if sys.platform == "darwin" else "g++")


@pytest.mark.skipif(tc.shutil.which(tc.compiler()) is None, reason="no C++ compiler here to take away")
def test_a_missing_compiler_makes_the_entry_unavailable_with_the_reason(no_compiler):
    impl = registry.get("torch-compile")
    reason = impl.unavailable_reason()
    if reason and "torch" in impl.missing():
        pytest.skip(reason)
    assert reason and "C++ compiler" in reason and NO_COMPILER in reason, reason
    assert not impl.available and impl.present_devices() == ()
    assert impl.unsupported_reason("softmax", "float32") == reason
    with pytest.raises(RuntimeError, match=r"C\+\+ compiler"):  # never built: one line, not a compile error
        impl.ops_for("cpu")
    (param,) = conformance_params(["torch-compile"])  # one skipped param, not a failure per case
    assert param.id == "torch-compile-unavailable" and param.marks[0].name == "skip"


def test_the_compiler_reason_comes_after_a_missing_torch(no_compiler, monkeypatch):
    """Without torch the entry says so first, as every torch entry does; the compiler is not probed."""
    real = registry.importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda m, *a: None if m == "torch" else real(m, *a))
    impl = registry.get("torch-compile")
    assert impl.missing() == ["torch"]
    assert impl.unavailable_reason() == "not installed: torch"


@pytest.mark.skipif(tc.shutil.which(tc.compiler()) is None, reason="no C++ compiler here to take away")
def test_softgrad_list_and_check_report_it_in_one_line():
    env = {**os.environ, "CXX": NO_COMPILER}
    out = subprocess.run([sys.executable, "-m", "softgrad.cli", "list", "--json"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    (entry,) = [e for e in json.loads(out.stdout) if e["name"] == "torch-compile"]
    if entry["reason"] == "not installed: torch":
        pytest.skip("torch is not installed")
    assert not entry["available"] and "C++ compiler" in entry["reason"]
    out = subprocess.run([sys.executable, "-m", "softgrad.cli", "check", "--impl", "torch-compile", "--op", "softmax",
                          "--dtype", "float32", "--case", "normal-1", "--no-progress"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "0 failed, 1 skipped" in out.stdout and "C++ compiler" in out.stdout, out.stdout
    assert "nothing was checked" in out.stderr and NO_COMPILER in out.stderr, out.stderr


def test_the_entry_pickles_as_itself():
    impl = registry.get("torch-compile")
    back = pickle.loads(pickle.dumps(impl))
    assert type(back) is tc.CompiledEntry and back == impl


@pytest.mark.slow  # ten C++ compiles (about 2 s each here)
def test_shapes_past_dynamos_default_cache_are_all_compiled():
    torch = pytest.importorskip("torch")
    impl = registry.get("torch-compile")
    if impl.unavailable_reason():
        pytest.skip(impl.unavailable_reason())
    from torch._dynamo.utils import counters

    softmax = impl.ops_for("cpu")["softmax"]
    before = counters["stats"]["unique_graphs"]
    for n in range(3, 13):  # 10 shapes: dynamo's default of 8 graphs a function would run the last two eagerly
        x = torch.randn(4, n, dtype=torch.float32)
        assert torch.allclose(softmax(x), torch.softmax(x, -1), rtol=1e-6, atol=0)
    assert counters["stats"]["unique_graphs"] - before == 10
