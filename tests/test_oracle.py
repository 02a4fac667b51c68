"""The oracle against closed forms and against mpmath at 50 digits."""

from __future__ import annotations


import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from softgrad.check import oracle


def test_uniform_row_is_exactly_uniform():
    for n in (1, 2, 3, 7, 4096):
        s = oracle.softmax(np.full(n, 3.25))
        assert np.all(s == oracle.EXT(1) / n)


def test_two_element_row_is_the_sigmoid():
    for d in (-30.0, -1.0, 0.0, 0.5, 12.0):
        s = oracle.softmax(np.array([d, 0.0]))
        e = np.exp(oracle.EXT(-d))
        assert abs(s[0] - 1 / (1 + e)) <= 1e-18 * s[0]
        j = oracle.jacobian(np.array([d, 0.0]))
        sigma_prime = e / (1 + e) ** 2  # s0 (1 - s0) without cancellation
        assert abs(j[0, 0] - sigma_prime) <= 1e-17 * sigma_prime
        assert abs(j[0, 1] + sigma_prime) <= 1e-17 * sigma_prime


def test_one_hot_limit_and_masks():
    s = oracle.softmax(np.array([0.0, -np.inf, -np.inf]))
    assert s.tolist() == [1.0, 0.0, 0.0]
    assert np.all(oracle.jacobian(np.array([0.0, -np.inf])) == 0)
    v = oracle.vjp(np.array([1.0, -np.inf, 2.0]), np.array([1.0, 5.0, -1.0]))
    assert v[1] == 0


def test_non_finite_policy_rows_are_nan_and_do_not_leak():
    x = np.array([[-np.inf, -np.inf], [np.inf, 0.0], [np.nan, 1.0], [0.0, 1.0]])
    s = oracle.softmax(x)
    assert np.isnan(s[:3]).all()
    assert not np.isnan(s[3]).any()


def test_large_logits_do_not_overflow():
    s = oracle.softmax(np.array([1e4, 1e4 - 1, -1e4]))
    assert np.isfinite(s).all() and abs(float(s.sum()) - 1) < 1e-18


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=12), st.data())
def test_extended_precision_agrees_with_mpmath(row, data):
    g = data.draw(st.lists(st.floats(-10, 10), min_size=len(row), max_size=len(row)))
    s = oracle.softmax(np.array(row))
    exact = [ext(b) for b in oracle.exact_softmax(row)]
    for a, b in zip(s, exact):
        assert abs(a - b) <= 1e-17 * b
    v = oracle.vjp(np.array(row), np.array(g))
    exact_v = [ext(b) for b in oracle.exact_vjp(row, g)]
    scale = sum(abs(gi) * si for gi, si in zip(g, exact)) + max(abs(gi) for gi in g)
    for a, b, si in zip(v, exact_v, exact):
        assert abs(a - b) <= 1e-17 * si * scale


def ext(value) -> np.longdouble:
    """An mpmath number as an extended-precision float (via its 25-digit decimal string)."""
    import mpmath

    return np.longdouble(mpmath.nstr(value, 25, min_fixed=-1, max_fixed=-2))


# --- the Jacobian: the extended-precision oracle against mpmath, beyond the closed form at n = 2 ----------

#: rows where a Jacobian oracle goes wrong: a dominant entry (1 - s_i cancels on the diagonal: here
#: 1 - s_0 ~ 1e-30), spreads past float64's and the extended format's underflow, a large common offset
#: (exp(x) overflows without the max shift), ties at the max, -inf masks, and rows of many lengths
ADVERSARIAL_ROWS = {
    "dominant": [0.0, -70.0, -70.0, -69.5],
    "dominant-middle": [-75.0, 0.0, -80.0, -72.25, -90.0],
    "spread-1e3": [0.0, -300.0, -745.5, -1000.0, 2.5],
    "spread-past-extended": [0.0, -11000.0, -11400.0, -20000.0, -1.0],
    "offset-1e4": [1e4, 1e4 - 1, 1e4 - 0.5, -1e4],
    "near-minus-1e7": [-1e7 + 0.75, -1e7, -1e7 - 2.5, -1e7 + 0.125],
    "ties-at-max": [3.0, 3.0, 1.0, 3.0, -2.0, 0.0],
    "masked": [1.0, -np.inf, 2.0, -np.inf, -3.0],
    "masked-one-left": [-np.inf, -np.inf, 0.5, -np.inf],
    "n-1": [4.0],
}


def _ext(value) -> np.longdouble:
    """:func:`ext`, with 0 for a value below the extended format's smallest normal (e^-20000), which
    :func:`_jacobian_bound` allows as an absolute error anyway."""
    import mpmath

    return oracle.EXT(0) if abs(value) < mpmath.mpf("1e-4931") else ext(value)


