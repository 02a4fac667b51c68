"""Planted bugs: wrong softmax implementations that the checks must catch.

Each mutant is the NumPy implementation with one realistic mistake, tied to the check(s) expected to
flag it. ``test_mutants.py`` registers each through the public API, runs the checker over the quick
catalogue and asserts the expected checks fire; the conformance suite shows the correct entries raise
no false alarm on the same cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Fn = Callable[..., np.ndarray]


def _acc(dtype):
    return np.float32 if dtype == np.float16 else dtype


def softmax(x, shift=True, axis=-1, sum_in_input_dtype=False):
    if x.shape[-1] == 0:
        return np.empty(x.shape, x.dtype)
    m = x.max(axis=axis, keepdims=True) if shift else 0
    e = np.exp(x - m)
    # divided by the float32 sum itself: rounded to float16 first, a sum past 65504 (near-uniform rows of a
    # 2**16 vocabulary) is inf
    total = e.sum(axis=axis, keepdims=True, dtype=x.dtype if sum_in_input_dtype else _acc(x.dtype))
    return (e / total).astype(x.dtype)


def _products(s):
    """-s_i s_j as NumPy's float16 multiply gives it, bit for bit, without its cost: NumPy rounds each float32
    product to float16, and a product below float16's smallest normal loses bits there, raising the underflow
    flag entry by entry (10x slower; 0.2 s per call at n = 1023). Here such a product is first rounded to
    float16's subnormal spacing 2**-24 in float32 (to nearest even, by adding and taking away 1/2, where
    float32's spacing is 2**-24), so that the conversion is exact."""
    if s.dtype != np.float16:
        return -s[..., :, None] * s[..., None, :]
    p = s.astype(np.float32)
    p = -(p[..., :, None] * p[..., None, :])  # exact in float32: 11-bit significands
    mag = np.abs(p)
    rounded = np.copysign((mag + np.float32(0.5)) - np.float32(0.5), p)
    return np.where(mag < np.float32(2.0**-14), rounded, p).astype(np.float16)


def jacobian_from(s):
    j = _products(s)
    idx = np.arange(s.shape[-1])
    j[..., idx, idx] += s
    return j


def jacobian(x):
    return jacobian_from(softmax(x))


def vjp(x, g):
    s = softmax(x)
    dot = (s * g).sum(-1, keepdims=True, dtype=_acc(x.dtype)).astype(x.dtype)
    return s * (g - dot)


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str
    ops: dict[str, Fn]
    caught_by: frozenset[str]  # checks that must fire (at least these)
    dtypes: tuple[str, ...] = ("float64", "float32", "float16")
    #: ``"g-layout"``: the bug shows only in cases whose g is laid out unlike x (the rest must pass);
    #: ``"padded"``: only in cases whose x or g is the leading columns of a padded buffer
    only_where: str | None = None
    #: no check but ``caught_by`` may fire: the values are right, and only that property sees the bug
    only_checks: bool = False


def _ops(softmax_fn: Fn = softmax, jacobian_fn: Fn = jacobian, vjp_fn: Fn = vjp) -> dict[str, Fn]:
    return {"softmax": softmax_fn, "jacobian": jacobian_fn, "vjp": vjp_fn}


def _sign_flip(x):
    s = softmax(x)
    j = -_products(s)  # exact: s_i s_j as NumPy's float16 multiply gives it
    idx = np.arange(s.shape[-1])
    j[..., idx, idx] = s * (1 - s)
    return j


def _missing_diagonal(x):
    return _products(softmax(x))


def _wrong_axis(x):
    return softmax(x, axis=0) if x.ndim > 1 else softmax(x)


def _transposed_batch_jacobian(x):
    j = jacobian(x)
    if j.ndim == 3 and j.shape[0] > 1:
        return np.ascontiguousarray(j.transpose(1, 0, 2)).reshape(j.shape)
    return j


def _zero_times_x(x, g):  # 0 * (-inf) = NaN: a fused kernel that multiplies by x
    return vjp(x, g) + 0 * x


def _fp16_running_sum(x):
    if x.shape[-1] == 0:
        return np.empty(x.shape, x.dtype)
    e = np.exp(x - x.max(-1, keepdims=True))
    total = np.cumsum(e, axis=-1, dtype=x.dtype)[..., -1:]  # sequential sum in the input dtype
    return (e / total).astype(x.dtype)


def _off_by_one(x):
    if x.shape[-1] == 0:
        return np.empty(x.shape, x.dtype)
    e = np.exp(x - x.max(-1, keepdims=True))
    total = e[..., :-1].sum(-1, keepdims=True) if x.shape[-1] > 1 else e.sum(-1, keepdims=True)
    return (e / total).astype(x.dtype)


