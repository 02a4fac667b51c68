"""JAX, every op under ``jax.jit``, on CPU and on GPU when present. jax is imported inside ``build``.

Entries:

- ``jax-jit``: ``jax.nn.softmax``, its VJP through ``jax.vjp``, J through ``jax.jacrev`` (vmapped over rows);
- ``jax-jacfwd``: the same with J through forward mode, ``jax.jacfwd``;
- ``jax-formula``: the explicit formula in ``jax.numpy`` (max shift, ``diag(s) - s s^T``, the O(n) VJP);
  where it measured faster (:data:`F32_INSIDE`), 16-bit inputs are widened to float32 inside the jitted
  function and the result rounded once.

16-bit on the CPU (jaxlib 0.10): XLA writes ``exp(x - max)`` out as a float32 array and reads it back for
the sum and for the scaling (a reduction is never fused with its consumer), so a 16-bit softmax moves 16 to
24 bytes an element where 4 would do, against 20 for 8 in float32; no XLA flag changed that (fast math,
the thunk runtime off, YNNPACK fusions off, 512-bit vectors). Widening to float32 inside ``jit`` cut the
CPU time of ``jax-formula``'s bfloat16 VJP 1.7x (the widening fuses into YNNPACK's kernels) and its 16-bit
softmax 1.1x, but made the float16 VJP 1.25x slower (float16's widening stays a pass of its own);
``jax.nn.softmax`` and ``jax.vjp`` (``jax-jit``) gained nothing from it and are left as users call them.

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


#: the 16-bit dtypes whose ``jax-formula`` op computes in float32 inside ``jit`` (the module docstring)
F32_INSIDE = {"softmax": ("bfloat16", "float16"), "vjp": ("bfloat16",)}


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

    def formula_softmax(x):
        if x.shape[-1] == 0:
            return x
        e = jnp.exp(x - jax.lax.stop_gradient(x.max(axis=-1, keepdims=True)))
        return (e / e.sum(axis=-1, keepdims=True, dtype=acc(x.dtype))).astype(x.dtype)  # divided in float32

    def formula_vjp(x, g):
        s = formula_softmax(x)
        dot = jnp.sum(s * g, axis=-1, keepdims=True, dtype=acc(x.dtype)).astype(x.dtype)
        return s * (g - dot)

    def in_float32(fn):
        """``fn`` on the inputs widened to float32, its result rounded once to their 16-bit dtype."""
        return lambda x, *rest: fn(x.astype(jnp.float32), *(a.astype(jnp.float32) for a in rest)).astype(x.dtype)

    def softmax(x):
        return (in_float32(formula_softmax) if str(x.dtype) in F32_INSIDE["softmax"] else formula_softmax)(x)

    def vjp(x, g):
        return (in_float32(formula_vjp) if str(x.dtype) in F32_INSIDE["vjp"] else formula_vjp)(x, g)

    def jacobian(x):
        s = softmax(x)
        n = x.shape[-1]
        return s[..., :, None] * (jnp.eye(n, dtype=x.dtype) - s[..., None, :])

    return {"softmax": jax.jit(softmax), "jacobian": jax.jit(jacobian), "vjp": jax.jit(vjp)}
