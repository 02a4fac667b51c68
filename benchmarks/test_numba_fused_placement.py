"""pytest-benchmark: numba-fused's kernels with their output placed against their input, both ways.

Where glibc carves a new block right after the last one (nothing freed fits), ``np.empty`` for a result made
right after x starts 16 bytes past x's end. The buffers here are placed by hand, so each case times what its
name says (an entry's own allocations cannot be placed so from outside: a heap-based probe of every entry put
the result elsewhere in 6 of 20 cases). Run with the speed suite: ``pytest benchmarks/ -k "placement or aliasing"``.
"""

from __future__ import annotations

import pytest

from softgrad.bench import grid
from softgrad.bench.timer import make_inputs

try:
    import pytest_benchmark  # noqa: F401
except ImportError:
    pytestmark = pytest.mark.skip(reason="pytest-benchmark is not installed")

DTYPE = "float32"


@pytest.mark.parametrize("placement", ["right after x", "64 KiB apart"])
@pytest.mark.parametrize("op", ["softmax", "vjp"])
@pytest.mark.parametrize("shape", ["256x64", "64x300"])
def test_numba_fused_output_placement(benchmark, shape, op, placement):
    """numba-fused's kernel with its output starting 16 bytes after x's last element (where glibc puts the next
    block after x's, as ``np.empty`` for the result right after making x does) and 64 KiB apart: the two
    should take the same time. Until 2026-12-07 LLVM's alias check, hoisted out of the loop over rows,
    covered one row past x, so an output within a row of x's end sent every row to the scalar loops (float32,
    4-6x the time); compare the group's two cases."""
    pytest.importorskip("numba")
    import numba
    import numpy as np

    from softgrad.implementations import numba_fused as nf

    rows, n = grid.parse_shape(shape)
    parallel = rows * n + nf.ROW_WEIGHT * rows >= nf.serial_limit(np.dtype(DTYPE).itemsize)  # as the entry chooses
    kernel = nf._kernel(op, DTYPE, parallel)
    x, g = (a.astype(DTYPE).reshape(-1) for a in make_inputs((rows, n), DTYPE))
    size = x.nbytes
    gap = 16 if placement == "right after x" else 65536
    g_at = 2 * size + gap + 4096  # g a page past the output
    buf = np.empty(4096 + 16 + g_at + size, np.uint8)  # room for the start's shift to a page's 16th byte
    start = (-buf.ctypes.data) % 4096 + 16

    def at(offset: int, values: np.ndarray) -> np.ndarray:
        a = buf[start + offset:start + offset + size].view(DTYPE)
        a[:] = values
        return a

    xp, out = at(0, x), at(size + gap, x)
    gp = at(g_at, g)
    workers = numba.get_num_threads() if parallel else 1
    kernel(xp, n, gp, n, out, n, 1, workers)
    benchmark.group = f"numba-fused output placement {op} {shape} {DTYPE}"
    benchmark(kernel, xp, n, gp, n, out, n, 1, workers)


@pytest.mark.parametrize("placement", ["on g modulo 256 MiB", "128 KiB past that"])
@pytest.mark.parametrize("op", ["softmax", "vjp"])
def test_numba_fused_output_aliasing(benchmark, op, placement):
    """numba-fused's kernel at 65536x1024 float32 (256 MiB an array) with its output starting 256 MiB past g's
    first element (g 256 MiB and a line past x's, so the output lies a line past x's modulo 256 MiB), and 128 KiB
    further on, where ``softgrad.aligned.empty_apart`` puts the entry's results. On the AMD host lines 256 MiB apart evict each
    other from the L1: 131072x1024 float32 VJP 0.82x the time apart, softmax 0.47-0.77x (2026-12-08, one process,
    interleaved single calls); compare the group's two cases (on an Intel host they should read alike)."""
    pytest.importorskip("numba")
    import numba
    import numpy as np

    from softgrad import aligned
    from softgrad.implementations import numba_fused as nf

    rows, n = 65536, 1024
    kernel = nf._kernel(op, DTYPE, True)
    x, g = (a.astype(DTYPE).reshape(-1) for a in make_inputs((rows, n), DTYPE))
    size = x.nbytes
    shift = 0 if placement.startswith("on g") else aligned.APART
    g_at, out_at = aligned.ALIAS_PERIOD + 64, 2 * aligned.ALIAS_PERIOD + 64 + shift
    buf = np.empty(4096 + out_at + size, np.uint8)
    start = (-buf.ctypes.data) % 4096

    def at(offset: int, values: np.ndarray) -> np.ndarray:
        a = buf[start + offset:start + offset + size].view(DTYPE)
        a[:] = values
        return a

    xp, gp, out = at(0, x), at(g_at, g), at(out_at, x)
    workers = numba.get_num_threads()
    kernel(xp, n, gp, n, out, n, 1, workers)
    benchmark.group = f"numba-fused output aliasing {op} {rows}x{n} {DTYPE}"
    benchmark(kernel, xp, n, gp, n, out, n, 1, workers)