def _rows_of_length(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.standard_normal(n) * rng.choice([1.0, 10.0, 40.0])


def _jacobian_bound(exact: np.ndarray) -> np.ndarray:
    """The oracle's allowed error per element: 1e-17 (about 90 extended ulps) of the element itself, plus the
    extended format's smallest normal (entries that underflow in it). Relative to each element, the diagonal
    included: checker tolerances allow ~eps * 2 there, but the oracle must keep s_i (1 - s_i) where s_i ~ 1.
    The oracle's worst error on the rows below is 0.03 of this bound."""
    return 1e-17 * np.abs(exact) + np.finfo(oracle.EXT).tiny


def _assert_jacobian_matches_mpmath(row: list[float]) -> float:
    """oracle.jacobian(row) within :func:`_jacobian_bound` of exact_jacobian(row) in every element; the
    worst |error| / bound."""
    got = oracle.jacobian(np.array(row))
    exact = np.array([[_ext(v) for v in r] for r in oracle.exact_jacobian(row)], dtype=oracle.EXT)
    bound = _jacobian_bound(exact)
    err = np.abs(got - exact)
    worst = np.unravel_index(int(np.argmax(err / bound)), err.shape)
    assert (err <= bound).all(), f"row {row}: J{list(worst)} = {got[worst]!r}, mpmath {exact[worst]!r}"
    masked = np.isneginf(np.array(row))
    assert (got[masked] == 0).all() and (got[:, masked] == 0).all(), "a masked entry's row and column are 0"
    return float(err[worst] / bound[worst])


def test_exact_jacobian_matches_closed_forms():
    """mpmath's Jacobian itself: the sigmoid's derivative at n = 2, (delta_ij - 1/n) / n on a uniform row, and
    at 50 digits symmetric with rows summing to 0 (to 1e-45) on a dominant row."""
    import mpmath

    with mpmath.workdps(50):  # the closed forms at the oracle's precision
        _exact_jacobian_closed_forms(mpmath)


def _exact_jacobian_closed_forms(mpmath) -> None:
    for d in (-30.0, 0.5, 12.0):
        j = oracle.exact_jacobian([d, 0.0])
        sigma_prime = mpmath.exp(-d) / (1 + mpmath.exp(-d)) ** 2
        assert abs(j[0][0] - sigma_prime) <= mpmath.mpf(10) ** -45 * sigma_prime
        assert j[0][1] == j[1][0] and abs(j[0][1] + sigma_prime) <= mpmath.mpf(10) ** -45 * sigma_prime
    n = 7
    j = oracle.exact_jacobian([2.5] * n)
    for i in range(n):
        for k in range(n):
            want = (mpmath.mpf(int(i == k)) - mpmath.mpf(1) / n) / n
            assert abs(j[i][k] - want) <= mpmath.mpf(10) ** -48
    j = oracle.exact_jacobian(ADVERSARIAL_ROWS["dominant"])
    others = 2 * mpmath.exp(-70) + mpmath.exp(-69.5)  # 1 - s_0 ~ 1.5e-30, and s_0 ~ 1
    assert abs(j[0][0] / others - 1) < 1e-25, "1 - s_0 kept, not cancelled"
    for i in range(4):
        assert abs(mpmath.fsum(j[i])) <= mpmath.mpf(10) ** -45 * j[i][i]
        assert all(j[i][k] == j[k][i] for k in range(4))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=12))
def test_extended_precision_jacobian_agrees_with_mpmath(row):
    _assert_jacobian_matches_mpmath(row)


def test_extended_precision_jacobian_agrees_with_mpmath_on_adversarial_rows():
    for row in ADVERSARIAL_ROWS.values():
        _assert_jacobian_matches_mpmath(row)
    for n in (3, 17, 40, 64):
        _assert_jacobian_matches_mpmath(_rows_of_length(n).tolist())
    row = ADVERSARIAL_ROWS["dominant"]
    assert oracle.jacobian(np.array(row))[0, 0] > 0, "the dominant entry's diagonal did not cancel to 0"


def test_the_jacobian_comparison_catches_a_planted_oracle_bug(monkeypatch):
    """The comparison is tight enough to matter: an oracle whose diagonal is s_i (1 - s_i) as written (0 where
    s_i rounds to 1) fails on the dominant rows, one rounded to float64 on every row with a spread."""
    right = oracle.jacobian

    def cancelled(x):
        s = oracle.softmax(x)
        j = -s[..., :, None] * s[..., None, :]
        j[..., range(s.shape[-1]), range(s.shape[-1])] = s * (1 - s)
        return j

    for bad, fails_on in ((cancelled, {"dominant", "dominant-middle"}),
                          (lambda x: right(x).astype(np.float64).astype(oracle.EXT),
                           set(ADVERSARIAL_ROWS) - {"masked-one-left", "n-1"})):
        monkeypatch.setattr(oracle, "jacobian", bad)
        failed = set()
        for name, row in ADVERSARIAL_ROWS.items():
            try:
                _assert_jacobian_matches_mpmath(row)
            except AssertionError:
                failed.add(name)
        assert failed == fails_on
