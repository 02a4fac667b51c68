"""The op contract, defined once: names, shapes and dtypes of softmax, its Jacobian and its VJP.

All ops work over the last axis of an input of shape ``(..., n)``:

- ``softmax(x) -> s``, same shape and dtype as ``x``;
- ``jacobian(x) -> J``, shape ``(..., n, n)`` with ``J[..., i, j] = ds_i / dx_j``;
- ``vjp(x, g) -> grad_x = J^T g``, same shape and dtype as ``x`` (the backward pass).

Implementations never re-validate this; :func:`output_problem` is the one place that does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

OPS: tuple[str, ...] = ("softmax", "jacobian", "vjp")
DTYPES: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
#: what a device's name looks like (``cpu``, ``cuda``, ``cuda:1``, a plugin backend's ``xpu``): stored names
#: that do not are refused
DEVICE_NAME = r"[a-z][a-z0-9_]*(:[0-9]+)?"


@dataclass(frozen=True)
class DtypeInfo:
    """Rounding facts about a floating-point format, without needing a framework that has it."""

    name: str
    eps: float  # spacing of numbers just above 1
    tiny: float  # smallest positive normal number
    max: float  # largest finite number
    mantissa_bits: int  # stored fraction bits

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}[self.name]


DTYPE_INFO: dict[str, DtypeInfo] = {
    "float64": DtypeInfo("float64", 2.0**-52, 2.0**-1022, float(np.finfo(np.float64).max), 52),
    "float32": DtypeInfo("float32", 2.0**-23, 2.0**-126, float(np.finfo(np.float32).max), 23),
    "float16": DtypeInfo("float16", 2.0**-10, 2.0**-14, 65504.0, 10),
    "bfloat16": DtypeInfo("bfloat16", 2.0**-7, 2.0**-126, float(np.finfo(np.float32).max) * (1 - 2.0**-8), 7),
}


def check_op(op: str) -> str:
    """Return ``op`` if it is one of :data:`OPS`, else raise ``ValueError`` naming the choices."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; choose from {', '.join(OPS)}")
    return op


def check_dtype(dtype: str) -> str:
    """Return ``dtype`` if it is one of :data:`DTYPES`, else raise ``ValueError`` naming the choices."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    return dtype


def output_shape(op: str, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of ``op``'s result for an input of shape ``x_shape``."""
    check_op(op)
    if op == "jacobian":
        return (*x_shape, x_shape[-1])
    return tuple(x_shape)


def round_to_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 values to the nearest ``dtype`` value, returned as float64 (exact).

    bfloat16 is emulated with round-to-nearest-even on the top 16 bits of float32, so inputs for every
    dtype can be made, and the oracle fed, with NumPy alone.
    """
    check_dtype(dtype)
    x = np.asarray(x, dtype=np.float64)
    if dtype == "float64":
        return x.copy()
    if dtype in ("float32", "float16"):
        with np.errstate(over="ignore"):
            return x.astype(dtype).astype(np.float64)
    with np.errstate(over="ignore"):
        f32 = np.ascontiguousarray(x.astype(np.float32))
    bits = f32.view(np.uint32).astype(np.uint64)
    top, half, quiet = np.uint64(0xFFFF0000), np.uint64(0x7FFF), np.uint64(0x00400000)
    rounded = (bits + half + ((bits >> np.uint64(16)) & np.uint64(1))) & top
    kept = (bits & top) | np.where(np.isnan(f32), quiet, np.uint64(0))  # inf stays inf, NaN stays NaN
    bits = np.where(np.isfinite(f32), rounded, kept)
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def output_problem(op: str, x_shape: tuple[int, ...], dtype: str, out: Any, out_dtype: str | None) -> str | None:
    """Describe how ``out`` breaks the contract (wrong type, shape or dtype), or return None if it keeps it."""
    shape = getattr(out, "shape", None)
    if shape is None:
        return f"returned {type(out).__name__}, not an array"
    want = output_shape(op, x_shape)
    if tuple(shape) != want:
        return f"returned shape {tuple(shape)}, expected {want}"
    if out_dtype != dtype:
        return f"returned dtype {out_dtype}, expected {dtype}"
    return None
