"""The stored history as pandas DataFrames: the one place that reads runs for the report, choose and compare.

:func:`load` gives one tidy row per run x implementation x op x shape x dtype x device, with the run's
machine, commit and library versions, the timing (median, quartiles, 99% interval), the worst error
relative to tolerance at that shape, first-call and build (JIT) times, peak memory, bytes moved and the
achieved bandwidth as a fraction of the copy bandwidth measured in the same run (``in_cache``: the bytes
fit in the machine's last-level cache, so that figure is not a memory bandwidth), and the
implementation's correctness verdict from the run's check. :func:`load_checks` gives one row per check
record. Both read ``results/runs`` (see :mod:`softgrad.history.store`) through its index
(:mod:`softgrad.history.index`: one file, brought up to date with the run folders first), each run's part
read once into a :class:`~softgrad.history.blocks.Block`; ``SOFTGRAD_INDEX=off`` reads the folders, and the
frame is the same either way.

Example::

    from softgrad.history import results
    df = results.load()                      # every run
    last = results.latest(df)                # the newest complete run on this machine
    each = results.newest_per_entry(df)      # each entry's newest measurement of each point (choose's)
    last.query("op == 'vjp' and n == 1024 and batch == 256 and dtype == 'float32'")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import registry
from ..bench import asv_results, grid
from . import blocks, index, store
from .blocks import Block

#: names this module had before reading asv's files moved to softgrad.bench.asv_results
KINDS = asv_results.KINDS
_asv_rows = asv_results.rows

#: a point is marked ``slow_machine`` when the machine's speed beside it read this many times its best in the run
SLOW_MACHINE = 1.25

RUN_COLUMNS = ("run", "date", "machine", "cpu", "cores", "commit", "grid", "workload", "threads", "copy_gbps",
               "fill_gbps", "llc_bytes")
VERSION_COLUMNS = ("numpy", "numba", "torch", "jax")


def clear_win(fastest_q75_s: float, runner_up_q25_s: float) -> bool | None:
    """Whether the runner-up's lower quartile is above the fastest's upper quartile (False: the two are
    within the measured spread and may swap places on a rerun; None: a quartile is unknown)."""
    if not (math.isfinite(fastest_q75_s) and math.isfinite(runner_up_q25_s)):
        return None
    return bool(runner_up_q25_s > fastest_q75_s)


def _checks_source(block: Block, earlier: Callable[[], Mapping[str, Block]]) -> Block | None:
    """The run whose correctness records apply to ``block``'s (the frame's ``checks_from``): itself, or (for a
    ``--no-check`` run) the newest of ``earlier()`` (every run's block, oldest first) before it with checks on
    the same machine, commit and library versions (another machine's verdicts are not this one's: its hardware,
    drivers and vector paths differ)."""
    if block.has_checks:
        return block
    found = None
    for other in earlier().values():
        if other.run >= block.run:
            break
        if not (other.has_checks and other.has_meta):
            continue
        if other.meta_error:
            raise store.StoreError(other.meta_error)
        if (other.commit == block.commit and other.versions == block.versions
                and other.info.get("machine") == block.info.get("machine")):
            found = other
    return found


_check_summary = blocks.check_summary
_run_info = blocks.run_info
workload_name = blocks.workload_name


def text_as_objects(df):
    """``df`` with its text columns held as Python strings (object dtype), not pandas' ``str`` dtype: pandas
    3.1's ``str`` column compares unequal to a scalar that is only NUL (``Series(["\\x00"]) == "\\x00"`` is
    False), so a machine or entry named so in a stored file would select none of its own rows."""
    import pandas as pd

    text = [c for c in df.columns if pd.api.types.is_string_dtype(df[c]) and df[c].dtype != object]
    return df.astype({c: object for c in text}) if text else df


def load(runs: list[store.Run] | None = None, complete_only: bool = True, newest: bool = False):
    """One row per run x implementation x op x shape x dtype x device (see the module docstring), read through
    the index (:mod:`softgrad.history.index`) unless ``SOFTGRAD_INDEX=off``: the same frame either way. With
    ``newest``, only the rows of the runs :func:`newest_per_entry` can pick from (:func:`newest_runs`: a few of a
    year of nights), so that ``newest_per_entry`` of it is that of the whole frame.

    A complete run without ``asv.json``, or whose ``asv.json`` holds no softgrad benchmark, is left out
    with a line saying so in ``df.attrs["warnings"]`` (a list of str, empty when nothing was left out)."""
    chosen, earlier = _blocks(runs, complete_only, checks=False, newest=newest)
    return _frame(chosen, earlier)


def newest_runs(every: Mapping[str, Block]) -> list[str]:
    """Of the runs ``every`` (facts only), those :func:`newest_per_entry` can pick a row from: per machine and
    set of points measured and timed (:func:`softgrad.history.blocks.points_key`), the newest run. An entry's
    newest measurement of a point is in such a run (a newer run with its key measured the same point), however
    many nights are stored."""
    newest: dict[tuple[str, str], str] = {}
    for b in every.values():
        machine = b.info.get("machine")
        key = (machine if isinstance(machine, str) else "", b.points_key)
        newest[key] = max(newest.get(key, b.run), b.run)
    return sorted(newest.values())


def _blocks(runs: list[store.Run] | None, complete_only: bool, checks: bool,
            newest: bool = False) -> tuple[list[tuple[store.Run, Block]], Callable[[], Mapping[str, Block]]]:
    """The blocks of ``runs`` (default: every complete run, or every run) in order, and every stored run's
    block oldest first (for the checks of a ``--no-check`` run), from the index where it serves them; a meta.json
    softgrad refuses raises as :func:`softgrad.history.store.complete_runs` does. With ``newest`` (and the
    index), the runs other than :func:`newest_runs` come as their facts alone (no points)."""
    home = store.runs_dir()
    indexed = index.enabled() and (runs is None or all(_under(r.folder, home) for r in runs))
    if runs is None:
        def picked(b: Block) -> bool:
            return b.complete or (not complete_only and b.has_meta)

        def want(every: Mapping[str, Block]) -> list[str]:
            ids = [i for i, b in every.items() if picked(b)]
            return newest_runs({i: every[i] for i in ids}) if newest else ids

        if indexed:
            every, full = index.read(want, checks)
        else:
            full = every = {r.id: blocks.from_folder(r) for r in store.all_runs()}
        for b in every.values():
            if b.meta_error:
                raise store.StoreError(b.meta_error)
        if not complete_only:
            missing = next((b for b in every.values() if not b.has_meta), None)
            if missing is not None:
                raise store.StoreError(f"{home / missing.run / 'meta.json'}: no such file")
        chosen = [(store.Run(home / i), full.get(i, b)) for i, b in every.items() if picked(b)]
        return chosen, lambda: every
    if indexed:
        wanted = [r.id for r in runs]
        every, full = index.read(lambda _: wanted, checks)
        found = {**{r.id: blocks.from_folder(r) for r in runs if r.id not in full}, **full}
        chosen = [(r, found[r.id]) for r in runs]
        return chosen, lambda: every
    chosen = [(r, blocks.from_folder(r)) for r in runs]
    cache: dict[str, Block] = {}

    def earlier() -> Mapping[str, Block]:
        if not cache:
            cache.update({r.id: blocks.from_folder(r) for r in store.all_runs()})
        return cache

    return chosen, earlier


def _under(folder: Path, home: Path) -> bool:
    try:
        return folder.resolve().parent == home.resolve()
    except (OSError, RuntimeError):
        return False


def _own_meta(run: store.Run, block: Block) -> None:
    """Raise what reading ``run``'s meta.json raises (a refused file, or none)."""
    if block.meta_error:
        raise store.StoreError(block.meta_error)
    if not block.has_meta:
        raise store.StoreError(f"{run.meta_path}: no such file")


