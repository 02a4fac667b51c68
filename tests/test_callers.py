"""Inputs and results as callers hold them: the leading columns of a padded buffer as x or g, and a result
the caller keeps while it calls again (a later call must not change it), on every backend and through every
face of the checker (``softgrad check``, the conformance suite, ``softgrad.testing``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from softgrad.backends import get_backend
from softgrad.check.cases import CASES
from softgrad.prepared import PAD_MULTIPLE, padded_width, prepare, view
from softgrad.registry import Implementation
from softgrad.testing import check

from mutants import jacobian, softmax, vjp

ROOT = Path(__file__).resolve().parent.parent
REUSED_OUTPUT = Path(__file__).parent / "plugins" / "reused_output.py"


def _run(*args: str, plugin: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SOFTGRAD_PLUGINS": str(plugin)}
    env.pop("SOFTGRAD_PLUGIN_FILES", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


# --- padded rows ----------------------------------------------------------------------------------------


def test_the_padding_is_never_empty():
    assert [padded_width(n) for n in (0, 1, 50, 63, 64, 65, 50257)] == [64, 64, 64, 64, 128, 128, 50304]
    assert all(padded_width(n) % PAD_MULTIPLE == 0 and padded_width(n) > n for n in range(300))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_padded_view_has_unit_last_stride_rows_a_buffer_apart_and_nan_padding(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    b = get_backend(backend)
    x = np.arange(2 * 3 * 64, dtype=np.float64).reshape(2, 3, 64) % 7
    a = view(b.from_numpy(x, "float32", "cpu"), "padded", backend=b)
    assert np.array_equal(b.to_numpy(a), x)
    if backend == "numpy":
        strides = tuple(s // a.itemsize for s in a.strides)
        buf = np.lib.stride_tricks.as_strided(a, (2, 3, 128), a.strides)  # the rows with their padding
    else:
        strides, buf = a.stride(), np.asarray(a.as_strided((2, 3, 128), (384, 128, 1)))
    assert strides == (3 * 128, 128, 1)  # n = 64 padded to 128: a row stride past n, the last stride 1
    assert buf.shape == (2, 3, 128) and np.isnan(buf[..., 64:]).all()


def test_jax_gets_the_same_values_as_a_new_array():
    pytest.importorskip("jax")
    b = get_backend("jax")
    x = np.arange(8 * 50, dtype=np.float64).reshape(8, 50) % 5
    a = view(b.from_numpy(x, "bfloat16", "cpu"), "padded", backend=b)
    assert a.shape == (8, 50) and np.array_equal(b.to_numpy(a), x)


def test_the_prepared_call_hands_over_padded_views_of_x_and_g():
    impl = Implementation.from_ops("probe", vjp=vjp, dtypes=("float64",))
    for name, x_padded, g_padded in (("padded", True, True), ("x-padded-g-contiguous", True, False),
                                     ("x-contiguous-g-padded", False, True)):
        case = CASES[name]
        call = prepare(impl, "vjp", "float64", "cpu", *case.inputs("float64"), layout=case.layout,
                       g_layout=case.layout_of_g)
        for arr, padded in ((call.x, x_padded), (call.g, g_padded)):
            assert arr.shape == case.shape and arr.strides[-1] == arr.itemsize
            assert arr.flags.c_contiguous is not padded, name
            if padded:
                assert arr.strides[-2] == padded_width(case.n) * arr.itemsize


def test_torch_rows_taken_as_packed_are_caught_on_the_padded_case_only():
    torch = pytest.importorskip("torch")

    def packed_rows_softmax(x):
        """A kernel that copies unless stride(-1) == 1, then takes row i at i * n."""
        x = x if x.stride(-1) == 1 else x.contiguous()
        packed = x.as_strided(x.shape, torch.empty(x.shape).stride())
        return torch.softmax(packed, -1)

    with pytest.raises(AssertionError) as exc:
        check(softmax=packed_rows_softmax, backend="torch", dtypes=("float32",),
              cases=["normal-1", "transposed", "sliced", "leading-3d", "padded"])
    failing = str(exc.value).splitlines()[1:]
    assert len(failing) == 1 and "case padded (8, 50)" in failing[0] and "[nan-policy]" in failing[0], failing


# --- a result is the caller's ---------------------------------------------------------------------------


def test_a_static_output_buffer_is_caught_by_testing_check_on_numpy_and_torch():
    outputs: dict = {}

    def numpy_static(x):
        out = outputs.setdefault(("np", x.shape), np.empty(x.shape, x.dtype))
        out[...] = softmax(x)
        return out

    with pytest.raises(AssertionError, match=r"\[result-overwritten\].*changed by 2 later calls on other values"):
        check(softmax=numpy_static, dtypes=("float64",), cases=["normal-1"])
    torch = pytest.importorskip("torch")

    def torch_static(x):
        out = outputs.setdefault(("torch", tuple(x.shape), x.dtype), torch.empty_like(x))
        out.copy_(torch.softmax(x, -1))
        return out

    with pytest.raises(AssertionError, match=r"\[result-overwritten\]"):
        check(softmax=torch_static, backend="torch", dtypes=("float32",), cases=["normal-1"])


def test_immutable_and_fresh_results_pass():
    check(softmax=softmax, jacobian=jacobian, vjp=vjp, dtypes=("float64",), cases=["normal-1", "padded"])
    pytest.importorskip("jax")
    import jax

    check(softmax=lambda x: jax.nn.softmax(x, axis=-1), backend="jax", dtypes=("float32",),
          cases=["normal-1", "padded"])


def test_softgrad_check_and_the_conformance_suite_report_an_overwritten_result(tmp_path):
    out = tmp_path / "records.json"
    proc = _run("-m", "softgrad.cli", "check", "--impl", "plugin-reused-output", "--case", "normal-1", "--json",
                str(out), "--no-progress", plugin=REUSED_OUTPUT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = {r["op"]: r["failed"] for r in json.loads(out.read_text())}
    assert failed == {"softmax": ["result-overwritten"], "jacobian": [], "vjp": ["result-overwritten"]}
    assert "plugin-reused-output vjp float64 cpu case normal-1 (8, 37): FAIL [result-overwritten]" in proc.stdout
    proc = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_conformance.py"), "-k",
                "plugin-reused-output and normal-1 and not normal-10", plugin=REUSED_OUTPUT)
    assert proc.returncode == 1 and "2 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    assert proc.stdout.count("FAIL [result-overwritten]") >= 2, proc.stdout[-3000:]
