"""The asv benchmark classes, generated from the registry: one class ``Impl_<name>`` per implementation.

``benchmarks/bench_ops.py`` calls :func:`install`. Each class is parametrized over ``(op, shape, dtype,
device)`` (shapes ``"BxN"`` from :mod:`softgrad.bench.grid`) with ``time_op``, ``peakmem_op``,
``track_error_ratio`` (worst error / tolerance) and, for entries that compile, ``track_first_call_s``.
``setup`` asks :func:`softgrad.applicability.applicable` and skips (``NotImplementedError``) what does not
apply or would be too slow; it prepares the call (:func:`softgrad.prepared.prepare`) and makes the first and
a warm-up call, so the timed body is the call alone (:func:`setup_benchmark`, shared with softgrad's own
sweep). ``softgrad run`` does not time through asv (:mod:`softgrad.bench.sweep`): asv discovers these
classes, stores the sweep's results and draws the dashboard; a plain ``asv run`` still times them, and
``SOFTGRAD_BENCH_FAMILY`` then names a family whose framework is imported before asv forks its benchmark
processes.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import registry
from ..applicability import applicable
from ..backends import get_backend
from ..check.checker import JACOBIAN_ELEMENT_BUDGET, accuracy
from ..contract import DTYPE_INFO
from ..prepared import Prepared, too_slow, view
from ..workloads import PRESETS, Workload, exported, parse_shape_token
from . import grid, threads
from .timer import inputs_at, prepare_at

#: a family whose framework is imported in the process asv forks every benchmark process from, so each
#: starts without the import cost; nothing is built or run there (a thread pool started before ``fork``
#: breaks the children: GNU OpenMP refuses). ``softgrad run`` runs asv once per family this way
#: (frameworks never share a process, and a crash loses one family's run).
FAMILY_ENV = "SOFTGRAD_BENCH_FAMILY"
#: benchmark kinds per class (each runs every parameter combination in a process of its own);
#: ``track_first_call_s`` is the first call in a fresh process, for entries that compile (JAX compiles per
#: shape on first call; Numba compiles when the entry is built, timed once per run by ``bench.buildtime``)
KINDS = ("time_op", "peakmem_op", "track_error_ratio", "track_first_call_s")
#: the kinds over the coarser shapes of :func:`softgrad.bench.grid.track_shapes`: asv starts a process for
#: every combination of every kind, most of a sweep's time (asv reads ``params`` from the method first)
TRACK_KINDS = ("peakmem_op", "track_error_ratio", "track_first_call_s")


def kinds(impl: registry.Implementation, grid_name: grid.GridLike = None) -> tuple[str, ...]:
    """The benchmark kinds of one implementation: the first call only for entries that compile; no error
    track on a workload's grid (its accuracy is ``softgrad check --workload``'s, at a shape the oracle affords)."""
    out = KINDS if impl.compiles else tuple(k for k in KINDS if k != "track_first_call_s")
    if grid.workload_of(grid_name) is not None:
        out = tuple(k for k in out if k != "track_error_ratio")
    return out


def class_params(impl: registry.Implementation, grid_name: grid.GridLike = None) -> tuple[list[list[str]], list[list[str]]]:
    """``(params of time_op, params of the track kinds)``: ``[ops, shapes, dtypes, devices]`` of the asv class
    of ``impl`` on the default grid or a workload's (its ops and dtypes that the entry declares)."""
    grid_name = grid.resolve(grid_name)
    wl = grid.workload_of(grid_name)
    if wl is None:
        ops, dtypes_ = list(impl.ops), grid.dtypes(grid_name)
        return ([ops, grid.shapes(grid_name), dtypes_, devices()],
                [ops, grid.track_shapes(grid_name), dtypes_, devices()])
    w = wl[0]
    ops = [op for op in w.ops if op in impl.ops]
    dtypes_ = [d for d in w.dtypes if d in impl.dtypes]
    every = [ops, grid.shapes(grid_name), dtypes_, devices()]
    return every, every


