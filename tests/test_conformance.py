"""The conformance suite: every registered implementation x op x dtype x device x case.

Unavailable families are skipped with their reason; nothing else is skipped. Plugins named in
SOFTGRAD_PLUGINS are included, so a third party runs this same file on their implementation.

The collected cases are checked once per session by softgrad's own isolated runner (each family in
worker processes of its own, two at a time: frameworks never share a process, a crash or hang fails
its case instead of the session); each test then asserts its own case's record.
"""

import pytest

from softgrad import registry
from softgrad.check.cases import CASES
from softgrad.check.isolated import run_plan

from softgrad.testing import conformance_params

#: torch-compile compiles every case's shape with a C++ compiler (1 to 3 s each on the 2-core machine): the fast
#: suite keeps these of its cases, in float32 and bfloat16; the rest runs with the slow tests
COMPILED_FAST = {"dtypes": ("float32", "bfloat16"),
                 "cases": ("normal-1", "masked-neg-inf", "nonfinite-rows", "transposed", "padded", "g-broadcast")}


#: the write-up's entries (registry tag "writeup": the nested loops over NumPy and over torch tensors, element by
#: element, and autograd's Jacobian, a backward pass per row entry) take seconds a case past rows of this length
#: (loops' J at n = 1023: 2M Python-level writes, 10-15 s; autograd's: 1023 backward passes): the fast suite keeps
#: their shorter cases (every small and adversarial one), the longer rows run with the slow tests
WRITEUP_FAST_MAX_N = 128
#: the write-up's torch loops fill a tensor element by element (about 10 us a write: 50 s of the suite's torch
#: worker): the fast suite keeps them in float64 (with the finite differences); their float32, the same Python
#: loops filling a float32 tensor, runs with the slow tests
ELEMENTWISE_FAST_DTYPES = {"torch-loops": ("float64",)}


def _slow(param):
    """``param`` marked slow where the fast suite leaves it out: torch-compile's cases but those of
    :data:`COMPILED_FAST`; the write-up's entries' rows longer than :data:`WRITEUP_FAST_MAX_N`, and the dtypes of
    an element-by-element entry but those of :data:`ELEMENTWISE_FAST_DTYPES`."""
    impl, op, dtype, device, case = param.values
    if op == "-":
        return param
    if impl == "torch-compile":
        fast = dtype in COMPILED_FAST["dtypes"] and case in COMPILED_FAST["cases"]
    else:
        fast = (("writeup" not in registry.get(impl).tags or CASES[case].n <= WRITEUP_FAST_MAX_N)
                and dtype in ELEMENTWISE_FAST_DTYPES.get(impl, (dtype,)))
    return param if fast else pytest.param(*param.values, id=param.id, marks=(*param.marks, pytest.mark.slow))


PARAMS = [_slow(p) for p in conformance_params()]


@pytest.fixture(scope="session")
def records(request):
    """Check every conformance case collected in this session, once; records by (impl, op, dtype, device, case)."""
    wanted: dict[str, list[tuple[str, str, str, str]]] = {}
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.originalname == "test_conforms" and callspec and callspec.params["op"] != "-":
            p = callspec.params
            wanted.setdefault(p["impl"], []).append((p["op"], p["dtype"], p["device"], p["case"]))
    plan = [(registry.get(name), tasks) for name, tasks in wanted.items()]
    got = run_plan(plan, timeout_s=300, progress=False)
    return {(r.impl, r.op, r.dtype, r.device, r.case): r for r in got}


@pytest.mark.parametrize("impl,op,dtype,device,case", PARAMS)
def test_conforms(records, impl, op, dtype, device, case):
    rec = records.get((impl, op, dtype, device, case))
    assert rec is not None, f"{impl} {op} {dtype} {device} {case}: no record from the checker"
    assert rec.verdict == "pass", rec.line()
