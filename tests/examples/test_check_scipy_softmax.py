"""softgrad's conformance checks on a softmax nobody here wrote: scipy.special.softmax, with its VJP."""

import numpy as np
import scipy.special

import softgrad.testing


def softmax(x):
    return scipy.special.softmax(x, axis=-1)


def vjp(x, g):
    s = softmax(x)
    return s * (g - np.sum(g * s, axis=-1, keepdims=True))


EXPECTED = {"empty-row": "scipy.special.softmax raises on an empty last axis (a max over no elements)"}


def test_scipy_softmax_conforms():
    softgrad.testing.check(softmax=softmax, vjp=vjp, dtypes=("float64", "float32"), expected_failures=EXPECTED)


@softgrad.testing.parametrize_with_checks(softmax=softmax, vjp=vjp, expected_failures=EXPECTED)
def test_scipy_softmax_case(check):
    check()
