"""The one applicability rule and the one prepared call: every reason, g bound, a layout, the cost probe."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import FakeClock

from softgrad import prepared, registry
from softgrad.applicability import applicable, output_elements
from softgrad.check import oracle
from softgrad.prepared import estimate_seconds, prepare, too_slow

ROOT = Path(__file__).resolve().parents[1]


def _numpy_ops(device: str):
    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def jacobian(x):
        s = softmax(x)
        return s[..., :, None] * (np.eye(x.shape[-1]) - s[..., None, :])

    def vjp(x, g):
        s = softmax(x)
        return s * (g - (s * g).sum(-1, keepdims=True))

    return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}


@pytest.fixture
def entry():
    """A throwaway NumPy entry: softmax and vjp only, float64, cpu and (declared, never present) cuda."""
    impl = registry.register(registry.Implementation(
        name="applicability-probe", family="applicability-probe", build=_numpy_ops, ops=("softmax", "vjp"),
        dtypes=("float64",), devices=("cpu", "cuda"), max_n={"softmax": 64}, max_elements={"vjp": 1000}))
    yield impl
    registry.unregister(impl.name)


def test_applicable_gives_each_reason(entry):
    assert applicable(entry, "softmax", "float64", "cpu", (4, 64)) is None
    assert "does not implement jacobian" in applicable(entry, "jacobian", "float64", "cpu", (4, 8))
    assert "does not support float32" in applicable(entry, "softmax", "float32", "cpu", (4, 8))
    assert "does not run on mps" in applicable(entry, "softmax", "float64", "mps", (4, 8))
    assert "limited to n <= 64" in applicable(entry, "softmax", "float64", "cpu", (1, 65))
    assert "inputs of <= 1000 elements" in applicable(entry, "vjp", "float64", "cpu", (2, 501))
    assert applicable(entry, "softmax", "float64", "cuda", (4, 8)) == "cuda is not present"


def test_output_budget_counts_the_result():
    impl = registry.get("numpy")
    assert output_elements("jacobian", (2, 3, 4)) == 6 * 16 and output_elements("vjp", (5,)) == 5
    assert applicable(impl, "jacobian", "float64", "cpu", (4, 8), max_output_elements=256) is None
    assert applicable(impl, "jacobian", "float64", "cpu", (4, 8), max_output_elements=255) == (
        "Jacobian of 4x8x8 exceeds the output budget of 255 elements")
    assert applicable(impl, "softmax", "float64", "cpu", (4, 8), max_output_elements=31,
                      budget="memory") == "softmax of 4x8 exceeds the memory budget of 31 elements"
    assert applicable(impl, "softmax", "float64", "cpu", (4, 8), max_output_elements=32) is None


def test_prepare_binds_g_for_the_vjp():
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    call = prepare(registry.get("numpy"), "vjp", "float64", "cpu", x, g)
    assert call.g is not None and np.array_equal(call.g, g) and call.g is not g  # native copies
    np.testing.assert_allclose(call(), oracle.reference("vjp", x, g), rtol=1e-12, atol=1e-15)
    assert prepare(registry.get("numpy"), "softmax", "float64", "cpu", x, g).args == (pytest.approx(x),)
    with pytest.raises(ValueError, match="cotangent"):
        prepare(registry.get("numpy"), "vjp", "float64", "cpu", x)


def test_prepare_applies_a_transposed_layout():
    base = np.random.default_rng(2).standard_normal((6, 4))  # (n, batch): the implementation sees base.T
    call = prepare(registry.get("numpy"), "softmax", "float32", "cpu", base, layout="transposed")
    assert call.x.shape == (4, 6) and not call.x.flags.c_contiguous and call.x.dtype == np.float32
    np.testing.assert_allclose(call(), oracle.reference("softmax", base.T.astype(np.float32), None), rtol=1e-6)


@pytest.fixture
def clock(monkeypatch):
    """The cost probe's clock, faked: it moves only when a fake call says it took time."""
    fake = FakeClock()
    monkeypatch.setattr(prepared, "time", fake)
    return fake


@pytest.fixture
def timed_entry(clock):
    """Registers a NumPy entry whose softmax takes ``cost(x)`` seconds on the fake clock; records the shapes
    it was called with."""
    made = []

    def make(cost, name="applicability-timed"):
        seen: list[tuple[int, ...]] = []

        def softmax(x):
            seen.append(x.shape)
            clock.advance(cost(x))
            return x

        impl = registry.register(registry.Implementation(name=name, family=name, build=lambda device: {"softmax": softmax},
                                                         ops=("softmax",), dtypes=("float64",)))
        made.append(impl)
        return impl, seen

    yield make
    for impl in made:
        registry.unregister(impl.name)


def test_estimate_probes_one_short_row_and_scales(timed_entry):
    impl, seen = timed_entry(lambda x: 0.002 * x.size)  # 2 ms an element: linear in the work
    x = np.zeros((50, 16))
    assert estimate_seconds(impl, "softmax", "float64", "cpu", x, row_n=4) == pytest.approx(0.002 * 50 * 16)
    assert seen == [(1, 4), (1, 4)], "one untimed call, one timed"
    assert "about 1.6 s, over the 0.01 s budget" in too_slow(impl, "softmax", "float64", "cpu", x, budget_s=0.01)
    assert too_slow(impl, "softmax", "float64", "cpu", x, budget_s=1e3) is None
    assert estimate_seconds(impl, "softmax", "float64", "cpu", np.zeros((0, 16))) == 0.0


