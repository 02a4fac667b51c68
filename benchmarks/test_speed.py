"""pytest-benchmark speed suite: the fast local regression gate (asv keeps the long history).

    pytest benchmarks/ --benchmark-autosave                       # save a baseline (.benchmarks/)
    pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=median:20%   # fail if 20% slower

Every available implementation x op at a few sizes, float32 on CPU (and CUDA when present), JIT warm-up
and device transfer done before timing, the device synchronised inside the timed call. What an entry does
not declare, an output past the quick grid's memory budget, or a call estimated (from one row) to take
longer than :data:`MAX_CALL_SECONDS` is skipped.

Nothing happens at import: asv's discovery imports every module in ``benchmarks/`` inside its fork
server, and a device probe here (``jax.devices``) started XLA's thread pool there, so every JAX benchmark
process forked from it deadlocked in its first compilation. The grid is built in ``pytest_generate_tests``.
"""

from __future__ import annotations

import pytest

from softgrad import registry
from softgrad.applicability import applicable
from softgrad.bench import grid
from softgrad.bench.timer import make_inputs
from softgrad.contract import DTYPE_INFO
from softgrad.prepared import PROBE_N, prepare, too_slow

try:
    import pytest_benchmark  # noqa: F401
except ImportError:
    pytestmark = pytest.mark.skip(reason="pytest-benchmark is not installed")

SHAPES = ("256x64", "256x1024", "1x1024")
DTYPE = "float32"
#: a local gate: pytest-benchmark calls each at least 5 times, for about a second; slower calls (pure-Python
#: code over a batch, element-by-element tensor writes) are left to the asv grid
MAX_CALL_SECONDS = 0.05


def _params():
    out = []
    budget = grid.QUICK_MAX_OUTPUT_BYTES // DTYPE_INFO[DTYPE].itemsize
    for impl in registry.all_implementations():
        if not impl.available:
            continue
        for device in impl.available_devices():
            for op in impl.ops:
                for shape in SHAPES:
                    if applicable(impl, op, DTYPE, device, grid.parse_shape(shape), max_output_elements=budget):
                        continue
                    out.append(pytest.param(impl.name, op, shape, device, id=f"{impl.name}-{op}-{shape}-{device}"))
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.function.__name__ == "test_speed":
        metafunc.parametrize("name,op,shape,device", _params())


def test_speed(benchmark, name, op, shape, device):
    impl = registry.get(name)
    x, g = make_inputs(grid.parse_shape(shape), DTYPE)
    reason = too_slow(impl, op, DTYPE, device, x, g, budget_s=MAX_CALL_SECONDS, row_n=PROBE_N)
    if reason:
        pytest.skip(reason)
    call = prepare(impl, op, DTYPE, device, x, g)
    call()  # compile and warm up outside the timing
    benchmark.group = f"{op} {shape} {DTYPE} {device}"
    benchmark.extra_info.update(impl=name, family=impl.family)
    benchmark(call)
