"""Per-element error bounds for each op and dtype: the one place tolerances are defined.

An error is judged against the op's own forward-error scale, never a flat atol. With ``u`` the unit
roundoff of the target dtype (``eps``), ``a_i = 1 + |x_i - max x|`` (the max shift ``x_i - m`` is
rounded in the target dtype, so exp(x_i - m) carries a relative error of about u*a_i), and
``uG(n) = u*C0 + u_acc*C1*sqrt(n)`` (a few roundings in the target dtype, plus the growth of an n-term
sum's rounding error, naive or pairwise, in the precision it accumulates in: ``u_acc`` is float32's eps
for the 16-bit formats, which load 16 bits and sum in float32, and ``u`` otherwise, where
``uG(n) = u * G(n)`` with ``G(n) = C0 + C1*sqrt(n)``):

- softmax:  tol_i  = uG * s_i * a_i
- jacobian: tol_ij = uG * s_i * (a_i * (delta_ij + s_j) + a_j * s_j)
- vjp:      tol_i  = uG * s_i * (a_i * (|g_i| + D) + D'),  D = sum_j |g_j| s_j,  D' = sum_j |g_j| s_j a_j

plus an absolute floor wherever the exact value is not exactly zero (results that underflow to subnormals
carry absolute, not relative, error): per row ``phi = min(tiny, tiny*eps + tiny*max_j s_j + eps/n)``, the
subnormal spacing (the last rounding), an exp flushed below the smallest normal ``tiny`` before the division
by the row's sum (which is 1/max s), and eps of the row's mass spread over its n entries; never above tiny
(a result flushed to 0 is off by less). The softmax's floor is phi, the Jacobian's 4*phi (errors of s_i and
s_j carried by J), at most tiny. In float32, float64 and bfloat16 that is tiny for any n below 10^29 (eps/n >
tiny), as it always was; in float16, at a vocabulary's length, every probability is subnormal (1/65536 <
2^-14), and a floor of tiny let a row of zeros pass (a float16 sum of near-uniform logits, inf past 65504).
The VJP keeps tiny: its entries s_i (g_i - dot) below it carry the dot's error, which registered float16 VJPs
exceed there (jax's at n = 4096: 1.05x with phi), so a VJP's entries below float16's smallest normal are
judged loosely; a float16 overflow of its softmax shows in the softmax. Where the exact value is exactly zero
(masked -inf entries) the tolerance is zero: the result must be exactly 0.

The constants are chosen so that correct float32 code with naive running sums passes at n = 65536,
while a 16-bit running sum (off by 2x at n = 4096) or a float64 result computed in float32 (off by
~1e-8 relative) fails by orders of magnitude. A 16-bit sum's growth counted in 16-bit units would pass a
bfloat16 softmax at half its value at n = 1025 (G(4096) * 2^-7 = 1.06: any error under 100%); in float32
units every registered 16-bit entry's worst ratio on the quick catalogue is 0.15.
``ratio = max(|err| / tol)`` is the reported metric: a result passes when ratio <= 1.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..contract import DTYPE_INFO, check_dtype
from .oracle import EXT, softmax as oracle_softmax

C0 = 8.0
C1 = 2.0


def growth(n: int) -> float:
    """G(n): how many roundings an n-term sum can accumulate, in units of u."""
    return C0 + C1 * float(np.sqrt(max(n, 1)))


#: the precision a dtype's sums accumulate in, where it is not the dtype itself
ACCUMULATOR = {"float16": "float32", "bfloat16": "float32"}


def unit_growth(dtype: str, n: int) -> float:
    """uG(n): ``u*C0 + u_acc*C1*sqrt(n)``, the relative error scale of an n-term row in ``dtype`` (``u * G(n)``
    where the sum accumulates in ``dtype`` itself)."""
    u = DTYPE_INFO[dtype].eps
    u_acc = DTYPE_INFO[ACCUMULATOR.get(dtype, dtype)].eps
    return u * C0 + u_acc * C1 * float(np.sqrt(max(n, 1)))


def _shift_factor(x: np.ndarray) -> np.ndarray:
    xe = np.asarray(x, dtype=EXT)
    finite = np.where(np.isfinite(xe), xe, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: the policy rows
        m = np.nanmax(finite, axis=-1, keepdims=True) if xe.shape[-1] else finite
        a = 1 + np.abs(finite - m)
    return np.nan_to_num(a, nan=1.0)


def _floor(dtype: str, s: np.ndarray) -> np.ndarray:
    """phi per row (shape ``s.shape[:-1] + (1,)``): the absolute floor of a softmax entry (see the module)."""
    info = DTYPE_INFO[dtype]
    n = max(s.shape[-1], 1)
    s_max = np.max(s, axis=-1, keepdims=True, initial=0).astype(np.float64)
    return np.minimum(info.tiny, info.tiny * info.eps + info.tiny * s_max + info.eps / n)


def tolerance(op: str, dtype: str, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
    """Per-element tolerance (extended precision) for ``op`` in ``dtype`` at input ``x`` (and ``g``)."""
    check_dtype(dtype)
    info = DTYPE_INFO[dtype]
    n = x.shape[-1]
    scale = EXT(unit_growth(dtype, n))
    s = oracle_softmax(x)
    s = np.nan_to_num(s, nan=0.0)
    a = _shift_factor(x)
    phi = _floor(dtype, s)
    if op == "softmax":
        tol = scale * s * a
        exact, floor = s, phi
    elif op == "jacobian":
        # n^2 entries per row: a bound needs no extended precision, and float64 is several times faster.
        s, a, scale = s.astype(np.float64), a.astype(np.float64), np.float64(scale)
        eye = np.eye(n, dtype=np.float64)
        exact = s[..., :, None] * (eye + s[..., None, :])
        tol = scale * (a[..., :, None] * exact + s[..., :, None] * (a * s)[..., None, :])
        return tol + np.where(exact > 0, np.minimum(info.tiny, 4 * phi[..., None]), 0.0)
    elif op == "vjp":
        if g is None:
            raise ValueError("vjp tolerance needs g")
        ga = np.abs(np.asarray(g, dtype=EXT))
        d = (ga * s).sum(-1, keepdims=True)
        d2 = (ga * s * a).sum(-1, keepdims=True)
        tol = scale * s * (a * (ga + d) + d2)
        exact, floor = s, info.tiny
    else:
        raise ValueError(f"unknown op {op!r}")
    return tol + np.where(exact > 0, EXT(1) * floor, EXT(0))
