"""numba-fused: its exp over the whole input range, and its kernels on the layouts and rows that take their
own paths (rows shorter than a vector or a block, odd tails, padded and broadcast rows, long rows split
across threads, masks), judged by softgrad's oracle and per-element tolerances."""

import types

import numpy as np
import pytest

pytest.importorskip("numba")

from softgrad import registry  # noqa: E402
from softgrad.check.checker import accuracy  # noqa: E402

registry.load_builtins()
from softgrad.implementations import numba_fused as nf  # noqa: E402

DTYPES = ("float32", "float64")


@pytest.fixture(scope="module")
def ops():
    return registry.get("numba-fused").ops_for("cpu")


@pytest.fixture(scope="module")
def kernels():
    return nf._compile()  # served from the on-disk cache the entry's build filled


def _apply(exp):
    import numba

    @numba.njit
    def apply(x, out):  # pragma: no cover - compiled
        for i in range(x.size):
            out[i] = exp(x[i])

    return apply


def exp_errors(exp, dtype: str) -> tuple[float, float]:
    """(worst relative error in eps where exp(t) is a normal number, worst absolute error in units of the
    smallest normal below it) of ``exp`` over t from below its underflow to 0, against extended precision."""
    info = np.finfo(dtype)
    t = np.linspace(-760.0 if dtype == "float64" else -110.0, 0.0, 1_000_001).astype(dtype)
    t = np.concatenate([t, -np.logspace(-30, 0, 2001).astype(dtype)])  # arguments near 0
    got = np.empty_like(t)
    _apply(exp)(t, got)
    want = np.exp(t.astype(np.longdouble))
    normal = want >= info.tiny
    rel = np.abs(got[normal] / want[normal] - 1).max() / info.eps
    absolute = np.abs(got[~normal] - want[~normal]).max() / info.tiny
    return float(rel), float(absolute)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_is_accurate_over_its_whole_range(dtype):
    rel, absolute = exp_errors(nf._build_exp(dtype), dtype)
    assert rel <= 1.0, f"{dtype}: worst relative error {rel:.3g} eps"
    # subnormal results: one rounding (half a subnormal spacing) plus the polynomial's error (under one eps of
    # a value below the smallest normal), in units of the smallest normal
    assert absolute <= 2.0 ** -np.finfo(dtype).nmant, f"{dtype}: worst error below normal {absolute:.3g} tiny"


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_special_values(dtype):
    t = np.array([-np.inf, -1e30, -1e4, -800.0, 0.0, -0.0, np.nan], dtype=dtype)
    got = np.empty_like(t)
    _apply(nf._build_exp(dtype))(t, got)
    assert got[:4].tolist() == [0.0, 0.0, 0.0, 0.0]  # very negative: 0, never NaN
    assert got[4:6].tolist() == [1.0, 1.0]
    assert np.isnan(got[6])


def test_exp_error_measure_catches_a_short_polynomial():
    """The planted bug: the float32 polynomial cut from degree 7 to 4 (error ~ r**5 / 120, 4e-5)."""
    spec = nf._spec("float32")
    spec["_rest"] = spec["_rest"][3:]
    spec["_top"] = np.float32(1 / 24)
    clone = types.FunctionType(nf._exp_template.__code__, {**nf._exp_template.__globals__, **spec}, "_exp_short")
    import numba

    rel, _ = exp_errors(numba.njit(clone), "float32")
    assert rel > 10


def _check(op: str, dtype: str, x: np.ndarray, g: np.ndarray | None, got: np.ndarray) -> None:
    assert got.shape == x.shape and got.dtype == x.dtype
    x64 = np.asarray(x, dtype=np.float64)
    g64 = None if g is None else np.asarray(g, dtype=np.float64)
    _, problems = accuracy(op, dtype, x64, g64, got)
    assert not problems, f"{op} {dtype} {x.shape}: {problems}"


def _run(ops, dtype: str, x: np.ndarray, g: np.ndarray) -> None:
    before = (x.copy(), g.copy())
    _check("softmax", dtype, x, None, ops["softmax"](x))
    _check("vjp", dtype, x, g, ops["vjp"](x, g))
    assert np.array_equal(x, before[0], equal_nan=True) and np.array_equal(g, before[1], equal_nan=True)


