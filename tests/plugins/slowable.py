"""A correct implementation that can be slowed on purpose: the pure-Python loops plus a busy wait of
(SOFTGRAD_TEST_SLOWDOWN - 1) times each call's own duration. The regression gate must flag 2 (see test_main_job).

The loops are compute-bound and take milliseconds, where two identical runs agree within a few percent
on these machines; sub-millisecond, cache-sized calls can differ by 1.4x between runs."""

import os
import time

import softgrad
from softgrad.implementations import loops

FACTOR = float(os.environ.get("SOFTGRAD_TEST_SLOWDOWN", "1"))


def _slowed(fn):
    def call(*args):
        t0 = time.perf_counter()
        out = fn(*args)
        end = time.perf_counter() + (time.perf_counter() - t0) * (FACTOR - 1)
        while time.perf_counter() < end:
            pass
        return out

    return call


# max_n 512 for the Jacobian: its 1x1024 call fills a 4 MiB result element by element in Python, whose cost
# depends on the process (188, 246 and 295 ms in three processes of identical code): not a gate test's point
@softgrad.implementation("slowable", family="plugin", dtypes=("float64", "float32"), max_n={"jacobian": 512},
                         description="the loops, slowed by SOFTGRAD_TEST_SLOWDOWN")
def build(device):
    return {op: _slowed(fn) for op, fn in loops.build(device).items()}
