"""jax.nn.softmax under jit, with its VJP from jax.vjp (the jax backend turns on x64: float64 is float64)."""

import pytest

jax = pytest.importorskip("jax")

import softgrad.testing

softmax = jax.jit(jax.nn.softmax)
vjp = jax.jit(lambda x, g: jax.vjp(jax.nn.softmax, x)[1](g)[0])


def test_jax_softmax_conforms():
    softgrad.testing.check(softmax=softmax, vjp=vjp, backend="jax", dtypes=("float64", "float32", "bfloat16"))
