"""NumPy arrays that start on a cache line, as torch's and XLA's CPU allocators place theirs.

NumPy's allocator aligns to 16 bytes only: under glibc's defaults a large array starts 16 bytes past a page,
under the timing processes' allocator settings (:mod:`softgrad.bench.allocator`) on any 16-byte boundary of the
heap, a different one each run. A 64-byte vector load or store from such an address spans two cache lines.
Measured (2026-12-07, the 2-core AMD VM, ``numba-fused`` float32 at 512x262144, x, g and the result each 64-byte
aligned or 16 bytes past, interleaved in one process): softmax 28-42 ms aligned against 41-57 ms with either the
inputs or the result 16 bytes off, the VJP 51-54 ms against 64-89 ms. So the NumPy backend's inputs start on a
cache line (every entry then reads inputs placed alike: torch's and JAX's already were), which also takes that
run-to-run lottery out of the timings.
"""

from __future__ import annotations

import math

import numpy as np

#: bytes an array's first element is aligned to: a cache line, and the width of an AVX-512 vector
CACHE_LINE = 64


def empty(shape: tuple[int, ...], dtype, align: int = CACHE_LINE) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` whose first element lies at a multiple
    of ``align`` bytes (a view into a slightly larger buffer; about 2 us more than ``np.empty``)."""
    if any(d < 0 for d in shape):  # as np.empty: a -1 would otherwise be inferred by the reshape below
        raise ValueError(f"negative dimensions are not allowed: {shape}")
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buf = np.empty(nbytes + align, np.uint8)
    start = -buf.ctypes.data % align
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def placed(a: np.ndarray, dtype=None, align: int = CACHE_LINE) -> np.ndarray:
    """A C-contiguous copy of ``a`` (cast to ``dtype`` as ``astype`` would, in the same pass) that starts at a
    multiple of ``align`` bytes."""
    out = empty(a.shape, a.dtype if dtype is None else dtype, align)
    np.copyto(out, a, casting="unsafe")
    return out