def benchmark_class(impl_name: str, grid_name: grid.GridLike = None) -> str:
    """``module.Class`` of an entry's asv benchmarks on a grid: ``bench_ops.Impl_numpy`` (the default grid),
    ``bench_workloads.vocab__Impl_numpy`` (a workload's)."""
    wl = grid.workload_of(grid_name)
    if wl is None:
        return f"bench_ops.{grid.class_name(impl_name)}"
    return f"bench_workloads.{workload_class_name(wl[0].name, impl_name)}"


def workload_class_name(workload: str, impl_name: str) -> str:
    """The asv class of ``impl_name`` on a workload's grid: ``vocab__Impl_torch_native``."""
    return f"{registry.identifier(workload)}__{grid.class_name(impl_name)}"


def devices() -> list[str]:
    """Devices the grid covers: ``cpu``, and ``cuda`` where an NVIDIA driver is installed (no import)."""
    return ["cpu", "cuda"] if registry.gpu_driver_present() else ["cpu"]


class OpBenchmark:
    """Base class; :func:`make_class` sets ``impl_name`` and ``params``."""

    impl_name = ""
    grid_name: str | None = None  # a workload's grid (``workload:NAME``), or None: the default grid
    param_names = ["op", "shape", "dtype", "device"]
    params: list[list[str]] = []
    #: asv's history of a benchmark restarts when its version changes; without this attribute the version
    #: is a hash of the code, so every edit of setup broke the dashboard's lines. Raise it when what a
    #: benchmark measures changes (2: softgrad's own sweep, blocks of calls in three passes).
    version = "2"
    # plain `asv run`: one round, 1 to 5 samples within 0.3 s, warm-up 0.02 s (setup already warmed up).
    rounds = 1
    repeat = (1, 5, 0.3)
    warmup_time = 0.02
    timeout = 120

    def setup(self, op: str, shape: str, dtype: str, device: str) -> None:
        bench = setup_benchmark(registry.get(self.impl_name), op, shape, dtype, device, self.grid_name)
        self.x, self.g, self.call, self.out, self.first_call_s = bench.x, bench.g, bench.call, bench.out, bench.first_call_s
        self.op, self.dtype = op, dtype

    def time_op(self, op: str, shape: str, dtype: str, device: str) -> None:
        self.call()

    def peakmem_op(self, op: str, shape: str, dtype: str, device: str) -> None:
        self.call()

    def track_error_ratio(self, op: str, shape: str, dtype: str, device: str) -> float:
        return error_ratio(op, dtype, self.x, self.g, self.out)

    track_error_ratio.unit = "error/tolerance"  # type: ignore[attr-defined]

    def track_first_call_s(self, op: str, shape: str, dtype: str, device: str) -> float:
        return self.first_call_s

    track_first_call_s.unit = "seconds"  # type: ignore[attr-defined]


@dataclass
class Benchmark:
    """One combination set up for timing: its NumPy inputs, the prepared call, the first call's output
    (as NumPy) and how long that first call took."""

    x: np.ndarray
    g: np.ndarray
    call: Prepared
    out: np.ndarray
    first_call_s: float


