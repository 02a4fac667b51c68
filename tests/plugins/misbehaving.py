"""Plugin entries that hang or crash their process: the checker must survive both."""

import os
import time

import numpy as np

import softgrad


def _hang(x):
    if x.shape[-1] == 37:  # only on the normal-1 case
        time.sleep(3600)
    e = np.exp(x - x.max(-1, keepdims=True)) if x.shape[-1] else x.copy()
    return e / e.sum(-1, keepdims=True) if x.shape[-1] else e


def _crash(x):
    if x.shape[-1] == 37:
        os._exit(3)  # as a segfault in a native library would end the process
    e = np.exp(x - x.max(-1, keepdims=True)) if x.shape[-1] else x.copy()
    return e / e.sum(-1, keepdims=True) if x.shape[-1] else e


@softgrad.implementation("plugin-hangs", family="plugin", ops=("softmax",), dtypes=("float64",))
def build_hang(device):
    return {"softmax": _hang}


@softgrad.implementation("plugin-crashes", family="plugin", ops=("softmax",), dtypes=("float64",))
def build_crash(device):
    return {"softmax": _crash}
