"""A third-party plugin with a planted bug: the Jacobian's off-diagonal sign is flipped."""

import numpy as np

import softgrad


def _softmax(x):
    if x.shape[-1] == 0:
        return np.empty(x.shape, x.dtype)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _jacobian(x):
    s = _softmax(x)
    j = s[..., :, None] * s[..., None, :]  # should be -s_i s_j
    idx = np.arange(s.shape[-1])
    j[..., idx, idx] = s * (1 - s)
    return j


def _vjp(x, g):
    s = _softmax(x)
    return s * (g - (s * g).sum(-1, keepdims=True))


@softgrad.implementation("plugin-wrong-sign", family="plugin", dtypes=("float64",))
def build(device):
    """A plugin whose Jacobian has the off-diagonal sign flipped."""
    return {"softmax": _softmax, "jacobian": _jacobian, "vjp": _vjp}
