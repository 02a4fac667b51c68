"""An asynchronous "device" for the agreement tests: the op returns at once and the work (a softmax and a
busy wait of 2 ms per 16384 elements) happens in the backend's ``wait``, as on a GPU. With ``SOFTGRAD_TEST_PLANT=no-wait`` this plugin
plants a methodology bug in the sweep's worker process only: the prepared call stops waiting for the
device, so the sweep times the launch; the agreement step must catch it."""

import os
import sys
import time

import numpy as np

import softgrad
from softgrad.backends import NumpyBackend, register_backend


def device_seconds(size):
    """The device's time for an input of ``size`` elements (linear, as the cost probe assumes)."""
    return 0.002 * size / 16384


class Pending:
    """A result not computed yet."""

    def __init__(self, x):
        self.x = x
        self.value = None

    def finish(self):
        if self.value is None:
            end = time.perf_counter() + device_seconds(self.x.size)
            while time.perf_counter() < end:  # a busy device: a sleep this short wakes 0.1-0.25 ms late under load
                pass
            e = np.exp(self.x - self.x.max(-1, keepdims=True))
            self.value = e / e.sum(-1, keepdims=True)
        return self.value


class LazyBackend(NumpyBackend):
    name = "lazy-test"

    def to_numpy(self, a):
        return np.array(a.finish(), copy=True)

    def dtype_name(self, a):
        return str(a.finish().dtype)

    def wait(self, result, device):
        result.finish()


register_backend(LazyBackend())


@softgrad.implementation("lazy-softmax", family="lazy", backend="lazy-test", ops=("softmax",), dtypes=("float32",),
                         description="a softmax computed when waited for (2 ms per 16384 elements)")
def build(device):
    return {"softmax": Pending}


_main = getattr(sys.modules.get("__main__"), "__spec__", None)
if os.environ.get("SOFTGRAD_TEST_PLANT") == "no-wait" and _main and _main.name == "softgrad.bench.family_worker":
    from softgrad import prepared

    prepared.Prepared.__call__ = lambda self: self.fn(*self.args)  # the planted bug: no device wait
