"""The fastest VJP of all, and wrong: it returns zeros. It must never be recommended."""

import numpy as np

import softgrad


@softgrad.implementation("fast-wrong", family="plugin", ops=("vjp",), dtypes=("float64", "float32"),
                         description="returns zeros (wrong on purpose)")
def build(device):
    return {"vjp": lambda x, g: np.zeros_like(x)}
