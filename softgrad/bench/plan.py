"""The benchmarks of a sweep, as data: one :class:`Combo` per (implementation, op, shape, dtype, device).

The same parameter grids as the asv classes of :mod:`softgrad.bench.asv_suite`
(:func:`~softgrad.bench.asv_suite.class_params`: ``time_op`` over :func:`~softgrad.bench.grid.shapes`, the
track kinds over :func:`~softgrad.bench.grid.track_shapes`, on the default grid or a workload's), so
softgrad's own sweep fills exactly the results asv's classes declare.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .. import registry
from ..contract import DTYPE_INFO
from . import grid
from .asv_suite import TRACK_KINDS, class_params, kinds

Key = tuple[str, str, str, str, str]  # (impl, op, shape, dtype, device)


@dataclass(frozen=True)
class Combo:
    impl: str
    op: str
    shape: str
    dtype: str
    device: str
    #: the asv kinds measured here (``time_op``, ``peakmem_op``, ``track_error_ratio``, ``track_first_call_s``)
    kinds: tuple[str, ...]

    @property
    def key(self) -> Key:
        return (self.impl, self.op, self.shape, self.dtype, self.device)

    def label(self) -> str:
        return " ".join(self.key)


#: the expected-time model of a workload's sweep (:func:`expected_seconds`), fitted to the vocab preset's
#: JAX family on the 2-core machines (2026-12-01: 109 first passes in 333 s): a call moves its bytes at
#: about 1.5 GB/s there, a first pass costs about ten calls (inputs, cost probe, first call, warm-up,
#: calibration, peak memory, blocks) and a compile for entries that compile, a later pass about four
EXPECTED_GBPS = 1.5
EXPECTED_FIRST_PASS_CALLS = 10
EXPECTED_CALLS_PER_PASS = 4
EXPECTED_COMPILE_S = 1.5
EXPECTED_PASS_S = 0.05


def expected_seconds(todo: list[Combo], rounds: int) -> float:
    """About how long the sweep of ``todo`` takes in ``rounds`` passes (said before a large workload starts;
    the progress line's estimate follows the real rate)."""
    total = 0.0
    for c in todo:
        rows, n = grid.parse_shape(c.shape)
        if (c.op != "vjp" and ":g=" in c.shape) or registry.get(c.impl).unsupported_reason(
                c.op, c.dtype, c.device, n, rows * n) is not None:
            continue  # skipped at once (does not read g; a declared limit)
        call_s = grid.bytes_moved(c.op, rows, n, DTYPE_INFO[c.dtype].itemsize) / (EXPECTED_GBPS * 1e9)
        later = rounds - 1 if "time_op" in c.kinds else 0
        total += EXPECTED_FIRST_PASS_CALLS * call_s + EXPECTED_PASS_S
        total += EXPECTED_COMPILE_S if registry.get(c.impl).compiles else 0.0
        total += later * (EXPECTED_CALLS_PER_PASS * call_s + EXPECTED_PASS_S)
    return total


def combos(impls: Iterable[registry.Implementation], grid_name: grid.GridLike,
           select: set[Key] | None = None) -> list[Combo]:
    """Every combination of the grid for ``impls`` (only the keys in ``select`` when given, each with the
    time only: a confirming rerun), shapes in the grid's order."""
    grid_name = grid.resolve(grid_name)  # a workload looked up once, not per entry
    out = []
    for impl in impls:
        ks = kinds(impl, grid_name)
        (ops, shapes, dtypes, devices), (_, track, _, _) = class_params(impl, grid_name)
        every = [*shapes, *(s for s in track if s not in shapes)]
        for op in ops:
            for dtype in dtypes:
                for device in devices:
                    for shape in every:
                        here = tuple(k for k in ks if (k in TRACK_KINDS and shape in track)
                                     or (k == "time_op" and shape in shapes))
                        key = (impl.name, op, shape, dtype, device)
                        if select is not None:
                            if key in select:
                                out.append(Combo(*key, kinds=("time_op",)))
                        elif here:
                            out.append(Combo(*key, kinds=here))
    if grid.workload_of(grid_name) is not None:  # shape by shape: a worker keeps one large shape's inputs
        order = {s: k for k, s in enumerate(dict.fromkeys(c.shape for c in out))}
        out.sort(key=lambda c: (order[c.shape], c.dtype))
    return out
