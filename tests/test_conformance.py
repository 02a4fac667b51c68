"""The conformance suite: every registered implementation x op x dtype x device x case.

Unavailable families are skipped with their reason; nothing else is skipped. Plugins named in
SOFTGRAD_PLUGINS are included, so a third party runs this same file on their implementation.

The collected cases are checked once per session by softgrad's own isolated runner (each family in
worker processes of its own, two at a time: frameworks never share a process, a crash or hang fails
its case instead of the session); each test then asserts its own case's record.
"""

import pytest

from softgrad import registry
from softgrad.check.isolated import run_plan

from softgrad.testing import conformance_params

PARAMS = conformance_params()


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
