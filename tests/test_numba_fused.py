"""numba-fused: its exp over the whole input range, its 16-bit loads and stores on every bit pattern, and its
kernels on the layouts and rows that take their own paths (rows shorter than a vector or a block, odd tails,
padded and broadcast rows, long rows split across threads, masks, 16-bit rows, the Jacobian's bands),
judged by softgrad's oracle and per-element tolerances."""

import types

import numpy as np
import pytest

pytest.importorskip("numba")

from softgrad import aligned, registry  # noqa: E402
from softgrad.check.checker import accuracy  # noqa: E402

registry.load_builtins()
from softgrad.implementations import numba_fused as nf  # noqa: E402

DTYPES = ("float32", "float64")
#: every dtype the entry runs here (bfloat16 where ml_dtypes is installed)
ALL = tuple(nf._DTYPES)


def _np(dtype: str):
    """NumPy's type for a softgrad dtype name (ml_dtypes' bfloat16)."""
    return nf._numpy_dtype(dtype)


@pytest.fixture(scope="module")
def ops():
    return registry.get("numba-fused").ops_for("cpu")


@pytest.fixture(scope="module")
def kernels():
    return nf._kernel  # (op, dtype, parallel) -> the kernel, compiled on first use or read from disk


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


def _exp(dtype: str):
    """The compiled exp the kernels of ``dtype`` use (the 16-bit ones: float32's, with a shorter polynomial)."""
    return nf._parts(dtype)["_exp"]


def _exp_with(spec: dict, name: str):
    """exp compiled with constants of one's own (a planted bug)."""
    import numba

    return numba.njit(types.FunctionType(nf._exp_template.__code__, {**nf._exp_template.__globals__, **spec}, name))


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_is_accurate_over_its_whole_range(dtype):
    rel, absolute = exp_errors(_exp(dtype), dtype)
    assert rel <= 1.0, f"{dtype}: worst relative error {rel:.3g} eps"
    # subnormal results: one rounding (half a subnormal spacing) plus the polynomial's error (under one eps of
    # a value below the smallest normal), in units of the smallest normal
    assert absolute <= 2.0 ** -np.finfo(dtype).nmant, f"{dtype}: worst error below normal {absolute:.3g} tiny"


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_special_values(dtype):
    t = np.array([-np.inf, -1e30, -1e4, -800.0, 0.0, -0.0, np.nan], dtype=dtype)
    got = np.empty_like(t)
    _apply(_exp(dtype))(t, got)
    assert got[:4].tolist() == [0.0, 0.0, 0.0, 0.0]  # very negative: 0, never NaN
    assert got[4:6].tolist() == [1.0, 1.0]
    assert np.isnan(got[6])


def test_exp_error_measure_catches_a_short_polynomial():
    """The planted bug: float32 computed with the 16-bit formats' polynomial (degree 4, error 2.8e-6)."""
    rel, _ = exp_errors(_exp_with(nf._spec("float32", 4), "_exp_short"), "float32")
    assert rel > 10


@pytest.mark.parametrize("dtype", ("float16", "bfloat16"))
def test_16bit_exp_is_far_finer_than_a_16bit_spacing(dtype):
    """The 16-bit formats' exp (float32 arithmetic, a shorter polynomial): its results are rounded once to 16 bits,
    so its error, over its whole range, must be a small part of a 16-bit spacing (float16's, the finer)."""
    rel, absolute = exp_errors(_exp(dtype), "float32")
    share = rel * np.finfo(np.float32).eps / np.finfo(np.float16).eps
    assert share <= 1 / 64, f"{dtype}: worst relative error {share:.3g} of a float16 spacing"
    assert absolute <= np.finfo(np.float16).eps / 64, f"{dtype}: worst error below float32's normals {absolute:.3g}"


def test_16bit_exp_measure_catches_a_cut_polynomial():
    """The planted bug: the 16-bit polynomial without its last term (error ~ r**4 / 24, 6e-4)."""
    spec = nf._spec("float32", nf.EXP_DEGREE["float16"])
    spec["_top"], spec["_rest"] = spec["_rest"][0], spec["_rest"][1:]
    rel, _ = exp_errors(_exp_with(spec, "_exp_cut"), "float32")
    assert rel * np.finfo(np.float32).eps / np.finfo(np.float16).eps > 1 / 64


def _convert(fn, src: np.ndarray, dtype, needs: dict | None = None) -> np.ndarray:
    """``fn`` (one of the kernels' loads or stores, compiled as the kernels compile theirs, with the globals
    ``needs``) applied to every element of ``src``."""
    out = np.empty(src.size, dtype)
    _apply(nf._variant(fn, needs or {}, "_under_test", fastmath={"contract"}))(src, out)
    return out


def _conversion_sets() -> list:
    """(dtype, load, store, globals) of every 16-bit conversion the kernels may use here: the bit arithmetic
    always (the fallback), float16's hardware conversion where this CPU has one."""
    sets = [("float16", nf._f16_widen, nf._f16_narrow, {}), ("bfloat16", nf._bf16_widen, nf._bf16_narrow, {})]
    if nf.hardware_half():
        sets.append(("float16", nf._f16_widen_hardware, nf._f16_narrow_hardware, nf._half_conversions()))
    return [pytest.param(*c, id=f"{c[0]}-{c[1].__name__}") for c in sets]


def _float32_probes() -> np.ndarray:
    """float32 values where rounding to 16 bits is hard: random bit patterns, every tie and its neighbours
    near 1, float16's subnormal and overflow edges, and the special values."""
    rng = np.random.default_rng(7)
    bits = [rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32),
            np.arange(0x3F800000, 0x3F900000, 0x1000, dtype=np.uint32)[:, None] + np.array([0xFFF, 0x1000, 0x1001,
            0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x10000], np.uint32),  # float16 and bfloat16 ties, each side
            np.arange(0x33000000 - 3000, 0x38800000 + 3000, 97, dtype=np.uint32),  # float16 subnormals
            np.arange(0x477FE000, 0x47800010, 1, dtype=np.uint32),  # up to float16's overflow (65520)
            np.array([0x7F800000, 0x7F7FFFFF, 0x7FC00000, 0x7F800001, 0x7FBFFFFF, 1, 0], np.uint32)]
    flat = np.concatenate([b.reshape(-1) for b in bits])
    return np.concatenate([flat, flat | np.uint32(0x80000000)]).view(np.float32)


