"""Numba JIT: fused row kernels, serial (``numba``) and parallel over rows with ``prange`` (``numba-parallel``).

One kernel per op, each a single sweep over a row that stays in cache: max (eight interleaved running
maxima, :func:`_row_max`, so it vectorises), then ``exp`` and the sums
(the VJP's ``sum(g * e)`` in the same loop), then one scaling pass. No temporaries beyond the output.

``exp`` is written out (Cody-Waite reduction, a polynomial, exponent bits): after the max shift every
argument is <= 0, and LLVM vectorises this where it cannot vectorise a call to libm's ``exp`` (Numba has
no vector ``exp`` without Intel's SVML). float64 rows use :func:`_exp_nonpositive` (degree 13, within
1 ulp of ``numpy.exp`` on [-708, 0]); float32 rows :func:`_exp_nonpositive_f32` in float32 (Cephes'
``expf`` polynomial, twice the vector lanes). Both return exactly 0 at ``-inf`` and below the smallest
normal result, and NaN for NaN. Row sums are accumulated in float64 for both dtypes.

fastmath is limited to ``reassoc``/``contract``/``arcp``/``nsz``, which let LLVM vectorise the row sums;
never ``nnan``/``ninf``, which would let it assume away the ``-inf`` of a mask. A NaN or ``+inf`` in a
row, or a row of only ``-inf``, gives a NaN row (softgrad's non-finite policy): the NaN propagates
through the row's sum.

Kernels compile eagerly for float64 and float32 when the entry is built (the registry's ``compiles``
flag: the harness records the build time). The parallel variant uses Numba's thread count
(``NUMBA_NUM_THREADS``, set by ``softgrad.bench.threads``)."""

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
# float32 constants must be numpy float32 scalars: Numba types a Python float global as float64
_LOG2E_F, _HALF_F, _ONE_F, _ZERO_F = np.float32(_LOG2E), np.float32(0.5), np.float32(1.0), np.float32(0.0)
_LN2_HI_F, _LN2_LO_F = np.float32(0.693359375), np.float32(-2.12194440e-4)
_KMIN_F, _TMIN_F = np.float32(-126.0), np.float32(-87.0)
_P0_F, _P1_F, _P2_F, _P3_F, _P4_F, _P5_F = (np.float32(c) for c in (
    1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))


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


def _exp_nonpositive_f32(t):  # pragma: no cover - compiled by numba
    """exp(t) for float32 t <= 0 (or NaN), in float32 (twice the vector lanes of float64): Cody-Waite
    reduction and Cephes' degree-5 ``expf`` polynomial, within 2 ulp; exactly 0 below -87 and at -inf."""
    k = np.floor(t * _LOG2E_F + _HALF_F)
    k = k if k > _KMIN_F else _KMIN_F
    r = t - k * _LN2_HI_F
    r = r - k * _LN2_LO_F
    p = _P0_F
    p = p * r + _P1_F
    p = p * r + _P2_F
    p = p * r + _P3_F
    p = p * r + _P4_F
    p = p * r + _P5_F
    p = p * r * r + r + _ONE_F
    two_k = np.int32((np.int32(k) + 127) << 23).view(np.float32)
    return _ZERO_F if t < _TMIN_F else p * two_k


def _row_max(x, r):  # pragma: no cover - compiled by numba
    """max of row ``r`` in eight interleaved running maxima, which LLVM packs into one vector register (a
    single running max is a chain it cannot vectorise without ``nnan``). A NaN may be skipped here: it
    still turns its row to NaN through ``exp(x - m)``."""
    n = x.shape[1]
    m0 = x[r, 0]
    m1 = m2 = m3 = m4 = m5 = m6 = m7 = m0
    whole = n - n % 8
    for i in range(0, whole, 8):
        m0 = max(m0, x[r, i])
        m1 = max(m1, x[r, i + 1])
        m2 = max(m2, x[r, i + 2])
        m3 = max(m3, x[r, i + 3])
        m4 = max(m4, x[r, i + 4])
        m5 = max(m5, x[r, i + 5])
        m6 = max(m6, x[r, i + 6])
        m7 = max(m7, x[r, i + 7])
    m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for i in range(whole, n):
        m = max(m, x[r, i])
    return m


def _softmax_rows(x, out):  # pragma: no cover - compiled by numba
    """Rows of any float dtype: max and exp in the input's dtype, the sum in float64."""
    rows, n = x.shape
    for r in _range(rows):
        m = _row_max(x, r)
        total = 0.0
        for i in range(n):
            e = _exp(x[r, i] - m)
            out[r, i] = e
            total += np.float64(e)
        inv = 1.0 / total
        for i in range(n):
            out[r, i] = out[r, i] * inv


def _vjp_rows(x, g, out):  # pragma: no cover - compiled by numba
    rows, n = x.shape
    for r in _range(rows):
        m = _row_max(x, r)
        total = 0.0
        dot = 0.0
        for i in range(n):
            e = _exp(x[r, i] - m)
            out[r, i] = e
            total += np.float64(e)
            dot += np.float64(e) * np.float64(g[r, i])
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
    process loads them; ``softgrad run`` measures the cold build in a process with an empty cache.
    Returns ``{op: {dtype: kernel}}``."""
    import numba
    from numba import float32, float64, int64, void

    exps = {
        "float64": numba.njit([float64(float64)], fastmath={"contract"}, cache=True)(_exp_nonpositive),
        "float32": numba.njit([float32(float32)], fastmath={"contract"}, cache=True)(_exp_nonpositive_f32),
    }

    row_max = numba.njit([t(t[:, ::1], int64) for t in (float64, float32)], cache=True)(_row_max)

    def jit(fn, dtype, signature):
        # A distinct function per variant and dtype, its globals naming the exp and the loop range to
        # use, so the on-disk cache keeps them apart (``prange`` is a plain range without parallel=True).
        suffix = f"_{dtype}" + ("_parallel" if parallel else "")
        names = {**fn.__globals__, "_exp": exps[dtype], "_range": numba.prange, "_row_max": row_max}
        variant = types.FunctionType(fn.__code__, names, fn.__name__ + suffix, fn.__defaults__)
        variant.__qualname__ = variant.__name__
        return numba.njit([signature], parallel=parallel, nogil=True, cache=True, error_model="numpy",
                          fastmath=FASTMATH)(variant)

    kernels: dict[str, dict[str, object]] = {"softmax": {}, "vjp": {}, "jacobian": {}}
    for dtype, t in (("float64", float64), ("float32", float32)):
        kernels["softmax"][dtype] = jit(_softmax_rows, dtype, void(t[:, ::1], t[:, ::1]))
        kernels["vjp"][dtype] = jit(_vjp_rows, dtype, void(t[:, ::1], t[:, ::1], t[:, ::1]))
        kernels["jacobian"][dtype] = jit(_jacobian_fill, dtype, void(t[:, ::1], t[:, :, ::1]))
    return kernels


_range = range  # replaced in each compiled variant's globals (see _compile)
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
            k["softmax"][x.dtype.name](_as_rows(x), out.reshape(-1, x.shape[-1]))
        return out

    def vjp(x: np.ndarray, g: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape, dtype=x.dtype)
        if out.size:
            k["vjp"][x.dtype.name](_as_rows(x), _as_rows(g), out.reshape(-1, x.shape[-1]))
        return out

    def jacobian(x: np.ndarray) -> np.ndarray:
        n = x.shape[-1]
        out = np.empty((*x.shape, n), dtype=x.dtype)
        if out.size:
            s = softmax(x).reshape(-1, n)
            k["jacobian"][x.dtype.name](s, out.reshape(-1, n, n))
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