def test_a_fixed_per_call_cost_is_not_scaled_by_the_batch(timed_entry):
    impl, seen = timed_entry(lambda x: 0.005)  # the same for one row or fifty: a per-call cost
    x = np.zeros((50, 8))
    assert estimate_seconds(impl, "softmax", "float64", "cpu", x) == pytest.approx(0.005 * 50)  # one probe: scaled
    seen.clear()
    assert estimate_seconds(impl, "softmax", "float64", "cpu", x, budget_s=0.1) == pytest.approx(0.005 * 50 / 4)
    assert [s[0] for s in seen] == [1] * 3 + [2] * 3 + [4] * 3, "1, 2, then 4 rows (each once untimed, twice timed)"
    assert too_slow(impl, "softmax", "float64", "cpu", x, budget_s=0.1) is None
    assert too_slow(impl, "softmax", "float64", "cpu", x, budget_s=0.1, refine=False) is not None


def test_the_probe_stops_once_its_time_grows_with_its_work(timed_entry):
    impl, seen = timed_entry(lambda x: 1e-3 * x.shape[0])  # 1 ms a row: the estimate holds from the first probe
    x = np.zeros((64, 8))
    assert estimate_seconds(impl, "softmax", "float64", "cpu", x, budget_s=0.01) == pytest.approx(0.064)
    assert sorted({s[0] for s in seen}) == [1, 2, 4], "twice in a row as the work grew: no probe of 8 rows"


def test_a_per_row_cost_is_not_scaled_by_the_row_length(timed_entry):
    """A cost per row (1 ms) beside one per element (1 us), probed from rows of 16: steady in the rows early,
    the probe then lengthens its rows until the per-element cost shows: the estimate is the true cost to within
    the steadiness rule's factor (the per-row cost still in the probe: 1.2x here), not 50x it."""
    impl, seen = timed_entry(lambda x: 1e-3 * x.shape[0] + 1e-6 * x.size)
    x = np.zeros((64, 4096))
    true = 1e-3 * 64 + 1e-6 * x.size
    assert true <= estimate_seconds(impl, "softmax", "float64", "cpu", x, row_n=16, budget_s=0.2) <= 1.5 * true
    assert max(s[1] for s in seen) >= 1024 and max(s[0] for s in seen) < 64, "rows steady early, then the row"
    assert too_slow(impl, "softmax", "float64", "cpu", x, row_n=16, budget_s=0.5) is None
    # from the one probe alone (no refining) the per-row cost is scaled as if per element: 64 x 1 ms x 256
    assert too_slow(impl, "softmax", "float64", "cpu", x, row_n=16, budget_s=0.5, refine=False) is not None


def test_every_probe_does_more_work_than_the_last(timed_entry):
    """Rows steady early, the row's length never (a per-row cost only): once the row is whole the probe goes
    back to doubling the rows, never timing the same shape again (a noisy clock could have kept it there)."""
    impl, seen = timed_entry(lambda x: 1e-3 * x.shape[0])
    x = np.zeros((64, 512))
    assert estimate_seconds(impl, "softmax", "float64", "cpu", x, row_n=16, budget_s=0.05) == pytest.approx(0.064)
    shapes = list(dict.fromkeys(seen))  # each probe's shape once (three calls each)
    assert len(shapes) * 3 == len(seen), "a shape probed twice"
    assert all(a[0] * a[1] < b[0] * b[1] for a, b in zip(shapes, shapes[1:]))


@pytest.mark.slow
def test_the_cost_probe_on_the_real_clock():
    """The real-clock smoke test of the cost probe (its rules are the fake clock's tests above): a call that
    sleeps 5 ms is estimated at no less than 50 x 5 ms from one row (a sleep never returns early), and within
    the 0.1 s budget once 4 rows are probed: 0.0633-0.0635 s beside three busy loops (20 tries), 1.6x inside."""

    def fixed_ops(device):
        def softmax(x):
            time.sleep(0.005)
            return x

        return {"softmax": softmax}

    impl = registry.register(registry.Implementation(name="applicability-fixed", family="applicability-fixed",
                                                     build=fixed_ops, ops=("softmax",), dtypes=("float64",)))
    try:
        x = np.zeros((50, 8))
        assert estimate_seconds(impl, "softmax", "float64", "cpu", x) >= 0.005 * 50  # a sleep never returns early
        assert estimate_seconds(impl, "softmax", "float64", "cpu", x, budget_s=0.1) <= 0.1
    finally:
        registry.unregister(impl.name)


def test_no_entry_is_skipped_by_name_in_the_benchmark_scripts():
    names = [impl.name for impl in registry.all_implementations()]
    for path in (ROOT / "benchmarks" / "roofline.py", ROOT / "benchmarks" / "test_speed.py"):
        text = path.read_text()
        found = [n for n in names if re.search(rf"(?<![\w.+-]){re.escape(n)}(?![\w.+-])", text)]
        assert not found, f"{path.name} names registered entries {found}"


def test_the_probe_copies_only_the_rows_it_runs(timed_entry):
    """A view that does not flatten (x transposed, g broadcast along the leading dims: 64 MiB each if copied) is
    probed from its first rows: the estimate allocates kilobytes, not the whole input."""
    import tracemalloc

    impl, seen = timed_entry(lambda x: 1e-3)
    x = np.broadcast_to(np.arange(128.0), (1024, 64, 128)).transpose(0, 2, 1)  # rows of 64, strided
    tracemalloc.start()
    try:
        estimate_seconds(impl, "softmax", "float64", "cpu", x, row_n=16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == [(1, 16), (1, 16)] and peak < 1 << 20, peak
    probe = prepared._first_rows(x, 3)
    assert np.array_equal(probe, x.reshape(-1, 64)[:3]), "the same rows as the flattened view"
    assert np.array_equal(prepared._first_rows(x[0, :, 0], 1), x[0, :, 0][None]), "one row of a 1-d input"