@pytest.mark.parametrize(("dtype", "load", "store", "needs"), _conversion_sets())
def test_16bit_loads_are_exact_for_every_bit_pattern(dtype, load, store, needs):
    if dtype not in ALL:
        pytest.skip("ml_dtypes is not installed")
    every = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    got = _convert(load, every, np.float32, needs)
    want = every.view(_np(dtype)).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))  # -0.0 and subnormals too
    assert np.isnan(got[nan]).all()


def _bfloat16_nans() -> np.ndarray:
    """The bits of every bfloat16 NaN, signalling or quiet, either sign (254 patterns)."""
    every = np.arange(2**16, dtype=np.uint32)
    return every[np.isnan((every << 16).view(np.float32))].astype(np.uint16)


def _kernel_nans() -> np.ndarray:
    """float32 NaNs of every kind the kernels can compute in bfloat16: each bfloat16 NaN widened (its payload in the
    top half, signalling or quiet), quieted, and the default NaNs (x86's 0xFFC00000, Arm's 0x7FC00000)."""
    top = _bfloat16_nans().astype(np.uint32) << 16
    return np.concatenate([top, top | np.uint32(0x00400000), np.array([0xFFC00000, 0x7FC00000], np.uint32)])


def _stores_agree(store, dtype: str, needs: dict | None = None) -> tuple[int, bool]:
    """(how many probes ``store`` rounds unlike NumPy/ml_dtypes, whether every NaN stays NaN). bfloat16's NaN
    probes are the NaNs the kernels compute (:func:`_kernel_nans`): its store rounds other NaNs like numbers."""
    f = _float32_probes()
    if dtype == "bfloat16":
        f = np.concatenate([f[~np.isnan(f)], _kernel_nans().view(np.float32)])
    got = _convert(store, f, np.uint16, needs)
    with np.errstate(over="ignore", invalid="ignore"):
        want = f.astype(_np(dtype)).view(np.uint16)
    nan = np.isnan(f)
    back = got[nan].view(_np(dtype)).astype(np.float32)
    return int((got[~nan] != want[~nan]).sum()), bool(np.isnan(back).all())


@pytest.mark.parametrize(("dtype", "load", "store", "needs"), _conversion_sets())
def test_16bit_stores_round_to_nearest_even(dtype, load, store, needs):
    """Ties to even, subnormals (float16), overflow to inf, NaN kept NaN: bit for bit as NumPy (float16)
    and ml_dtypes (bfloat16) round."""
    if dtype not in ALL:
        pytest.skip("ml_dtypes is not installed")
    wrong, nan_kept = _stores_agree(store, dtype, needs)
    assert wrong == 0 and nan_kept


def test_kernels_take_the_cpus_float16_conversion_where_it_has_one(monkeypatch):
    """float16's loads and stores are the CPU's where :func:`hardware_half` says so, the bit arithmetic else; and
    Numba's ``NUMBA_CPU_FEATURES`` without F16C (a build for older CPUs) turns the hardware path off on x86."""
    import platform

    from numba.core import config

    _, load, store, _ = nf._conversions("float16")
    assert (load, store) == ((nf._f16_widen_hardware, nf._f16_narrow_hardware) if nf.hardware_half()
                             else (nf._f16_widen, nf._f16_narrow))
    assert nf._conversions("bfloat16")[1:3] == (nf._bf16_widen, nf._bf16_narrow)
    if platform.machine().lower() in ("x86_64", "amd64"):
        monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,-f16c,+fma")
        assert not nf.hardware_half()
        assert nf._conversions("float16")[1:3] == (nf._f16_widen, nf._f16_narrow)
        monkeypatch.setattr(config, "CPU_FEATURES", "")  # features unknown: the bit arithmetic, always right
        assert not nf.hardware_half()
        monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+f16c,+fma")
        assert nf.hardware_half()


def test_the_store_check_catches_truncation_and_a_lost_nan():
    """Planted bugs: bfloat16 stores that drop the low 16 bits (round toward zero), that round ties away from
    even (half up on the bits), or that write NaN as 0."""
    if "bfloat16" not in ALL:
        pytest.skip("ml_dtypes is not installed")

    def truncate(v):  # pragma: no cover - compiled
        return np.uint16(np.uint32(np.float32(v).view(np.uint32) >> 16))

    def half_up_with_carry(v):  # pragma: no cover - compiled
        return np.uint16(np.uint32(np.uint32(np.float32(v).view(np.uint32) + np.uint32(0x8000)) >> 16))

    def nan_to_zero(v):  # pragma: no cover - compiled
        b = np.float32(v).view(np.uint32)
        rounded = np.uint32(np.uint32(b + np.uint32(0x7FFF) + np.uint32(np.uint32(b >> 16) & 1)) >> 16)
        return np.uint16(0 if v != v else rounded)

    assert _stores_agree(truncate, "bfloat16")[0] > 1000
    assert _stores_agree(half_up_with_carry, "bfloat16")[0] > 0
    assert not _stores_agree(nan_to_zero, "bfloat16")[1]


def test_every_bfloat16_nan_gives_a_nan_row():
    """bfloat16's store keeps a NaN only when its low 16 bits are 0 (:func:`_kernel_nans`): every bfloat16 NaN
    pattern, signalling or quiet, either sign, in x (softmax, VJP, Jacobian) and in g (VJP), through the row
    path and the block sweeps, 254 rows at once and a row alone, gives a row of NaN bits in the kernels' output."""
    if "bfloat16" not in ALL:
        pytest.skip("ml_dtypes is not installed")
    t = _np("bfloat16")
    nans = _bfloat16_nans()
    fused = registry.get("numba-fused").ops_for("cpu")
    for n in (37, nf.BLOCK + 5):
        clean = np.random.default_rng(n).standard_normal((nans.size, n)).astype(t)
        with_nan = clean.view(np.uint16).copy()
        with_nan[np.arange(nans.size), np.arange(nans.size) % n] = nans
        with_nan = with_nan.view(t)
        for got in (fused["softmax"](with_nan), fused["vjp"](with_nan, clean), fused["vjp"](clean, with_nan),
                    fused["softmax"](with_nan[:1]), fused["vjp"](clean[:1], with_nan[:1])):
            assert np.isnan(np.asarray(got, np.float32)).all(), n
    x = np.random.default_rng(1).standard_normal((nans.size, 5)).astype(t).view(np.uint16)
    x[:, 2] = nans
    assert np.isnan(np.asarray(fused["jacobian"](x.view(t)), np.float32)).all()