def _only_past_1000(x):
    if x.shape[-1] <= 1000:
        return softmax(x)
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e[..., :1000].sum(-1, keepdims=True)).astype(x.dtype)  # a fixed-size block, tail forgotten


def _vjp_no_sum(x, g):
    return softmax(x) * g


def _in_place(x):
    if x.shape[-1] == 0:
        return np.empty(x.shape, x.dtype)
    x -= x.max(-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(-1, keepdims=True)
    return x.copy()


_rng = np.random.default_rng(0)


def _nondeterministic(x):
    s = softmax(x)
    # a race: sometimes a different (still accurate) rounding of the result
    return np.nextafter(s, np.inf * _rng.choice([-1, 1], size=s.shape)).astype(x.dtype) if s.size else s


def _float32_inside(x):
    return softmax(x.astype(np.float32)).astype(x.dtype)


def _ignores_strides(x):
    if x.flags.c_contiguous or x.ndim < 2:
        return softmax(x)
    c_strides = tuple(int(v) * x.itemsize for v in np.cumprod((1, *x.shape[:0:-1]))[::-1])
    flat = np.lib.stride_tricks.as_strided(x, x.shape, c_strides)  # the buffer read from x's start as if contiguous
    return softmax(flat)


def _g_in_x_order(x, g):
    """A fused kernel that walks g's buffer in x's memory order (one set of strides for both)."""
    order = "F" if x.ndim >= 2 and x.flags.f_contiguous and not x.flags.c_contiguous else "C"
    return vjp(x, np.asarray(g).ravel(order="K").reshape(x.shape, order=order))


def _zero_stride_g_is_constant(x, g):
    """The sum loss's fast path (g constant, so the VJP is 0) taken for any g with a zero stride."""
    if 0 in np.asarray(g).strides and g.size > 1:
        return np.zeros_like(x)
    return vjp(x, g)


def _wrong_dtype(x):
    return softmax(x.astype(np.float64))


def _safe_softmax_zero_rows(x):
    s = softmax(x)
    return np.where(np.isnan(s), 0, s).astype(x.dtype)


def _raises(x):
    raise RuntimeError("kernel launch failed")


def _wrong_shape_jacobian(x):
    return softmax(x)  # returns s where J is due


def _packed_rows(a):
    """``a`` as a kernel sees it that checks only the last stride (``stride(-1) == 1``, else a contiguous
    copy) and then takes row ``i`` to start ``i * n`` elements past the first: right for every view but
    the leading columns of a padded buffer, whose rows are further apart (a broadcast, zero stride, is copied)."""
    if a.ndim < 2 or a.strides[-1] != a.itemsize or 0 in a.strides:
        a = np.ascontiguousarray(a)
    packed = tuple(int(np.prod(a.shape[i + 1:])) * a.itemsize for i in range(a.ndim))
    return np.lib.stride_tricks.as_strided(a, a.shape, packed, writeable=False)


def _softmax_packed_rows(x):
    return softmax(_packed_rows(x))


def _vjp_g_packed_rows(x, g):
    return vjp(x, _packed_rows(g))


_static_outputs: dict = {}


def _static_output_softmax(x):
    """One output buffer per (shape, dtype), written and returned by every call (a captured graph's output)."""
    key = (x.shape, x.dtype.str)
    if key not in _static_outputs:
        _static_outputs[key] = np.empty(x.shape, x.dtype)
    out = _static_outputs[key]
    out[...] = softmax(x)
    return out


_buffer_pairs: dict = {}


def _double_buffered_jacobian(x):
    """Two output buffers per (shape, dtype), used in turn: a result lasts one later call, not two."""
    key = (x.shape, x.dtype.str)
    if key not in _buffer_pairs:
        _buffer_pairs[key] = [np.empty((*x.shape, x.shape[-1]), x.dtype) for _ in range(2)]
    pair = _buffer_pairs[key]
    pair.reverse()  # the other buffer's turn
    pair[0][...] = jacobian(x)
    return pair[0]


_workspace = np.empty(0, np.uint8)


def _vjp_in_workspace(x, g):
    """The VJP written to the head of one module-level workspace (grown as needed) and returned as a view."""
    global _workspace
    if _workspace.size < x.nbytes:
        _workspace = np.empty(x.nbytes, np.uint8)
    out = _workspace[: x.nbytes].view(x.dtype).reshape(x.shape)
    out[...] = vjp(x, g)
    return out


MUTANTS: tuple[Mutant, ...] = (
    Mutant("sign-flip", "off-diagonal terms +s_i s_j instead of -s_i s_j", _ops(jacobian_fn=_sign_flip),
           frozenset({"accuracy", "rows-sum-to-zero", "columns-sum-to-zero"})),
    Mutant("missing-diagonal", "J = -s s^T without diag(s)", _ops(jacobian_fn=_missing_diagonal),
           frozenset({"accuracy", "trace", "rows-sum-to-zero", "eigenvalues-in-[0,1/2]"})),
    Mutant("no-max-shift", "exp(x) / sum exp(x) without subtracting the max", _ops(lambda x: softmax(x, shift=False)),
           frozenset({"nan-policy"})),
    Mutant("wrong-axis", "softmax over the batch axis", _ops(_wrong_axis), frozenset({"accuracy", "sums-to-one"})),
    Mutant("transposed-batch-jacobian", "batched J assembled with batch and row axes swapped",
           _ops(jacobian_fn=_transposed_batch_jacobian), frozenset({"accuracy"})),
    Mutant("nan-at-masked", "0 * x in the VJP turns -inf masks into NaN", _ops(vjp_fn=_zero_times_x),
           frozenset({"nan-policy"})),
    Mutant("fp16-running-sum", "sequential sum accumulated in the 16-bit input type", _ops(_fp16_running_sum),
           frozenset({"accuracy"}), dtypes=("float16",)),
    Mutant("off-by-one", "sum loop stops one short (range(n - 1))", _ops(_off_by_one),
           frozenset({"accuracy", "sums-to-one"})),
    Mutant("only-past-1000", "rows longer than a 1000-entry block lose their tail", _ops(_only_past_1000),
           frozenset({"accuracy", "sums-to-one"})),
    Mutant("vjp-missing-sum", "grad = s * g, the - sum(g*s) term dropped", _ops(vjp_fn=_vjp_no_sum),
           frozenset({"accuracy", "vjp-sums-to-zero", "vjp-equals-jt-g", "finite-differences"})),
    Mutant("in-place", "overwrites the caller's x", _ops(_in_place), frozenset({"input-modified"})),
    Mutant("nondeterministic", "a race: results differ in the last bit between calls", _ops(_nondeterministic),
           frozenset({"deterministic"})),
    Mutant("float64-in-float32", "a float64 claim computed in float32", _ops(_float32_inside),
           frozenset({"accuracy"}), dtypes=("float64",)),
    Mutant("ignores-strides", "reads a strided view's buffer as if contiguous", _ops(_ignores_strides),
           frozenset({"accuracy"})),
    Mutant("wrong-dtype", "returns float64 whatever the input", _ops(_wrong_dtype), frozenset({"contract"}),
           dtypes=("float32", "float16")),
    Mutant("zero-for-undefined-rows", "all -inf / NaN rows give 0 instead of NaN", _ops(_safe_softmax_zero_rows),
           frozenset({"nan-policy"})),
    Mutant("raises", "the softmax raises", _ops(_raises), frozenset({"error"})),
    Mutant("g-in-x-order", "the VJP reads g's buffer with x's layout", _ops(vjp_fn=_g_in_x_order),
           frozenset({"accuracy"}), only_where="g-layout"),
    Mutant("zero-stride-g-is-constant", "a broadcast g taken for the constant g of a sum loss (VJP 0)",
           _ops(vjp_fn=_zero_stride_g_is_constant), frozenset({"accuracy"}), only_where="g-layout"),
    Mutant("wrong-shape-jacobian", "jacobian returns an (..., n) array", _ops(jacobian_fn=_wrong_shape_jacobian),
           frozenset({"contract"})),
    Mutant("packed-rows", "x's rows taken as packed when its last stride is 1", _ops(_softmax_packed_rows),
           frozenset({"nan-policy"}), only_where="padded"),
    Mutant("g-packed-rows", "the VJP takes g's rows as packed when its last stride is 1",
           _ops(vjp_fn=_vjp_g_packed_rows), frozenset({"nan-policy"}), only_where="padded"),
    Mutant("static-output", "softmax returns one buffer per shape, rewritten by every call",
           _ops(_static_output_softmax), frozenset({"result-overwritten"}), only_checks=True),
    Mutant("double-buffered", "jacobian returns two buffers in turn: a result lasts one later call",
           _ops(jacobian_fn=_double_buffered_jacobian), frozenset({"result-overwritten"}), only_checks=True),
    Mutant("workspace-view", "the VJP returns a view of a module-level workspace",
           _ops(vjp_fn=_vjp_in_workspace), frozenset({"result-overwritten"}), only_checks=True),
)


# --- bugs of long rows and large batches: the full catalogue's sizes, and softgrad.testing's default, catch them ---


def _rows(fn: Fn) -> Fn:
    """A softmax applied to ``x`` as a (rows, n) batch by ``fn(flat) -> flat``, reshaped back."""

    def softmax_fn(x):
        if x.shape[-1] == 0 or x.size == 0:
            return softmax(x)
        return fn(np.ascontiguousarray(x).reshape(-1, x.shape[-1])).reshape(x.shape).astype(x.dtype)

    return softmax_fn


CHUNK = 8192


def _sum_of_full_chunks(flat):
    """The row sum as a sum of 8192-entry chunk sums: the entries past the last full chunk are left out once
    a row has a full chunk (a tiled reduction whose tail loop runs only when there is no full tile)."""
    e = np.exp(flat - flat.max(-1, keepdims=True))
    k = flat.shape[-1] // CHUNK
    if k == 0:
        return e / e.sum(-1, keepdims=True, dtype=_acc(flat.dtype))
    total = e[:, : k * CHUNK].reshape(-1, k, CHUNK).sum(-1, dtype=_acc(flat.dtype)).sum(-1, keepdims=True)
    return e / total


def _positions_in_16_bits(flat):
    """Entries at positions of 2**16 and past written from position ``j mod 2**16`` (a 16-bit index)."""
    s = softmax(flat)
    j = np.arange(flat.shape[-1])
    return s[:, j % 65536]


def _grid_of_65535(flat):
    """One row per block on a grid of at most 65535 blocks: rows past the grid are never written (zeros)."""
    out = np.zeros_like(flat)
    out[:65535] = softmax(flat[:65535])
    return out


def _blocks_of_16_rows(flat):
    """Rows in blocks of 16 once there is a block (fewer rows: one by one); the last partial block dropped."""
    if flat.shape[0] < 16:
        return softmax(flat)
    out = np.zeros_like(flat)
    full = flat.shape[0] // 16 * 16
    out[:full] = softmax(flat[:full].reshape(-1, 16, flat.shape[-1])).reshape(full, -1)
    return out


#: size bugs: each wrong only past a size that the quick set of cases never reaches (``softgrad.testing.check``'s
#: default reaches each with a case cut to the smallest size that crosses it)
SIZE_MUTANTS: tuple[Mutant, ...] = (
    Mutant("tail-past-8192-chunks", "entries past the last full 8192-entry chunk left out of the sum",
           _ops(_rows(_sum_of_full_chunks)), frozenset({"accuracy"})),
    Mutant("positions-in-16-bits", "entries at 2**16 and past take the value of position j mod 2**16",
           _ops(_rows(_positions_in_16_bits)), frozenset({"accuracy"})),
    Mutant("grid-of-65535", "rows past a grid of 65535 blocks left unwritten", _ops(_rows(_grid_of_65535)),
           frozenset({"accuracy"})),
    Mutant("blocks-of-16-rows", "rows in blocks of 16, the last partial block dropped",
           _ops(_rows(_blocks_of_16_rows)), frozenset({"accuracy"})),
)


# --- bugs that only the values of a training run show, at a workload's row lengths --------------------------

TILE = 4096


def _sum_in_input_dtype(x):
    """The textbook NumPy softmax: the sum in the input's dtype (float16: a total past 65504 is inf)."""
    return softmax(x, sum_in_input_dtype=True)


def _online_over_tiles(flat):
    """The online softmax over 4096-entry tiles (running max and rescaled running sum): a tile of only -inf
    before any finite entry gives exp(-inf - -inf) = NaN for the whole row."""
    acc = _acc(flat.dtype)
    m = np.full((flat.shape[0], 1), -np.inf, acc)
    total = np.zeros((flat.shape[0], 1), acc)
    for start in range(0, flat.shape[-1], TILE):
        tile = flat[:, start: start + TILE].astype(acc)
        new = np.maximum(m, tile.max(-1, keepdims=True))
        total = total * np.exp(m - new) + np.exp(tile - new).sum(-1, keepdims=True)
        m = new
    return (np.exp(flat.astype(acc) - m) / total).astype(flat.dtype)


def _max_of_first_tile(flat):
    """The shift taken as the max of the first 4096-entry tile only (any shift is exact in exact arithmetic):
    exp overflows where a later logit is far above the first tile's (a dominant logit, large logits)."""
    e = np.exp(flat - flat[:, :TILE].max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True, dtype=_acc(flat.dtype))


#: value bugs: right on every catalogue case and on normal values at any size; wrong on the value families of a
#: training run (:data:`softgrad.check.cases.FAMILIES`) at a workload's row lengths
TRAINING_MUTANTS: tuple[Mutant, ...] = (
    Mutant("float16-sum", "the sum in float16: inf past 65504, so near-uniform rows of n >= 65520 give 0",
           _ops(_sum_in_input_dtype), frozenset({"accuracy"}), dtypes=("float16",)),
    Mutant("online-masked-tile", "online softmax over 4096-entry tiles: a leading all -inf tile gives NaN",
           _ops(_rows(_online_over_tiles)), frozenset({"nan-policy"})),
    Mutant("max-of-first-tile", "the shift from the first 4096 entries only: a later large logit overflows",
           _ops(_rows(_max_of_first_tile)), frozenset({"nan-policy"})),
)

ALL_MUTANTS: tuple[Mutant, ...] = MUTANTS + SIZE_MUTANTS + TRAINING_MUTANTS
