"""PyTorch, on ``cpu`` and on ``cuda`` when a GPU is present. torch is imported inside ``build``.

Entries:

- ``torch-formula``: the explicit formula in torch ops (max shift, ``diag(s) - s s^T``, the O(n) VJP);
  16-bit inputs accumulate their sums in float32.
- ``torch-native``: ``torch.softmax`` and its fused backward kernel ``torch._softmax_backward_data``
  (what autograd calls; no graph is built). The Jacobian has no native kernel: it is the
  formula applied to the native softmax.
- ``torch-autograd``: autograd as a user would call it: ``torch.autograd.grad`` through ``torch.softmax``
  for the VJP, ``torch.autograd.functional.jacobian`` for J (the write-up's "fastest" way; it runs one
  backward pass per output element, so its cost grows as n backward passes).
- ``torch-func``: ``torch.func.vjp`` and ``torch.vmap(torch.func.jacrev(...))``.
- ``torch-loops``: the write-up's second way: Python loops filling a torch tensor element by element.

The batched Jacobian through autograd uses that row b of the output depends only on row b of the input:
the Jacobian of ``softmax(x).sum(0)`` (shape ``(n, B, n)``) holds every row's J, read out by a permute.
"""

from __future__ import annotations

import math

import softgrad

_FAMILY = dict(family="torch", backend="torch", requires=("torch",), devices=("cpu", "cuda"))
_ALL_DTYPES = ("float64", "float32", "float16", "bfloat16")


def _acc_dtype(torch, dtype):
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _rows(x):
    """A (rows, n) view or copy of x (leading dims flattened)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


@softgrad.implementation(
    "torch-formula", dtypes=_ALL_DTYPES, description="explicit formula in torch ops (max shift, diag(s) - s s^T)",
    **_FAMILY,
)
def build_formula(device: str):
    import torch

    def softmax(x):
        if x.shape[-1] == 0:
            return torch.empty_like(x)
        acc = _acc_dtype(torch, x.dtype)
        e = torch.exp(x - x.amax(dim=-1, keepdim=True))
        return (e / e.sum(dim=-1, keepdim=True, dtype=acc)).to(x.dtype)  # divided in float32, then rounded

    def jacobian(x):
        s = softmax(x)
        jac = s.unsqueeze(-1) * s.unsqueeze(-2)
        jac.neg_()
        jac.diagonal(dim1=-2, dim2=-1).add_(s)
        return jac

    def vjp(x, g):
        s = softmax(x)
        acc = _acc_dtype(torch, x.dtype)
        dot = (s.to(acc) * g.to(acc)).sum(dim=-1, keepdim=True) if x.shape[-1] else g.sum(-1, keepdim=True)
        return s * (g - dot.to(x.dtype))

    return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}


@softgrad.implementation(
    "torch-native", dtypes=_ALL_DTYPES, description="torch.softmax and its fused backward (_softmax_backward_data)",
    **_FAMILY,
)
def build_native(device: str):
    import torch

    backward = torch._softmax_backward_data  # the bound op: 1.3 us at 1x1024 where torch.ops.aten takes 3.4 us

    def softmax(x):
        return torch.softmax(x, dim=-1)

    def vjp(x, g):
        s = torch.softmax(x, dim=-1)
        return backward(g, s, -1, x.dtype)

    def jacobian(x):
        s = torch.softmax(x, dim=-1)
        jac = torch.diag_embed(s)
        jac.sub_(s.unsqueeze(-1) * s.unsqueeze(-2))
        return jac

    return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}


@softgrad.implementation(
    "torch-autograd",
    dtypes=_ALL_DTYPES,
    tags=("writeup", "writeup-claimed"),  # torch.autograd.functional.jacobian, "the fastest" per the write-up
    max_n={"jacobian": 2048},
    description="autograd: autograd.grad for the VJP, autograd.functional.jacobian for J",
    **_FAMILY,
)
def build_autograd(device: str):
    import torch

    def softmax(x):
        return torch.softmax(x, dim=-1)

    def vjp(x, g):
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(torch.softmax(leaf, dim=-1), leaf, g)
        return grad

    def jacobian(x):
        n = x.shape[-1]
        rows = _rows(x.detach())
        if rows.numel() == 0:
            return x.new_zeros((*x.shape, n))
        jac = torch.autograd.functional.jacobian(lambda a: torch.softmax(a, dim=-1).sum(0), rows)
        return jac.permute(1, 0, 2).reshape(*x.shape, n)  # (n, B, n) -> (B, n, n)

    return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}


@softgrad.implementation(
    "torch-func",
    dtypes=_ALL_DTYPES,
    description="torch.func: func.vjp, and vmap(jacrev) for J",
    **_FAMILY,
)
def build_func(device: str):
    import torch

    import torch.func

    def f(a):
        return torch.softmax(a, dim=-1)

    row_jacobian = torch.vmap(torch.func.jacrev(f))

    def softmax(x):
        return f(x)

    def vjp(x, g):
        _, pullback = torch.func.vjp(f, x)
        (grad,) = pullback(g)
        return grad

    def jacobian(x):
        n = x.shape[-1]
        rows = _rows(x)
        if rows.numel() == 0:
            return x.new_zeros((*x.shape, n))
        return row_jacobian(rows).reshape(*x.shape, n)

    return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}


@softgrad.implementation(
    "torch-loops",
    family="torch",
    tags=("writeup",),  # the write-up's second way: the loops filling a torch tensor element by element
    backend="torch",
    requires=("torch",),
    devices=("cpu",),
    dtypes=("float64", "float32"),
    max_n={"softmax": 1024, "vjp": 1024, "jacobian": 64},
    max_elements={"softmax": 1 << 14, "vjp": 1 << 14, "jacobian": 1 << 12},
    description="Python loops filling a torch tensor element by element (the write-up's second way)",
)
def build_loops(device: str):
    import torch

    def softmax_row(x, out):
        n = x.shape[0]
        vals = [x[i].item() for i in range(n)]
        if any(v != v or v == math.inf for v in vals) or max(vals) == -math.inf:
            for i in range(n):
                out[i] = math.nan
            return
        m = max(vals)
        total = 0.0
        for i in range(n):
            out[i] = math.exp(vals[i] - m)
            total += out[i].item()
        for i in range(n):
            out[i] = out[i] / total

    def softmax(x):
        out = torch.empty_like(x)
        if x.numel():
            for xr, outr in zip(_rows(x), _rows(out)):
                softmax_row(xr, outr)
        return out

    def jacobian(x):
        n = x.shape[-1]
        s = _rows(softmax(x))
        out = torch.empty((s.shape[0], n, n), dtype=x.dtype)
        for r in range(s.shape[0]):
            for i in range(n):
                for j in range(n):
                    if i == j:
                        out[r, i, j] = s[r, i] * (1 - s[r, i])
                    else:
                        out[r, i, j] = -s[r, i] * s[r, j]
        return out.reshape(*x.shape, n)

    def vjp(x, g):
        n = x.shape[-1]
        s = _rows(softmax(x))
        g2 = _rows(g)
        out = torch.empty_like(s)
        for r in range(s.shape[0]):
            dot = 0.0
            for j in range(n):
                dot += (s[r, j] * g2[r, j]).item()
            for i in range(n):
                out[r, i] = s[r, i] * (g2[r, i] - dot)
        return out.reshape(x.shape)

    return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}
