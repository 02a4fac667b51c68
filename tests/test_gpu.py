"""CUDA paths: torch and JAX entries on a GPU, checked and timed with synchronisation.

On a machine without a CUDA device every test here that needs one skips, saying why (torch or JAX not
installed, built without CUDA, or no device seen); the last asserts that such a machine offers no cuda
device to the harness (so nothing is silently run on the CPU instead). On a GPU every case checked must
pass, counted: a skipped case is not a pass.
"""

from __future__ import annotations

import importlib.util
import itertools
import math

import pytest

from softgrad import registry
from softgrad.applicability import output_elements
from softgrad.check.cases import get_case
from softgrad.check.checker import JACOBIAN_ELEMENT_BUDGET, Record, check_case

pytestmark = pytest.mark.gpu


def _torch_cuda_missing() -> str | None:
    """Why torch has no CUDA device here, or None when it has one."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    return None


def _jax_gpu_missing() -> str | None:
    """Why JAX has no GPU device here, or None when it has one."""
    if importlib.util.find_spec("jax") is None:
        return "jax is not installed"
    if "cuda" not in registry.get("jax-jit").available_devices():
        return "JAX sees no GPU device"
    return None


def _torch_cuda() -> bool:
    return _torch_cuda_missing() is None


def _jax_gpu() -> bool:
    return _jax_gpu_missing() is None


needs_torch_cuda = pytest.mark.skipif(not _torch_cuda(), reason=f"no CUDA device: {_torch_cuda_missing()}")
needs_jax_gpu = pytest.mark.skipif(not _jax_gpu(), reason=f"no GPU device: {_jax_gpu_missing()}")

#: every one of these applies to every op and dtype of the entries below (none is past a declared limit or
#: the checker's Jacobian budget), so each must pass: a skip would be a case that silently stopped running
TORCH_CASES = ("normal-10", "masked-neg-inf", "transposed", "n-1025", "batch-70000")
JAX_CASES = ("normal-10", "masked-neg-inf", "n-1025")


def _verdicts(entry: registry.Implementation, op: str, dtype: str, cases: tuple[str, ...]) -> list[Record]:
    """The checker's record of each case on cuda."""
    return [check_case(entry, op, dtype, get_case(case), "cuda") for case in cases]


@pytest.mark.parametrize("impl, cases, dtypes", [
    *((name, TORCH_CASES, ("float64", "float32", "float16", "bfloat16"))
      for name in ("torch-native", "torch-formula", "torch-func", "torch-autograd")),
    *((name, JAX_CASES, ("float64", "float32")) for name in ("jax-jit", "jax-formula"))])
def test_every_case_the_gpu_tests_count_applies_to_every_op_and_dtype(impl, cases, dtypes):
    """The premise of the counts below, held without a GPU: no case is past the entry's declared limits, the
    checker's Jacobian budget or the ops the case is for, so on a GPU each one must pass."""
    entry = registry.get(impl)
    if not entry.available:
        pytest.skip(f"{impl}'s framework is not installed")
    for op, dtype, name in itertools.product(("softmax", "jacobian", "vjp"), dtypes, cases):
        case = get_case(name)
        rows, n = math.prod(case.shape[:-1]), case.shape[-1]
        assert entry.unsupported_reason(op, dtype, "cuda", n, rows * n) is None, (op, dtype, name)
        assert output_elements(op, case.shape) <= JACOBIAN_ELEMENT_BUDGET and op in case.ops, (op, dtype, name)


@needs_torch_cuda
@pytest.mark.parametrize("impl", ["torch-native", "torch-formula", "torch-func", "torch-autograd"])
@pytest.mark.parametrize("op", ["softmax", "jacobian", "vjp"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_torch_entries_pass_on_cuda(impl, op, dtype):
    entry = registry.get(impl)
    assert "cuda" in entry.available_devices()
    records = _verdicts(entry, op, dtype, TORCH_CASES)
    passed = [r for r in records if r.verdict == "pass"]
    assert len(passed) == len(TORCH_CASES), [r.line() for r in records if r.verdict != "pass"]


@needs_jax_gpu
@pytest.mark.parametrize("impl", ["jax-jit", "jax-formula"])
@pytest.mark.parametrize("op", ["softmax", "jacobian", "vjp"])
def test_jax_entries_pass_on_gpu(impl, op):
    entry = registry.get(impl)
    records = [r for dtype in ("float64", "float32") for r in _verdicts(entry, op, dtype, JAX_CASES)]
    passed = [r for r in records if r.verdict == "pass"]
    assert len(passed) == 2 * len(JAX_CASES), [r.line() for r in records if r.verdict != "pass"]


@needs_torch_cuda
def test_gpu_timing_is_synchronised_and_the_copy_is_measured():
    """The timer's median cannot be below the GPU time CUDA events see for the same call: a timer that
    read the clock before the kernels finished would report the launch time."""
    import torch

    from softgrad.bench import timer
    from softgrad.backends import get_backend
    from softgrad.bench.bandwidth import gpu_copy_bandwidth

    copy = gpu_copy_bandwidth()
    assert copy is not None and copy.gbps > 0, copy
    impl = registry.get("torch-native")
    shape = (16384, 1024)
    t = timer.time_op(impl, "vjp", shape, "float32", "cuda", min_time=0.2)
    backend = get_backend("torch")
    x, g = timer.make_inputs(shape, "float32")
    args = (backend.from_numpy(x, "float32", "cuda"), backend.from_numpy(g, "float32", "cuda"))
    fn = impl.ops_for("cuda")["vjp"]
    fn(*args)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    gpu = []
    for _ in range(20):
        start.record()
        fn(*args)
        end.record()
        end.synchronize()
        gpu.append(start.elapsed_time(end) / 1e3)
    gpu.sort()
    assert t.median_s >= 0.9 * gpu[len(gpu) // 2], (t, gpu)


def test_without_cuda_no_entry_offers_a_gpu():
    if _torch_cuda() or _jax_gpu():
        pytest.skip("this machine has a GPU: the tests above ran on it")
    for impl in registry.all_implementations():
        if impl.available:
            assert "cuda" not in impl.available_devices(), impl.name
    if importlib.util.find_spec("torch"):
        from softgrad.bench.bandwidth import gpu_copy_bandwidth

        assert gpu_copy_bandwidth() is None
