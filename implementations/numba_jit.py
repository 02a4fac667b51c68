"""Numba JIT: fused row kernels, serial (``numba``) and parallel over rows with ``prange`` (``numba-parallel``).

One kernel per op, each a single sweep over a row that stays in cache: max, then ``exp`` and the sums
(the VJP's ``sum(g * e)`` in the same loop), then one scaling pass. No temporaries beyond the output.
float32 rows are computed and summed in float64.

``exp`` is :func:`_exp_nonpositive`, written out (Cody-Waite reduction, degree-13 polynomial, exponent
bits): after the max shift every argument is <= 0, and LLVM vectorises this where it cannot vectorise a
call to libm's ``exp`` (Numba has no vector ``exp`` without Intel's SVML). It is within 1 ulp of
``numpy.exp`` on [-708, 0], returns exactly 0 below -708 and at ``-inf``, and NaN for NaN.

fastmath is limited to ``reassoc``/``contract``/``arcp``/``nsz``, which let LLVM vectorise the row sums;
never ``nnan``/``ninf``, which would let it assume away the ``-inf`` of a mask. A NaN or ``+inf`` in a
row, or a row of only ``-inf``, gives a NaN row (softgrad's non-finite policy): the NaN propagates
through the row's sum.

Kernels compile eagerly for float64 and float32 when the entry is built (the registry's ``compiles``
flag: the harness records the build time). The parallel variant uses Numba's thread count
(``NUMBA_NUM_THREADS``, set by ``softgrad.threads``)."""

from __future__ import annotations

import math
import types

import numpy as np

import softgrad


#: fastmath flags that keep IEEE infinities and NaN (see the module docstring)
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two: k * _LN2_HI is exact for |k| < 2**11
_LN2_LO = 1.90821492927058770002e-10
_C = [1.0 / math.factorial(k) for k in range(14)]
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _C[2:]


def _exp_nonpositive(t):  # pragma: no cover - compiled by numba
    """exp(t) for t <= 0 (or NaN), vectorisable. Compiled without ``reassoc``: the two-step reduction
    ``t - k ln2_hi - k ln2_lo`` must not be merged into one product."""
    k = np.floor(t * _LOG2E + 0.5)
    k = k if k > -1022.0 else -1022.0  # keeps the exponent bits valid; -inf and NaN land here too
    r = t - k * _LN2_HI
    r = r - k * _LN2_LO  # |r| <= ln2 / 2: the Taylor polynomial below is exact to 4e-18
    p = _C13
    p = p * r + _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + 1.0
    p = p * r + 1.0
    two_k = np.int64((np.int64(k) + 1023) << 52).view(np.float64)
    return 0.0 if t < -708.0 else p * two_k  # NaN < -708 is False: a NaN argument gives NaN


def _softmax_rows(x, out):  # pragma: no cover - compiled by numba
    rows, n = x.shape
    for r in _range(rows):
        m = -np.inf
        for i in range(n):
            m = max(m, np.float64(x[r, i]))
        total = 0.0
        for i in range(n):
            e = _exp(np.float64(x[r, i]) - m)
            out[r, i] = e
            total += e
        inv = 1.0 / total
        for i in range(n):
            out[r, i] = out[r, i] * inv


def _vjp_rows(x, g, out):  # pragma: no cover - compiled by numba
    rows, n = x.shape
    for r in _range(rows):
        m = -np.inf
        for i in range(n):
            m = max(m, np.float64(x[r, i]))
        total = 0.0
        dot = 0.0
        for i in range(n):
            e = _exp(np.float64(x[r, i]) - m)
            out[r, i] = e
            total += e
            dot += e * g[r, i]
        inv = 1.0 / total
        dot = dot * inv
        for i in range(n):
            out[r, i] = out[r, i] * inv * (g[r, i] - dot)


def _jacobian_fill(s, out):  # pragma: no cover - compiled by numba
    """out[r, i, :] = s_i * (delta_ij - s_j), parallel over (row, i) pairs so batch 1 uses every core."""
    rows, n = s.shape
    for k in _range(rows * n):
        r = k // n
        i = k - r * n
        si = s[r, i]
        for j in range(n):
            out[r, i, j] = -si * s[r, j]
        out[r, i, i] = si * (1.0 - si)


def _compile(parallel: bool) -> dict:
    """Compile one variant's kernels for float64 and float32, eagerly: ``build`` pays the whole JIT cost
    and no call ever compiles. Compiled kernels are cached on disk (``NUMBA_CACHE_DIR``), so a later
    process loads them; ``softgrad run`` measures the cold build in a process with an empty cache."""
    import numba
    from numba import float32, float64, void

    global _range, _exp
    _range = numba.prange  # a plain range when the kernel is compiled without parallel=True
    if not isinstance(_exp, numba.core.registry.CPUDispatcher):
        _exp = numba.njit([float64(float64)], fastmath={"contract"}, cache=True)(_exp_nonpositive)

    def jit(signatures, fn):
        if parallel:  # a distinct function, so the on-disk cache keeps the two variants apart
            fn = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel", fn.__defaults__)
            fn.__qualname__ = fn.__name__
        return numba.njit(signatures, parallel=parallel, nogil=True, cache=True, error_model="numpy",
                          fastmath=FASTMATH)(fn)

    floats = (float64, float32)
    return {
        "softmax": jit([void(t[:, ::1], t[:, ::1]) for t in floats], _softmax_rows),
        "vjp": jit([void(t[:, ::1], t[:, ::1], t[:, ::1]) for t in floats], _vjp_rows),
        "jacobian": jit([void(t[:, ::1], t[:, :, ::1]) for t in floats], _jacobian_fill),
    }


_range = range
_exp = _exp_nonpositive


def _as_rows(x: np.ndarray) -> np.ndarray:
    """The input as a (rows, n) array, C-contiguous (a strided view is copied once, as a caller would)."""
    n = x.shape[-1]
    return np.ascontiguousarray(x).reshape(math.prod(x.shape[:-1]), n)


def _ops(parallel: bool) -> dict:
    k = _compile(parallel)

    def softmax(x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape, dtype=x.dtype)
        if out.size:
            k["softmax"](_as_rows(x), out.reshape(-1, x.shape[-1]))
        return out

    def vjp(x: np.ndarray, g: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape, dtype=x.dtype)
        if out.size:
            k["vjp"](_as_rows(x), _as_rows(g), out.reshape(-1, x.shape[-1]))
        return out

    def jacobian(x: np.ndarray) -> np.ndarray:
        n = x.shape[-1]
        out = np.empty((*x.shape, n), dtype=x.dtype)
        if out.size:
            s = softmax(x).reshape(-1, n)
            k["jacobian"](s, out.reshape(-1, n, n))
        return out

    return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}


_COMMON = dict(family="numba", dtypes=("float64", "float32"), requires=("numba",), compiles=True)


@softgrad.implementation("numba", description="@njit fused row kernels, one thread", **_COMMON)
def build_serial(device: str):
    return _ops(parallel=False)


@softgrad.implementation(
    "numba-parallel", description="@njit(parallel=True): prange over rows (Jacobian: over row pairs)", **_COMMON
)
def build_parallel(device: str):
    return _ops(parallel=True)
