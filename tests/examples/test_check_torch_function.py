"""A torch.autograd.Function with a hand-written backward, checked as its users call it."""

import pytest

torch = pytest.importorskip("torch")

import softgrad.testing


class Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        s = torch.softmax(x, dim=-1)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        return s * (g - (g * s).sum(dim=-1, keepdim=True))


def softmax(x):
    return Softmax.apply(x)


def vjp(x, g):
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(Softmax.apply(x), x, g)
    return grad


def test_hand_written_backward_conforms():
    softgrad.testing.check(softmax=softmax, vjp=vjp, backend="torch",
                           dtypes=("float64", "float32", "float16", "bfloat16"))
