"""softgrad.aligned: arrays that start on a cache line, and the NumPy backend's inputs made with them."""

from __future__ import annotations

import numpy as np
import pytest

from softgrad import aligned
from softgrad.backends import get_backend
from softgrad.prepared import padded_width, view

DTYPES = ["float64", "float32", "float16", "uint8"]
try:
    import ml_dtypes

    DTYPES.append(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes comes with the test extra
    pass


def _on_a_line(a: np.ndarray) -> bool:
    return a.ctypes.data % aligned.CACHE_LINE == 0


def test_the_alignment_check_sees_an_array_off_a_line():
    """The check below is not vacuous: NumPy's own arrays are 16-byte aligned, a view 16 bytes on is off a line."""
    a = aligned.empty((1000,), np.float32)
    assert _on_a_line(a) and not _on_a_line(a[4:]) and not _on_a_line(a.view(np.uint8)[16:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (256, 1024), (2, 3, 50257)])
def test_empty_starts_on_a_line_with_the_shape_and_dtype_asked(shape, dtype):
    kept = [aligned.empty(shape, dtype) for _ in range(20)]  # kept alive: each lands somewhere else on the heap
    for a in kept:
        assert _on_a_line(a) and a.shape == shape and a.dtype == np.dtype(dtype)
        assert a.flags.c_contiguous and a.flags.writeable
    kept[0][...] = 1  # writable through its whole extent, not past it
    assert kept[0].size == int(np.prod(shape)) and (kept[0] == 1).all()


def test_empty_of_nothing_and_of_a_scalar():
    assert aligned.empty((0, 5), np.float32).shape == (0, 5)
    assert aligned.empty((), np.float64).shape == ()


@pytest.mark.parametrize("shape", [(-1,), (3, -2), (10**400,)])
def test_empty_refuses_what_np_empty_refuses(shape):
    with pytest.raises(ValueError):
        np.empty(shape, np.float32)
    with pytest.raises(ValueError):
        aligned.empty(shape, np.float32)


def test_placed_is_an_aligned_copy():
    src = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]  # not contiguous
    got = aligned.placed(src)
    assert _on_a_line(got) and got.flags.c_contiguous and np.array_equal(got, src)
    got[0, 0] = 99
    assert src[0, 0] == 0


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_placed_casts_as_astype_does_bit_for_bit(dtype):
    """Cast in the copy: the same bits as ``astype`` (round to nearest even, overflow to inf, subnormals, NaN)."""
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    rng = np.random.default_rng(3)
    src = np.concatenate([rng.standard_normal(4000) * 10.0 ** rng.integers(-45, 40, 4000),
                          [np.nan, np.inf, -np.inf, 0.0, -0.0, 65520.0, 65519.99, 2.0**-25, 1 + 2.0**-11, 3e38 * 1.2]])
    with np.errstate(over="ignore", invalid="ignore"):  # the overflows are the point
        got = aligned.placed(src, dtype)
        want = src.astype(dtype)
    assert got.dtype == want.dtype and _on_a_line(got)
    assert np.array_equal(got.view(f"u{want.itemsize}"), want.view(f"u{want.itemsize}"))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_numpy_backend_inputs_and_padded_rows_start_on_a_line(dtype):
    """Every NumPy-backed entry reads inputs placed as torch's and JAX's allocators place theirs."""
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    b = get_backend("numpy")
    x = np.random.default_rng(0).standard_normal((5, 77))
    for _ in range(10):
        a = b.from_numpy(x, dtype, "cpu")
        assert _on_a_line(a) and a.shape == x.shape and b.dtype_name(a) == dtype
        assert np.array_equal(np.asarray(a, np.float64), np.asarray(x.astype(a.dtype), np.float64))
        padded = view(a, "padded", backend=b)
        assert _on_a_line(padded) and np.array_equal(np.asarray(padded, np.float64), np.asarray(a, np.float64))
        width = padded_width(x.shape[1])
        rows = np.lib.stride_tricks.as_strided(padded, (x.shape[0], width), padded.strides)  # with the padding
        assert np.isnan(np.asarray(rows[:, x.shape[1]:], np.float64)).all()


def _apart(a: int, b: int, period: int) -> int:
    """How far addresses a and b lie from each other modulo ``period`` (either way round)."""
    return min((a - b) % period, (b - a) % period)


def test_start_apart_is_the_least_aligned_start_apart_from_every_input():
    """Against a brute-force search over every aligned address, for random and adversarial starts: the base
    itself inside an arc, arcs that overlap, touch, wrap around the period or start off a line."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=400, deadline=None)
    @hypothesis.given(base=st.integers(0, 2**40), align=st.sampled_from([16, 64]),
                      period=st.sampled_from([1 << 12, 1 << 14]), apart=st.sampled_from([64, 256, 1000]),
                      near=st.lists(st.integers(-3000, 3000), max_size=3))
    def check(base, align, period, apart, near):
        hypothesis.assume(len(near) * (2 * apart + align) + align <= period)
        starts = [(base + d) % period for d in near]  # near the base, where the search has to step over them
        offset = aligned.start_apart(base, starts, align, period, apart)
        at = base + offset
        assert at % align == 0 and 0 <= offset <= len(starts) * (2 * apart + align) + align
        assert all(_apart(at, s, period) >= apart for s in starts)
        first = base + -base % align
        earlier = range(first, at, align)
        assert not any(all(_apart(a, s, period) >= apart for s in starts) for a in earlier)

    check()


def test_start_apart_search_catches_a_start_too_near():
    """The distance above is not vacuous: the base itself, with an input on it, fails it."""
    assert _apart(4096 + 64, 64, 4096) == 0 and _apart(100, 4000, 4096) == 196
    assert aligned.start_apart(4096, [0], 64, 4096, 256) == 256
    assert aligned.start_apart(4096, [4096 - 64], 64, 4096, 256) == 192
    with pytest.raises(ValueError, match="cannot fit"):
        aligned.start_apart(0, [0, 1000, 2000], 64, 4096, 1000)


@pytest.mark.parametrize("inputs", [1, 2])
def test_empty_apart_lies_apart_from_its_inputs(monkeypatch, inputs):
    """With a period of a page, where random placements meet half the time, every result lies apart from each
    input, starts on a line, has the shape and dtype asked and is writable through its extent; plain
    ``empty`` arrays met the inputs in some of the same draws (the check catches a result placed anyhow)."""
    monkeypatch.setattr(aligned, "ALIAS_PERIOD", 4096)
    monkeypatch.setattr(aligned, "APART", 512)
    rng = np.random.default_rng(5)
    pool = np.empty(1 << 16, np.uint8)
    met = 0
    for _ in range(200):
        ins = [pool[o:o + 64] for o in rng.integers(0, 1 << 15, inputs)]
        got = aligned.empty_apart((3, 1000), np.float32, ins)
        assert _on_a_line(got) and got.shape == (3, 1000) and got.dtype == np.float32 and got.flags.writeable
        assert all(_apart(got.ctypes.data, a.ctypes.data, 4096) >= 512 for a in ins)
        got[...] = 1
        plain = aligned.empty((3, 1000), np.float32)
        met += any(_apart(plain.ctypes.data, a.ctypes.data, 4096) < 512 for a in ins)
    assert met > 20


def test_empty_apart_of_nothing_and_without_inputs():
    assert aligned.empty_apart((0, 5), np.float32, []).shape == (0, 5)
    assert _on_a_line(aligned.empty_apart((7,), np.float64, []))
    with pytest.raises(ValueError):
        aligned.empty_apart((-1,), np.float32, [])
