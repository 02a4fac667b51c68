"""``softgrad.testing.check()`` with no options finds the size bugs: rows past a chunk, batches past a grid limit,
the last partial block of rows.

The default is the quick catalogue plus each size threshold crossed at its smallest (``Case.threshold``: rows
of 8193 and 65537 entries, 65537 rows of 3), seconds for a NumPy softmax and VJP. Every planted bug of
``mutants.py`` that the full catalogue catches, the default catches.
"""

from __future__ import annotations

import time

import pytest

import softgrad.testing
from softgrad.check.cases import CATALOGUE

from mutants import ALL_MUTANTS, SIZE_MUTANTS, Mutant, softmax, vjp

THRESHOLDS = {c.name: c for c in CATALOGUE if c.threshold}


def test_each_size_case_is_the_smallest_past_its_threshold_and_in_the_default_only():
    assert (THRESHOLDS["n-8193"].n, THRESHOLDS["n-8193"].rows) == (8192 + 1, 2)
    assert (THRESHOLDS["n-65537"].n, THRESHOLDS["n-65537"].rows) == (2**16 + 1, 1)
    assert THRESHOLDS["batch-65537"].rows == 2**16 + 1 and THRESHOLDS["batch-65537"].n == 3
    assert not any(c.quick for c in THRESHOLDS.values()), "the quick set (every entry's fast suite) stays quick"
    default = {task[3] for task in softgrad.testing.suite(softmax=softmax).tasks}
    assert default == {c.name for c in CATALOGUE if c.quick and "softmax" in c.ops} | set(THRESHOLDS)
    full = {task[3] for task in softgrad.testing.suite(softmax=softmax, quick=False).tasks}
    assert full - default == {"n-781", "long-row", "batch-70000"}, "the same sizes as callers have them"


@pytest.mark.parametrize("mutant", SIZE_MUTANTS, ids=lambda m: m.name)
def test_the_default_catches_a_size_bug_that_the_quick_set_misses(mutant: Mutant):
    with pytest.raises(AssertionError) as caught:
        softgrad.testing.check(softmax=mutant.ops["softmax"], name=mutant.name)
    failing = {line.split(" case ")[1].split()[0] for line in str(caught.value).splitlines()[1:]}
    assert failing and failing <= set(THRESHOLDS), failing
    quick = [c.name for c in CATALOGUE if c.quick]
    assert all(r.verdict != "fail" for r in softgrad.testing.check(softmax=mutant.ops["softmax"], cases=quick))


def _first_failure(suite: softgrad.testing.Suite, tasks: list) -> str | None:
    for task in tasks:
        rec = suite.record(task)
        if rec.verdict == "fail":
            return rec.line()
    return None


@pytest.mark.slow
@pytest.mark.parametrize("mutant", ALL_MUTANTS, ids=lambda m: m.name)
def test_a_bug_that_the_full_catalogue_catches_the_default_catches(mutant: Mutant):
    """Caught by the full catalogue => caught by the default: where the default's cases pass, so do the rest."""
    default = softgrad.testing.suite(**mutant.ops, dtypes=mutant.dtypes, name=mutant.name)
    if _first_failure(default, default.tasks) is not None:
        return
    full = softgrad.testing.suite(**mutant.ops, dtypes=mutant.dtypes, quick=False, name=mutant.name)
    extra = [task for task in full.tasks if task not in set(default.tasks)]
    assert _first_failure(full, extra) is None, f"{mutant.name}: caught only outside the default"


@pytest.mark.slow
def test_the_default_for_a_numpy_softmax_and_vjp_takes_under_30_seconds():
    t0 = time.perf_counter()
    records = softgrad.testing.check(softmax=softmax, vjp=vjp)
    seconds = time.perf_counter() - t0
    assert {r.case for r in records} >= set(THRESHOLDS)
    assert seconds < 30, f"{seconds:.1f} s"
