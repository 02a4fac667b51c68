"""High-precision references for the three ops.

The oracle computes in x87 extended precision (``np.longdouble``, 64-bit significand, eps ~1.1e-19), which
is about 2000 times finer than float64, so a float64 implementation is never judged against a
reference of its own precision. :mod:`mpmath` at 50 digits backs it for small inputs (``exact_softmax``,
``exact_jacobian``, ``exact_vjp``), and the oracle's tests check the two agree and match closed forms.

Inputs are the exact values the implementation saw (already rounded to its dtype), so the oracle
answers the question "what is the correctly rounded result for these inputs?".

Non-finite policy: a row with a NaN or +inf entry, or with every entry -inf, has no softmax; the
oracle returns NaN for the whole row (and the Jacobian/VJP of that row). -inf entries in a row with a
finite entry are masked: exactly 0 in s, in J's rows and columns, and in the VJP.
"""

from __future__ import annotations

import numpy as np

EXT = np.longdouble
if np.finfo(EXT).eps > 1e-18:  # pragma: no cover - platforms where long double is just double
    raise ImportError("softgrad's oracle needs an extended long double (x86-64 Linux has one)")


def _undefined_rows(x: np.ndarray) -> np.ndarray:
    """Rows (as a boolean array over leading dims) that the non-finite policy makes NaN."""
    if x.shape[-1] == 0:
        return np.zeros(x.shape[:-1], dtype=bool)
    return np.isnan(x).any(-1) | np.isposinf(x).any(-1) | np.isneginf(x).all(-1)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in extended precision."""
    xe = np.asarray(x, dtype=EXT)
    if xe.shape[-1] == 0:
        return xe.copy()
    bad = _undefined_rows(xe)
    safe = np.where(bad[..., None], EXT(0), xe)
    m = safe.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", under="ignore"):
        e = np.exp(safe - m)
    s = e / e.sum(axis=-1, keepdims=True)
    s[bad] = np.nan
    return s


def one_minus_softmax(x: np.ndarray) -> np.ndarray:
    """1 - s_i without cancellation: for the row's largest entry, the sum of the others' weights."""
    s = softmax(x)
    out = 1 - s
    if s.shape[-1] == 0:
        return out
    xe = np.asarray(x, dtype=EXT)
    k = np.nanargmax(np.where(np.isnan(s), 0, s), axis=-1)[..., None]
    m = np.take_along_axis(np.where(np.isfinite(xe), xe, -np.inf), k, -1)
    with np.errstate(invalid="ignore", under="ignore"):
        e = np.exp(xe - m)
        others = _zero_at(e, k)
        ratio = others.sum(-1, keepdims=True) / e.sum(-1, keepdims=True)
    np.put_along_axis(out, k, np.where(np.isnan(np.take_along_axis(s, k, -1)), np.nan, ratio), -1)
    return out


def _zero_at(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    a = a.copy()
    np.put_along_axis(a, k, 0, -1)
    return a


def jacobian(x: np.ndarray) -> np.ndarray:
    """J[..., i, j] = s_i (delta_ij - s_j) in extended precision (diagonal as s_i (1 - s_i), uncancelled)."""
    s = softmax(x)
    n = s.shape[-1]
    jac = -s[..., :, None] * s[..., None, :]
    idx = np.arange(n)
    jac[..., idx, idx] = s * one_minus_softmax(x)
    return jac


def vjp(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """grad_i = s_i (g_i - sum_j g_j s_j) in extended precision."""
    s = softmax(x)
    ge = np.asarray(g, dtype=EXT)
    dot = (s * ge).sum(axis=-1, keepdims=True)
    return s * (ge - dot)


def reference(op: str, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
    """The oracle's result for ``op`` (extended precision)."""
    if op == "softmax":
        return softmax(x)
    if op == "jacobian":
        return jacobian(x)
    if op == "vjp":
        if g is None:
            raise ValueError("vjp needs a cotangent g")
        return vjp(x, g)
    raise ValueError(f"unknown op {op!r}")


# --- mpmath, for small inputs: an independent check of the extended-precision oracle -----------------


def exact_softmax(row: list[float], digits: int = 50) -> list:
    """Softmax of one finite row with mpmath at ``digits`` significant digits (mpf values)."""
    import mpmath

    with mpmath.workdps(digits):
        xs = [mpmath.mpf(v) for v in row]
        m = max(xs)
        e = [mpmath.exp(v - m) for v in xs]
        total = mpmath.fsum(e)
        return [v / total for v in e]


def exact_jacobian(row: list[float], digits: int = 50) -> list[list]:
    """Jacobian of one row with mpmath: ``J[i][j] = s_i (delta_ij - s_j)`` (mpf values).

    The row may hold -inf masks beside a finite entry (their rows and columns are exactly 0). The
    diagonal is ``s_i * (sum of the other weights) / total``, so ``s_i (1 - s_i)`` keeps all its digits
    where ``s_i`` is within 10^-digits of 1 (a dominant entry), which ``1 - s_i`` would not.
    """
    import mpmath

    with mpmath.workdps(digits):
        xs = [mpmath.mpf(v) for v in row]
        m = max(xs)
        e = [mpmath.exp(v - m) for v in xs]
        total = mpmath.fsum(e)
        s = [v / total for v in e]
        return [[s[i] * mpmath.fsum(e[:i] + e[i + 1:]) / total if i == j else -s[i] * s[j]
                 for j in range(len(s))] for i in range(len(s))]


def exact_vjp(row: list[float], g: list[float], digits: int = 50) -> list:
    """VJP of one finite row with mpmath."""
    import mpmath

    with mpmath.workdps(digits):
        s = exact_softmax(row, digits)
        dot = mpmath.fsum(si * mpmath.mpf(gi) for si, gi in zip(s, g))
        return [si * (mpmath.mpf(gi) - dot) for si, gi in zip(s, g)]
