"""Planted-bug self-test: every mutant is flagged by the checks it should be; the control is not."""

from __future__ import annotations

import numpy as np
import pytest

import softgrad
from softgrad.check.cases import CASES, CATALOGUE, Case
from softgrad.check.checker import check_case

import mutants
from mutants import MUTANTS, Mutant, _ops


def _register(name: str, ops, dtypes) -> softgrad.Implementation:
    impl = softgrad.Implementation(name=name, family="mutants", build=lambda device, ops=ops: ops,
                                   dtypes=dtypes, source=__file__)
    softgrad.register(impl)
    return impl


def _fired(impl: softgrad.Implementation, enough: frozenset[str] | None = None) -> tuple[set[str], list[str]]:
    """The checks that fire over the quick catalogue, and the failing records' lines; with ``enough``, the
    pass stops once every check of it has fired (what has fired by then stays fired whatever comes after)."""
    fired: set[str] = set()
    lines: list[str] = []
    for case in CATALOGUE:
        if not case.quick:
            continue
        for op in impl.ops:
            for dtype in impl.dtypes:
                rec = check_case(impl, op, dtype, case)
                if rec.verdict == "fail":
                    fired |= set(rec.failed)
                    lines.append(rec.line())
                    if enough is not None and enough <= fired:
                        return fired, lines
    return fired, lines


def _fired_registered(name: str, ops, dtypes, enough: frozenset[str] | None = None) -> tuple[set[str], list[str]]:
    """:func:`_fired` for an entry registered for the call only."""
    impl = _register(name, ops, dtypes)
    try:
        return _fired(impl, enough)
    finally:
        softgrad.unregister(impl.name)


#: the cases a layout bug may fail: g laid out unlike x; x or g the leading columns of a padded buffer
LAYOUT_CASES = {"g-layout": lambda c: c.g_layout not in (None, c.layout),
                "padded": lambda c: "padded" in (c.layout, c.layout_of_g)}


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_is_caught(mutant: Mutant):
    """Caught by the checks it should be (and only those, where its values are right); a layout bug fails only
    the cases of its layout (one pass over the quick catalogue serves both claims).

    A mutant that claims only "these checks fire" (no ``only_checks``, no ``only_where``) stops its pass once
    every check of ``caught_by`` has fired: a check that fired on one case has been shown to fire, and no later
    case can unfire it, so the rest of the catalogue could add nothing to that claim. The claims of ``only_*``
    are about every case (no other check fires anywhere; no case outside the layout fails), so those mutants,
    like the control, take the whole pass."""
    whole = mutant.only_checks or mutant.only_where is not None
    fired, lines = _fired_registered(f"mutant-{mutant.name}", mutant.ops, mutant.dtypes,
                                     None if whole else mutant.caught_by)
    assert fired, f"mutant {mutant.name} ({mutant.bug}) was not caught by any check"
    missing = mutant.caught_by - fired
    assert not missing, f"mutant {mutant.name}: expected {sorted(missing)} to fire; fired {sorted(fired)}"
    if mutant.only_checks:  # the values are right: every other check passes
        assert fired == mutant.caught_by, f"mutant {mutant.name}: {sorted(fired - mutant.caught_by)} fired too"
    if mutant.only_where:
        failing = {line.split(" case ")[1].split()[0] for line in lines}
        own_layout = {c.name for c in CATALOGUE if c.quick and LAYOUT_CASES[mutant.only_where](c)}
        assert failing <= own_layout, f"{mutant.name} failed outside the {mutant.only_where} cases: " \
                                      f"{failing - own_layout}"
    print(f"{mutant.name}: caught by {', '.join(sorted(fired))}; e.g. {lines[0]}")


def test_the_layout_rule_tells_the_layouts_apart():
    """The confinement above is a claim only if each layout's cases are some, not all, of the quick ones."""
    quick = [c for c in CATALOGUE if c.quick]
    for where, holds in LAYOUT_CASES.items():
        assert 0 < sum(map(holds, quick)) < len(quick), where


def test_a_result_must_outlast_two_later_calls():
    """Two output buffers used in turn keep a result through one later call: the ownership check makes two
    (determinism's second call on the same input left out), and a correct entry passes the same sequence."""
    double = next(m for m in MUTANTS if m.name == "double-buffered")
    case: Case = CASES["normal-1"]
    for name, ops, failed in (("mutant-double-buffered", double.ops, ["result-overwritten"]),
                              ("mutant-control", _ops(), [])):
        impl = _register(name, ops, ("float64",))
        try:
            rec = check_case(impl, "jacobian", "float64", case, determinism=False)
        finally:
            softgrad.unregister(impl.name)
        assert rec.failed == failed, rec.line()
        if failed:
            assert "changed by 2 later calls on other values" in rec.message and "entries, first at" in rec.message


def test_control_is_not_flagged():
    """The mutants' unmodified base passes every quick case: no false alarm from the same harness."""
    fired, lines = _fired_registered("mutant-control", _ops(), ("float64", "float32", "float16"))
    assert not fired, "\n".join(lines[:5])


def test_catalogue_covers_the_issue_list():
    names = {m.name for m in MUTANTS}
    assert len(MUTANTS) >= 10
    for required in ("sign-flip", "missing-diagonal", "no-max-shift", "wrong-axis", "transposed-batch-jacobian",
                     "nan-at-masked", "fp16-running-sum", "off-by-one", "only-past-1000", "vjp-missing-sum"):
        assert required in names


def test_the_float16_outer_products_are_numpys_bit_for_bit():
    """The mutants' shortcut for float16 products (rounded to float16's subnormal spacing in float32 first) gives
    NumPy's float16 multiply bit for bit: every pair of a grid over [0, 1] (subnormal products, underflows to
    -0, ties at the spacing), and a planted shortcut that rounds toward zero differs."""
    v = np.arange(0, 0x3C01, 13, dtype=np.uint16).view(np.float16)
    with np.errstate(under="ignore"):
        want = -(v[:, None] * v[None, :])
    got = mutants._products(v)
    assert got.dtype == np.float16 and np.array_equal(got.view(np.uint16), want.view(np.uint16))
    p = v.astype(np.float32)
    truncated = (-(p[:, None] * p[None, :])).view(np.uint32) & np.uint32(0xFFFFE000)
    assert not np.array_equal(truncated.view(np.float32).astype(np.float16).view(np.uint16), want.view(np.uint16))
