"""Planted bugs for the checks that :mod:`test_mutants` plants none for, each run through the whole checker.

Every bug here goes through :func:`softgrad.check.checker.check_case`, the path ``softgrad check`` takes,
and each test asserts exactly which checks fail (the records' ``failed``): a cotangent ``g`` overwritten
in place (input-modified), the Jacobian's finite differences, in-unit-interval, symmetric, a bfloat16 bug
(the row sum accumulated in bfloat16) and a float32 bug near its tolerance (a fast exp). The same code
without the bug (the control) passes the same cases; the tests print the worst ratio of both.

What the checks cannot see is said where it matters. The property checks' slack is the accuracy
tolerance, and the exact values keep every property, so an entry within tolerance of the oracle keeps
every property within that slack (the triangle inequality): symmetric fires only beside accuracy, and its
planted bug is gross. in-unit-interval allows nothing below 0 (an exp is never negative), so negative
subnormal weights fail it alone, even where the accuracy tolerance's absolute floor covers them
(``negative-underflow-in-range``: every exact weight above 0, each within the floor).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import softgrad
from softgrad import contract
from softgrad.check import oracle
from softgrad.check.cases import CASES, Case, normal
from softgrad.check.checker import Record, accuracy, check_case

from mutants import _acc, _ops, jacobian_from, softmax, vjp

Build = Callable[[str], Mapping[str, Callable[..., Any]]]


@dataclass(frozen=True)
class Planted:
    """A bug, the entry that carries it and the same entry without it, and where the checker must see it."""

    name: str
    bug: str
    build: Build  # the entry with the bug (``Implementation.build``)
    control: Build  # the same code without it
    ops: tuple[str, ...]  # the ops checked (the entry has all its build's: the properties call its softmax)
    dtypes: tuple[str, ...]
    cases: tuple[str | Case, ...]  # catalogue names or cases of its own; every one fails, for every op and dtype
    failed: frozenset[str]  # the checks that fail, all of them (the union over the cases)
    backend: str = "numpy"
    entry_ops: tuple[str, ...] = contract.OPS


def _numpy(ops: Mapping[str, Callable[..., Any]]) -> Build:
    return lambda device: ops


# --- input-modified, for g ------------------------------------------------------------------------------


def _vjp_zeroes_masked_g(x, g):
    """An attention backward that zeroes the cotangent at masked (-inf) positions in place, to skip them.

    The values are right (s_i = 0 there, so g_i never counts, and the VJP is 0 there either way) and a
    second call on the zeroed g gives the same bits: only input-modified sees the caller's g change."""
    masked = np.isneginf(x)
    if masked.any() and g.flags.writeable:
        g[masked] = 0
    return vjp(x, g)


# --- the Jacobian's finite differences ------------------------------------------------------------------

_results: dict[tuple, np.ndarray] = {}


def _softmax_cached_by_rounded_logits(x):
    """A result cache keyed on the logits rounded to 3 decimals (meant to serve repeated rows).

    Why this bug and no other: the finite differences are looser than the oracle (a relative 1e-6 of J's
    scale against ~1e-13 for float64), so no Jacobian the oracle passes fails them; what they see that the
    oracle cannot is the Jacobian against the slope of the entry's own softmax, which the oracle judges only
    at the catalogue's inputs. This softmax is exact at every input it is given first, so accuracy and every
    property pass, and the same for any input within 5e-4 of one: flat around each, where J is not."""
    key = (x.shape, x.dtype.str, (np.round(np.asarray(x, dtype=np.float64), 3) + 0.0).tobytes())  # -0.0 is 0.0
    if key not in _results:
        _results[key] = softmax(x)
    return _results[key].copy()


# --- in-unit-interval and symmetric ---------------------------------------------------------------------


