"""Vectorized NumPy: max shift, ``diag(s) - s s^T`` written in place, the O(n) VJP.

16-bit inputs accumulate their sums in float32 (a float16 running sum stalls at 2048) and divide by it before
rounding (a float16 sum of a vocabulary's near-uniform logits is inf).
"""

from __future__ import annotations

import numpy as np

import softgrad


def _acc(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def softmax(x: np.ndarray) -> np.ndarray:
    if x.shape[-1] == 0:
        return np.empty(x.shape, dtype=x.dtype)
    s = np.subtract(x, x.max(axis=-1, keepdims=True))
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True, dtype=_acc(x.dtype))  # divided in float32, then rounded: a float16
    # sum of near-uniform logits (initialisation) is inf past 65504 entries, and every probability 0
    return s


def jacobian(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    s = softmax(x)
    jac = np.multiply(np.negative(s)[..., :, None], s[..., None, :])  # one pass over the n^2 output
    if n:
        diag = jac.reshape(*x.shape[:-1], n * n)[..., :: n + 1]  # a view of the diagonal
        diag += s
    return jac


def vjp(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    s = softmax(x)
    dot = np.einsum("...i,...i->...", s, g, dtype=_acc(x.dtype)) if x.shape[-1] else np.zeros(x.shape[:-1])
    grad = np.subtract(g, dot[..., None].astype(x.dtype))
    grad *= s
    return grad


@softgrad.implementation(
    "numpy",
    family="numpy",
    baseline=True,  # the report's speedups are over this entry
    dtypes=("float64", "float32", "float16"),
    description="vectorized NumPy: max shift, diag(s) - s s^T in place, O(n) VJP",
)
def build(device: str):
    return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}
