"""A plugin that registers one entry and then fails: loading it must leave nothing registered."""

import numpy as np

import softgrad


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


softgrad.register(softgrad.Implementation.from_ops("plugin-half-registered", softmax=softmax))
raise RuntimeError("the plugin's second entry needs a GPU")
