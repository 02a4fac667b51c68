"""A correct third-party plugin, written only against softgrad's public API."""

import numpy as np

import softgrad


def _softmax(x):
    if x.shape[-1] == 0:
        return np.empty(x.shape, x.dtype)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@softgrad.implementation("plugin-correct", family="plugin", ops=("softmax", "vjp"), dtypes=("float64", "float32"))
def build(device):
    """A correct plugin (softmax and VJP only)."""

    def vjp(x, g):
        s = _softmax(x)
        return s * (g - (s * g).sum(-1, keepdims=True))

    return {"softmax": _softmax, "vjp": vjp}
