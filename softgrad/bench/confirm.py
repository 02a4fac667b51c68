"""Rerun the benchmarks the gate flagged, on this checkout, and keep only the slowdowns that reproduce.

On shared 2-core machines a whole family sometimes runs 1.5x slower for a minute (other tenants), so two
identical runs can disagree on a benchmark by more than any threshold that still catches a 30% slowdown.
A real regression is in the code and shows again in a fresh measurement; a noisy minute does not. So
``softgrad compare --confirm`` times each flagged combination again (asv, the same settings as the run,
``rounds`` processes pooled, into a scratch folder: the stored history is not touched) and keeps a flag
only when the rerun is slower by the same test (factor, quartiles apart, minimum delta) against the old
run's time scaled by the machine's drift.

The rerun measures the tree that is checked out, so it only confirms a run of the current commit.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
from pathlib import Path

from .. import paths, registry
from ..stored import read_json
from . import asv_driver, asv_results, grid

#: processes per flagged benchmark in the rerun, pooled (asv ``rounds``)
CONFIRM_ROUNDS = 2


class ConfirmError(Exception):
    """The flagged benchmarks cannot be rerun here; the message is one line for the user."""


def selection_regex(impl: str, op: str, shape: str, dtype: str, device: str) -> str:
    """asv's ``--bench`` regex for one ``time_op`` parameter combination (asv matches ``name(params)``)."""
    import re

    params = ", ".join(repr(p) for p in (op, shape, dtype, device))
    return "^" + re.escape(f"bench_ops.{grid.class_name(impl)}.time_op({params})") + "$"


def rerun(keys: list[tuple[str, str, str, str, str]], grid_name: str, commit: str, rounds: int = CONFIRM_ROUNDS,
          progress: bool = True) -> dict[tuple, dict[str, float]]:
    """Time the ``(impl, op, shape, dtype, device)`` combinations again on this checkout (at ``commit``,
    which asv records them under); returns their rows (``time_s``, ``q25_s``, ``q75_s``, ...) keyed like
    the input."""
    repo = paths.repo_root()
    by_family: dict[str, list[tuple]] = {}
    for key in keys:
        by_family.setdefault(registry.get(key[0]).family, []).append(key)
    paths.cache_dir().mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="confirm-", dir=paths.cache_dir()))
    try:
        cfg = asv_driver.asv_config(repo, scratch)
        asv_driver.ensure_machine(cfg)
        status = asv_driver.Progress(progress, sys.stderr)
        for family, fam_keys in by_family.items():
            impls = [registry.get(n) for n in dict.fromkeys(k[0] for k in fam_keys)]
            asv_driver.run_family(cfg, commit, family, impls, grid_name, rounds, scratch / f"asv-{family}.log",
                                  status, f"confirm {family}", bench=[selection_regex(*k) for k in fam_keys])
        found = asv_driver.asv_results_file(commit, scratch / "asv")
        if found is None:
            raise ConfirmError(f"the rerun stored no results (asv's logs are kept in {scratch})")
        impl_of = {grid.class_name(k[0]): k[0] for k in keys}
        rows = asv_results.rows(read_json(found), impl_of, str(found))
    except BaseException:
        raise  # the scratch folder stays, with asv's logs
    shutil.rmtree(scratch, ignore_errors=True)
    return {key: rows[key] for key in keys if key in rows and math.isfinite(rows[key].get("time_s", math.nan))}
