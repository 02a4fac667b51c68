"""The benchmark grid and its naming: shared by the asv suite, the pytest-benchmark suite and the report.

Shapes are written ``"BxN"`` (batch x row length); a benchmark is named
``bench_ops.<class_name(impl)>.<kind>`` (``time_op``, ``track_error_ratio``, ...) with params
``(op, shape, dtype, device)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .. import registry
from ..workloads import DEFAULT_BATCHES, DEFAULT_N_VALUES, Workload, named, parse_shape_token, timing_shapes

#: Row lengths: powers of two from 2 to 4096 (the ``default`` workload's).
N_VALUES: tuple[int, ...] = DEFAULT_N_VALUES
#: Row lengths for what is not a timing (error against tolerance, peak memory, first call): one process
#: per combination is the sweep's main cost, and these change slowly with n.
TRACK_N_VALUES: tuple[int, ...] = (2, 32, 512, 4096)
#: Batch sizes: one row, and a batch of 256 rows.
BATCHES: tuple[int, ...] = DEFAULT_BATCHES
#: The quick grid: short rows in a batch, long rows alone and in a batch; float32 only.
QUICK_SHAPES: tuple[str, ...] = ("256x16", "1x1024", "256x1024")
QUICK_DTYPES: tuple[str, ...] = ("float32",)
BENCH_DTYPES: tuple[str, ...] = ("float32", "float64")
#: Environment variable selecting the grid for asv runs: "full" (default) or "quick".
GRID_ENV = "SOFTGRAD_GRID"
#: Largest output a benchmark may allocate (a Jacobian of 256 x 4096 x 4096 float64 is 32 GiB);
#: the quick grid allows 64 MiB (a 256 x 1024 x 1024 Jacobian, 1 GiB in float32, is left to the full grid).
MAX_OUTPUT_BYTES = 1 << 30
QUICK_MAX_OUTPUT_BYTES = 64 << 20


def max_output_bytes(grid: "GridLike" = None) -> int:
    return QUICK_MAX_OUTPUT_BYTES if selected(grid) == "quick" else MAX_OUTPUT_BYTES


#: a grid name ``workload:NAME`` (``workload:NAME:quick``) times a workload's shapes and dtypes
WORKLOAD_PREFIX = "workload:"


def workload_grid(name: str, quick: bool = False) -> str:
    return f"{WORKLOAD_PREFIX}{name}" + (":quick" if quick else "")


@dataclass(frozen=True)
class Grid:
    """What a sweep times, resolved once: the plan, the sweep, the asv writer and the agreement step take this
    object. ``name`` (``full``, ``quick``, ``workload:NAME[:quick]``) is its handle across processes: a worker
    or asv's discovery resolves it once at its start (:func:`resolve`)."""

    name: str
    workload: Workload | None = None  # None: the default grid
    quick: bool = False

    @classmethod
    def of(cls, workload: Workload | None, quick: bool) -> "Grid":
        """The grid of a workload already resolved (None: the default grid, full or quick)."""
        if workload is None:
            return cls("quick" if quick else "full", None, quick)
        return cls(workload_grid(workload.name, quick), workload, quick)


GridLike = Grid | str | None


def resolve(grid: GridLike = None) -> Grid:
    """``grid`` as a :class:`Grid`: itself, or the one its name (default ``$SOFTGRAD_GRID``, else ``full``)
    stands for, its workload looked up by name once."""
    if isinstance(grid, Grid):
        return grid
    name = selected(grid)
    if not name.startswith(WORKLOAD_PREFIX):
        return Grid(name, None, name == "quick")
    workload, _, quick = name[len(WORKLOAD_PREFIX):].partition(":")
    return Grid(name, named(workload), quick == "quick")


def workload_of(grid: GridLike) -> tuple[Workload, bool] | None:
    """The workload a grid times and whether it is quick; None for the default grid."""
    if grid is None or (isinstance(grid, str) and not grid.startswith(WORKLOAD_PREFIX)):
        return None
    g = resolve(grid)
    return (g.workload, g.quick) if g.workload is not None else None
#: A combination whose single warm call takes longer than this is skipped, not timed.
MAX_CALL_SECONDS = 1.0


def shape_name(batch: int, n: int) -> str:
    return f"{batch}x{n}"


def parse_shape(name: str) -> tuple[int, int]:
    """``(rows, n)`` of a benchmark shape: ``"256x1024"`` -> ``(256, 1024)``, a workload's
    ``"8x12x128x128:g=transposed"`` -> ``(12288, 128)`` (rows: the leading dims' product); ValueError for
    anything else."""
    dims, _, _ = parse_shape_token(name)
    return math.prod(dims[:-1]), dims[-1]


def selected(grid: GridLike = None) -> str:
    """The name of the grid in use: ``grid``'s, else ``$SOFTGRAD_GRID``, else ``full``."""
    if isinstance(grid, Grid):
        return grid.name
    grid = grid or os.environ.get(GRID_ENV, "full")
    if grid.startswith(WORKLOAD_PREFIX):
        return grid
    if grid not in ("full", "quick"):
        raise ValueError(f"{GRID_ENV} must be 'full' or 'quick', not {grid!r}")
    return grid


def shapes(grid: GridLike = None) -> list[str]:
    """The shapes of the ``full`` or ``quick`` grid (default: ``$SOFTGRAD_GRID`` or full), or a workload's."""
    g = resolve(grid)
    if g.workload is not None:
        return timing_shapes(g.workload, g.quick)
    if g.quick:
        return list(QUICK_SHAPES)
    return [shape_name(b, n) for b in BATCHES for n in N_VALUES]


def track_shapes(grid: GridLike = None) -> list[str]:
    """The shapes of the ``track_*``/``peakmem_*`` benchmarks: the quick shapes, or a coarser full grid (a
    workload's are all its shapes)."""
    g = resolve(grid)
    if g.workload is not None:
        return shapes(g)
    if g.quick:
        return list(QUICK_SHAPES)
    return [shape_name(b, n) for b in BATCHES for n in TRACK_N_VALUES]


def dtypes(grid: GridLike = None) -> list[str]:
    """The dtypes of the ``full`` or ``quick`` grid, or a workload's."""
    g = resolve(grid)
    if g.workload is not None:
        return list(g.workload.dtypes)
    return list(QUICK_DTYPES if g.quick else BENCH_DTYPES)


def class_name(impl_name: str) -> str:
    """A Python identifier for an implementation's benchmark class: ``torch-native`` -> ``Impl_torch_native``."""
    return "Impl_" + registry.identifier(impl_name)


def output_bytes(op: str, batch: int, n: int, itemsize: int) -> int:
    """Bytes of the result: n^2 per row for the Jacobian, n per row otherwise."""
    return batch * n * (n if op == "jacobian" else 1) * itemsize


def bytes_moved(op: str, batch: int, n: int, itemsize: int, g_layout: str = "contiguous") -> int:
    """Bytes that must move for one call: read x (and g), write the result. A cotangent with stride 0
    (``g_layout`` ``broadcast``: one row repeated over the batch; ``scalar``: one value) is read from
    memory once, so only its distinct elements count."""
    rows = batch * n * itemsize
    g = {"broadcast": n * itemsize, "scalar": itemsize}.get(g_layout, rows)
    return {"softmax": 2 * rows, "vjp": 2 * rows + g, "jacobian": rows + output_bytes(op, batch, n, itemsize)}[op]
