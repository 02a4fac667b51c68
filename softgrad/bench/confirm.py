"""Rerun the benchmarks the gate flagged, on this checkout, and keep only the slowdowns that reproduce.

On shared 2-core machines a whole family sometimes runs 1.5x slower for a minute (other tenants), so two
identical runs can disagree on a benchmark by more than any threshold that still catches a 30% slowdown.
A real regression is in the code and shows again in a fresh measurement; a noisy minute does not. So
``softgrad compare --confirm`` times each flagged combination again (the sweep's worker, one per family,
:data:`CONFIRM_ROUNDS` passes, into a scratch folder: the stored history is not touched) and keeps a flag
only when the rerun is slower by the same test (factor, quartiles apart, minimum delta), over the machine's
speed measured beside it where the finding was.

The rerun measures the tree that is checked out, so it only confirms a run of the current commit.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from .. import paths, registry
from . import grid, sweep
from .progress import Progress

#: passes over the flagged benchmarks in the rerun, samples pooled
CONFIRM_ROUNDS = 5


class ConfirmError(Exception):
    """The flagged benchmarks cannot be rerun here; the message is one line for the user."""


def rerun(keys: list[tuple[str, str, str, str, str]], grid_name: str, commit: str, rounds: int = CONFIRM_ROUNDS,
          progress: bool = True) -> dict[tuple, dict[str, float]]:
    """Time the ``(impl, op, shape, dtype, device)`` combinations again on this checkout, each family in a
    worker of its own (:func:`softgrad.bench.sweep.sweep_family`); returns their rows (``time_s``,
    ``q25_s``, ``q75_s``, ``norm``, ``norm_q25``, ``norm_q75``) keyed like the input. ``commit`` is unused:
    the rerun times what is checked out."""
    import numpy as np

    rerun_grid = grid.resolve(grid_name)  # once: its workload is looked up by name
    by_family: dict[str, list[tuple]] = {}
    for key in keys:
        by_family.setdefault(registry.get(key[0]).family, []).append(key)
    paths.cache_dir().mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="confirm-", dir=paths.cache_dir()))
    status = Progress(progress, sys.stderr)
    out: dict[tuple, dict[str, float]] = {}
    try:  # the scratch folder goes on success, on a failure and on Ctrl-C or SIGTERM alike
        for family, fam_keys in by_family.items():
            impls = [registry.get(n) for n in dict.fromkeys(k[0] for k in fam_keys)]
            _, records, _ = sweep.sweep_family(family, impls, rerun_grid, rounds, scratch, status, "confirm",
                                               select=set(fam_keys))
            norms = sweep.normalized(records)
            for key, values in sweep.pooled(records).items():
                if not values:
                    continue
                q25, med, q75 = np.percentile(values, [25, 50, 75])
                out[key] = {"time_s": float(med), "q25_s": float(q25), "q75_s": float(q75),
                            **norms.get(" ".join(key), {})}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {key: out[key] for key in keys if key in out}
