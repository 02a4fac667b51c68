"""Numba, fused for rows past the cache (``numba-fused``): one sweep per row from memory, one from cache.

Softmax and VJP read each row from memory once, block by block (:data:`BLOCK` elements, swept twice
while in L1): the block's max raises the row's running max ``m``, then ``e = exp(x - m)`` is stored in
the output and summed (the VJP also sums ``g * e``), the sums so far rescaled when ``m`` rose (the online
normaliser, once per block). A second sweep, while the row is still in this core's cache, scales each
block by ``exp(m_block - m_row) / sum`` (the VJP: times ``g - dot / sum``). exp is computed once per
element and the output is written once to memory. Rows run in parallel (``prange``); with fewer rows than
threads a long row is split into chunks, each swept and scaled by one thread, the chunks' maxima and
sums merged between the two sweeps. Inputs under :data:`SERIAL_BELOW` elements run a serial variant.

``exp`` is written out so that LLVM vectorises it (Numba has no vector ``exp`` without Intel's SVML):
after the max shift every argument is <= 0; ``k = round(t / ln 2)`` by the magic-number trick (adding
1.5 * 2**mantissa rounds to an integer), ``r = t - k ln 2`` in two steps, a Taylor polynomial for
``exp(r)`` on ``|r| <= ln2 / 2`` (degree 7 in float32, 13 in float64) and ``2**k`` from exponent bits.
Results below the smallest normal number are rounded to subnormals once (``2**k`` applied as two normal
halves), as libm does: a VJP entry ``s_i (g_i - dot)`` with a flushed ``s_i`` can be off by more than the
smallest normal. Below half the smallest subnormal (and at ``-inf``) exp is exactly 0; NaN gives NaN.
A block's sums are accumulated in the input's dtype (vector lanes of at most BLOCK terms), a row's in
float64. What limits it (issue 24, measured): LLVM vectorises these loops 256 bits wide (8 float32 lanes)
on this AVX-512 machine, and the block max runs scalar (``vmaxss``: without ``nnan`` LLVM packs no float
max): 0.2 ns of the first sweep's 0.6 to 0.7 ns per float32 element (one thread, in L1).

Inputs are read where they lie: a row-padded buffer (rows of a wider array) or a cotangent broadcast
along rows (row stride 0) is passed as a flat view with a row stride; only a layout with a non-unit
stride along the row, or leading dims that do not flatten to one row stride, is copied first.
Non-finite policy as softgrad's: a NaN or ``+inf`` in a row, or a row of only ``-inf``, gives a NaN row.
"""

from __future__ import annotations

import math
import types

import numpy as np

import softgrad

#: fastmath flags that keep IEEE infinities and NaN: never ``nnan``/``ninf`` (a mask's ``-inf`` must stay)
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}
#: elements per block of the online first sweep (the block is swept twice while it is in L1)
BLOCK = 2048
#: the shortest chunk a row is split into for threads (shorter rows run whole on one thread)
MIN_CHUNK = 16384
#: rows shorter than this run in plain loops (:func:`_short_row`)
SHORT = 32
#: inputs of fewer elements run serially: starting the threads would cost more than it saves
SERIAL_BELOW = 16384

_LOG2E = 1.4426950408889634


def _spec(dtype: str) -> dict:
    """exp's constants for one dtype, as typed scalars (Numba types a Python float global as float64)."""
    f, i = (np.float32, np.int32) if dtype == "float32" else (np.float64, np.int64)
    mantissa, degree = (23, 7) if dtype == "float32" else (52, 13)
    ln2_hi, ln2_lo = (0.693359375, -2.12194440e-4) if dtype == "float32" else (
        6.93147180369123816490e-01, 1.90821492927058770002e-10)  # k * ln2_hi is exact for the k that occur
    coefs = [f(1.0 / math.factorial(k)) for k in range(degree, -1, -1)]  # highest degree first
    # below `low` exp rounds to 0 (under half the smallest subnormal: float32 2**-150, float64 2**-1075)
    return dict(_magic=f(1.5 * 2.0**mantissa), _log2e=f(_LOG2E), _ln2_hi=f(ln2_hi), _ln2_lo=f(ln2_lo),
                _low=f(-104.0 if dtype == "float32" else -745.2), _zero=f(0.0), _half=f(0.5),
                _bias=f(127.0 if dtype == "float32" else 1023.0), _unit=f(2.0**mantissa),
                _top=coefs[0], _rest=tuple(coefs[1:]), _ftype=f, _itype=i)


