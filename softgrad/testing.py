"""The conformance suite as a reusable piece, for the authors of a softmax in their own test suite.

Plain callables, no registration (the ops given: any of ``softmax(x)``, ``jacobian(x)``, ``vjp(x, g)``)::

    import softgrad.testing

    def test_my_softmax():
        softgrad.testing.check(softmax=my_softmax, vjp=my_vjp, backend="numpy",
                               expected_failures={"empty-row": "raises on an empty last axis, on purpose"})

    @softgrad.testing.parametrize_with_checks(softmax=my_softmax, vjp=my_vjp)
    def test_my_softmax_case(check):  # one pytest test per case
        check()

Registered entries by name (``tests/test_conformance.py`` runs these over every entry)::

    @pytest.mark.parametrize("impl,op,dtype,device,case", conformance_params(["mine"]))
    def test_mine(impl, op, dtype, device, case):
        assert_conforms(impl, op, dtype, device, case)
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import registry
from .applicability import applicable
from .backends import get_backend
from .check.cases import CATALOGUE, Case, get_case
from .check.checker import JACOBIAN_ELEMENT_BUDGET, Record, check_case
from .contract import OPS, check_dtype


def conformance_params(names: Iterable[str] | None = None, *, quick_only: bool = False) -> list:
    """``pytest.param(impl, op, dtype, device, case)`` for every supported combination.

    An implementation whose framework is missing yields one param marked skip with the reason;
    combinations it does not declare (a dtype, an op, a row length past its ``max_n``, a Jacobian past
    the checker's memory budget: :func:`softgrad.applicability.applicable`) are not generated at all.
    """
    import pytest

    impls = [registry.get(n) for n in names] if names is not None else registry.all_implementations()
    params = []
    for impl in impls:
        reason = impl.unavailable_reason()
        if reason:
            params.append(pytest.param(impl.name, "-", "-", "-", "-", id=f"{impl.name}-unavailable",
                                       marks=pytest.mark.skip(reason=f"{impl.name}: {reason}")))
            continue
        for device in impl.present_devices():
            for op in impl.ops:
                for dtype in impl.dtypes:
                    for case in CATALOGUE:
                        if quick_only and not case.quick:
                            continue
                        if op not in case.ops or applicable(impl, op, dtype, device, case.shape,
                                                            max_output_elements=JACOBIAN_ELEMENT_BUDGET):
                            continue
                        marks = () if case.quick else (pytest.mark.slow,)
                        params.append(pytest.param(impl.name, op, dtype, device, case.name, marks=marks,
                                                   id=f"{impl.name}-{op}-{dtype}-{device}-{case.name}"))
    return params


def assert_conforms(impl: str, op: str, dtype: str, device: str, case: str) -> None:
    """Fail with the checker's one-line verdict unless ``impl`` passes every check on the case."""
    rec = check_case(registry.get(impl), op, dtype, get_case(case), device)
    assert rec.verdict == "pass", rec.line()


# --- plain callables ------------------------------------------------------------------------------------

#: the name the verdicts give an implementation under test when the caller names none
UNDER_TEST = "under-test"
#: the longest per-case time limit :func:`check` accepts (a week): past it a limit is a typo, not a limit
MAX_TIMEOUT_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Expected:
    """A declared expected failure: a case, optionally narrowed to one op and one dtype, and why."""

    case: str
    op: str | None
    dtype: str | None
    reason: str

    def matches(self, op: str, dtype: str, case: str) -> bool:
        return self.case == case and self.op in (None, op) and self.dtype in (None, dtype)

    @property
    def key(self) -> str:
        return "/".join(p for p in (self.case, self.op, self.dtype) if p)


def _expected(declared: Mapping[str, str] | None) -> list[Expected]:
    """``{"case" | "case/op" | "case/op/dtype": reason}`` checked against the catalogue, the ops and dtypes."""
    out = []
    for key, reason in (declared or {}).items():
        parts = str(key).split("/")
        if len(parts) > 3 or not parts[0]:
            raise ValueError(f"expected_failures key {key!r}: write 'case', 'case/op' or 'case/op/dtype'")
        get_case(parts[0])  # KeyError naming the known cases
        op = parts[1] if len(parts) > 1 else None
        dtype = parts[2] if len(parts) > 2 else None
        if op is not None and op not in OPS:
            raise ValueError(f"expected_failures key {key!r}: unknown op {op!r}; choose from {', '.join(OPS)}")
        if dtype is not None:
            check_dtype(dtype)
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"expected_failures key {key!r}: give the reason as a non-empty string")
        out.append(Expected(parts[0], op, dtype, reason))
    return out


