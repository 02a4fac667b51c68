"""Check one implementation on one (op, dtype, device, case) and return a verdict record.

The checker takes entries from the registry and inputs from the case catalogue; it knows nothing of
timing. A record fails if any check fails: contract (shape, dtype), accuracy against the oracle, the NaN
pattern of the non-finite policy, the call's contract with its caller (an input modified in place,
non-determinism, a result that later calls overwrite), a mathematical property, or finite differences. An implementation that raises fails the case with its error; the check goes on.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import oracle, properties
from ..applicability import applicable
from ..backends import get_backend
from .cases import Case, view
from ..contract import DTYPE_INFO, output_problem
from ..prepared import prepare
from ..registry import Implementation
from .tolerance import tolerance

#: Largest Jacobian (elements, batch included) the checker builds; larger cases are skipped.
JACOBIAN_ELEMENT_BUDGET = 1 << 22
#: Largest n for the column-by-column finite-difference Jacobian check.
FD_JACOBIAN_MAX_N = 64
#: Largest rows*n for property checks that build a Jacobian from the same implementation.
PROPERTY_JACOBIAN_BUDGET = 1 << 16
#: Later calls, each on other values of the case's shape, dtype and layouts (a caller's next steps), after
#: which a result taken earlier must be as it was: two, so that buffers used in turn are caught as well as one
OWNERSHIP_CALLS = 2

CHECKS = (
    "error",  # the implementation raised
    "contract",  # wrong type, shape or dtype
    "nan-policy",  # NaN where a number is due, or a number where the policy says NaN
    "accuracy",  # error against the oracle above tolerance
    "input-modified",  # the caller's array was overwritten
    "deterministic",  # the same input twice gave different bits
    "result-overwritten",  # a later call changed a result the caller holds (a reused output buffer)
    "sums-to-one",
    "in-unit-interval",
    "symmetric",
    "rows-sum-to-zero",
    "columns-sum-to-zero",
    "trace",
    "eigenvalues-in-[0,1/2]",
    "vjp-sums-to-zero",
    "vjp-equals-jt-g",
    "finite-differences",
)


@dataclass
class Record:
    """One verdict: an implementation, op, dtype and case, with the numbers behind it."""

    impl: str
    family: str
    op: str
    dtype: str
    device: str
    case: str
    shape: list[int]
    verdict: str  # "pass", "fail" or "skip"
    failed: list[str] = field(default_factory=list)
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    max_ulp_err: float | None = None
    ratio: float | None = None  # worst |error| / tolerance; <= 1 passes
    tolerance: str = ""
    message: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line naming implementation, op, dtype, case and the numbers."""
        nums = f" (worst {self.ratio:.3g}x tolerance)" if self.ratio is not None and math.isfinite(self.ratio) else ""
        return (f"{self.impl} {self.op} {self.dtype} {self.device} case {self.case} {tuple(self.shape)}: "
                f"{self.verdict.upper()} [{', '.join(self.failed)}]{nums} {self.message}").rstrip()


def _ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """The spacing of ``dtype`` at each of ``values`` (float64): 2**(exponent - mantissa bits), the exponent
    read from the float64 bits (the power of two at or below ``|value|``, no log2 rounded up at 2**k - tiny)."""
    info = DTYPE_INFO[dtype]
    mag = np.maximum(np.abs(np.asarray(values, dtype=np.float64)), info.tiny)  # normal in float64: exponent bits
    return (mag.view(np.uint64) & np.uint64(0x7FF0_0000_0000_0000)).view(np.float64) * 2.0 ** -info.mantissa_bits


