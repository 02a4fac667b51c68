"""Your softmax, checked by softgrad's whole case catalogue (run it with pytest)."""
import numpy as np
import softgrad.testing

def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True, initial=-np.inf))
    return e / e.sum(axis=-1, keepdims=True)

def test_my_softmax_conforms():  # one AssertionError naming every failing case
    softgrad.testing.check(softmax=softmax, dtypes=("float64", "float32"))
