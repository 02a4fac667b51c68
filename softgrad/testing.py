"""The conformance suite as a reusable piece: parameters and an assertion any pytest file can use.

``tests/test_conformance.py`` runs it over every registered implementation; a third party runs the same
suite on theirs by registering it (``SOFTGRAD_PLUGINS=mine.py pytest tests/``) or in their own test file::

    import pytest
    from softgrad.testing import assert_conforms, conformance_params

    @pytest.mark.parametrize("impl,op,dtype,device,case", conformance_params(["mine"]))
    def test_mine(impl, op, dtype, device, case):
        assert_conforms(impl, op, dtype, device, case)
"""

from __future__ import annotations

from collections.abc import Iterable

from . import registry
from .applicability import applicable
from .check.cases import CATALOGUE, get_case
from .check.checker import JACOBIAN_ELEMENT_BUDGET, check_case


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
        for device in impl.available_devices():
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
