"""The asv benchmark classes, generated from the registry: one class per implementation, no copies.

``benchmarks/bench_ops.py`` calls :func:`install` to put a class ``Impl_<name>`` into its namespace for
every registered implementation (plugins from ``SOFTGRAD_PLUGINS`` included). Each class is
parametrized over ``(op, shape, dtype, device)`` with shapes ``"BxN"`` from :mod:`softgrad.bench.grid` and has

- ``time_op``: one call, with the device synchronised inside the timed body (the full grid of shapes);
- ``track_error_ratio``: worst error against the oracle divided by the tolerance (above 1 fails), so a
  correctness drift shows on the dashboard next to the timings;
- ``peakmem_op``: the peak resident memory of a process that runs the op once;
- ``track_first_call_s``, for entries that compile (the registry's ``compiles``): the first call in a
  fresh process (JAX compiles per shape on first call; Numba's kernels are compiled when the entry is
  built, a cost the runner measures once per run in a cold process, see :mod:`softgrad.bench.buildtime`).

asv starts a process for every combination of every kind, which is most of a sweep's time; the three
that are not timings run over :func:`softgrad.bench.grid.track_shapes`, a coarser set of row lengths (asv reads
``params`` from the method before the class).

``setup`` raises ``NotImplementedError`` (asv's way to skip) for a combination the entry does not
declare, an output past :func:`softgrad.bench.grid.max_output_bytes`, or a warm call slower than
:data:`softgrad.bench.grid.MAX_CALL_SECONDS`. Inputs move to the device and the first call and a warm-up call
happen in ``setup``, never in the timed body.

asv runs every combination in a process forked from one that imported this module. When
``SOFTGRAD_BENCH_FAMILY`` names a family, that family's framework is imported in that parent process, so
each forked child starts without the import cost; nothing is built or run there (a thread pool started
before ``fork`` would break the children: GNU OpenMP refuses). ``softgrad run`` runs asv once per family
this way (frameworks never share a process, and a crash loses one family's run).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from typing import Any

import numpy as np

from . import grid, threads
from .. import registry
from ..backends import get_backend
from ..check.checker import JACOBIAN_ELEMENT_BUDGET, accuracy
from ..contract import DTYPE_INFO
from .timer import make_inputs

FAMILY_ENV = "SOFTGRAD_BENCH_FAMILY"
#: a file each benchmark process appends one line to as it starts (``softgrad run`` counts them: asv
#: itself reports only when a benchmark's whole parameter grid is done, minutes apart in the full grid)
PROGRESS_ENV = "SOFTGRAD_BENCH_PROGRESS"
#: benchmark kinds per class (each runs every parameter combination in a process of its own)
KINDS = ("time_op", "peakmem_op", "track_error_ratio", "track_first_call_s")
#: the kinds over the coarser shapes of :func:`softgrad.bench.grid.track_shapes`
TRACK_KINDS = ("peakmem_op", "track_error_ratio", "track_first_call_s")


def kinds(impl: registry.Implementation) -> tuple[str, ...]:
    """The benchmark kinds of one implementation: the first call only for entries that compile."""
    return KINDS if impl.compiles else tuple(k for k in KINDS if k != "track_first_call_s")


def devices() -> list[str]:
    """Devices the grid covers: ``cpu``, and ``cuda`` where an NVIDIA driver is installed (no import)."""
    return ["cpu", "cuda"] if shutil.which("nvidia-smi") else ["cpu"]


def inputs(batch: int, n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's logits (normal, scale 2) and cotangent, fixed by the shape, exact in ``dtype``."""
    return make_inputs((batch, n), dtype, seed=batch * 100_003 + n)


_announced = False


def _announce(what: str) -> None:
    """Append one line per benchmark process (asv calls setup again before every sample)."""
    global _announced
    progress = os.environ.get(PROGRESS_ENV)
    if progress and not _announced:
        _announced = True
        with open(progress, "a") as f:
            f.write(what + "\n")