def accuracy(op: str, dtype: str, x: np.ndarray, g: np.ndarray | None, out: np.ndarray,
             tol: np.ndarray | None = None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Compare ``out`` with the oracle; return the metrics and the problems found. ``tol`` is
    :func:`softgrad.check.tolerance.tolerance` for these inputs, when the caller has it already.

    Only a float64 result's difference from the oracle is taken in extended precision: a narrower result is
    exact in float64, and the oracle rounded to float64 is off by 2**-53 of an entry, some 10**-9 of the
    tightest narrower tolerance (float32's u*G(n) >= 8 * 2**-24). Everything past the difference (NaN
    pattern, ratios, ulps) is float64, several times faster than x87 on the n^2 entries of a Jacobian."""
    ref = oracle.reference(op, x, g)
    tol = tolerance(op, dtype, x, g) if tol is None else tol
    ref64 = ref.astype(np.float64)  # NaN where ref is; its values are probabilities and their products
    got = np.asarray(out, dtype=np.float64)  # exact: every checked dtype is float64 or narrower
    want_nan = np.isnan(ref64)
    got_nan = np.isnan(got)
    problems: list[tuple[str, str]] = []
    metrics: dict[str, Any] = {"tolerance": f"u*G(n)*scale, u={DTYPE_INFO[dtype].eps:.3g}, see softgrad.check.tolerance"}
    mismatch = want_nan != got_nan
    if mismatch.any():
        idx = tuple(int(i) for i in np.argwhere(mismatch)[0])
        what = "NaN where the policy requires NaN" if want_nan[idx] else "NaN where a number is due"
        got_str = "NaN" if got_nan[idx] else f"{float(got[idx]):.6g}"
        problems.append(("nan-policy", f"{int(mismatch.sum())} entries: {what} at {list(idx)} (got {got_str})"))
    defined = ~want_nan & ~got_nan
    if not defined.any():
        return metrics, problems
    with np.errstate(invalid="ignore", over="ignore"):
        # the error itself is exact enough in float64 (a nonzero error is at least a float32/float64 spacing,
        # or |got| where the exact value is 0)
        err = np.abs(np.subtract(got, ref if dtype == "float64" else ref64)).astype(np.float64, copy=False)
        err[~defined] = 0
        err[np.isnan(err)] = np.inf
        ref64[~defined] = 1
        tol64 = np.asarray(tol, dtype=np.float64)
        ratio = err / np.where(tol64 > 0, tol64, np.finfo(np.float64).tiny)  # 0 where err is 0
        nonzero = ref64 != 0
        rel = np.divide(err, np.abs(ref64), out=np.zeros_like(err), where=nonzero)
    ulps = err / _ulp(ref64, dtype)
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    metrics.update(
        max_abs_err=float(err.max()),
        max_rel_err=float(rel.max()),
        max_ulp_err=float(ulps.max()),
        ratio=float(ratio[worst]),
    )
    if ratio[worst] > 1:
        problems.append(("accuracy", f"error {float(err[worst]):.3g} at {[int(i) for i in worst]} "
                                     f"(got {float(got[worst]):.9g}, want {float(ref[worst]):.9g}) is "
                                     f"{float(ratio[worst]):.3g}x the tolerance {float(tol[worst]):.3g}"))
    return metrics, problems


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def _differences(now: np.ndarray, was: np.ndarray) -> str:
    """How two results of one shape differ: how many entries, the first of them, with both values."""
    diff = np.argwhere(~((now == was) | (np.isnan(now) & np.isnan(was))))
    first = tuple(diff[0].tolist())
    return (f"{diff.shape[0]} of {now.size} entries, first at {list(first)} "
            f"({float(was[first]):.9g}, then {float(now[first]):.9g})")


def check_case(impl: Implementation, op: str, dtype: str, case: Case, device: str = "cpu", *,
               determinism: bool = True, properties_on: bool = True) -> Record:
    """Run every applicable check of ``impl`` on one op, dtype, device and case."""
    rec = Record(impl.name, impl.family, op, dtype, device, case.name, list(case.shape), "pass")
    reason = applicable(impl, op, dtype, device, case.shape, max_output_elements=JACOBIAN_ELEMENT_BUDGET,
                        budget="checker's")
    if reason is None and op not in case.ops:
        reason = f"case {case.name} does not apply to {op}"
    if reason is not None:
        rec.verdict, rec.message = "skip", reason
        return rec
    t0 = time.perf_counter()
    problems: list[tuple[str, str]] = []
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an implementation's warnings on policy rows are not verdicts
            problems = _run_checks(impl, op, dtype, case, device, rec, determinism, properties_on)
    except Exception as exc:  # the implementation's failure is a verdict, not a crash of the harness
        problems = [("error", f"raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")]
    rec.seconds = time.perf_counter() - t0
    if problems:
        rec.verdict = "fail"
        rec.failed = list(dict.fromkeys(name for name, _ in problems))
        rec.message = "; ".join(f"{name}: {msg}" for name, msg in problems)
    return rec


def _run_checks(impl: Implementation, op: str, dtype: str, case: Case, device: str, rec: Record,
                determinism: bool, properties_on: bool) -> list[tuple[str, str]]:
    backend = get_backend(impl.backend)
    x_base, g_base = case.inputs(dtype)
    x = view(x_base, case.layout)
    g = view(g_base, case.layout_of_g, x.shape)
    call = prepare(impl, op, dtype, device, x_base, g_base, layout=case.layout, g_layout=case.layout_of_g)
    x_nat = call.x
    result = call()
    problem = output_problem(op, x.shape, dtype, result, backend.dtype_name(result))
    if problem:
        return [("contract", problem)]
    out = backend.to_numpy(result)
    tol = tolerance(op, dtype, x, g if op == "vjp" else None)  # per row: the property checks reuse it
    metrics, problems = accuracy(op, dtype, x, g if op == "vjp" else None, out, tol)
    for key in ("max_abs_err", "max_rel_err", "max_ulp_err", "ratio", "tolerance"):
        if key in metrics:
            setattr(rec, key, metrics[key])
    for name, nat, want in (("x", x_nat, x), ("g", call.g, g)):
        if (name == "x" or op == "vjp") and not _same_bits(backend.to_numpy(nat).astype(np.float64), want):
            problems.append(("input-modified", f"the input {name} was overwritten by the call"))
    if determinism and case.rows * case.n <= 1 << 20:
        again = backend.to_numpy(call())
        if not _same_bits(again, out):
            problems.append(("deterministic", f"a second call on the same input differed: {_differences(again, out)}"))
    if out.size:
        for draw in range(1, OWNERSHIP_CALLS + 1):  # the caller's next steps: new values, same shape and layouts
            prepare(impl, op, dtype, device, *case.inputs(dtype, draw), layout=case.layout,
                    g_layout=case.layout_of_g)()
        now = backend.to_numpy(result)
        if not _same_bits(now, out):
            problems.append(("result-overwritten", f"the result was changed by {OWNERSHIP_CALLS} later calls on "
                                                   f"other values: {_differences(now, out)}"))
    if properties_on and out.size:
        problems += _property_problems(impl, op, dtype, case, device, x, g, x_nat, out, tol)
    return problems


def _property_problems(impl: Implementation, op: str, dtype: str, case: Case, device: str,
                       x: np.ndarray, g: np.ndarray, x_nat: Any, out: np.ndarray,
                       tol: np.ndarray) -> list[tuple[str, str]]:
    """Properties on the rows the policy defines, using the implementation's own results; ``tol`` is
    the op's tolerance for all of ``x`` (it is computed row by row, so its defined rows are theirs)."""
    backend = get_backend(impl.backend)
    ops = impl.ops_for(device)
    defined = ~np.isnan(oracle.softmax(x)).any(-1)
    if not defined.any():
        return []
    sel = (defined,) if x.ndim > 1 else (slice(None),)
    problems: list[tuple[str, str]] = []
    own_s = None
    if "softmax" in impl.ops:
        own_s = backend.to_numpy(ops["softmax"](x_nat))
    if op == "softmax":
        problems += properties.softmax_properties(out[sel], tol[sel])
    elif op == "jacobian" and own_s is not None:
        problems += properties.jacobian_properties(out[sel], own_s[sel], tol[sel])
    elif op == "vjp":
        own_j = None
        if "jacobian" in impl.ops and case.rows * case.n * case.n <= PROPERTY_JACOBIAN_BUDGET:
            own_j = backend.to_numpy(ops["jacobian"](x_nat))[sel]
        problems += properties.vjp_properties(out[sel], own_j, g[sel], tol[sel])
    fd_ok = (dtype == "float64" and own_s is not None and defined.all()
             and float(np.max(np.abs(np.where(np.isfinite(x), x, 0)), initial=0)) <= 100)
    if fd_ok and op in ("vjp", "jacobian"):
        def own_softmax(a: np.ndarray) -> np.ndarray:
            return backend.to_numpy(ops["softmax"](backend.from_numpy(a, "float64", device)))

        s = oracle.softmax(x)
        if op == "vjp":
            problems += properties.finite_difference_vjp(own_softmax, x, g, out, s)
        elif case.n <= FD_JACOBIAN_MAX_N:
            problems += properties.finite_difference_jacobian(own_softmax, x, out, s)
    return problems
