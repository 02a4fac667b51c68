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


def combos(impls: Iterable[registry.Implementation], grid_name: str,
           select: set[Key] | None = None) -> list[Combo]:
    """Every combination of the grid for ``impls`` (only the keys in ``select`` when given, each with the
    time only: a confirming rerun), shapes in the grid's order."""
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
