"""CUDA paths: torch and JAX entries on a GPU, checked and timed with synchronisation.

On a machine without a CUDA device every test here but the last skips, saying why; the last asserts
that such a machine offers no cuda device to the harness (so nothing is silently run on the CPU instead).
"""

from __future__ import annotations

import importlib.util

import pytest

from softgrad import registry
from softgrad.check.cases import get_case
from softgrad.check.checker import check_case

pytestmark = pytest.mark.gpu


def _torch_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _jax_gpu() -> bool:
    if importlib.util.find_spec("jax") is None:
        return False
    return "cuda" in registry.get("jax-jit").available_devices()


needs_torch_cuda = pytest.mark.skipif(not _torch_cuda(), reason="no CUDA device for torch here")
needs_jax_gpu = pytest.mark.skipif(not _jax_gpu(), reason="no GPU device for JAX here")


@needs_torch_cuda
@pytest.mark.parametrize("impl", ["torch-native", "torch-formula", "torch-func", "torch-autograd"])
@pytest.mark.parametrize("op", ["softmax", "jacobian", "vjp"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_torch_entries_pass_on_cuda(impl, op, dtype):
    entry = registry.get(impl)
    assert "cuda" in entry.available_devices()
    for case in ("normal-10", "masked-neg-inf", "transposed", "n-1025", "batch-70000"):
        rec = check_case(entry, op, dtype, get_case(case), "cuda")
        assert rec.verdict in ("pass", "skip"), rec.line()


@needs_jax_gpu
@pytest.mark.parametrize("impl", ["jax-jit", "jax-formula"])
@pytest.mark.parametrize("op", ["softmax", "jacobian", "vjp"])
def test_jax_entries_pass_on_gpu(impl, op):
    entry = registry.get(impl)
    for dtype in ("float64", "float32"):
        for case in ("normal-10", "masked-neg-inf", "n-1025"):
            rec = check_case(entry, op, dtype, get_case(case), "cuda")
            assert rec.verdict in ("pass", "skip"), rec.line()


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
