"""pytest-benchmark speed suite: the fast local regression gate (asv keeps the long history).

    pytest benchmarks/ --benchmark-autosave                       # save a baseline (.benchmarks/)
    pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=median:20%   # fail if 20% slower

Every available implementation x op at a few sizes, float32 on CPU (and CUDA when present), JIT warm-up
and device transfer done before timing, the device synchronised inside the timed call.

Nothing happens at import: asv's discovery imports every module in ``benchmarks/`` inside its fork
server, and a device probe here (``jax.devices``) started XLA's thread pool there, so every JAX benchmark
process forked from it deadlocked in its first compilation. The grid is built in ``pytest_generate_tests``.
"""

from __future__ import annotations

import pytest

from softgrad import registry
from softgrad.bench import grid
from softgrad.bench.asv_suite import inputs
from softgrad.backends import get_backend

try:
    import pytest_benchmark  # noqa: F401
except ImportError:
    pytestmark = pytest.mark.skip(reason="pytest-benchmark is not installed")

SHAPES = ("256x64", "256x1024", "1x1024")
DTYPE = "float32"


def _params():
    out = []
    for impl in registry.all_implementations():
        if not impl.available:
            continue
        for device in impl.available_devices():
            for op in impl.ops:
                for shape in SHAPES:
                    batch, n = grid.parse_shape(shape)
                    if impl.unsupported(op, DTYPE, device, n, batch * n) or (impl.family == "loops" and batch > 1):
                        continue
                    if op == "jacobian" and batch > 1 and n > 256 or impl.name == "torch-loops" and n > 64:
                        continue  # seconds per call: the asv grid covers these
                    out.append(pytest.param(impl.name, op, shape, device, id=f"{impl.name}-{op}-{shape}-{device}"))
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.function.__name__ == "test_speed":
        metafunc.parametrize("name,op,shape,device", _params())


def test_speed(benchmark, name, op, shape, device):
    impl = registry.get(name)
    backend = get_backend(impl.backend)
    fn = impl.ops_for(device)[op]
    batch, n = grid.parse_shape(shape)
    x, g = inputs(batch, n, DTYPE)
    args = (backend.from_numpy(x, DTYPE, device),)
    if op == "vjp":
        args += (backend.from_numpy(g, DTYPE, device),)
    backend.wait(fn(*args), device)  # compile and warm up outside the timing
    benchmark.group = f"{op} {shape} {DTYPE} {device}"
    benchmark.extra_info.update(impl=name, family=impl.family)
    benchmark(lambda: backend.wait(fn(*args), device))