class OpBenchmark:
    """Base class; :func:`make_class` sets ``impl_name`` and ``params``."""

    impl_name = ""
    param_names = ["op", "shape", "dtype", "device"]
    params: list[list[str]] = []
    # asv timing: one round, 1 to 5 samples within 0.3 s, warm-up 0.02 s (setup already warmed up).
    rounds = 1
    repeat = (1, 5, 0.3)
    warmup_time = 0.02
    timeout = 120

    def setup(self, op: str, shape: str, dtype: str, device: str) -> None:
        _announce(f"{self.impl_name} {op} {shape} {dtype} {device}")
        impl = registry.get(self.impl_name)
        batch, n = grid.parse_shape(shape)
        reason = impl.unsupported(op, dtype, device, n, batch * n)
        if reason is None and device not in impl.available_devices():
            reason = f"{device} is not present"
        if reason is None and grid.output_bytes(op, batch, n, DTYPE_INFO[dtype].itemsize) > grid.max_output_bytes():
            reason = "output larger than the benchmark memory budget"
        if reason:
            raise NotImplementedError(reason)
        self.backend = get_backend(impl.backend)
        self.device = device
        self.fn = impl.ops_for(device)[op]
        self.x, self.g = inputs(batch, n, dtype)
        self.op, self.dtype = op, dtype
        self.args = (self.backend.from_numpy(self.x, dtype, device),)
        if op == "vjp":
            self.args += (self.backend.from_numpy(self.g, dtype, device),)
        if batch > 1 and not impl.compiles:
            # Interpreted code (the loops) is linear in the batch: one row predicts the call, so a
            # combination minutes long is skipped without running it.
            row = (self.backend.from_numpy(self.x[:1], dtype, device),)
            if op == "vjp":
                row += (self.backend.from_numpy(self.g[:1], dtype, device),)
            self.backend.wait(self.fn(*row), device)  # first calls may pay one-off costs
            t0 = time.perf_counter()
            self.backend.wait(self.fn(*row), device)
            estimate = (time.perf_counter() - t0) * batch
            if estimate > grid.MAX_CALL_SECONDS:
                raise NotImplementedError(f"one call would take about {estimate:.2g} s, over the "
                                          f"{grid.MAX_CALL_SECONDS:g} s budget")
        t0 = time.perf_counter()
        self.out = self.backend.to_numpy(self._call())
        self.first_call_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self._call()
        warm = time.perf_counter() - t0
        if warm > grid.MAX_CALL_SECONDS:
            raise NotImplementedError(f"one call takes {warm:.2g} s, over the {grid.MAX_CALL_SECONDS:g} s budget")

    def _call(self) -> Any:
        result = self.fn(*self.args)
        self.backend.wait(result, self.device)
        return result

    def time_op(self, op: str, shape: str, dtype: str, device: str) -> None:
        self.backend.wait(self.fn(*self.args), self.device)

    def peakmem_op(self, op: str, shape: str, dtype: str, device: str) -> None:
        self._call()

    def track_error_ratio(self, op: str, shape: str, dtype: str, device: str) -> float:
        if op == "jacobian" and self.x.shape[0] * self.x.shape[1] ** 2 > JACOBIAN_ELEMENT_BUDGET:
            return math.nan  # the oracle's Jacobian would not fit the checker's budget
        metrics, problems = accuracy(op, dtype, self.x, self.g if op == "vjp" else None, self.out)
        if any(kind == "nan-policy" for kind, _ in problems):
            return math.inf
        return float(metrics.get("ratio", 0.0))

    track_error_ratio.unit = "error/tolerance"  # type: ignore[attr-defined]

    def track_first_call_s(self, op: str, shape: str, dtype: str, device: str) -> float:
        return self.first_call_s

    track_first_call_s.unit = "seconds"  # type: ignore[attr-defined]


def combinations(impl: registry.Implementation, grid_name: str | None = None) -> int:
    """Benchmark processes asv starts for one implementation per round (skipped ones included)."""
    per_shape = len(impl.ops) * len(grid.dtypes(grid_name)) * len(devices())
    return per_shape * sum(len(grid.track_shapes(grid_name) if kind in TRACK_KINDS else grid.shapes(grid_name))
                           for kind in kinds(impl))


def _with_params(method: Any, params: list[list[str]]) -> Any:
    """A copy of a benchmark method carrying its own ``params`` (asv looks at the method first)."""

    def kind(self: OpBenchmark, op: str, shape: str, dtype: str, device: str) -> Any:
        return method(self, op, shape, dtype, device)

    kind.__name__ = kind.__qualname__ = method.__name__
    kind.__doc__ = method.__doc__
    kind.params = params  # type: ignore[attr-defined]
    if hasattr(method, "unit"):
        kind.unit = method.unit  # type: ignore[attr-defined]
    return kind


def make_class(impl: registry.Implementation, shapes: list[str] | None = None,
               track_shapes: list[str] | None = None) -> type:
    """The asv benchmark class for one implementation."""
    ops, dtypes_, devices_ = list(impl.ops), grid.dtypes(), devices()
    attrs: dict[str, Any] = {
        "impl_name": impl.name,
        "params": [ops, shapes or grid.shapes(), dtypes_, devices_],
        "__doc__": f"{impl.name}: {impl.description}",
    }
    coarse = [ops, track_shapes or shapes or grid.track_shapes(), dtypes_, devices_]
    for name in TRACK_KINDS:
        attrs[name] = _with_params(getattr(OpBenchmark, name), coarse) if name in kinds(impl) else None
    return type(grid.class_name(impl.name), (OpBenchmark,), attrs)


def _preimport(family: str) -> None:
    """Import the family's framework here, before asv forks the benchmark processes (import only)."""
    import importlib

    for impl in registry.all_implementations():
        if impl.family == family and impl.available:
            for module in dict.fromkeys((*get_backend(impl.backend).requires, *impl.requires)):
                importlib.import_module(module)


def install(namespace: dict[str, Any]) -> None:
    """Put a benchmark class for every registered implementation into ``namespace`` (a module's globals)."""
    threads.apply()
    registry.load_env_plugins()
    for impl in registry.all_implementations():
        namespace[grid.class_name(impl.name)] = make_class(impl)
    family = os.environ.get(FAMILY_ENV)
    if family:
        _preimport(family)
