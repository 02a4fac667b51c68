"""Entries whose first call per dtype takes ``SOFTGRAD_TEST_FIRST_CALL_S`` seconds (as a JIT's compile would),
then answer at once: one declares ``compiles=True``, its twin does not. Unset, neither waits."""

import os
import time

import numpy as np

import softgrad


def _softmax_after_a_first_wait():
    waited: set[str] = set()

    def softmax(x):
        if x.dtype.name not in waited:
            waited.add(x.dtype.name)
            time.sleep(float(os.environ.get("SOFTGRAD_TEST_FIRST_CALL_S", "0")))
        if not x.shape[-1]:
            return x.copy()
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return softmax


@softgrad.implementation("plugin-slow-first-call", family="plugin", ops=("softmax",), dtypes=("float64", "float32"),
                         compiles=True)
def build_compiled(device):
    return {"softmax": _softmax_after_a_first_wait()}


@softgrad.implementation("plugin-slow-first-call-plain", family="plugin", ops=("softmax",),
                         dtypes=("float64", "float32"))
def build_plain(device):
    return {"softmax": _softmax_after_a_first_wait()}