def _exp_template(t):  # pragma: no cover - compiled by numba, with the constants of one dtype as globals
    """exp(t) for t <= 0, -inf or NaN, branch-free (selects only), in t's dtype."""
    k = (t * _log2e + _magic) - _magic  # t / ln2 rounded to an integer (adding 1.5 * 2**mantissa rounds)
    r = t - k * _ln2_hi
    r = r - k * _ln2_lo
    p = _top
    for c in _rest:  # Horner over a constant tuple (LLVM unrolls it)
        p = p * r + c
    # 2**k as 2**half * 2**(k - half), both normal where 2**k is not (subnormal results), each built from
    # its exponent bits by a float-to-int conversion: no integer arithmetic, which Numba widens to int64
    # and which then halves the vector width (float32: 4 lanes instead of 8)
    half = np.floor(k * _half)
    two_half = _itype((half + _bias) * _unit).view(_ftype)  # garbage for t < _low, where it is not used
    two_rest = _itype((k - half + _bias) * _unit).view(_ftype)
    e = p * two_half * two_rest  # one rounding into the subnormals; NaN stays NaN
    return _zero if t < _low else e


def _build_exp(dtype: str):
    """The compiled exp of ``dtype`` (float32 or float64)."""
    import numba

    fn = types.FunctionType(_exp_template.__code__, {**_exp_template.__globals__, **_spec(dtype)}, f"_exp_{dtype}")
    fn.__qualname__ = fn.__name__
    return numba.njit(fastmath={"contract"}, cache=True)(fn)


def _block_max(x):  # pragma: no cover - compiled by numba
    """max of x (not empty) in eight interleaved running maxima, which LLVM packs into one vector (a single
    running max is a chain it cannot vectorise without ``nnan``). A NaN may be skipped: it still turns its
    row to NaN through the sums."""
    n = x.size
    m0 = x[0]
    m1 = m2 = m3 = m4 = m5 = m6 = m7 = m0
    whole = n - n % 8
    for i in range(0, whole, 8):
        m0, m1, m2, m3 = max(m0, x[i]), max(m1, x[i + 1]), max(m2, x[i + 2]), max(m3, x[i + 3])
        m4, m5, m6, m7 = max(m4, x[i + 4]), max(m5, x[i + 5]), max(m6, x[i + 6]), max(m7, x[i + 7])
    m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for i in range(whole, n):
        m = max(m, x[i])
    return m


