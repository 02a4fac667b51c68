"""Pure-Python nested loops: the textbook definition, written to be checked by eye.

Two entries:

- ``loops``: Python floats (IEEE double) filling a NumPy array, the write-up's first way to get J;
- ``torch-loops`` (in ``torch_impls``) repeats the same loops filling a torch tensor element by element.

A row with a NaN or +inf, or with every entry -inf, has no softmax: its result is NaN (softgrad's
non-finite policy, see ``softgrad.check.cases``).
"""

from __future__ import annotations

import math

import numpy as np

import softgrad

NAN = float("nan")


def softmax_row(row: list[float]) -> list[float]:
    """s_i = exp(x_i - max x) / sum_j exp(x_j - max x) for one row of Python floats."""
    if not row:
        return []
    if any(math.isnan(v) or v == math.inf for v in row) or max(row) == -math.inf:
        return [NAN] * len(row)
    m = max(row)
    e = [math.exp(v - m) for v in row]
    total = 0.0
    for v in e:
        total += v
    return [v / total for v in e]


def jacobian_row(row: list[float]) -> list[list[float]]:
    """J_ij = s_i * (delta_ij - s_j) for one row."""
    s = softmax_row(row)
    n = len(s)
    return [[s[i] * ((1.0 if i == j else 0.0) - s[j]) for j in range(n)] for i in range(n)]


def vjp_row(row: list[float], g: list[float]) -> list[float]:
    """grad_i = sum_j J_ji g_j = s_i * (g_i - sum_j g_j s_j) for one row."""
    s = softmax_row(row)
    dot = 0.0
    for sj, gj in zip(s, g):
        dot += sj * gj
    return [si * (gi - dot) for si, gi in zip(s, g)]


def _rows(x: np.ndarray) -> list[list[float]]:
    n = x.shape[-1]
    return x.reshape(math.prod(x.shape[:-1]), n).tolist()


def softmax(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=x.dtype)
    flat = out.reshape(-1, x.shape[-1]) if x.shape[-1] else out
    for r, row in enumerate(_rows(x)):
        for i, v in enumerate(softmax_row(row)):
            flat[r, i] = v
    return out


def jacobian(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    out = np.empty((*x.shape, n), dtype=x.dtype)
    flat = out.reshape(-1, n, n) if n else out
    for r, row in enumerate(_rows(x)):
        for i, jrow in enumerate(jacobian_row(row)):
            for j, v in enumerate(jrow):
                flat[r, i, j] = v
    return out


def vjp(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=x.dtype)
    flat = out.reshape(-1, x.shape[-1]) if x.shape[-1] else out
    for r, (row, grow) in enumerate(zip(_rows(x), _rows(g))):
        for i, v in enumerate(vjp_row(row, grow)):
            flat[r, i] = v
    return out


@softgrad.implementation(
    "loops",
    family="loops",
    tags=("writeup",),  # the write-up's first way to get J: nested loops filling a NumPy array
    dtypes=("float64", "float32", "float16"),
    max_n={"softmax": 1 << 16, "vjp": 1 << 16, "jacobian": 1024},
    description="pure-Python nested loops over Python floats filling a NumPy array (the textbook reference)",
)
def build(device: str):
    return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}
