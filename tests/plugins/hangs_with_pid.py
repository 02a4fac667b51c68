"""A plugin entry whose softmax, when ``SOFTGRAD_TEST_PID_FILE`` names a file, writes its process id
there and hangs: a test kills ``softgrad check`` and watches this worker go with it."""

import os
import time

import numpy as np

import softgrad


def _softmax(x):
    path = os.environ.get("SOFTGRAD_TEST_PID_FILE")
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(path + ".tmp", path)  # the test never reads half a pid
        time.sleep(3600)
    if not x.shape[-1]:
        return x.copy()
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@softgrad.implementation("plugin-hangs-with-pid", family="plugin", ops=("softmax",), dtypes=("float64",))
def build(device):
    return {"softmax": _softmax}