def _softmax_with_exp(exp: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """The mutants' softmax with its exp replaced (masked entries still exactly 0)."""
    def softmax_(x):
        if x.shape[-1] == 0:
            return np.empty(x.shape, x.dtype)
        with np.errstate(invalid="ignore", over="ignore", under="ignore"):
            e = np.where(np.isneginf(x), 0, exp(x - x.max(-1, keepdims=True))).astype(x.dtype)
        return (e / e.sum(-1, keepdims=True, dtype=_acc(x.dtype)).astype(x.dtype)).astype(x.dtype)

    return softmax_


def _exp_linear_below(floor_of: Callable[[np.dtype], float]) -> Callable[[np.ndarray], np.ndarray]:
    """exp(d) for d >= the floor, and the tangent line at the floor below it: negative far enough down."""
    def exp(d):
        lo = d.dtype.type(floor_of(d.dtype))
        return np.where(d >= lo, np.exp(np.maximum(d, lo)), np.exp(lo) * (1 + (d - lo))).astype(d.dtype)

    return exp


#: a table exp that covers [-30, 0] and extrapolates below it: weights down to -1e-10 far below the max
_softmax_negative_tail = _softmax_with_exp(_exp_linear_below(lambda dtype: -30.0))

#: an exp that extrapolates below its underflow threshold instead of flushing to 0: negative subnormal
#: weights (log(s) is NaN; numpy.random.choice(p=s) raises). Within the tolerance's absolute floor (the
#: smallest normal) of any exact value above 0, so accuracy passes them, and in-unit-interval too, whose
#: slack is that tolerance. Both see them only where the extended-precision oracle itself underflows to 0
#: (x_i - m < -11355, in spread-1e4), where the tolerance is 0: accuracy fires there for float32, but its
#: ratio divides a zero tolerance by float64's smallest normal, so in float64 only in-unit-interval fires.
_softmax_negative_underflow = _softmax_with_exp(_exp_linear_below(
    lambda dtype: np.log(np.finfo(dtype).smallest_subnormal)))


def _jacobian_upper_triangle(x):
    """J is symmetric, so a kernel computes the upper triangle only, and forgets to mirror it."""
    return np.triu(jacobian_from(softmax(x)))


# --- a float32 bug near its tolerance -------------------------------------------------------------------


def _exp_taylor4(d):
    """A fast float32 exp: d = k ln 2 + r with |r| <= ln(2) / 2, 2^k times the Taylor polynomial of degree 4.

    Its relative error reaches r^5 / 120 = 4.2e-5 (350 float32 ulps). The tolerance at n = 37 is about 20
    ulps times a_i, and after the division part of the error cancels, so the softmax fails by 6-12x; with
    degree 5 (20 ulps) it would pass at 0.6x, the tolerance's resolution for an error that does not grow
    with n. A correct float32 softmax stays under 0.1x."""
    ln2 = np.float32(np.log(2))
    k = np.round(np.where(np.isfinite(d), d, 0) / ln2)
    r = (d - k * ln2).astype(np.float32)
    p = np.ones_like(r)
    for i in (4, 3, 2, 1):
        p = (1 + r * p / np.float32(i)).astype(np.float32)
    return np.where(np.isfinite(d), np.ldexp(p, k.astype(np.int32)), np.exp(d)).astype(np.float32)


# --- a bfloat16 bug, in the framework that has bfloat16 -------------------------------------------------


def _torch_softmax_build(sum_in_input_dtype: bool) -> Build:
    """A torch entry (softmax only) whose row sum is a running sum, in bfloat16 or in float32 (the control)."""
    def build(device):
        import torch

        def softmax_(x):
            if x.shape[-1] == 0:
                return torch.empty_like(x)
            e = torch.exp(x - x.amax(-1, keepdim=True))
            total = torch.zeros_like(e[..., :1], dtype=x.dtype if sum_in_input_dtype else torch.float32)
            for k in range(x.shape[-1]):  # one rounding per term, as a kernel's accumulator register
                total = total + e[..., k:k + 1]
            return e / total.to(x.dtype)

        return {"softmax": softmax_}

    return build


PLANTED: tuple[Planted, ...] = (
    Planted("zeroes-masked-g", "the VJP zeroes the caller's g at masked positions in place",
            _numpy(_ops(vjp_fn=_vjp_zeroes_masked_g)), _numpy(_ops()), ("vjp",), ("float64", "float32"),
            ("masked-neg-inf", "nonfinite-rows"), frozenset({"input-modified"})),
    Planted("cached-by-rounded-logits", "softmax served from a cache keyed on the logits to 3 decimals",
            _numpy(_ops(_softmax_cached_by_rounded_logits)), _numpy(_ops()), ("jacobian", "vjp"), ("float64",),
            ("normal-1", "two-element", "ties"), frozenset({"finite-differences"})),
    Planted("negative-tail", "exp extrapolated linearly below -30: negative weights far below the max",
            _numpy(_ops(_softmax_negative_tail)), _numpy(_ops(_softmax_with_exp(np.exp))), ("softmax",),
            ("float64", "float32"), ("normal-10", "one-dominant", "spread-1e4"),
            frozenset({"accuracy", "in-unit-interval"})),
    Planted("negative-underflow", "exp extrapolated below its underflow threshold: negative subnormal weights",
            _numpy(_ops(_softmax_negative_underflow)), _numpy(_ops(_softmax_with_exp(np.exp))), ("softmax",),
            ("float64",), ("spread-1e4",), frozenset({"in-unit-interval"})),
    Planted("upper-triangle", "the Jacobian's upper triangle only, never mirrored",
            _numpy(_ops(jacobian_fn=_jacobian_upper_triangle)), _numpy(_ops()), ("jacobian",), ("float32",),
            ("normal-1", "transposed", "leading-3d"),
            frozenset({"accuracy", "symmetric", "rows-sum-to-zero", "columns-sum-to-zero"})),
    Planted("fast-exp-float32", "a float32 exp with a degree-4 polynomial (350 ulps)",
            _numpy(_ops(_softmax_with_exp(_exp_taylor4))), _numpy(_ops(_softmax_with_exp(np.exp))), ("softmax",),
            ("float32",), ("normal-1", "two-element", "transposed", "leading-3d"), frozenset({"accuracy"})),
    Planted("bfloat16-running-sum", "the row sum accumulated in bfloat16 (a 16-bit accumulator register)",
            _torch_softmax_build(True), _torch_softmax_build(False), ("softmax",), ("bfloat16",),
            ("n-517", "n-1023", "n-1025", "uniform-4096"), frozenset({"accuracy", "sums-to-one"}), backend="torch",
            entry_ops=("softmax",)),
    Planted("negative-underflow-in-range", "the same negative subnormal weights where every exact weight is above "
            "0 in extended precision (spreads of about 1e3)", _numpy(_ops(_softmax_negative_underflow)),
            _numpy(_ops(_softmax_with_exp(np.exp))), ("softmax",), ("float64", "float32"),
            (Case("spread-1e3", (6, 40), normal(300.0), "logits spread by 300-1500: weights below float64's and "
                  "float32's underflow, above the extended format's"),), frozenset({"in-unit-interval"})),
)

def _records(name: str, build: Build, planted: Planted) -> list[Record]:
    """Every op, dtype and case of ``planted`` checked for an entry registered for the call only."""
    if planted.backend == "torch":
        pytest.importorskip("torch")
    impl = softgrad.Implementation(name=name, family="planted", build=build, backend=planted.backend,
                                   ops=planted.entry_ops, dtypes=planted.dtypes, source=__file__)
    softgrad.register(impl)
    try:
        return [check_case(impl, op, dtype, CASES[case] if isinstance(case, str) else case)
                for op in planted.ops for dtype in planted.dtypes for case in planted.cases]
    finally:
        softgrad.unregister(impl.name)


def _worst(records: list[Record]) -> str:
    rec = max(records, key=lambda r: r.ratio or 0)
    return f"{rec.ratio:.3g}x ({rec.op} {rec.dtype} {rec.case})"


def _assert_caught_by_exactly(planted: Planted) -> list[Record]:
    records = _records(f"planted-{planted.name}", planted.build, planted)
    passed = [r.line() for r in records if r.verdict != "fail"]
    assert not passed, f"{planted.name} ({planted.bug}) was not caught:\n" + "\n".join(passed)
    fired = set().union(*(r.failed for r in records))
    assert fired == planted.failed, (f"{planted.name}: expected exactly {sorted(planted.failed)} to fail, "
                                     f"failed {sorted(fired)}; e.g. {records[0].line()}")
    return records


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.name)
def test_planted_bug_fails_exactly_its_checks_and_the_control_passes(planted: Planted):
    records = _assert_caught_by_exactly(planted)
    control = _records(f"planted-{planted.name}-control", planted.control, planted)
    failing = [r.line() for r in control if r.verdict != "pass"]
    assert not failing, "the control failed:\n" + "\n".join(failing)
    print(f"{planted.name}: worst {_worst(records)}, the control {_worst(control)}")