#: the frame's columns before those derived from them, in order (the run's, then the point's)
_BASE = (*RUN_COLUMNS, *VERSION_COLUMNS, "checks_from", "impl", "op", "shape", "batch", "n", "x_layout",
         "g_layout", "dtype", "device", "build_s", *blocks.VALUES, "checked", "check_passed", "check_failed",
         "check_worst_ratio", "failed_cases")


def _frame(chosen: list[tuple[store.Run, Block]], earlier: Callable[[], Mapping[str, Block]]):
    """The frame of :func:`load` from the chosen runs' blocks (a block of facts alone gives no rows), raising
    what reading their folders raises, in the order reading them raises it."""
    import numpy as np
    import pandas as pd

    warnings: list[str] = []
    # per run kept: its block, the run its checks come from, their summary, the points kept, their entry names
    parts: list[tuple[Block, str, dict[str, Any] | None, np.ndarray, np.ndarray]] = []
    best: list[float] = []  # per run kept: the reference kernel's best reading beside any of its points kept
    impl_of = {grid.class_name(i.name): i.name for i in registry.all_implementations()}
    for run, block in chosen:
        _own_meta(run, block)
        if block.asv_error:
            raise store.StoreError(block.asv_error)
        if not block.has_asv:
            if block.complete:  # a finished run whose timings were deleted: say so, don't answer silently
                warnings.append(f"run {run.id} is complete but has no {run.folder / 'asv.json'}: left out")
            continue
        source = _checks_source(block, earlier)
        if source is not None and source.checks_error:
            raise store.StoreError(source.checks_error)
        if block.points_error:
            raise store.StoreError(block.points_error)
        if block.points and not block.columns:  # facts alone: not one of newest_runs
            continue
        impl = block.columns["impl"].copy() if block.points else np.empty(0, dtype=object)
        keep = np.ones(len(impl), dtype=bool)
        for k in np.flatnonzero(block.columns[blocks.UNRESOLVED]) if block.points else ():
            name = impl_of.get(impl[k])
            keep[k], impl[k] = name is not None, name
        if not keep.any():
            if block.complete:
                warnings.append(f"run {run.id} is complete but its {run.folder / 'asv.json'} holds no softgrad "
                                f"benchmark results: left out")
            continue
        speed = block.columns["speed_s"][keep]
        speed = speed[~np.isnan(speed)]
        best.append(float(speed.min()) if len(speed) else math.nan)
        parts.append((block, source.run if source else "", (source.check_summary or {}) if source else None,
                      np.flatnonzero(keep), impl))
    if not parts:
        df = pd.DataFrame()
        df.attrs["warnings"] = warnings
        return df
    df = pd.DataFrame(_columns(parts))
    df = text_as_objects(df)
    df.attrs["warnings"] = warnings
    entries = {name: _entry(name) for name in df["impl"].unique()}
    df["family"] = df["impl"].map({n: e.family if e else "" for n, e in entries.items()})
    df["spread"] = (df["q75_s"] - df["q25_s"]) / df["time_s"]
    df["bytes_moved"] = _kept(parts, "bytes_moved")
    df["gbps"] = df["bytes_moved"] / df["time_s"] / 1e9
    df["bw_fraction"] = df["gbps"] / df["copy_gbps"]
    # data that fits in the last-level cache stays there between calls: its "bandwidth" is the cache's
    df["in_cache"] = df["bytes_moved"] <= df["llc_bytes"]
    # the one-off JIT cost to amortise: first call over a warm one, plus the cold build; 0 without a JIT.
    # The first call is tracked at a few row lengths (grid.TRACK_N_VALUES): other sizes take the excess
    # measured at the nearest tracked n of the same run, op, batch, dtype and device (blocks.nearest_tracked).
    jit = df["impl"].map({n: bool(e and e.compiles) for n, e in entries.items()})
    excess = pd.Series(_kept(parts, blocks.EXCESS), index=df.index)
    df["compile_s"] = (excess.fillna(0) + df["build_s"].fillna(0)).where(jit, 0.0)
    df["passed"] = df["checked"] & (df["check_failed"] == 0) & ~(df["error_ratio"] > 1)
    # measured while the whole machine ran slow (other tenants): the reference kernel beside the point took
    # SLOW_MACHINE times its best reading of the run, or longer
    reference = np.repeat(best, [len(keep) for _, _, _, keep, _ in parts])
    df["slow_machine"] = df["speed_s"].to_numpy() > SLOW_MACHINE * reference
    return df