def _sweep(x, xo, g, go, out, oo, lo, hi, shifts):  # pragma: no cover - compiled by numba
    """The sweep from memory over elements [lo, hi) of a row (x from x[xo], g from g[go], out from out[oo]),
    block by block: the block's max raises the running max m, then ``e = exp(x - m)`` is stored in ``out``
    and summed (with ``g * e`` for the VJP), the sums so far rescaled when m rose. ``shifts[j]`` keeps the m
    block j used, for :func:`_scale`. While m is -inf (a masked prefix) the shift is 0, so exp(-inf) is 0,
    not NaN. Returns (m, sum e, sum g e), all relative to the final m."""
    m = -np.inf
    s = 0.0
    d = 0.0
    for j in range((hi - lo + _BLOCK - 1) // _BLOCK):
        b = lo + j * _BLOCK
        xb = x[xo + b:xo + min(b + _BLOCK, hi)]  # slices: loops from 0 need no negative-index wraparound
        gb = g[go + b:go + b + xb.size]
        ob = out[oo + b:oo + b + xb.size]
        bm = np.float64(_block_max(xb))
        if bm > m:
            if m > -np.inf:  # else the sums are 0 (or NaN), with nothing to rescale
                scale = np.exp(m - bm)
                s *= scale
                d *= scale
            m = bm
        shifts[j] = m
        shift = xb.dtype.type(m if m > -np.inf else 0.0)
        # the block's sums in x's dtype (at most _BLOCK terms, in vector lanes), the row's in float64; they start
        # from a constant zero (from shift * 0, LLVM vectorised the loop 4 lanes wide instead of 8)
        acc = _ZERO
        dot = _ZERO
        if _WITH_G:
            for i in range(xb.size):
                v = _exp(xb[i] - shift)
                ob[i] = v
                acc += v
                dot += v * gb[i]
        else:
            for i in range(xb.size):
                v = _exp(xb[i] - shift)
                ob[i] = v
                acc += v
        s += np.float64(acc)
        d += np.float64(dot)
    return m, s, d


def _scale(g, go, out, oo, lo, hi, shifts, m, s, d):  # pragma: no cover - compiled by numba
    """The sweep from cache: block j of ``out`` times exp(shifts[j] - m) / s, and times (g - d / s) for the
    VJP. A block swept under a -inf max gets factor 0 (NaN where the whole row is -inf: the policy)."""
    dot = out.dtype.type(d / s)
    for j in range((hi - lo + _BLOCK - 1) // _BLOCK):
        b = lo + j * _BLOCK
        ob = out[oo + b:oo + min(b + _BLOCK, hi)]
        gb = g[go + b:go + b + ob.size]
        f = out.dtype.type((1.0 if shifts[j] == m else np.exp(shifts[j] - m)) / s)  # no libm call for one block
        if _WITH_G:
            for i in range(ob.size):
                ob[i] = ob[i] * f * (gb[i] - dot)
        else:
            for i in range(ob.size):
                ob[i] = ob[i] * f


def _short_row(x, xo, g, go, out, oo, n):  # pragma: no cover - compiled by numba
    """A row shorter than :data:`SHORT`, in plain loops indexed from the row's start: no slices, whose
    reference counting costs more than such a row's arithmetic (256 x 16 float32, serial: 82 ns a row, 133
    with the block sweeps; at n = 32 the block sweeps win). Its sums run in order (compiled without
    ``reassoc``): vectorised, the same input gave results differing in the last bit from call to call
    (65536 x 10 float64, the first call against later ones)."""
    m = x[xo]
    for i in range(1, n):
        m = max(m, x[xo + i])
    s = 0.0
    d = 0.0
    for i in range(n):
        out[oo + i] = _exp(x[xo + i] - m)  # a row of only -inf: exp(NaN), the policy's NaN row
    for i in range(n):  # the sums in order, apart from the loop above so that it still vectorises
        s += np.float64(out[oo + i])
        if _WITH_G:
            d += np.float64(out[oo + i]) * np.float64(g[go + i])
    inv = out.dtype.type(1.0 / s)
    dot = out.dtype.type(d / s)
    for i in range(n):
        if _WITH_G:
            out[oo + i] = out[oo + i] * inv * (g[go + i] - dot)
        else:
            out[oo + i] = out[oo + i] * inv


def _rows_kernel(x, xs, g, gs, out, n, chunks):  # pragma: no cover - compiled by numba
    """Every row of ``out`` (flat, rows of n): row r of x starts at x[r * xs] (g likewise). One row
    per iteration with ``chunks == 1`` (both sweeps while the row is in this core's cache); else each row
    in ``chunks`` pieces, each swept by one thread, merged, then scaled by the same thread."""
    rows = out.size // n
    if n < _SHORT:
        for r in _range(rows):
            _short_row(x, r * xs, g, r * gs, out, r * n, n)
        return
    if chunks == 1:
        shifts = np.empty((rows, (n + _BLOCK - 1) // _BLOCK))  # one allocation, not one per row
        for r in _range(rows):
            m, s, d = _sweep(x, r * xs, g, r * gs, out, r * n, 0, n, shifts[r])
            _scale(g, r * gs, out, r * n, 0, n, shifts[r], m, s, d)
        return
    size = (n + chunks * _BLOCK - 1) // (chunks * _BLOCK) * _BLOCK  # whole blocks
    shifts = np.empty((rows * chunks, size // _BLOCK))
    parts = np.empty((rows * chunks, 3))
    for k in _range(rows * chunks):
        r = k // chunks
        lo = min((k - r * chunks) * size, n)
        parts[k, 0], parts[k, 1], parts[k, 2] = _sweep(x, r * xs, g, r * gs, out, r * n, lo,
                                                       min(lo + size, n), shifts[k])
    for r in range(rows):
        head = r * chunks
        m = parts[head, 0]
        for c in range(1, chunks):
            m = max(m, parts[head + c, 0])
        s = 0.0
        d = 0.0
        for c in range(chunks):
            pm = parts[head + c, 0]
            scale = 1.0 if pm == m else np.exp(pm - m)  # a chunk of only -inf under a -inf max: 1, not NaN
            s += parts[head + c, 1] * scale
            d += parts[head + c, 2] * scale
        parts[head, 0], parts[head, 1], parts[head, 2] = m, s, d
    for k in _range(rows * chunks):
        r = k // chunks
        lo = min((k - r * chunks) * size, n)
        head = r * chunks
        _scale(g, r * gs, out, r * n, lo, min(lo + size, n), shifts[k], parts[head, 0], parts[head, 1],
               parts[head, 2])


_range = range  # replaced in each compiled variant's globals (see _compile)
_exp = None
_BLOCK = BLOCK
_WITH_G = False
_ZERO = 0.0
_SHORT = SHORT



def _variant(fn, names: dict, suffix: str, **options):
    """``fn`` compiled with ``names`` in its globals, under a name of its own (the on-disk cache keys on it)."""
    import numba

    clone = types.FunctionType(fn.__code__, {**fn.__globals__, **names}, fn.__name__ + suffix, fn.__defaults__)
    clone.__qualname__ = clone.__name__
    return numba.njit(**{"cache": True, "error_model": "numpy", "fastmath": FASTMATH, **options})(clone)


def _compile() -> dict:
    """Compile the softmax and VJP kernels for float64 and float32, parallel and serial (for inputs too
    small to repay starting threads), eagerly: ``build`` pays the whole JIT cost, and the on-disk cache
    serves a later process. Returns ``{(op, dtype, parallel): kernel}``."""
    import numba
    from numba import float32, float64, int64, void
    from numba.types import Array

    kernels = {}
    for dtype, t in (("float64", float64), ("float32", float32)):
        names = {"_exp": _build_exp(dtype), "_BLOCK": BLOCK, "_ZERO": np.dtype(dtype).type(0),
                 "_block_max": _variant(_block_max, {}, f"_{dtype}")}
        flat_in, flat_out = Array(t, 1, "C", readonly=True), Array(t, 1, "C")
        signature = void(flat_in, int64, flat_in, int64, flat_out, int64, int64)
        for op in ("softmax", "vjp"):
            suffix = f"_{dtype}_{op}"
            names_op = {**names, "_WITH_G": op == "vjp"}
            parts = {**names_op, "_SHORT": SHORT, "_sweep": _variant(_sweep, names_op, suffix),
                     "_scale": _variant(_scale, names_op, suffix),
                     # sums in order, no reassoc (see _short_row)
                     "_short_row": _variant(_short_row, names_op, suffix, fastmath={"contract"})}
            for parallel in (True, False):
                kernel = _variant(_rows_kernel, {**parts, "_range": numba.prange if parallel else range},
                                  suffix + ("_parallel" if parallel else ""), parallel=parallel, nogil=True)
                kernel.compile(signature)
                kernels[op, np.dtype(dtype), parallel] = kernel  # keyed by dtype: dtype.name takes 2 us
    return kernels


def _flat(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a`` (..., n) as a C-contiguous 1-D view that starts at its first element, and the stride between
    its rows in elements (0 for a row broadcast to every row). Copied first only where its rows are not
    evenly spaced runs of adjacent elements (a stride along the row, leading dims that do not merge, a
    negative row stride). The kernels only read it."""
    n = a.shape[-1]
    if a.flags.c_contiguous:
        return a.reshape(-1), n
    rows = a.size // n
    try:
        grid = a.reshape(rows, n, copy=False)
    except ValueError:  # leading dims that do not merge into one row stride
        grid = np.ascontiguousarray(a).reshape(rows, n)
    item = grid.itemsize
    step = grid.strides[0] if rows > 1 else n * item
    if (n > 1 and grid.strides[1] != item) or step < 0 or step % item:
        grid = np.ascontiguousarray(grid)
        step = n * item
    step //= item
    flat = np.lib.stride_tricks.as_strided(grid, shape=((rows - 1) * step + n,), strides=(item,), writeable=False)
    return flat, step


def _ops() -> dict:
    import numba

    kernels = _compile()
    most_threads = numba.config.NUMBA_NUM_THREADS

    def call(op: str, x: np.ndarray, g: np.ndarray | None) -> np.ndarray:
        out = np.empty(x.size, dtype=x.dtype)
        n = x.shape[-1]
        if n == 0 or out.size == 0:
            return out.reshape(x.shape)
        rows = out.size // n
        chunks = 1
        if rows < most_threads and n >= 2 * MIN_CHUNK:  # fewer rows than threads: split them
            threads = numba.get_num_threads()
            if rows < threads:
                chunks = min(-(-threads // rows), n // MIN_CHUNK)
        xf, xs = (x.reshape(-1), n) if x.flags.c_contiguous else _flat(x)
        if g is None:
            gf, gs = xf, xs
        else:
            gf, gs = (g.reshape(-1), n) if g.flags.c_contiguous else _flat(g)
        kernels[op, x.dtype, out.size >= SERIAL_BELOW](xf, xs, gf, gs, out, n, chunks)
        return out.reshape(x.shape)

    def softmax(x: np.ndarray) -> np.ndarray:
        return call("softmax", x, None)

    def vjp(x: np.ndarray, g: np.ndarray) -> np.ndarray:
        return call("vjp", x, g)

    return {"softmax": softmax, "vjp": vjp}


@softgrad.implementation(
    "numba-fused", family="numba", dtypes=("float64", "float32"), ops=("softmax", "vjp"), requires=("numba",),
    compiles=True, description="@njit(parallel=True): two sweeps per row (online max and sum, then the result "
    "from cache), a vectorised exp, long rows split across threads",
)
def build(device: str):
    return _ops()