def test_each_planted_float_bug_is_as_subtle_as_stated():
    """The float32 exp fails by 6-12x and the bfloat16 running sum by 1.5-4x where rows are 517-1025 long
    (240x at 4096, where it stalls): near their tolerances, not orders of magnitude past them."""
    by_name = {p.name: p for p in PLANTED}
    fast_exp = _records("planted-fast-exp", by_name["fast-exp-float32"].build, by_name["fast-exp-float32"])
    assert all(3 < r.ratio < 30 for r in fast_exp), [r.line() for r in fast_exp]
    bf16 = by_name["bfloat16-running-sum"]
    short = dataclasses.replace(bf16, cases=("n-517", "n-1023", "n-1025"))
    assert all(1 < r.ratio < 10 for r in _records("planted-bf16-sum", bf16.build, short))


def test_a_bfloat16_softmax_off_by_30_percent_fails_at_every_row_length():
    """The 16-bit tolerance counts the sum's growth in float32 units, where 16-bit kernels accumulate: in its
    own units (G(4096) * 2^-7 = 1.06) a bfloat16 softmax at 0.7x or half its value passed at n = 1025."""
    dtype = "bfloat16"
    for n in (37, 1025, 4096):
        x = contract.round_to_dtype(np.random.default_rng(n).standard_normal((2, n)) * 2, dtype)
        for factor in (0.5, 0.7, 1.3):
            out = contract.round_to_dtype(np.asarray(oracle.softmax(x), dtype=np.float64) * factor, dtype)
            metrics, problems = accuracy("softmax", dtype, x, None, out)
            assert [p[0] for p in problems] == ["accuracy"] and metrics["ratio"] > 2, (n, factor, metrics)
        right = contract.round_to_dtype(np.asarray(oracle.softmax(x), dtype=np.float64), dtype)
        assert accuracy("softmax", dtype, x, None, right)[0]["ratio"] < 0.1
