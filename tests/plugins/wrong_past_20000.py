"""A softmax right for every row of the quick catalogue (n <= 4096) and wrong past n = 20000: its sum covers the
first 20000 entries only. A check at a workload's own (vocabulary-sized) rows catches it, and of the catalogue only
the row of 65537 entries (the full set, softgrad.testing's default)."""

import numpy as np

import softgrad


def softmax(x):
    if x.shape[-1] == 0:
        return x.copy()
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e[..., :20000].sum(-1, keepdims=True)).astype(x.dtype)


softgrad.register(softgrad.Implementation.from_ops("wrong-past-20000", softmax=softmax, dtypes=("float32",)))