def setup_benchmark(impl: registry.Implementation, op: str, shape: str, dtype: str, device: str,
                    grid_name: grid.GridLike = None,
                    inputs: tuple[np.ndarray, np.ndarray] | None = None) -> Benchmark:
    """Inputs, prepared call, first call (timed) and one warm call of ``impl``'s ``op`` at ``shape``;
    :class:`NotImplementedError` with the reason when it does not apply or would be too slow. Shared by the
    asv classes and softgrad's own sweep (:mod:`softgrad.bench.family_worker`); ``inputs`` are
    :func:`~softgrad.bench.timer.inputs_at` for the shape when the caller has them already (a workload's shape
    token carries the layouts of x and g: the call sees those views)."""
    dims, x_layout, g_layout = parse_shape_token(shape)
    if g_layout != "contiguous" and op != "vjp":
        raise NotImplementedError(f"{op} does not read g: timed at the shape with a contiguous g")
    reason = applicable(impl, op, dtype, device, dims, budget="memory",
                        max_output_elements=grid.max_output_bytes(grid_name) // DTYPE_INFO[dtype].itemsize)
    if reason:
        raise NotImplementedError(reason)
    x_base, g_base = inputs if inputs is not None else inputs_at(shape, dtype)
    x, g = view(x_base, x_layout), view(g_base, g_layout, dims)  # what the call sees, as NumPy views
    if math.prod(dims[:-1]) > 1:
        # Interpreted code (the loops) is linear in the batch: one full row predicts the call, so a
        # combination minutes long is skipped without running it (one probe: what asv's history had).
        reason = too_slow(impl, op, dtype, device, x, g, budget_s=grid.MAX_CALL_SECONDS, refine=False)
        if reason:
            raise NotImplementedError(reason)
    call = prepare_at(impl, op, dtype, device, shape, x_base, g_base)
    t0 = time.perf_counter()
    out = get_backend(impl.backend).to_numpy(call())
    first_call_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    call()
    warm = time.perf_counter() - t0
    if warm > grid.MAX_CALL_SECONDS:
        raise NotImplementedError(f"one call takes {warm:.2g} s, over the {grid.MAX_CALL_SECONDS:g} s budget")
    return Benchmark(x, g, call, out, first_call_s)


def error_ratio(op: str, dtype: str, x: np.ndarray, g: np.ndarray, out: np.ndarray) -> float:
    """The worst error of ``out`` over its tolerance (inf for a NaN where a number is due; NaN when the
    oracle's Jacobian would not fit the checker's budget)."""
    if op == "jacobian" and x.size * x.shape[-1] > JACOBIAN_ELEMENT_BUDGET:
        return math.nan
    metrics, problems = accuracy(op, dtype, x, g if op == "vjp" else None, out)
    if any(kind == "nan-policy" for kind, _ in problems):
        return math.inf
    return float(metrics.get("ratio", 0.0))


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
               track_shapes: list[str] | None = None, grid_name: grid.GridLike = None) -> type:
    """The asv benchmark class for one implementation, on the default grid or a workload's."""
    grid_name = grid.resolve(grid_name)
    params, coarse = class_params(impl, grid_name)
    if shapes:
        params[1] = shapes
    if track_shapes or shapes:
        coarse = [coarse[0], track_shapes or shapes, *coarse[2:]]
    wl = grid.workload_of(grid_name)
    attrs: dict[str, Any] = {
        "impl_name": impl.name,
        "grid_name": grid.selected(grid_name) if wl else None,  # a name: asv's processes resolve it
        "params": params,
        "__doc__": f"{impl.name}: {impl.description}" + (f" ({wl[0].name} workload)" if wl else ""),
    }
    if wl:
        attrs["version"] = "1"
    for name in TRACK_KINDS:
        attrs[name] = _with_params(getattr(OpBenchmark, name), coarse) if name in kinds(impl, grid_name) else None
    name = workload_class_name(wl[0].name, impl.name) if wl else grid.class_name(impl.name)
    return type(name, (OpBenchmark,), attrs)


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


def timed_workloads() -> list[Workload]:
    """The workloads with asv classes: the presets but ``default`` (the ``bench_ops`` classes are its), and the
    one this process was handed (:func:`softgrad.workloads.export`)."""
    found = [w for name, w in PRESETS.items() if name != "default"]
    own = exported()
    return found + ([own] if own is not None and own.name not in PRESETS else [])


def install_workloads(namespace: dict[str, Any]) -> None:
    """Put a benchmark class per workload and implementation (that declares one of its ops and dtypes) into
    ``namespace``: ``benchmarks/bench_workloads.py``. The default grid's classes stay as they are."""
    threads.apply()
    registry.load_env_plugins()
    for w in timed_workloads():
        grid_name = grid.workload_grid(w.name)
        for impl in registry.all_implementations():
            params, _ = class_params(impl, grid_name)
            if params[0] and params[2]:
                namespace[workload_class_name(w.name, impl.name)] = make_class(impl, grid_name=grid_name)
