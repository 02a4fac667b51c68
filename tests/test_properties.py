"""Each property check fires on a planted violation and stays quiet on the truth."""

from __future__ import annotations

import numpy as np

from softgrad.check import oracle, properties
from softgrad.check.tolerance import tolerance

X = np.random.default_rng(7).standard_normal((3, 9))
G = np.random.default_rng(8).standard_normal((3, 9))
S = np.asarray(oracle.softmax(X), dtype=np.float64)
J = np.asarray(oracle.jacobian(X), dtype=np.float64)
V = np.asarray(oracle.vjp(X, G), dtype=np.float64)


def names(problems):
    return {p[0] for p in problems}


def test_truth_passes_every_property():
    assert not properties.softmax_properties(S, tolerance("softmax", "float64", X))
    assert not properties.jacobian_properties(J, S, tolerance("jacobian", "float64", X))
    assert not properties.vjp_properties(V, J, G, tolerance("vjp", "float64", X, G))
    assert not properties.finite_difference_vjp(lambda a: oracle.softmax(a), X, G, V, S)
    assert not properties.finite_difference_jacobian(lambda a: oracle.softmax(a), X, J, S)


def test_softmax_properties_fire():
    tol = tolerance("softmax", "float64", X)
    assert "sums-to-one" in names(properties.softmax_properties(S * 1.01, tol))
    bad = S.copy()
    bad[0, 0], bad[0, 1] = -0.1, bad[0, 1] + bad[0, 0] + 0.1  # sum kept, one entry negative
    assert names(properties.softmax_properties(bad, tol)) == {"in-unit-interval"}


def test_jacobian_properties_fire():
    tol = tolerance("jacobian", "float64", X)
    skew = J.copy()
    skew[:, 0, 1] += 1e-3
    skew[:, 0, 2] -= 1e-3  # row sums kept
    assert "symmetric" in names(properties.jacobian_properties(skew, S, tol))
    assert "rows-sum-to-zero" in names(properties.jacobian_properties(J + 1e-3, S, tol))
    assert "columns-sum-to-zero" in names(properties.jacobian_properties(J + 1e-3, S, tol))
    scaled = J * 1.5  # symmetric, rows sum to 0, but trace and eigenvalues wrong
    got = names(properties.jacobian_properties(scaled, S, tol))
    assert "trace" in got
    big = np.asarray(oracle.jacobian(np.array([[0.0, 0.0]])), dtype=np.float64) * 3  # eigenvalue 3/2
    assert "eigenvalues-in-[0,1/2]" in names(properties.jacobian_properties(
        big, np.full((1, 2), 0.5), tolerance("jacobian", "float64", np.zeros((1, 2)))))


def test_vjp_properties_fire():
    tol = tolerance("vjp", "float64", X, G)
    assert "vjp-sums-to-zero" in names(properties.vjp_properties(V + 1e-3, None, G, tol))
    perm = V[:, ::-1].copy()  # sums to zero, but is not J^T g
    assert names(properties.vjp_properties(perm, J, G, tol)) == {"vjp-equals-jt-g"}


def test_finite_differences_fire():
    assert names(properties.finite_difference_vjp(lambda a: oracle.softmax(a), X, G, V * 1.001, S)) == \
        {"finite-differences"}
    assert names(properties.finite_difference_jacobian(lambda a: oracle.softmax(a), X, J * 1.001, S)) == \
        {"finite-differences"}
