"""The value families of a training run, checked at every row length of a workload in every dtype it declares.

Initialisation (near-uniform logits: a sum of exp of about n), late training (one dominant logit), grown logits
(+-1e4, spread by 1e3) and masks (all -inf, left- and right-padded, causal), a few rows each
(:data:`softgrad.check.cases.FAMILIES`). Planted bugs in ``mutants.TRAINING_MUTANTS`` pass the catalogue and
normal values at any size; only these families at a workload's row length fail them, through the whole checker.
"""

from __future__ import annotations

import numpy as np
import pytest

import softgrad
import softgrad.testing
from softgrad import workloads
from softgrad.check.cases import CATALOGUE, FAMILIES, family_shape, get_case, shape_case_name
from softgrad.check.checker import check_case
from softgrad.check.tolerance import tolerance
from softgrad.contract import DTYPE_INFO, OPS

from mutants import TRAINING_MUTANTS, Mutant, _ops, softmax


def test_every_row_length_of_every_preset_gets_each_family_it_does_not_declare():
    for w in workloads.PRESETS.values():
        names = workloads.check_cases(w)
        declared = workloads.check_cases(w, families=False)
        assert names[: len(declared)] == declared, "the declared cases first, as before"
        for shape in w.shapes:
            for family, rows in FAMILIES.items():
                name = shape_case_name(family_shape(shape, family), family, w.x_layouts[0])
                assert (name in names) == (family not in w.values), (w.name, shape, family)
                case = get_case(name)
                assert case.n == shape[-1] and case.rows == rows and len(case.shape) == max(len(shape), 2)
                assert case.ops == OPS, "g contiguous: every op reads the family"
    vocab = workloads.PRESETS["vocab"]
    checked = {(get_case(c).n, c.split("-x-")[0].split("-", 2)[2]) for c in workloads.check_cases(vocab)}
    assert checked >= {(n, f) for n in workloads.VOCAB_SIZES for f in FAMILIES}, "every vocabulary, every family"


def test_a_family_shape_keeps_the_row_and_the_dims_with_a_few_rows():
    assert family_shape((8, 12, 128, 128), "masked-rows") == (1, 1, 4, 128)
    assert family_shape((4096, 50257), "near-uniform") == (2, 50257)
    assert family_shape((300,), "large") == (3, 300), "a 1-d row becomes rows of a batch"
    assert workloads.check_cases(workloads.Workload("w", "", ((2, 10),), ("float32",)), families=False) == [
        "shape-2x10-normal-x-contiguous-g-contiguous"]