@dataclass
class Suite:
    """What :func:`check` and :func:`parametrize_with_checks` run: one unregistered entry made of the given
    callables, the (op, dtype, device, case) tasks that apply, and the declared expected failures."""

    impl: registry.Implementation
    tasks: list[tuple[str, str, str, str]]
    expected: list[Expected]
    isolate: bool = False
    timeout_s: float = 60.0
    #: why the selection holds no task at all (set by :func:`suite` where ``tasks`` is empty)
    empty_because: str = ""
    _records: dict[tuple[str, str, str, str], Record] = field(default_factory=dict, repr=False)

    def expected_for(self, op: str, dtype: str, case: str) -> Expected | None:
        return next((e for e in self.expected if e.matches(op, dtype, case)), None)

    def record(self, task: tuple[str, str, str, str]) -> Record:
        """The verdict on one task: checked here (and nothing left built), or, isolated, all tasks checked in
        a worker process on the first call (a hang or a crash fails its case; the session goes on)."""
        if task not in self._records:
            if self.isolate:
                from .check.isolated import check_isolated

                for rec in check_isolated(self.impl, [t for t in self.tasks if t not in self._records],
                                          self.timeout_s):
                    self._records[(rec.op, rec.dtype, rec.device, rec.case)] = rec
            else:
                op, dtype, device, case = task
                try:
                    self._records[task] = check_case(self.impl, op, dtype, get_case(case), device)
                finally:
                    registry.forget_built(self.impl)
        return self._records[task]

    def skip_reasons(self) -> dict[tuple[str, str, str, str], str | None]:
        """Each task's reason the checker will skip it (its own rule, :func:`applicable`), None where it runs:
        known before anything runs, so that :func:`parametrize_with_checks` can judge a selection at collection."""
        return {task: applicable(self.impl, task[0], task[1], task[2], get_case(task[3]).shape,
                                 max_output_elements=JACOBIAN_ELEMENT_BUDGET, budget="checker's")
                for task in self.tasks}

    def nothing_checked(self, skip_reasons: Iterable[str | None]) -> str | None:
        """Why a run whose tasks skip for these reasons (None: checked) checks nothing, or None if it checks
        something. No task, or every task skipped as not applicable, is a failure, never a pass."""
        reasons = list(skip_reasons)
        if not reasons:
            return f"nothing to check: {self.empty_because or 'the selection holds no case'}"
        if all(r is not None for r in reasons):
            distinct = list(dict.fromkeys(reasons))
            more = f"; and {len(distinct) - 3} other reason(s)" if len(distinct) > 3 else ""
            return (f"nothing to check: every one of the {len(reasons)} selected case(s) is skipped: "
                    + "; ".join(distinct[:3]) + more)
        return None

    def unmatched(self, checked: Iterable[tuple[str, str, str, str]]) -> list[str]:
        """One line per declared failure that no checked task falls under (a task falls under its first
        matching declaration)."""
        used = {e.key for op, dtype, _, case in checked if (e := self.expected_for(op, dtype, case)) is not None}
        return [f"expected failure {e.key!r} ({e.reason}) matches no case that is checked"
                for e in self.expected if e.key not in used]

    def problems(self, records: Iterable[Record]) -> list[str]:
        """One line for a run that checked nothing, per failure not declared, per declared failure that
        passed, per declaration matching no case that ran."""
        records = list(records)
        nothing = self.nothing_checked(r.message if r.verdict == "skip" else None for r in records)
        lines = [nothing] if nothing else []
        for rec in records:
            expected = self.expected_for(rec.op, rec.dtype, rec.case)
            if rec.verdict == "fail" and expected is None:
                lines.append(f"{rec.line()} (guards: {get_case(rec.case).guards})")
            elif rec.verdict == "pass" and expected is not None:
                lines.append(f"{rec.impl} {rec.op} {rec.dtype} {rec.device} case {rec.case}: PASSED but is declared "
                             f"an expected failure ({expected.key}: {expected.reason}); remove the declaration")
        return lines + self.unmatched((r.op, r.dtype, r.device, r.case) for r in records if r.verdict != "skip")


def suite(softmax: Callable[..., Any] | None = None, jacobian: Callable[..., Any] | None = None,
          vjp: Callable[..., Any] | None = None, *, backend: str = "numpy",
          dtypes: Iterable[str] = ("float64", "float32"), device: str = "cpu", quick: bool = True,
          cases: Iterable[str] | None = None, expected_failures: Mapping[str, str] | None = None,
          name: str = UNDER_TEST, isolate: bool = False, timeout_s: float = 60.0) -> Suite:
    """The :class:`Suite` for these callables (see :func:`check`); raises ``ValueError`` (``TypeError`` for an
    argument of the wrong type) for what cannot run."""
    timeout_s = registry.check_number("timeout_s", timeout_s, low=0, high=MAX_TIMEOUT_S, low_open=True)
    try:
        get_backend(backend)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    dtypes = tuple(check_dtype(d) for d in dtypes)
    impl = registry.Implementation.from_ops(name, softmax=softmax, jacobian=jacobian, vjp=vjp, backend=backend,
                                            dtypes=dtypes, devices=(device,))
    reason = impl.unavailable_reason()
    if reason:
        raise ValueError(f"backend {backend!r} cannot run here: {reason}")
    if device not in impl.available_devices():
        raise ValueError(f"device {device!r} is not present for backend {backend!r}")
    if isolate:
        try:
            pickle.dumps(impl)
        except Exception as exc:
            raise ValueError(f"isolate=True sends the callables to a worker process, so they must be importable "
                             f"by name (module-level functions, not lambdas or closures): {exc}") from None
    selected = ([get_case(c) for c in cases] if cases is not None
                else [c for c in CATALOGUE if c.quick or c.threshold or not quick])
    tasks = [(op, dtype, device, case.name) for case in selected for op in impl.ops if op in case.ops
             for dtype in dtypes]
    empty_because = ("dtypes=[] selects no dtype" if not dtypes else "cases=[] selects no case" if not selected
                     else f"none of the cases {', '.join(c.name for c in selected)} applies to {', '.join(impl.ops)}")
    return Suite(impl, tasks, _expected(expected_failures), isolate, timeout_s, "" if tasks else empty_because)


