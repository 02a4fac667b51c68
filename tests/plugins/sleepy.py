"""A correct softmax that sleeps 50 ms per call and records the pid of every process that builds it in the
file named by SOFTGRAD_TEST_PIDFILE: the fault tests kill ``softgrad run`` and look for survivors."""

import os
import time

import numpy as np

import softgrad


@softgrad.implementation("sleepy", family="sleepy", ops=("softmax",), dtypes=("float32",),
                         description="numpy softmax plus a 50 ms sleep")
def build(device):
    pidfile = os.environ.get("SOFTGRAD_TEST_PIDFILE")
    if pidfile:
        with open(pidfile, "a") as f:
            f.write(f"{os.getpid()}\n")

    def softmax(x):
        time.sleep(0.05)
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return {"softmax": softmax}
