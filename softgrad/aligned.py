"""NumPy arrays that start on a cache line, as torch's and XLA's CPU allocators place theirs.

NumPy's allocator aligns to 16 bytes only: under glibc's defaults a large array starts 16 bytes past a page,
under the timing processes' allocator settings (:mod:`softgrad.bench.allocator`) on any 16-byte boundary of the
heap, a different one each run. A 64-byte vector load or store from such an address spans two cache lines.
Measured (2026-12-07, the 2-core AMD VM, ``numba-fused`` float32 at 512x262144, x, g and the result each 64-byte
aligned or 16 bytes past, interleaved in one process): softmax 28-42 ms aligned against 41-57 ms with either the
inputs or the result 16 bytes off, the VJP 51-54 ms against 64-89 ms. So the NumPy backend's inputs start on a
cache line (every entry then reads inputs placed alike: torch's and JAX's already were), which also takes that
run-to-run lottery out of the timings.

Where a result lies against its inputs matters too (:func:`empty_apart`). On the AMD host (Zen 4, 2026-12-08) a
kernel that stores a stream while it loads another from an address a multiple of 256 MiB away (within a few KiB)
ran up to 2.9x slower: ``numba-fused``'s float32 VJP at 131072x1024, its three arrays in one buffer, took 58-89 ms
with the result 0 to 4 KiB past g modulo 2**28 and 30-38 ms from 64 KiB on (64 KiB to 2 MiB; 16 and 128 MiB in a
slower minute 46-47 ms, 2**28 itself 74 ms); the softmax 52-74 ms with the result on x or 4 KiB past it against
35-43 ms. Same-sized arrays made one after
another lie a little more than their size apart, so every array of a multiple of 256 MiB (131072x1024 and
512x262144 float32) met it. The period matches the L1 way predictor's tag, a hash of virtual address bits 12-27
on AMD's cores (Lipp et al., "Take A Way", AsiaCCS 2020): two lines with the same set and tag evict each other
from the L1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

#: bytes an array's first element is aligned to: a cache line, and the width of an AVX-512 vector
CACHE_LINE = 64
#: addresses this many bytes apart (a multiple of it) evict each other from the L1 of AMD's cores (module docstring)
ALIAS_PERIOD = 1 << 28
#: the least distance :func:`empty_apart` keeps, modulo :data:`ALIAS_PERIOD`, between a result and each input:
#: four L1s of 32 KiB, so that by the time a stream reaches an address aliasing another's, the other has moved
#: on that far and its lines have left the L1 (measured: 64 KiB and more all fast)
APART = 128 << 10


def empty(shape: tuple[int, ...], dtype, align: int = CACHE_LINE) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` whose first element lies at a multiple
    of ``align`` bytes (a view into a slightly larger buffer; about 2 us more than ``np.empty``)."""
    return _carved(shape, dtype, align, lambda base: -base % align)


def empty_apart(shape: tuple[int, ...], dtype, inputs: Sequence[np.ndarray], align: int = CACHE_LINE,
                period: int | None = None, apart: int | None = None) -> np.ndarray:
    """:func:`empty`, placed so that its start lies at least ``apart`` bytes (:data:`APART`), modulo ``period``
    (:data:`ALIAS_PERIOD`), from each of ``inputs``' first elements (the arrays a kernel reads while it writes
    this one). The buffer is larger by ``len(inputs) * (2 * apart + align) + align`` bytes, never touched."""
    period = ALIAS_PERIOD if period is None else period
    apart = APART if apart is None else apart
    starts = [a.ctypes.data % period for a in inputs]
    slack = len(starts) * (2 * apart + align) + align
    return _carved(shape, dtype, slack, lambda base: start_apart(base, starts, align, period, apart))


def _carved(shape: tuple[int, ...], dtype, slack: int, offset: Callable[[int], int]) -> np.ndarray:
    """An uninitialised array of ``shape`` and ``dtype`` in a buffer ``slack`` bytes larger, starting
    ``offset(the buffer's address)`` bytes into it (at most ``slack``)."""
    if any(d < 0 for d in shape):  # as np.empty: a -1 would otherwise be inferred by the reshape below
        raise ValueError(f"negative dimensions are not allowed: {shape}")
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buf = np.empty(nbytes + slack, np.uint8)
    start = offset(buf.ctypes.data)
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def start_apart(base: int, starts: Sequence[int], align: int, period: int, apart: int) -> int:
    """The least offset from address ``base`` to a multiple of ``align`` that lies at least ``apart`` bytes from
    each of ``starts`` modulo ``period``: at most ``len(starts) * (2 * apart + align) + align``."""
    if len(starts) * (2 * apart + align) + align > period:
        raise ValueError(f"{len(starts)} starts {apart} bytes apart cannot fit in a period of {period} bytes")
    first = base + -base % align
    # the earliest such address is the first aligned one or the aligned end of a forbidden arc (s - apart,
    # s + apart) around a start; the arcs, one line more each for the rounding, cannot cover the whole window
    ends = (first + (s + apart - first) % period for s in starts)
    for at in sorted([first, *(e + -e % align for e in ends)]):
        if all(min((at - s) % period, (s - at) % period) >= apart for s in starts):
            return at - base
    raise AssertionError("no start apart from the inputs")  # pragma: no cover - the window always holds one


def placed(a: np.ndarray, dtype=None, align: int = CACHE_LINE) -> np.ndarray:
    """A C-contiguous copy of ``a`` (cast to ``dtype`` as ``astype`` would, in the same pass) that starts at a
    multiple of ``align`` bytes."""
    out = empty(a.shape, a.dtype if dtype is None else dtype, align)
    np.copyto(out, a, casting="unsafe")
    return out