def check(softmax: Callable[..., Any] | None = None, jacobian: Callable[..., Any] | None = None,
          vjp: Callable[..., Any] | None = None, **options: Any) -> list[Record]:
    """Check plain callables against the oracle over every case that applies; return the records, or raise
    one ``AssertionError`` listing each failing case as the checker's one-line verdict.

    Options (as :func:`suite`): ``backend`` ("numpy", "torch", "jax": how arrays are handed over),
    ``dtypes``, ``device``, ``quick`` (the quick catalogue and each size threshold crossed at its smallest: rows
    just past 8192 and 2**16 entries, 65537 rows; seconds for a NumPy softmax and VJP; ``False``: every case,
    the long rows and large batches at sizes callers use as well),
    ``cases`` (names), ``expected_failures`` (``{"case" or "case/op" or "case/op/dtype": reason}``: such a
    case must fail; one that passes is reported), ``name`` (in the verdicts), ``isolate`` (each case in a
    worker process: a hang past ``timeout_s`` or a crash fails its case instead of the test session; the
    callables must then be importable module-level functions; ``timeout_s``, in seconds, up to
    :data:`MAX_TIMEOUT_S`). Nothing is registered or left built. A selection that leaves nothing to check
    (no dtype, no case, or every case skipped as not applicable) fails like a failing case, with the reason.
    """
    s = suite(softmax, jacobian, vjp, **options)
    records = [s.record(t) for t in s.tasks]
    problems = s.problems(records)
    if problems:
        checked = sum(r.verdict != "skip" for r in records)
        raise AssertionError(f"softgrad.testing.check: {len(problems)} problem(s) in {checked} checked "
                             f"cases of {s.impl.name}:\n  " + "\n  ".join(problems))
    return records


class CaseCheck:
    """One case of a :func:`parametrize_with_checks` suite: call it to check (``description``: what the case
    guards against)."""

    def __init__(self, suite_: Suite, task: tuple[str, str, str, str]) -> None:
        self.suite, self.task = suite_, task
        self.description = get_case(task[3]).guards

    def __repr__(self) -> str:
        op, dtype, device, case = self.task
        return f"<{self.suite.impl.name} {op} {dtype} {device} case {case}: {self.description}>"

    def __call__(self) -> Record:
        import pytest

        rec = self.suite.record(self.task)
        if rec.verdict == "skip":
            pytest.skip(rec.message)
        assert rec.verdict == "pass", f"{rec.line()} (guards: {self.description})"
        return rec


def parametrize_with_checks(softmax: Callable[..., Any] | None = None, jacobian: Callable[..., Any] | None = None,
                            vjp: Callable[..., Any] | None = None, **options: Any) -> Any:
    """``pytest.mark.parametrize("check", ...)``: one test per (op, dtype, case) of :func:`check`'s suite,
    declared expected failures marked ``xfail(strict=True)`` (so one that passes fails the run), ids
    ``op-dtype-case``; the test calls ``check()``.

    What :func:`check` would report without running anything is a ``ValueError`` here, so an error at
    collection names it: a selection that leaves nothing to check (rather than an empty parametrisation,
    which pytest reports as a skip) and a declared failure that matches no case that is checked."""
    import pytest

    s = suite(softmax, jacobian, vjp, **options)
    skips = s.skip_reasons()
    nothing = s.nothing_checked(skips.values())
    problems = ([nothing] if nothing else []) + s.unmatched(t for t, why in skips.items() if why is None)
    if problems:
        raise ValueError(f"softgrad.testing.parametrize_with_checks: {len(problems)} problem(s) in the suite of "
                         f"{s.impl.name}:\n  " + "\n  ".join(problems))
    params = []
    for task in s.tasks:
        op, dtype, device, case = task
        expected = s.expected_for(op, dtype, case)
        marks = (pytest.mark.xfail(strict=True, reason=expected.reason),) if expected else ()
        params.append(pytest.param(CaseCheck(s, task), marks=marks, id=f"{op}-{dtype}-{case}"))
    return pytest.mark.parametrize("check", params)