def test_each_family_holds_its_kinds_of_rows():
    n = 70000
    x, _ = get_case(shape_case_name((2, n), "near-uniform")).inputs("float16")
    assert (x[0] == 0).all() and 0 < np.abs(x[1]).max() < 0.1
    e = np.exp(x - x.max(-1, keepdims=True)).astype(np.float16)
    with np.errstate(over="ignore"):
        assert np.isinf(e.sum(-1, dtype=np.float16)).all(), "a float16 sum of the exps overflows past 65504"
    x, _ = get_case(shape_case_name((4, n), "masked-rows")).inputs("float32")
    finite = np.isfinite(x)
    assert not finite[0].any(), "a row of padding only"
    assert not finite[1, : 3 * n // 4].any() and finite[1, -(n // 4):].all(), "left-padded: whole chunks -inf"
    assert finite[2, 0] and not finite[2, 1:].any(), "a causal mask's first query"
    assert finite[3, 0] and 0.3 < finite[3, : n // 2].mean() < 0.7 and not finite[3, n // 2 + 1:].any()
    x, _ = get_case(shape_case_name((3, n), "large")).inputs("float64")
    assert abs(x[0].mean() - 1e4) < 1 and abs(x[1].mean() + 1e4) < 1 and 900 < x[2].std() < 1100
    x, _ = get_case(shape_case_name((2, n), "dominant")).inputs("float64")
    top = np.sort(x, -1)
    assert (top[:, -1] - top[:, -2] > 30).all()


def test_a_float16_row_of_zeros_fails_where_every_probability_is_subnormal():
    """1/65536 is below float16's smallest normal (2^-14): the absolute floor is the subnormal spacing there (a
    floor of the smallest normal passed a row of zeros); float32, float64 and bfloat16 keep theirs."""
    x = np.zeros((1, 65536))
    tol = tolerance("softmax", "float16", x)
    assert (1 / 65536 > 50 * tol).all(), "zeros are off by 50x their tolerance and more"
    assert (np.abs(np.float16(1 / 65536) - 1 / 65536) <= tol).all(), "the rounded value passes"
    spread = np.array([[0.0, -1000.0, -2000.0]])  # weights below every smallest normal
    for dtype in ("float32", "float64", "bfloat16"):
        info = DTYPE_INFO[dtype]
        small = tolerance("softmax", dtype, spread)[0, 1:]  # exact values of 5e-435 and 3e-869
        assert (small >= info.tiny).all() and (small <= 1.001 * info.tiny).all(), "the smallest normal, as before"


def _register(name: str, mutant: Mutant) -> softgrad.Implementation:
    impl = softgrad.Implementation(name=name, family="mutants", build=lambda device, ops=mutant.ops: ops,
                                   dtypes=mutant.dtypes, source=__file__)
    softgrad.register(impl)
    return impl


#: where each planted bug lives: a row as long as a vocabulary (Llama 2's 32000; a 2**16 one for float16's
#: overflow, which needs a sum of 65520)
WHERE = {"float16-sum": ((2, 65536), "float16"), "online-masked-tile": ((2, 32000), "float32"),
         "max-of-first-tile": ((2, 32000), "float32")}
CONTROL = Mutant("control", "the correct NumPy softmax", _ops(), frozenset())


def _failing(mutant: Mutant, cases: list[str], dtype: str) -> dict[str, list[str]]:
    impl = _register(f"family-{mutant.name}", mutant)
    try:
        records = [check_case(impl, "softmax", dtype, get_case(c)) for c in cases]
    finally:
        softgrad.unregister(impl.name)
    assert all(r.verdict != "skip" for r in records), [r.line() for r in records]
    return {r.case: r.failed for r in records if r.verdict == "fail"}


@pytest.mark.parametrize("mutant", TRAINING_MUTANTS, ids=lambda m: m.name)
def test_a_training_bug_fails_only_the_families_at_its_row_length(mutant: Mutant):
    shape, dtype = WHERE[mutant.name]
    w = workloads.Workload("lm", "a vocabulary row", (shape,), (dtype,), ("softmax",))
    declared = workloads.check_cases(w, families=False)
    every = workloads.check_cases(w)
    failing = _failing(mutant, every, dtype)
    assert failing and not set(failing) & set(declared), f"{mutant.name}: {failing}"
    fired = {name for checks in failing.values() for name in checks}
    assert mutant.caught_by <= fired, f"{mutant.name}: fired {sorted(fired)}"
    quick = [c.name for c in CATALOGUE if c.quick and "softmax" in c.ops]
    assert not _failing(mutant, quick, dtype), "the quick catalogue does not see it"
    control = _failing(CONTROL, every, dtype)
    assert not control, f"the correct softmax failed {control}"


@pytest.mark.slow
@pytest.mark.parametrize("mutant", TRAINING_MUTANTS, ids=lambda m: m.name)
def test_a_training_bug_passes_the_whole_catalogue(mutant: Mutant):
    """Only the families see these bugs: every case of the catalogue, every op and dtype, passes."""
    records = softgrad.testing.check(**mutant.ops, dtypes=mutant.dtypes, quick=False, name=mutant.name)
    assert all(r.verdict != "fail" for r in records) and any(r.verdict == "pass" for r in records)
