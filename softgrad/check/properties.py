"""Mathematical properties and finite differences: checks that do not trust the oracle's formula.

Each function takes an implementation's own results (as float64/longdouble NumPy) for the rows the
non-finite policy defines, and returns a list of ``(check name, message)`` for what fails. Slack is
expressed in the same per-element tolerances as the oracle comparison (:mod:`softgrad.check.tolerance`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .oracle import EXT

Problem = tuple[str, str]


def _worst(excess: np.ndarray) -> tuple[float, tuple[int, ...]]:
    idx = np.unravel_index(int(np.nanargmax(excess)), excess.shape)
    return float(excess[idx]), tuple(int(i) for i in idx)


def _over(name: str, what: str, err: np.ndarray, slack: np.ndarray) -> list[Problem]:
    """A problem if any ``err`` exceeds ``slack`` (both arrays of one shape)."""
    if err.size == 0:
        return []
    over = err > slack
    if not over.any():  # the usual answer, found without the ratios
        return []
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(over, err / np.where(slack > 0, slack, np.finfo(np.float64).tiny), 0.0)
    r, idx = _worst(ratio)
    return [(name, f"{what}: off by {float(err[idx]):.3g} at {list(idx)}, {r:.3g}x the allowed {float(slack[idx]):.3g}")]


def softmax_properties(s: np.ndarray, tol: np.ndarray) -> list[Problem]:
    """Rows sum to 1; every entry in [0, 1]: never below 0 (an exp is never negative, so no rounding makes a
    weight negative: no slack there, not even the accuracy tolerance's floor, which let negative subnormals
    through), above 1 by no more than the tolerance (``e * (1 / sum)`` may round one ulp past 1)."""
    s = np.asarray(s, dtype=EXT)
    out: list[Problem] = []
    if s.size == 0:
        return out
    out += _over("sums-to-one", "softmax row sum minus 1", np.abs(s.sum(-1) - 1), tol.sum(-1) + 0)
    below = np.maximum(-s, 0)
    above = np.maximum(s - 1, 0)
    outside = _over("in-unit-interval", "softmax entry below 0", below, np.zeros_like(below))
    out += outside or _over("in-unit-interval", "softmax entry above 1", above, tol)
    return out


def jacobian_properties(j: np.ndarray, s: np.ndarray, tol: np.ndarray) -> list[Problem]:
    """Symmetric; rows and columns sum to 0; PSD with eigenvalues in [0, 1/2]; trace = 1 - sum s^2.

    ``s`` is the same implementation's softmax (so the trace identity checks J against its own s). The sums
    accumulate in extended precision; J - J^T and the eigenvalues are float64 (J's entries are float64 or
    narrower, and two nearly equal ones differ exactly in float64), a few times faster on n^2 entries.
    """
    j = np.asarray(j)
    s = np.asarray(s, dtype=EXT)
    out: list[Problem] = []
    if j.size == 0:
        return out
    j64 = np.asarray(j, dtype=np.float64)
    j64t = np.swapaxes(j64, -1, -2)
    sym_tol = tol + np.swapaxes(tol, -1, -2)
    out += _over("symmetric", "J - J^T", np.abs(j64 - j64t), sym_tol)
    out += _over("rows-sum-to-zero", "row sum of J", np.abs(j.sum(-1, dtype=EXT)), tol.sum(-1))
    out += _over("columns-sum-to-zero", "column sum of J", np.abs(j.sum(-2, dtype=EXT)), tol.sum(-2))
    trace = np.trace(j, axis1=-2, axis2=-1, dtype=EXT)
    s_tol = np.diagonal(tol, axis1=-2, axis2=-1).sum(-1) * 4
    out += _over("trace", "trace(J) - (1 - sum s^2)", np.abs(trace - (1 - (s * s).sum(-1))), s_tol)
    n = j.shape[-1]
    if n <= 512:
        eig = np.linalg.eigvalsh((j64 + j64t) / 2)
        slack = np.asarray(tol, dtype=np.float64).sum((-1, -2))[..., None] + 1e-300
        out += _over("eigenvalues-in-[0,1/2]", "eigenvalue outside [0, 1/2]",
                     np.maximum(-eig, 0) + np.maximum(eig - 0.5, 0), np.broadcast_to(slack, eig.shape))
    return out


def vjp_properties(v: np.ndarray, j: np.ndarray | None, g: np.ndarray, tol: np.ndarray) -> list[Problem]:
    """The VJP sums to 0 over each row; it equals J^T g for the same implementation's J (when given)."""
    v = np.asarray(v, dtype=EXT)
    out: list[Problem] = []
    if v.size == 0:
        return out
    out += _over("vjp-sums-to-zero", "row sum of the VJP", np.abs(v.sum(-1)), tol.sum(-1))
    if j is not None:
        jtg = np.einsum("...ji,...j->...i", np.asarray(j, dtype=EXT), np.asarray(g, dtype=EXT))
        out += _over("vjp-equals-jt-g", "VJP - J^T g (same implementation)", np.abs(v - jtg), 2 * tol)
    return out


def finite_difference_vjp(
    softmax: Callable[[np.ndarray], np.ndarray], x: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray
) -> list[Problem]:
    """Central differences of the implementation's own float64 softmax along ``g`` against its VJP.

    J is symmetric, so d/dh softmax(x + h g) = J g = J^T g = vjp(x, g): a check independent of the
    oracle's formula. Only for float64; the step balances truncation (h^2) against rounding (eps/h).
    """
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    h = 1e-5
    fd = (np.asarray(softmax(x + h * g), dtype=EXT) - np.asarray(softmax(x - h * g), dtype=EXT)) / (2 * h)
    s = np.asarray(s, dtype=EXT)
    scale = s * (np.abs(g) + (np.abs(g) * s).sum(-1, keepdims=True))
    # truncation (~h^2) relative to the VJP's own scale, plus rounding of s (~eps/h) relative to s_i
    slack = 1e-6 * scale + 1e-8 * s * (1 + np.abs(g).max(-1, keepdims=True)) + 1e-14
    return _over("finite-differences", "VJP - central difference of softmax", np.abs(np.asarray(v, dtype=EXT) - fd), slack)


def finite_difference_jacobian(
    softmax: Callable[[np.ndarray], np.ndarray], x: np.ndarray, j: np.ndarray, s: np.ndarray
) -> list[Problem]:
    """Column by column central differences of the implementation's float64 softmax against its J."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    h = 1e-5
    fd = np.empty(j.shape, dtype=EXT)
    for col in range(n):
        step = np.zeros_like(x)
        step[..., col] = h
        fd[..., :, col] = (np.asarray(softmax(x + step), dtype=EXT) - np.asarray(softmax(x - step), dtype=EXT)) / (2 * h)
    s = np.asarray(s, dtype=EXT)
    eye = np.eye(n, dtype=EXT)
    # truncation (~h^2) relative to J's own scale, plus rounding of s (~eps/h) relative to s_i
    slack = 1e-6 * s[..., :, None] * (eye + s[..., None, :]) + 1e-8 * s[..., :, None] + 1e-14
    return _over("finite-differences", "J - central difference of softmax", np.abs(np.asarray(j, dtype=EXT) - fd), slack)