@pytest.mark.parametrize("dtype", ALL)
def test_block_max_on_the_bits(dtype):
    """The block max compares order-preserving integer keys of the bits: negatives (their magnitude bits
    flipped), both zeros, infinities and subnormals in order; every 16-bit pattern but NaN, shuffled."""
    import numba

    block_max = nf._parts(dtype)["_block_max"]
    rng = np.random.default_rng(8)
    if np.dtype(_np(dtype)).itemsize == 2:
        bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
        with np.errstate(invalid="ignore"):
            values = bits.view(_np(dtype)).astype(np.float64)
        bits = bits[~np.isnan(values)]
    else:
        values = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-40, 40, 5000),
                                 [-np.inf, -0.0, 0.0, np.finfo(dtype).tiny / 4, -np.finfo(dtype).max]])
        with np.errstate(over="ignore"):
            bits = values.astype(dtype)  # past the range: infinities, which order too
    one = numba.njit(lambda a: block_max(a))
    negative = bits[np.asarray(bits.view(_np(dtype)), np.float64) < 0]  # where unflipped keys order backwards
    for pool in (bits, negative):
        for size in (1, 7, 300, pool.size):
            a = rng.permutation(pool)[:size]
            assert float(one(a)) == np.asarray(a.view(_np(dtype)), np.float64).max()


def test_wide_vectors_reach_llvm():
    """The kernels' marker puts the 512-bit preference into the function's LLVM IR (it relies on llvmlite's
    attribute set), and on a CPU with AVX-512 the vectorised loop then uses zmm registers."""
    import llvmlite.binding as llvm
    import numba

    wide = nf._wide_vectors()

    def total(a):  # pragma: no cover - compiled
        s = np.float32(0.0)
        for i in range(a.size):
            s += a[i] * a[i]
        return s

    def marked_total(a):  # pragma: no cover - compiled
        wide()
        s = np.float32(0.0)
        for i in range(a.size):
            s += a[i] * a[i]
        return s

    marked, plain = numba.njit(fastmath=True)(marked_total), numba.njit(fastmath=True)(total)
    a = np.arange(100, dtype=np.float32)
    assert marked(a) == plain(a) == np.float32((a.astype(np.float64) ** 2).sum())
    (ir,) = marked.inspect_llvm().values()
    assert nf.PREFER_WIDE in ir
    assert nf.PREFER_WIDE not in next(iter(plain.inspect_llvm().values()))
    if "+avx512f" in llvm.get_host_cpu_features().flatten():
        assert "zmm" in next(iter(marked.inspect_asm().values()))


def test_no_alias_marks_reach_llvm_and_drop_the_runtime_alias_check():
    """The marker makes the data pointers of the calling function's arrays ``noalias`` (not Numba's byte
    pointers), so LLVM vectorises a loop that stores and reads without a runtime check of where the arrays
    lie; unmarked, the same loop carries that check (``vector.memcheck``). The kernels' row and block loops
    are compiled without it."""
    import numba

    no_alias = nf._no_alias()

    def scaled(x, out):  # pragma: no cover - compiled
        s = np.float32(0.0)
        for i in range(x.size):
            out[i] = x[i] * np.float32(2.0)
            s += out[i]
        return s

    def marked_scaled(x, out):  # pragma: no cover - compiled
        no_alias()
        s = np.float32(0.0)
        for i in range(x.size):
            out[i] = x[i] * np.float32(2.0)
            s += out[i]
        return s

    marked, plain = numba.njit(fastmath=True)(marked_scaled), numba.njit(fastmath=True)(scaled)
    x = np.arange(100, dtype=np.float32)
    out_marked, out_plain = np.empty_like(x), np.empty_like(x)
    assert marked(x, out_marked) == plain(x, out_plain) == np.float32(2 * x.astype(np.float64).sum())
    assert np.array_equal(out_marked, 2 * x) and np.array_equal(out_plain, 2 * x)
    (ir,) = marked.inspect_llvm().values()
    (plain_ir,) = plain.inspect_llvm().values()
    assert _alias_checked(plain_ir) and not _alias_checked(ir)

    def marks(ir: str, name: str) -> int:
        return next(line for line in ir.splitlines() if line.startswith("define") and name in line).count("noalias")

    # Numba's own two (return pointer, exception info), then one per array: its data, not its meminfo or parent
    assert marks(plain_ir, "scaled") == 2 and marks(ir, "marked_scaled") == 2 + 2
    # the kernels' own row and block functions, compiled afresh here (the on-disk cache keeps no IR)
    parts = nf._kernel("vjp", "float32", False).py_func.__globals__
    row_run = parts["_row_run"].py_func.__globals__  # _rows is reached through _row_run
    fresh = {name: numba.njit(error_model="numpy", fastmath=nf.FASTMATH)(source[name].py_func)
             for name, source in (("_rows", row_run), ("_sweep", parts), ("_scale", parts))}
    n, rows = 3000, 2
    x, g = np.ones(rows * n, np.float32), np.ones(rows * n, np.float32)
    out, shifts = np.empty(rows * n, np.float32), np.zeros(2)
    fresh["_rows"](x[:rows * 64], 64, g, 64, out, 64, out, 64, 0, rows, True)
    fresh["_sweep"](x, 0, g, 0, out, 0, 0, n, shifts, 1.0, n, None)
    fresh["_scale"](g, 0, out, 0, out, 0, 0, n, shifts, 1.0, float(n), float(n), True)
    # a 16-bit row's sweep that scales the row behind: the arrays in its tuple argument are marked too
    behind = nf._kernel("vjp", "float16", False).py_func.__globals__["_sweep_behind"].py_func
    fresh["_sweep_behind"] = numba.njit(error_model="numpy", fastmath=nf.FASTMATH)(behind)
    bits, exps = np.zeros(rows * n, np.uint16), np.ones(n, np.float32)
    fresh["_sweep_behind"](bits, n, bits, n, np.empty(n, np.float32), 0, 0, n, shifts, 0.0, -1,
                           (exps, 0, np.empty(n, np.uint16), 0, shifts, 0.0, float(n), float(n)))
    for name, function in fresh.items():
        assert not _alias_checked(next(iter(function.inspect_llvm().values()))), name


