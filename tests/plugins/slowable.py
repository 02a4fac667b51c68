"""A correct implementation that can be slowed on purpose: NumPy's ops plus a busy wait of
(SOFTGRAD_TEST_SLOWDOWN - 1) times each call's own duration. The regression gate must flag 1.3."""

import os
import time

import softgrad
from softgrad.implementations import numpy_vectorized as np_impl

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


@softgrad.implementation("slowable", family="plugin", dtypes=("float64", "float32"),
                         description="numpy, slowed by SOFTGRAD_TEST_SLOWDOWN")
def build(device):
    return {op: _slowed(fn) for op, fn in np_impl.build(device).items()}
