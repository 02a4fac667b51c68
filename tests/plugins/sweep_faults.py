"""Entries for the sweep's worker tests: one crashes its process at 256x1024, one hangs at 256x16, one sleeps
a known 3 ms per call (the timer must read it within 10%)."""

import os
import time

import numpy as np

import softgrad


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _crashes(x):
    if x.shape == (256, 1024):
        os._exit(3)  # as a segfault in a native library would end the process
    return _softmax(x)


def _hangs(x):
    if x.shape == (256, 16):
        time.sleep(3600)
    return _softmax(x)


def _sleeps(x):
    time.sleep(0.003)
    return _softmax(x)


@softgrad.implementation("sweep-crashes", family="sweepfaults", ops=("softmax",), dtypes=("float32",))
def build_crashes(device):
    return {"softmax": _crashes}


@softgrad.implementation("sweep-hangs", family="sweepfaults", ops=("softmax",), dtypes=("float32",))
def build_hangs(device):
    return {"softmax": _hangs}


# compiles=True: no cost probe runs (the probe scales one row's time by the rows, so this fixed 3 ms read as
# 0.77 s at 256 rows, and as 1.6 s, over the 1 s budget, when both cores were busy)
@softgrad.implementation("sweep-sleeps", family="sweepfaults", ops=("softmax",), dtypes=("float32",), compiles=True)
def build_sleeps(device):
    return {"softmax": _sleeps}