def _lane_model(t: np.ndarray, lanes: int) -> np.generic:
    """The sum :func:`_lane_sums` is built to give, in NumPy: lane k adds t[k], t[k + lanes], ... in turn (the
    last partial vector padded with zeros), then lanes k and k + h are added, h = lanes / 2 down to 1."""
    padded = np.zeros(-(-t.size // lanes) * lanes, t.dtype)
    padded[:t.size] = t
    acc = np.zeros(lanes, t.dtype)
    for vector in padded.reshape(-1, lanes):
        acc = acc + vector
    while acc.size > 1:
        acc = acc[:acc.size // 2] + acc[acc.size // 2:]
    return acc[0]


def _lane_sums_of(compute: str, stored: str, with_g: bool):
    """:func:`_lane_sums` in a compiled function of its own: (t, to, g, go, n) -> (sum t, sum t * g)."""
    import numba

    sums = nf._lane_sums(compute, stored, with_g)

    @numba.njit
    def run(t, to, g, go, n):  # pragma: no cover - compiled
        return sums(t, np.uint64(to), g, np.uint64(go), np.uint64(n))

    return run


#: row lengths around the lanes (64 float32, 32 float64) and the kernels' blocks
_LANE_LENGTHS = (0, 1, 15, 31, 32, 33, 63, 64, 65, 127, 1000, 2048, 2051)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lane_sums_add_in_the_order_they_are_built_in(dtype):
    """The sums that every row and block takes: bit for bit the order of :func:`_lane_model` (lanes, then a
    tree), for every length and wherever the row starts, so no compiler choice can move them; the sum of
    ``t * g`` within rounding of the exact one (it may be fused into multiply-adds, the CPU's choice). A sum in
    other lanes differs from the model at some length: the comparison can tell orders apart."""
    rng = np.random.default_rng(5)
    lanes = nf.SUM_LANES[dtype]
    run = _lane_sums_of(dtype, dtype, True)
    other = 0
    for n in _LANE_LENGTHS:
        for start in (0, 3):
            t = (rng.standard_normal(n + start) * 10.0 ** rng.uniform(-4, 4, n + start)).astype(dtype)
            g = rng.standard_normal(n + start).astype(dtype)
            s, d = run(t, start, g, start, n)
            row = t[start:]
            got = np.array([s], dtype)  # Numba returns a Python float (exact)
            assert np.array_equal(got.view(np.uint8), np.array([_lane_model(row, lanes)]).view(np.uint8)), (n, start)
            other += _lane_model(row, lanes // 2) != got[0]
            exact = np.sum(row.astype(np.longdouble) * g[start:].astype(np.longdouble))
            bound = 4 * n * np.finfo(dtype).eps * np.sum(np.abs(row.astype(np.float64) * g[start:]))
            assert abs(float(d) - float(exact)) <= bound, (n, start)
    assert other > 0


def _widened_by_lane_sums(stored: str, bits: np.ndarray) -> np.ndarray:
    """Each 16-bit pattern widened by :func:`_lane_sums`'s own loads (the sum of 1 * g over a row of one)."""
    run = _lane_sums_of("float32", stored, True)
    one = np.ones(1, np.float32)
    return np.array([run(one, 0, bits, i, 1)[1] for i in range(bits.size)], np.float32)


@pytest.mark.parametrize("stored", ["bfloat16", "float16-bits", "float16"])
def test_lane_sums_widen_every_16bit_pattern_exactly(stored):
    """g's 16-bit elements, widened inside the sums' vectors, are the float32 values NumPy gives them (bfloat16:
    its top half; float16 by the CPU where it converts, and by the bit arithmetic), every pattern; NaN stays NaN.
    (Zeros may lose their sign: 0 + 1 * -0 is +0.)"""
    if stored == "float16" and not nf.hardware_half():
        pytest.skip("this CPU has no float16 conversion for Numba (hardware_half)")
    every = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    want = ((every.astype(np.uint32) << 16).view(np.float32) if stored == "bfloat16"
            else every.view(np.float16).astype(np.float32))
    got = _widened_by_lane_sums(stored, every)
    nan = np.isnan(want)
    assert np.array_equal(got[~nan], want[~nan]) and np.isnan(got[nan]).all()


def test_the_widening_check_catches_a_truncated_fraction():
    """A float16 widening that drops the lowest fraction bit fails the exact comparison above."""
    every = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    want = every.view(np.float16).astype(np.float32)
    got = _widened_by_lane_sums("float16-bits", every & np.uint16(0xFFFE))
    finite = np.isfinite(want)
    assert not np.array_equal(got[finite], want[finite])


def _alias_checked(ir: str) -> bool:
    """Whether LLVM's vectoriser left a runtime check of where the arrays lie in the optimised IR (its
    blocks and values are named ``vector.memcheck`` or ``diff.check``)."""
    return "memcheck" in ir or "diff.check" in ir


def _check(op: str, dtype: str, x: np.ndarray, g: np.ndarray | None, got: np.ndarray) -> None:
    want = (*x.shape, x.shape[-1]) if op == "jacobian" else x.shape
    assert got.shape == want and got.dtype == x.dtype
    x64 = np.asarray(x, dtype=np.float64)
    g64 = None if g is None else np.asarray(g, dtype=np.float64)
    _, problems = accuracy(op, dtype, x64, g64, np.asarray(got, dtype=np.float64))
    assert not problems, f"{op} {dtype} {x.shape}: {problems}"


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (NaN included), for any dtype (bfloat16 has no isnan of its own)."""
    return a.shape == b.shape and np.array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64), equal_nan=True)


def _run(ops, dtype: str, x: np.ndarray, g: np.ndarray, jacobian: bool = False) -> None:
    before = (x.copy(), g.copy())
    _check("softmax", dtype, x, None, ops["softmax"](x))
    _check("vjp", dtype, x, g, ops["vjp"](x, g))
    if jacobian:
        _check("jacobian", dtype, x, None, ops["jacobian"](x))
    assert _same(x, before[0]) and _same(g, before[1])


# rows shorter than a vector, exactly one, odd tails past vectors (8 or 16 float32 lanes, 4 interleaved) and
# blocks, either side of 512 and 1024 (where rows had left the row path), a row of exactly one block (the row
# path's longest), one past it and two whole ones (the next row's first max in the last block's loop), 3-d
# leading dims; small 2-d ones take the fast path, 9 x 1900 the threads
SHAPES = [(4, 1), (3, 2), (5, 7), (6, 8), (2, 9), (5, 17), (3, 31), (3, 32), (3, 63), (2, 130), (2, 512), (2, 513),
          (3, 1000), (2, 1025), (3, 2049), (2, nf.BLOCK), (3, 2 * nf.BLOCK), (2, 3, 4097), (1, 33), (9, 1900)]


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_contiguous_rows(ops, dtype, shape):
    rng = np.random.default_rng(sum(shape))
    t = _np(dtype)
    _run(ops, dtype, (rng.standard_normal(shape) * 4).astype(t), rng.standard_normal(shape).astype(t),
         jacobian=shape[-1] <= 2049)


@pytest.mark.parametrize("dtype", ALL)
def test_layouts_read_in_place_or_copied(ops, dtype):
    rng = np.random.default_rng(1)
    wide = (rng.standard_normal((6, 3000)) * 3).astype(_np(dtype))
    padded = wide[:, 7:2900]  # rows of a wider buffer: read in place with a row stride
    g_row = rng.standard_normal(padded.shape[-1]).astype(wide.dtype)
    broadcast = np.broadcast_to(g_row, padded.shape)  # a sum loss's cotangent: row stride 0
    _run(ops, dtype, padded, broadcast)
    assert nf._flat(padded)[1] == 3000 and nf._flat(broadcast)[1] == 0
    transposed = np.ascontiguousarray(wide[:, :40].T).T  # stride along the row: copied
    _run(ops, dtype, transposed, rng.standard_normal(transposed.shape).astype(wide.dtype), jacobian=True)
    stepped = wide[::2, ::3]
    _run(ops, dtype, stepped, stepped[::-1], jacobian=True)
    three = wide.reshape(2, 3, 3000)[:, ::2, 5:70]  # leading dims that do not merge into one row stride
    _run(ops, dtype, three, np.ones_like(three), jacobian=True)
    frozen = wide.copy()
    frozen.flags.writeable = False  # read-only inputs are read in place too
    _run(ops, dtype, frozen, frozen)
    _run(ops, dtype, wide[0, ::2], wide[1, 1::2], jacobian=True)  # one row (1-d), a stride along it


def _masked_rows(dtype: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((7, n)) * 3).astype(_np(dtype))
    x[0] = -np.inf  # a fully masked row: NaN by the policy
    x[1, : n - 3] = -np.inf  # a masked prefix over many blocks, then a small finite max
    x[1, n - 3:] = -1000.0
    x[2, n // 2:] = -np.inf  # right padding
    x[3, ::2] = -np.inf
    x[4, 5] = np.inf
    x[5, n - 1] = np.nan
    x[6, : n // 3] = -np.inf  # a prefix, then ordinary logits
    return x


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_short_rows_with_the_rows_in_the_lanes(ops, dtype, n):
    """Rows shorter than a vector (:func:`_short_rows`, rows in the vector lanes): several passes of
    ROWS_AT_ONCE rows and a ragged last one, on threads, contiguous, padded (a row stride) and 3-d, with masked
    and non-finite rows among them, judged by the oracle; a row alone gives the bits it gives among others."""
    t = _np(dtype)
    rows = 8 * nf.ROWS_AT_ONCE + 37  # past the serial limit for every n: the parallel kernel
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((rows, n)) * 3).astype(t)
    x[5] = -np.inf  # a fully masked row: NaN by the policy
    x[6, 0] = np.nan
    x[7, -1] = np.inf
    x[8, :(n + 1) // 2] = -np.inf
    g = rng.standard_normal((rows, n)).astype(t)
    _run(ops, dtype, x, g, jacobian=True)
    padded = np.zeros((rows, n + 3), t)[:, 1:n + 1]
    padded[:] = x
    _run(ops, dtype, padded, g)
    _run(ops, dtype, x[:rows - rows % 3].reshape(3, -1, n), g[:rows - rows % 3].reshape(3, -1, n))
    for i in (0, 5, 9, nf.ROWS_AT_ONCE, rows - 1):
        assert _same(ops["softmax"](x[i:i + 1]), ops["softmax"](x)[i:i + 1]), i
        assert _same(ops["vjp"](x[i:i + 1], g[i:i + 1]), ops["vjp"](x, g)[i:i + 1]), i


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("n", [13, 37, 3 * nf.BLOCK + 5])  # a short row (plain loops), block sweeps
def test_masks_and_non_finite_rows(ops, dtype, n):
    x = _masked_rows(dtype, n)
    g = np.random.default_rng(0).standard_normal(x.shape).astype(x.dtype)
    _run(ops, dtype, x, g, jacobian=n < 100)
    s = np.asarray(ops["softmax"](x), np.float64)
    assert np.isnan(s[[0, 4, 5]]).all() and not np.isnan(s[[1, 2, 3, 6]]).any()
    assert (s[2, n // 2:] == 0).all()


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("n", [37, 1000, nf.BLOCK, 2 * nf.BLOCK, 3 * nf.BLOCK + 5])  # rows whole, rows in blocks
def test_each_row_and_block_is_shifted_by_its_own_max(ops, dtype, n):
    """A row's maxima are found one row (or block) ahead, in the loop of the row (block) before: a row of
    -400 with one +400 at each edge of the row and of its blocks, between rows of only -400. exp(800)
    overflows in every compute dtype, so a max from the neighbouring row or block, or one that misses an
    element, gives inf or NaN; softmax is a scale-free function of the shift otherwise, so random rows
    cannot tell."""
    edges = {0, 1, n - 2, n - 1} | {b + d for b in range(nf.BLOCK, n, nf.BLOCK) for d in (-1, 0, 1)}
    rows = []
    for p in sorted(edges):
        rows += [np.full(n, -400.0), np.full(n, -400.0)]
        rows[-1][p] = 400.0
    x = np.array(rows + [np.full(n, -400.0)]).astype(_np(dtype))
    g = np.random.default_rng(n).standard_normal(x.shape).astype(x.dtype)
    _run(ops, dtype, x, g)
    s = np.asarray(ops["softmax"](x), np.float64)
    assert (s[1::2].max(axis=1) == 1).all() and (s[1::2].sum(axis=1) == 1).all()


def _bits(a: np.ndarray) -> np.ndarray:
    """``a`` flat, as the kernels take it (16-bit dtypes as their uint16 bits)."""
    return a.reshape(-1).view(np.uint16) if a.dtype.itemsize == 2 else a.reshape(-1)


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("chunks", [2, 3, 5])
def test_long_rows_split_across_threads(kernels, dtype, chunks):
    """The split path (rows fewer than threads), forced for any thread count: each chunk's max and sums
    merged, masks and a max in any chunk included; within tolerance split and unsplit, dealt to one worker
    or to several."""
    n = 3 * nf.MIN_CHUNK + 123
    rng = np.random.default_rng(chunks)
    x = (rng.standard_normal((3, n)) * 3).astype(_np(dtype))
    x[0, n - 10] = 40.0  # the max in the last chunk
    x[1, : 2 * nf.MIN_CHUNK] = -np.inf  # whole chunks masked
    x[2] = -np.inf
    g = rng.standard_normal((3, n)).astype(x.dtype)
    for op in ("softmax", "vjp"):
        kernel = kernels(op, dtype, True)
        for c, workers in ((1, 1), (1, 2), (chunks, 2)):
            out = np.empty_like(x)
            kernel(_bits(x), n, _bits(g), n, _bits(out), n, c, workers)
            _check(op, dtype, x, g if op == "vjp" else None, out)


@pytest.mark.parametrize("dtype", ("float16", "bfloat16"))
@pytest.mark.parametrize("op", ("softmax", "vjp"))
def test_16bit_rows_either_side_of_the_row_behind_limit(kernels, dtype, op):
    """16-bit rows longer than a block are scaled in the next row's sweep up to a length (:data:`BEHIND_BYTES`),
    past it after their own: on both sides, each of a worker's rows (its own max in a different block, a masked
    row, a NaN row, the last row) comes out right, and a row gives the same bits as alone."""
    if dtype not in ALL:
        pytest.skip("ml_dtypes is not installed")
    kernel = kernels(op, dtype, True)
    limit = nf.behind_limit(op)
    rng = np.random.default_rng(limit)
    for n in (limit, limit + 1):
        x = (rng.standard_normal((5, n)) * 3).astype(_np(dtype))
        x[0, 7] = x[1, n - 3] = 30.0
        x[2, : n // 2] = -np.inf
        x[3, 5] = np.nan
        g = rng.standard_normal(x.shape).astype(x.dtype)
        out = np.empty_like(x)
        kernel(_bits(x), n, _bits(g), n, _bits(out), n, 1, 1)
        assert np.isnan(np.asarray(out[3], np.float64)).all()
        rows = [0, 1, 2, 4]
        _check(op, dtype, x[rows], g[rows] if op == "vjp" else None, out[rows])
        for r in (0, 1):  # row 1 is scaled in row 2's sweep (below the limit)
            alone = np.empty_like(x[r:r + 1])
            kernel(_bits(x[r:r + 1]), n, _bits(g[r:r + 1]), n, _bits(alone), n, 1, 1)
            assert _same(alone, out[r:r + 1])


@pytest.mark.parametrize("dtype", ("float16", "bfloat16"))
@pytest.mark.parametrize("workers", (1, 2))
def test_16bit_vjp_rows_swept_a_group_at_a_time(kernels, dtype, workers):
    """A worker with more 16-bit VJP rows than a group (:func:`group_rows`) sweeps a group, then scales it: each
    row of whole groups and a partial last one, with its max in its first or last block, masked, NaN or only
    -inf on either side of a group's edge, comes out right, and gives the same bits as alone."""
    if dtype not in ALL:
        pytest.skip("ml_dtypes is not installed")
    kernel = kernels("vjp", dtype, True)
    n = nf.BLOCK + 1
    group = nf.group_rows(n)
    rows = workers * (2 * group + 3)  # each worker: two whole groups and a partial one
    rng = np.random.default_rng(group)
    x = (rng.standard_normal((rows, n)) * 3).astype(_np(dtype))
    edges = [group - 1, group, 2 * group, rows - 1]
    x[edges[0], n - 2] = x[edges[1], 3] = 30.0  # the max in the last block, then the first
    x[edges[2], : n // 2] = -np.inf
    x[edges[3]] = -np.inf
    x[group + 1, 9] = np.nan
    g = rng.standard_normal(x.shape).astype(x.dtype)
    out = np.empty_like(x)
    kernel(_bits(x), n, _bits(g), n, _bits(out), n, 1, workers)
    special = [edges[3], group + 1]
    assert all(np.isnan(np.asarray(out[r], np.float64)).all() for r in special)
    fine = np.setdiff1d(np.arange(rows), special)
    _check("vjp", dtype, x[fine], g[fine], out[fine])
    for r in (*edges[:3], group + 2, rows // 2):
        alone = np.empty_like(x[r:r + 1])
        kernel(_bits(x[r:r + 1]), n, _bits(g[r:r + 1]), n, _bits(alone), n, 1, 1)
        assert _same(alone, out[r:r + 1]), r


@pytest.mark.parametrize("dtype", ALL)
def test_jacobian_bands_and_workers(kernels, dtype):
    """The Jacobian's split path, forced: each row's block cut into bands (uneven ones included) dealt to
    workers that share rows, short rows and block sweeps; a masked row and a NaN row."""
    kernel = kernels("jacobian", dtype, True)
    rng = np.random.default_rng(5)
    for n in (7, 300):
        x = (rng.standard_normal((3, n)) * 3).astype(_np(dtype))
        x[1, : n // 2] = -np.inf
        x[2, 1] = np.nan
        for bands, workers in ((1, 1), (1, 3), (4, 2), (5, 3)):
            out = np.full((3, n, n), 7, x.dtype)  # any entry left unwritten shows
            kernel(_bits(x), n, _bits(out), n, bands, workers)
            _check("jacobian", dtype, x, None, out)


@pytest.mark.parametrize("dtype", ("float32", "float16", "bfloat16"))
def test_long_rows_through_the_entry(ops, dtype):
    """One row of a vocabulary's length (split where Numba has more threads than rows) and two such rows."""
    if dtype not in ALL:
        pytest.skip("ml_dtypes is not installed")
    rng = np.random.default_rng(3)
    for rows in (1, 2):
        x = (rng.standard_normal((rows, 2 * nf.MIN_CHUNK + 77)) * 3).astype(_np(dtype))
        _run(ops, dtype, x, rng.standard_normal(x.shape).astype(x.dtype))


@pytest.mark.parametrize("dtype", ("float16", "bfloat16"))
def test_near_uniform_16bit_rows(ops, dtype):
    """Logits at initialisation, n = 65537: a 16-bit sum of exp would overflow (float16) or stop growing
    (bfloat16 past 256); the sums run in float32 blocks and a float64 row."""
    if dtype not in ALL:
        pytest.skip("ml_dtypes is not installed")
    rng = np.random.default_rng(6)
    n = 65537
    x = np.stack([np.zeros(n), 0.01 * rng.standard_normal(n)]).astype(_np(dtype))
    _run(ops, dtype, x, rng.standard_normal(x.shape).astype(x.dtype))


@pytest.mark.parametrize("dtype", ("float32", "bfloat16"))
def test_large_results_start_on_a_cache_line(ops, dtype):
    """From :data:`ALIGNED_FROM` bytes a result starts on a cache line, whatever x's placement (16 bytes off
    one here); smaller ones are NumPy's own. Each is right and the caller's."""
    if dtype not in ALL:
        pytest.skip("ml_dtypes is not installed")
    rng = np.random.default_rng(8)
    itemsize = np.dtype(_np(dtype)).itemsize
    rows = nf.ALIGNED_FROM // (1024 * itemsize)
    big = np.empty(rows * 1024 * itemsize + 64, np.uint8)
    start = (-big.ctypes.data % 64) + 16
    x = big[start:start + rows * 1024 * itemsize].view(_np(dtype)).reshape(rows, 1024)
    x[...] = rng.standard_normal(x.shape) * 3
    g = rng.standard_normal(x.shape).astype(x.dtype)
    jx = x[:, :128][: nf.ALIGNED_FROM // (128 * 128 * itemsize)]  # a Jacobian of ALIGNED_FROM bytes
    kept = [ops["softmax"](x), ops["vjp"](x, g), ops["jacobian"](jx)]
    kept += [ops["softmax"](x), ops["vjp"](x, g)]  # a second call lands elsewhere: aligned again
    assert x.ctypes.data % 64 == 16 and all(a.ctypes.data % 64 == 0 for a in kept)
    _check("softmax", dtype, x, None, kept[0])
    _check("vjp", dtype, x, g, kept[1])
    _check("jacobian", dtype, jx, None, kept[2])
    assert not np.shares_memory(kept[0], kept[3])
    small = ops["softmax"](x[:4])
    _check("softmax", dtype, x[:4], None, small)


@pytest.mark.parametrize("g_layout", ["contiguous", "broadcast"])
def test_large_results_lie_apart_from_the_inputs(ops, monkeypatch, g_layout):
    """A result of :data:`APART_FROM` bytes or more starts :data:`softgrad.aligned.APART` bytes or more, modulo
    :data:`softgrad.aligned.ALIAS_PERIOD`, from x's and g's first elements (a period of a page here, where a
    result placed anyhow meets an input about half the time: the check catches it), and is right."""
    monkeypatch.setattr(aligned, "ALIAS_PERIOD", 4096)
    monkeypatch.setattr(aligned, "APART", 512)
    rng = np.random.default_rng(9)
    rows, n = nf.APART_FROM // (4 * 1024), 1024
    pool = np.empty(2 * rows * n * 4 + 8192, np.uint8)
    met = 0
    for _ in range(12):
        ox, og = rng.integers(0, 4096 // 64, 2) * 64
        x = pool[ox:ox + rows * n * 4].view(np.float32).reshape(rows, n)
        x[...] = rng.standard_normal(x.shape)
        g = pool[4096 + rows * n * 4 + og:][:rows * n * 4].view(np.float32).reshape(rows, n)
        g[...] = rng.standard_normal(x.shape)
        if g_layout == "broadcast":
            g = np.broadcast_to(g[0], x.shape)
        for out, reads in [(ops["softmax"](x), [x]), (ops["vjp"](x, g), [x, g]), (ops["jacobian"](x[:16]), [x])]:
            assert all(_apart(out, a) >= 512 for a in reads)
        met += min(_apart(aligned.empty(x.shape, x.dtype), a) for a in (x, g)) < 512
        _check("vjp", "float32", x, g, ops["vjp"](x, g))
    assert met > 0


def _apart(a: np.ndarray, b: np.ndarray, period: int = 4096) -> int:
    """How far the first elements of a and b lie from each other modulo ``period``."""
    d = (a.ctypes.data - b.ctypes.data) % period
    return min(d, period - d)


def test_same_input_same_result_and_results_are_the_callers(ops):
    x = np.random.default_rng(4).standard_normal((3, 5000)).astype(np.float32)
    first = ops["softmax"](x)
    kept = first.copy()
    second = ops["softmax"](x)
    assert np.array_equal(first, second) and np.array_equal(first, kept) and first is not second
    jac = ops["jacobian"](x[:, :300])
    assert np.array_equal(jac, ops["jacobian"](x[:, :300])) and jac is not ops["jacobian"](x[:, :300])
    assert ops["softmax"](np.empty((0, 4), np.float32)).shape == (0, 4)
    assert ops["vjp"](np.empty((2, 0)), np.empty((2, 0))).shape == (2, 0)
    assert ops["jacobian"](np.empty((2, 0), np.float16)).shape == (2, 0, 0)
    assert ops["jacobian"](np.empty((0, 3), np.float16)).dtype == np.float16


def _at_offsets(fn, row: np.ndarray, offsets=range(9)) -> list[np.ndarray]:
    """``fn`` on the same row placed at each offset of a buffer (its start's alignment changing by one element
    each time), as a 1 x n C-contiguous view: the results, to compare bit for bit."""
    buf = np.zeros(row.size + 32, row.dtype)
    base = (-(buf.ctypes.data // row.itemsize)) % 8  # offset k lies k elements past a 8-element boundary
    results = []
    for k in offsets:
        buf[:] = 0
        buf[base + k:base + k + row.size] = row
        results.append(np.asarray(fn(buf[base + k:base + k + row.size].reshape(1, -1))))
    return results


def _lane_softmax(x: np.ndarray) -> np.ndarray:
    """The planted bug: a softmax whose sum's 8 lanes follow the buffer's alignment (element i in lane
    (address / itemsize + i) % 8, as a sum that peels to an aligned start would), not the row's start."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    start = x.ctypes.data // x.itemsize
    lanes = [e[..., (8 - (start + j) % 8) % 8::8].sum(axis=-1, dtype=e.dtype) for j in range(8)]
    total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    return e / total[..., None]


def _all_same(results: list[np.ndarray]) -> bool:
    return all(np.array_equal(r.view(np.uint8), results[0].view(np.uint8)) for r in results)


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("n", [3, 8, 37, 600, 1000, nf.BLOCK + 3])  # rows and blocks (600: float64)
def test_same_row_same_bits_wherever_it_lies(ops, dtype, n):
    """The row sums' order depends on n only: the same row at every alignment of x and g, alone (the fast
    path) or among other rows (padded rows, a batch big enough for threads), gives the same bits."""
    rng = np.random.default_rng(n)
    t = _np(dtype)
    row = (rng.standard_normal(n) * 3).astype(t)
    grow = rng.standard_normal(n).astype(t)
    soft = _at_offsets(ops["softmax"], row)
    assert _all_same(soft)
    assert _all_same(_at_offsets(lambda x: ops["vjp"](x, grow[None]), row))
    assert _all_same(_at_offsets(lambda g: ops["vjp"](row[None], g), grow))
    rows = max(3, nf.SERIAL_BELOW // n + 1)  # past SERIAL_BELOW: the parallel kernel
    batch = np.zeros((rows, n + 5), t)[:, 2:n + 2]  # padded rows: read in place with a row stride
    batch[:] = row
    for got in (ops["softmax"](batch), ops["softmax"](np.ascontiguousarray(batch)), ops["softmax"](row)[None]):
        assert _all_same([soft[0][0]] + list(got.reshape(-1, n)))


#: run in a process of its own: a row alone (2-d fast path) and the same row among others (the parallel kernel)
_ACROSS_PROCESSES = """
import sys
import numpy as np
from softgrad import registry
registry.load_builtins()
from softgrad.implementations import numba_fused as nf
ops = registry.get("numba-fused").ops_for("cpu")
what, out = sys.argv[1], sys.argv[2]
results = {}
for dtype, n in (("float32", 600), ("float64", 2051), ("float16", 1000)):
    rng = np.random.default_rng(n)
    row = (rng.standard_normal(n) * 3).astype(dtype)
    grow = rng.standard_normal(n).astype(dtype)
    rows = max(3, nf.SERIAL_BELOW // n + 1)
    x, g = np.tile(row, (rows, 1)), np.tile(grow, (rows, 1))
    if what in ("alone", "both"):
        results[f"alone-softmax-{dtype}"] = ops["softmax"](row[None])[0]
        results[f"alone-vjp-{dtype}"] = ops["vjp"](row[None], grow[None])[0]
    if what in ("batch", "both"):
        results[f"batch-softmax-{dtype}"] = ops["softmax"](x)
        results[f"batch-vjp-{dtype}"] = ops["vjp"](x, g)
np.savez(out, **results)
"""


@pytest.mark.slow
def test_same_row_same_bits_whether_compiled_afresh_or_read_from_the_cache(tmp_path):
    """Numba links each row function into its caller's module and optimises it again there, so the kernel that
    runs may hold another copy of ``_rows`` or ``_sweep`` than the one compiled alone, and which copy a call
    reaches follows what this process compiled and what it read from the on-disk cache. Three processes on one
    fresh cache (a row alone, then the row among others, then both read from the cache) must agree bit for bit.
    They did not while the sums were loops that LLVM vectorised as it chose (``reassoc``): the float32 VJP of a
    row of 600 came out an ulp (7.5e-9) apart between a kernel read from the cache and one compiled afresh, every
    time, and summing e in the exp's loop split the softmax too. The sums' order is now built into their IR
    (:func:`_lane_sums`) and no fast-math flag lets LLVM reorder anything else."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    saved = {}
    for what in ("alone", "batch", "both"):
        out = tmp_path / f"{what}.npz"
        subprocess.run([sys.executable, "-c", _ACROSS_PROCESSES, what, str(out)], env=env, check=True, timeout=900)
        saved[what] = dict(np.load(out))
    rows = {**saved["alone"], **saved["batch"]}
    for key, got in saved["both"].items():
        assert np.array_equal(got, rows[key]), key  # read from the cache against compiled afresh
    for op in ("softmax", "vjp"):
        for dtype in (*DTYPES, "float16"):
            alone, batch = rows[f"alone-{op}-{dtype}"], rows[f"batch-{op}-{dtype}"]
            assert all(np.array_equal(r, alone) for r in batch), (op, dtype)


def test_the_alignment_check_catches_an_alignment_dependent_sum():
    row = (np.random.default_rng(11).standard_normal(1000) * 3).astype(np.float32)
    assert not _all_same(_at_offsets(_lane_softmax, row))
    assert _all_same(_at_offsets(_lane_softmax, row, offsets=[0, 8]))  # the same alignment: the same bits


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_path_compiles_once_for_writable_and_read_only_inputs(ops, dtype):
    """Small 2-d inputs go to a kernel with one 2-d signature (read-only arrays; writable ones convert to
    it): neither kind of input makes Numba compile another specialisation inside a call."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 37)).astype(dtype)
    frozen = x.copy()
    frozen.flags.writeable = False
    for a in (x, frozen):
        _run(ops, dtype, a, a, jacobian=True)
    for op in ("softmax", "vjp", "jacobian"):
        assert len(nf._small(op, dtype).signatures) == 1, (op, nf._small(op, dtype).signatures)
