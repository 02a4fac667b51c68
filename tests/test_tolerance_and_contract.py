"""Tolerances are tight enough to see real bugs and loose enough for correct rounding; dtype rounding."""

from __future__ import annotations

import numpy as np
import pytest

from softgrad import contract
from softgrad.check import oracle
from softgrad.check.checker import accuracy
from softgrad.check.tolerance import tolerance


def test_bfloat16_rounding_matches_round_to_nearest_even():
    x = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 1 + 2**-7, -2.5e38, np.inf, -np.inf, 3.0e-39])
    r = contract.round_to_dtype(x, "bfloat16")
    assert r[0] == 1.0 and r[1] == 1.0  # tie rounds to even
    assert r[2] == 1.0 + 2**-6  # tie rounds to even (up)
    assert r[3] == 1 + 2**-7
    assert np.isinf(r[5]) and np.isinf(r[6])
    assert np.isnan(contract.round_to_dtype(np.array([np.nan]), "bfloat16")).all()


def test_rounding_is_idempotent_for_every_dtype():
    x = np.random.default_rng(0).standard_normal(1000) * 100
    for dt in contract.DTYPES:
        once = contract.round_to_dtype(x, dt)
        assert np.array_equal(once, contract.round_to_dtype(once, dt))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_correctly_rounded_results_pass(dtype):
    x = contract.round_to_dtype(np.random.default_rng(1).standard_normal((16, 300)) * 3, dtype)
    g = contract.round_to_dtype(np.random.default_rng(2).standard_normal((16, 300)), dtype)
    for op in contract.OPS:
        ref = oracle.reference(op, x, g)
        out = np.asarray(ref, dtype=dtype)  # the best any implementation can do
        metrics, problems = accuracy(op, dtype, x, g, out)
        assert not problems, problems
        assert metrics["ratio"] < 0.2


def test_float64_computed_in_float32_fails_float64_tolerance():
    x = np.random.default_rng(3).standard_normal((4, 50))
    out = np.asarray(oracle.softmax(x), dtype=np.float32).astype(np.float64)
    _, problems = accuracy("softmax", "float64", x, None, out)
    assert [p[0] for p in problems] == ["accuracy"]


def test_vjp_tolerance_is_not_purely_relative():
    # a VJP whose exact value is ~0 (g constant): a relative test would fail correct code
    x = np.random.default_rng(4).standard_normal((2, 64))
    g = np.full_like(x, 3.0)
    tol = tolerance("vjp", "float64", x, g)
    assert (tol > 0).all()
    out = np.full_like(x, 1e-17)  # rounding noise around the exact zero
    _, problems = accuracy("vjp", "float64", x, g, out)
    assert not problems


def test_masked_entries_must_be_exactly_zero():
    x = np.array([[0.0, -np.inf, 1.0]])
    g = np.array([[1.0, 2.0, 3.0]])
    assert tolerance("vjp", "float32", x, g)[0, 1] == 0
    out = np.asarray(oracle.vjp(x, g), dtype=np.float64)
    out[0, 1] = 1e-30
    _, problems = accuracy("vjp", "float32", x, g, out)
    assert problems and problems[0][0] == "accuracy"


def test_output_problem_names_the_mismatch():
    assert contract.output_problem("jacobian", (2, 3), "float32", np.zeros((2, 3)), "float32") == \
        "returned shape (2, 3), expected (2, 3, 3)"
    assert "dtype float64" in contract.output_problem("softmax", (3,), "float32", np.zeros(3), "float64")
    assert "not an array" in contract.output_problem("softmax", (3,), "float32", [0, 0, 0], None)
    with pytest.raises(ValueError, match="unknown op"):
        contract.check_op("hessian")
