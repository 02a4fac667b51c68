"""One prepared call of an entry's op, used alike by the checker, the timer, the asv and pytest suites.

:func:`prepare` moves NumPy inputs to the backend's native arrays on the device, applies a case layout
(:func:`view`), binds ``g`` for the VJP and returns a zero-argument :class:`Prepared` whose call waits for
the device and returns the native result. :func:`estimate_seconds` predicts one call from a call on one row;
:func:`too_slow` turns that into a reason to skip, the same for every entry (no entry is skipped by name).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backends import Backend, get_backend
from .registry import Implementation

#: the row length a cost probe is cut to (:func:`estimate_seconds`): the pure-Python Jacobian of one such
#: row takes about 25 ms, torch.autograd.functional.jacobian's about 30 ms
PROBE_N = 256


#: how an input is laid out in memory: ``contiguous``; ``transposed`` (a column-major view: ``base.T`` of an
#: ``(..., n, rows)`` array); ``sliced`` (every second column of rows twice as long); ``padded`` (the leading
#: ``n`` columns of a buffer whose rows are padded, as an LM head allocates its logits: ``buf[..., :n]``, the
#: last stride 1 and the row stride :func:`padded_width`, the padding NaN)
LAYOUTS: tuple[str, ...] = ("contiguous", "transposed", "sliced", "padded")
#: and for the cotangent ``g`` also: ``broadcast`` (one row repeated over the leading axes, stride 0: the
#: gradient of ``sum(w * softmax(x))``) and ``scalar`` (one value, every stride 0: the gradient of a sum loss)
G_LAYOUTS: tuple[str, ...] = (*LAYOUTS, "broadcast", "scalar")


#: a ``padded`` row's buffer is ``n`` rounded up past a multiple of this (a vocabulary padded for the GEMM tiles)
PAD_MULTIPLE = 64


def padded_width(n: int) -> int:
    """The row length of a ``padded`` view's buffer: the next multiple of :data:`PAD_MULTIPLE` above ``n``
    (strictly: a row of 64 is padded to 128), so the padding is never empty."""
    return (n // PAD_MULTIPLE + 1) * PAD_MULTIPLE


def base_shape(shape: tuple[int, ...], layout: str | None) -> tuple[int, ...]:
    """The shape of the array a ``layout`` view of logical ``shape`` is taken from (``padded``: the values
    themselves, which :func:`view` copies into the padded buffer)."""
    shape = tuple(shape)
    if layout == "transposed" and len(shape) >= 2:
        return (*shape[:-2], shape[-1], shape[-2])
    if layout == "sliced":
        return (*shape[:-1], 2 * shape[-1])
    if layout == "broadcast":
        return shape[-1:]
    if layout == "scalar":
        return ()
    return shape


def view(a: Any, layout: str | None, shape: tuple[int, ...] | None = None, backend: Backend | None = None) -> Any:
    """Apply a layout to its base array (NumPy, torch and jax all share this indexing): ``transposed`` swaps
    the last two axes, ``sliced`` takes every second column, ``padded`` copies the base into the leading
    columns of a wider buffer (:meth:`~softgrad.backends.Backend.pad_columns`) and takes them, ``broadcast``
    and ``scalar`` repeat the base to the logical ``shape``; ``backend`` (NumPy's by default) makes the
    buffers. Anything else leaves ``a`` as it is."""
    if layout == "transposed" and len(a.shape) >= 2:
        return a.swapaxes(-1, -2) if hasattr(a, "swapaxes") else a.transpose(-1, -2)
    if layout == "sliced":
        return a[..., ::2]
    if layout == "padded":
        n = a.shape[-1]
        return (backend or get_backend("numpy")).pad_columns(a, padded_width(n))[..., :n]
    if layout in ("broadcast", "scalar"):
        if shape is None:
            raise ValueError(f"a {layout} view needs the logical shape")
        return (backend or get_backend("numpy")).broadcast_to(a, tuple(shape))
    return a


@dataclass(frozen=True)
class Prepared:
    """``impl``'s ``op`` with its native inputs bound: ``prepared()`` runs it, waits for the device and
    returns the native result. ``x`` and ``g`` are the native inputs (``g`` is None unless the op is the VJP)."""

    impl: Implementation
    op: str
    dtype: str
    device: str
    backend: Backend
    fn: Callable[..., Any]
    args: tuple[Any, ...]

    def __call__(self) -> Any:
        result = self.fn(*self.args)
        self.backend.wait(result, self.device)
        return result

    @property
    def x(self) -> Any:
        return self.args[0]

    @property
    def g(self) -> Any:
        return self.args[1] if len(self.args) > 1 else None


def prepare(impl: Implementation, op: str, dtype: str, device: str, x: np.ndarray, g: np.ndarray | None = None,
            *, layout: str | None = None, g_layout: str | None = None) -> Prepared:
    """The call of ``impl``'s ``op`` on ``x`` (and ``g`` for the VJP) as native ``dtype`` arrays on ``device``,
    ``x`` seen through ``layout`` and ``g`` through ``g_layout`` (default: ``layout``); with a layout, ``x``
    and ``g`` are the base arrays of :func:`base_shape`."""
    backend = get_backend(impl.backend)
    fn = impl.ops_for(device)[op]
    args: tuple[Any, ...] = (view(backend.from_numpy(x, dtype, device), layout, backend=backend),)
    if op == "vjp":
        if g is None:
            raise ValueError(f"{impl.name} vjp needs a cotangent g")
        g_layout = layout if g_layout is None else g_layout
        args += (view(backend.from_numpy(g, dtype, device), g_layout, tuple(args[0].shape), backend),)
    return Prepared(impl, op, dtype, device, backend, fn, args)


def estimate_seconds(impl: Implementation, op: str, dtype: str, device: str, x: np.ndarray,
                     g: np.ndarray | None = None, *, row_n: int | None = None, budget_s: float | None = None) -> float:
    """About how long one warm call on ``x`` (rows of ``n``) takes, without running it: a warm call on the
    first row, cut to ``row_n`` entries (default: all ``n``), scaled by the rows and by ``n / row_n``
    (``(n / row_n)^2`` for the Jacobian, whose work is its n^2 output); the probe's first call runs untimed.

    That is right for interpreted code, linear in its output; a fixed per-call cost is scaled up with it, and
    code whose cost grows faster with the batch (``torch.autograd.functional.jacobian``) is underestimated.
    With ``budget_s``, a probe estimated over it is taken again (best of two calls) on twice the rows, then
    twice the row length, until the estimate fits, the probe alone passes ``budget_s``, the probe is the whole
    input, or the probe's time grew about as its work did, within a factor of 1.5, twice in a row (not flat, so
    per-call costs no longer dominate; not a jump, such as a thread pool waking for a second row). Steady in
    the rows while the probe's rows are still short, it goes on along the row until steady there too: a cost
    per row (a framework's per-row setup) would otherwise be scaled by ``n / row_n`` as if it were per element
    (torch-native's bfloat16 VJP at 2048 x 50257 was estimated at 1.2 s from rows of 256, where it takes 0.1).
    """
    n = x.shape[-1]
    rows = math.prod(x.shape[:-1])
    if rows == 0 or n == 0:
        return 0.0
    power = 2 if op == "jacobian" else 1
    r, m = 1, n if row_n is None else max(1, min(row_n, n))
    previous: tuple[float, float] | None = None  # (seconds, work) of the last probe
    steady = 0  # probes in a row whose time grew as their work did
    along_row = False  # the rows' scaling is steady: now the row length's
    while True:
        probe_g = None if g is None else _first_rows(g, r)[:, :m]
        call = prepare(impl, op, dtype, device, _first_rows(x, r)[:, :m], probe_g)
        call()
        t = math.inf
        for _ in range(1 if budget_s is None else 2):
            t0 = time.perf_counter()
            call()
            t = min(t, time.perf_counter() - t0)
        work = r * m**power
        estimate = t * rows * n**power / work
        grew = (t / previous[0]) / (work / previous[1]) if previous and previous[0] > 0 else 0.0
        steady = steady + 1 if 1 / 1.5 <= grew <= 1.5 else 0
        if budget_s is None or work == rows * n**power or estimate <= budget_s or t > budget_s:
            return estimate
        if steady == 2:
            if m == n or along_row:
                return estimate
            along_row, steady = True, 0
        previous = (t, work)
        # rows first; along the row once the rows were steady, until the row is whole: then rows again, so
        # every probe does more work than the last and the whole input ends it
        r, m = (min(rows, 2 * r), m) if r < rows and (not along_row or m == n) else (r, min(n, 2 * m))


def _first_rows(a: np.ndarray, r: int) -> np.ndarray:
    """The first ``r`` rows of ``a`` (its leading dims flattened) as an ``(r, n)`` array, copying at most the
    slices of its first axis that hold them: never the whole of a view that does not flatten (a transposed x, a
    g broadcast along the leading dims), which a probe of a few rows does not need."""
    n = a.shape[-1]
    if a.ndim < 2:
        return np.reshape(a, (1, n))[:r]
    per_slice = math.prod(a.shape[1:-1])
    return np.reshape(a[:-(-r // per_slice)], (-1, n))[:r]


def too_slow(impl: Implementation, op: str, dtype: str, device: str, x: np.ndarray, g: np.ndarray | None = None,
             *, budget_s: float, row_n: int | None = None, refine: bool = True) -> str | None:
    """Why one call on ``x`` would take longer than ``budget_s`` (:func:`estimate_seconds`, with ``budget_s``
    unless ``refine`` is false: then from the one probe alone), or None. Entries that compile are not
    estimated: a probe would compile its own shape, and compiled code is fast."""
    if impl.compiles:
        return None
    estimate = estimate_seconds(impl, op, dtype, device, x, g, row_n=row_n, budget_s=budget_s if refine else None)
    if estimate > budget_s:
        return f"one call would take about {estimate:.2g} s, over the {budget_s:g} s budget"
    return None


__all__ = ["G_LAYOUTS", "LAYOUTS", "PAD_MULTIPLE", "PROBE_N", "Prepared", "base_shape", "estimate_seconds",
           "padded_width", "prepare", "too_slow", "view"]
