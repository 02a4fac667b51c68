"""A plugin entry whose build misbehaves on request: the checker's start-up limit must hold.

``SOFTGRAD_TEST_START`` says what ``build`` does: ``sleep:S`` (sleeps S seconds, as a slow framework
import would), ``exit:C`` (ends its process with code C), ``segfault`` (a real one), ``raise`` (raises
RuntimeError); unset, it builds at once. When ``SOFTGRAD_TEST_SPAWN_LOG`` names a file, each build first
appends its process id to it, so a test can count the workers started and see that they are gone.
"""

import ctypes
import os
import resource
import time

import numpy as np

import softgrad


def _softmax(x):
    if not x.shape[-1]:
        return x.copy()
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@softgrad.implementation("plugin-slow-start", family="plugin", ops=("softmax",), dtypes=("float64", "float32"))
def build(device):
    log = os.environ.get("SOFTGRAD_TEST_SPAWN_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
    how = os.environ.get("SOFTGRAD_TEST_START", "")
    if how.startswith("sleep:"):
        time.sleep(float(how.removeprefix("sleep:")))
    elif how.startswith("exit:"):
        os._exit(int(how.removeprefix("exit:")))
    elif how == "segfault":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
        ctypes.string_at(0)
    elif how == "raise":
        raise RuntimeError("the framework failed to initialise")
    return {"softmax": _softmax}
