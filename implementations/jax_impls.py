"""JAX, every op under ``jax.jit``, on CPU and on GPU when present. jax is imported inside ``build``.

Entries:

- ``jax-jit``: ``jax.nn.softmax``, its VJP through ``jax.vjp``, J through ``jax.jacrev`` (vmapped over rows);
- ``jax-jacfwd``: the same with J through forward mode, ``jax.jacfwd``;
- ``jax-formula``: the explicit formula in ``jax.numpy`` (max shift, ``diag(s) - s s^T``, the O(n) VJP).

The caller's buffers are not donated: the harness reuses its inputs across calls (a donated input would
be invalid after the first call). Each jitted function compiles once per shape and dtype on first call
(the registry's ``compiles`` flag: the harness times that call apart).
"""

from __future__ import annotations

import softgrad

_FAMILY = dict(
    family="jax",
    backend="jax",
    requires=("jax",),
    devices=("cpu", "cuda"),
    dtypes=("float64", "float32", "float16", "bfloat16"),
    compiles=True,
)


def _with_rows(fn, jnp):
    """Apply a per-row function ``(n,) -> (n, n)`` over any leading dims (vmap over flattened rows)."""
    import jax

    batched = jax.vmap(fn)

    def apply(x):
        n = x.shape[-1]
        if x.size == 0:
            return jnp.zeros((*x.shape, n), x.dtype)
        return batched(x.reshape(-1, n)).reshape(*x.shape, n)

    return apply


def _autodiff_ops(jacobian_transform) -> dict:
    import jax
    import jax.numpy as jnp

    def softmax(x):
        return jax.nn.softmax(x, axis=-1)

    def vjp(x, g):
        _, pullback = jax.vjp(softmax, x)
        return pullback(g)[0]

    jacobian = _with_rows(jacobian_transform(softmax), jnp)
    return {"softmax": jax.jit(softmax), "jacobian": jax.jit(jacobian), "vjp": jax.jit(vjp)}


@softgrad.implementation("jax-jit", description="jit(jax.nn.softmax), jax.vjp, vmap(jax.jacrev)", **_FAMILY)
def build_jit(device: str):
    import jax

    return _autodiff_ops(jax.jacrev)


@softgrad.implementation("jax-jacfwd", description="jit(jax.nn.softmax), jax.vjp, vmap(jax.jacfwd)", **_FAMILY)
def build_jacfwd(device: str):
    import jax

    return _autodiff_ops(jax.jacfwd)


@softgrad.implementation("jax-formula", description="explicit formula in jax.numpy under jit", **_FAMILY)
def build_formula(device: str):
    import jax
    import jax.numpy as jnp

    def acc(dtype):
        return jnp.float32 if dtype in (jnp.float16, jnp.bfloat16) else dtype

    def softmax(x):
        if x.shape[-1] == 0:
            return x
        e = jnp.exp(x - jax.lax.stop_gradient(x.max(axis=-1, keepdims=True)))
        return (e / e.sum(axis=-1, keepdims=True, dtype=acc(x.dtype))).astype(x.dtype)  # divided in float32

    def jacobian(x):
        s = softmax(x)
        n = x.shape[-1]
        return s[..., :, None] * (jnp.eye(n, dtype=x.dtype) - s[..., None, :])

    def vjp(x, g):
        s = softmax(x)
        dot = jnp.sum(s * g, axis=-1, keepdims=True, dtype=acc(x.dtype)).astype(x.dtype)
        return s * (g - dot)

    return {"softmax": jax.jit(softmax), "jacobian": jax.jit(jacobian), "vjp": jax.jit(vjp)}