def _kept(parts: list, column: str):
    """``column`` of the points kept of each run, one after the other."""
    import numpy as np

    return np.concatenate([b.columns[column] if len(keep) == b.points else b.columns[column][keep]
                           for b, _, _, keep, _ in parts])


def _columns(parts: list) -> dict[str, Any]:
    """The frame's base columns (:data:`_BASE`) from the runs' blocks: each point's own values as arrays, each
    run's and each run and implementation's as pandas infers them from those values (as from rows of dicts)."""
    import numpy as np
    import pandas as pd

    sizes = np.array([len(keep) for _, _, _, keep, _ in parts])
    per_run = np.repeat(np.arange(len(parts)), sizes)
    impl_all = np.concatenate([impl[keep] for _, _, _, keep, impl in parts])
    impl_code, impls = pd.factorize(impl_all)
    pair_of, pair_keys = pd.factorize(per_run * len(impls) + impl_code)  # each run and implementation
    keys = [(int(k) // len(impls), impls[int(k) % len(impls)]) for k in pair_keys]

    def spread(values: list, where: np.ndarray):
        return pd.Series(values).iloc[where].reset_index(drop=True)

    out: dict[str, Any] = {}
    for col in (*RUN_COLUMNS, *VERSION_COLUMNS):
        out[col] = spread([b.info[col] for b, _, _, _, _ in parts], per_run)
    out["checks_from"] = spread([source for _, source, _, _, _ in parts], per_run)
    out["impl"] = impl_all
    for col in ("op", "shape", "batch", "n", "x_layout", "g_layout", "dtype", "device"):
        out[col] = _kept(parts, col)
    out["build_s"] = pd.to_numeric(spread([parts[p][0].build_s.get(name) for p, name in keys], pair_of),
                                   errors="coerce")
    for col in blocks.VALUES:
        out[col] = _kept(parts, col)
    checks = [parts[p][2].get(name) if parts[p][2] is not None else None for p, name in keys]
    out["checked"] = spread([c is not None for c in checks], pair_of)
    out["check_passed"] = spread([c["check_passed"] if c else 0 for c in checks], pair_of)
    out["check_failed"] = spread([c["check_failed"] if c else 0 for c in checks], pair_of)
    out["check_worst_ratio"] = spread([c["check_worst_ratio"] if c else math.nan for c in checks], pair_of)
    out["failed_cases"] = spread(["; ".join(c["failed_cases"][:5]) if c else "" for c in checks], pair_of)
    return {col: out[col] for col in _BASE}


def agreement_warning(run: store.Run) -> str | None:
    """A line when some of the run's points disagree with the frameworks' own timers beyond their bound."""
    from ..bench.agreement import warning

    return warning(run.agreement(), run.id)


def _nearest_tracked(values, df):
    """``values`` with each missing entry taken from the same run, implementation, op, batch, dtype and
    device at the nearest row length (in log2 n) where it is known."""
    import pandas as pd

    keys = [df[c].to_numpy() for c in ("run", "impl", "op", "batch", "dtype", "device")]
    filled = blocks.nearest_tracked(values.to_numpy(dtype=float), keys, df["n"].to_numpy())
    return pd.Series(filled, index=values.index)


def _entry(name: str) -> registry.Implementation | None:
    try:
        return registry.get(name)
    except KeyError:  # a plugin not loaded in this process
        return None


def latest(df, machine: str | None = None):
    """The rows of the newest run (on ``machine``, default: the newest run's machine)."""
    if df.empty:
        return df
    if machine is not None:
        df = df[df["machine"] == machine]
    newest = df.sort_values("run")["run"].iloc[-1]
    return df[df["run"] == newest]


def _on_machine(df, machine: str | None):
    """The rows of ``machine`` (default: the newest run's machine); ``df`` itself when every row is."""
    machine = machine if machine is not None else df["machine"].iloc[df["run"].to_numpy().argmax()]
    mine = df["machine"] == machine
    return df if mine.all() else df[mine]


def latest_per_workload(df, machine: str | None = None):
    """The rows of the newest run of each workload (on ``machine``, default: the newest run's machine): what
    the report's Workloads section shows."""
    if df.empty:
        return df
    df = _on_machine(df, machine)
    workload = df["workload"] if "workload" in df else "default"
    newest = df.assign(_w=workload).groupby("_w")["run"].transform("max")
    return df[df["run"] == newest]


#: one entry at one point: ``choose`` answers from the newest measurement of each
ENTRY_POINT = blocks.ENTRY_POINT


def newest_per_entry(df, machine: str | None = None):
    """Per entry and point (:data:`ENTRY_POINT`), the row of the newest run on ``machine`` (default: the newest
    run's machine) that timed it, else (no run stored a time there) the newest run's row, its time NaN: what
    ``choose`` answers from. A newer run of other entries or other shapes hides nothing; whether the entry
    passed is the verdict of the run that timed it (``passed``), and ``run``/``date`` say which and when."""
    import numpy as np
    import pandas as pd

    if df.empty:
        return df
    df = _on_machine(df, machine)
    if df.empty:
        return df
    point = df.groupby(list(ENTRY_POINT), sort=False, dropna=False).ngroup().to_numpy()
    run_rank = pd.factorize(df["run"], sort=True)[0]
    timed = df["time_s"].notna().to_numpy()
    # per point, the last row by (timed, run, position): a stable sort on (timed, run), keeping the last
    order = np.lexsort((np.arange(len(df)), run_rank, timed, point))
    last = order[np.r_[point[order][1:] != point[order][:-1], True]]
    return df.iloc[last[np.lexsort((last, run_rank[last], timed[last]))]].sort_index()


def load_checks(runs: list[store.Run] | None = None, complete_only: bool = True):
    """One row per stored check record, with its run's id, commit and date."""
    import pandas as pd

    chosen, _ = _blocks(runs, complete_only, checks=True)
    rows = []
    for run, block in chosen:
        _own_meta(run, block)
        if block.checks_error:
            raise store.StoreError(block.checks_error)
        for r in block.checks or []:
            rows.append({"run": run.id, "date": block.info.get("date"), "commit": block.info.get("commit"), **r})
    return text_as_objects(pd.DataFrame(rows))