# rows shorter than a vector, odd tails past vectors and blocks, a row of exactly one block, 3-d leading dims
SHAPES = [(4, 1), (3, 2), (5, 7), (2, 9), (3, 31), (3, 32), (3, 2049), (2, nf.BLOCK), (2, 3, 4097), (1, 33)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_contiguous_rows(ops, dtype, shape):
    rng = np.random.default_rng(sum(shape))
    _run(ops, dtype, (rng.standard_normal(shape) * 4).astype(dtype), rng.standard_normal(shape).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts_read_in_place_or_copied(ops, dtype):
    rng = np.random.default_rng(1)
    wide = (rng.standard_normal((6, 3000)) * 3).astype(dtype)
    padded = wide[:, 7:2900]  # rows of a wider buffer: read in place with a row stride
    g_row = rng.standard_normal(padded.shape[-1]).astype(dtype)
    broadcast = np.broadcast_to(g_row, padded.shape)  # a sum loss's cotangent: row stride 0
    _run(ops, dtype, padded, broadcast)
    assert nf._flat(padded)[1] == 3000 and nf._flat(broadcast)[1] == 0
    transposed = np.ascontiguousarray(wide[:, :40].T).T  # stride along the row: copied
    _run(ops, dtype, transposed, rng.standard_normal(transposed.shape).astype(dtype))
    stepped = wide[::2, ::3]
    _run(ops, dtype, stepped, stepped[::-1])
    three = wide.reshape(2, 3, 3000)[:, ::2, 5:70]  # leading dims that do not merge into one row stride
    _run(ops, dtype, three, np.ones_like(three))
    frozen = wide.copy()
    frozen.flags.writeable = False  # read-only inputs are read in place too
    _run(ops, dtype, frozen, frozen)
    _run(ops, dtype, wide[0, ::2], wide[1, 1::2])  # one row (1-d), a stride along it


def _masked_rows(dtype: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((7, n)) * 3).astype(dtype)
    x[0] = -np.inf  # a fully masked row: NaN by the policy
    x[1, : n - 3] = -np.inf  # a masked prefix over many blocks, then a small finite max
    x[1, n - 3:] = -1000.0
    x[2, n // 2:] = -np.inf  # right padding
    x[3, ::2] = -np.inf
    x[4, 5] = np.inf
    x[5, n - 1] = np.nan
    x[6, : n // 3] = -np.inf  # a prefix, then ordinary logits
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [13, 37, 3 * nf.BLOCK + 5])  # a short row (plain loops), block sweeps
def test_masks_and_non_finite_rows(ops, dtype, n):
    x = _masked_rows(dtype, n)
    g = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    _run(ops, dtype, x, g)
    s = ops["softmax"](x)
    assert np.isnan(s[[0, 4, 5]]).all() and not np.isnan(s[[1, 2, 3, 6]]).any()
    assert (s[2, n // 2:] == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunks", [2, 3, 5])
def test_long_rows_split_across_threads(kernels, dtype, chunks):
    """The split path (rows fewer than threads), forced for any thread count: each chunk's max and sums
    merged, masks and a max in any chunk included; within tolerance split and unsplit."""
    n = 3 * nf.MIN_CHUNK + 123
    rng = np.random.default_rng(chunks)
    x = (rng.standard_normal((3, n)) * 3).astype(dtype)
    x[0, n - 10] = 40.0  # the max in the last chunk
    x[1, : 2 * nf.MIN_CHUNK] = -np.inf  # whole chunks masked
    x[2] = -np.inf
    g = rng.standard_normal((3, n)).astype(dtype)
    for op in ("softmax", "vjp"):
        kernel = kernels[op, np.dtype(dtype), True]
        for c in (1, chunks):
            out = np.empty_like(x)
            kernel(x.reshape(-1), n, g.reshape(-1), n, out.reshape(-1), n, c)
            _check(op, dtype, x, g if op == "vjp" else None, out)


def test_long_rows_through_the_entry(ops):
    """One row of a vocabulary's length (split where Numba has more threads than rows) and two such rows."""
    rng = np.random.default_rng(3)
    for rows in (1, 2):
        x = (rng.standard_normal((rows, 2 * nf.MIN_CHUNK + 77)) * 3).astype(np.float32)
        _run(ops, "float32", x, rng.standard_normal(x.shape).astype(np.float32))


def test_same_input_same_result_and_results_are_the_callers(ops):
    x = np.random.default_rng(4).standard_normal((3, 5000)).astype(np.float32)
    first = ops["softmax"](x)
    kept = first.copy()
    second = ops["softmax"](x)
    assert np.array_equal(first, second) and np.array_equal(first, kept) and first is not second
    assert ops["softmax"](np.empty((0, 4), np.float32)).shape == (0, 4)
    assert ops["vjp"](np.empty((2, 0)), np.empty((2, 0))).shape == (2, 0)
