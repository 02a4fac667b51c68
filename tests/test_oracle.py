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
