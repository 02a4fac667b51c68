"""``softgrad compare``: the regression gate between two stored runs (default: the last two complete ones).

A benchmark is a **speed regression** when its median is slower (compared over the machine's speed
measured beside it in both runs, ``norm`` of :func:`softgrad.bench.sweep.normalized`, where both runs have
it; else in seconds), after dividing out what drift remains between the runs (:func:`machine_drift`), by more than ``factor``, the interquartile ranges do not
overlap, and it lost more than ``min_delta_s`` (:func:`slower`). A **correctness regression** is an error
that crossed its tolerance since the old run, or a check case that now fails (one failing in both runs is
a known failure). :func:`compare_runs` gives the findings; :func:`confirm_findings` keeps the slowdowns a
rerun (:mod:`softgrad.bench.confirm`) reproduces.

A gate that compared nothing must not pass: two runs with no benchmark timed in both (other workloads,
other entries) are a :class:`Comparison` with ``compared == 0`` and the reason in ``nothing`` (naming each
run's workload and entries), which ``softgrad compare`` fails. A run compared with itself, or a newer run
given as the old one, is refused (:class:`~softgrad.history.store.StoreError`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import results, store

DEFAULT_FACTOR = 1.2
#: each run times a benchmark in a fresh process, and at tens of microseconds the process itself (where the
#: allocator's pages land) moved the median by up to 2x on the 2-core machines (a 24 us allocation-bound call
#: read 42 us in the second of two identical runs): smaller absolute slowdowns are not flagged
DEFAULT_MIN_DELTA_S = 50e-6


#: fewest benchmarks from which the machine's drift between two runs is estimated
MIN_FOR_DRIFT = 8


def machine_drift(ratios) -> float:
    """How much slower the whole machine ran the new run (shared 2-core machines ran 10-30% slower for
    minutes at a time, so only ratios within a run are trustworthy): the lower quartile of the new/old ratios over all
    benchmarks (it assumes at least a quarter of them did not get slower; a median would absorb a
    regression of one implementation out of three), 1 when too few to tell. Never below 1: a faster
    machine must not hide a slowdown, and a uniformly slower one is not a regression of the code."""
    ratios = np.asarray(ratios, dtype=float)
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size < MIN_FOR_DRIFT:
        return 1.0
    return max(1.0, float(np.percentile(ratios, 25)))


def slower(t_old: float, q75_old: float, t_new: float, q25_new: float, factor: float, min_delta_s: float) -> bool:
    """The gate's test: slower by more than ``factor``, quartiles apart, and by more than ``min_delta_s``."""
    return t_new > factor * t_old and q25_new > q75_old and t_new - t_old > min_delta_s


def confirm_findings(findings: list["Finding"], rerun_rows: dict[tuple, dict[str, float]],
                     factor: float = DEFAULT_FACTOR, min_delta_s: float = DEFAULT_MIN_DELTA_S,
                     ) -> tuple[list["Finding"], list["Finding"]]:
    """Split the findings into (kept, cleared): a slowdown is cleared when its rerun is not slower by the
    same test; correctness findings, and slowdowns the rerun did not measure, are kept."""
    kept: list[Finding] = []
    cleared: list[Finding] = []
    for f in findings:
        row = rerun_rows.get(f.key) if f.kind == "slower" else None
        col = "norm" if f.basis == "norm" else "time_s"
        if row is None or not math.isfinite(row.get(col, math.nan)):
            kept.append(f)
            continue
        now = row[col]
        q25 = row.get("norm_q25" if f.basis == "norm" else "q25_s", math.nan)
        q25 = q25 if math.isfinite(q25) else now
        old_time = f.old_time_s if math.isfinite(f.old_time_s) else f.old_s
        t = row["time_s"]
        still = slower(f.old_s, f.old_q75_s, now, q25, factor, 0.0) and t - old_time > min_delta_s
        if still:
            kept.append(dataclasses.replace(f, detail=f"{f.detail}; rerun {t * 1e6:.4g} us"))
        else:
            cleared.append(dataclasses.replace(f, detail=f"{f.detail}; rerun {t * 1e6:.4g} us: not reproduced"))
    return kept, cleared


@dataclass(frozen=True)
class Finding:
    kind: str  # "slower" | "error"
    impl: str
    op: str
    shape: str
    dtype: str
    device: str
    detail: str
    #: for "slower": the old run's median and upper quartile scaled by the machine's drift (what the
    #: new time was tested against)
    old_s: float = math.nan
    old_q75_s: float = math.nan
    #: what ``old_s`` and ``old_q75_s`` are: "time" (seconds) or "norm" (over the machine's speed)
    basis: str = "time"
    #: the old run's time in seconds, scaled by the drift (the minimum-delta test is in seconds)
    old_time_s: float = math.nan

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.impl, self.op, self.shape, self.dtype, self.device)

    def line(self) -> str:
        return f"{self.kind.upper():7s} {self.impl} {self.op} {self.shape} {self.dtype} {self.device}: {self.detail}"


#: what names one benchmark in a run's rows
KEYS = ["impl", "op", "shape", "dtype", "device"]


def compare_frames(old, new, factor: float = DEFAULT_FACTOR, min_delta_s: float = DEFAULT_MIN_DELTA_S,
                   new_checks=None, old_checks=None) -> tuple[list[Finding], int]:
    """Findings between two runs' rows (as from :func:`softgrad.history.results.load`) and the number compared."""
    merged = old.merge(new, on=KEYS, suffixes=("_old", "_new"))
    timed = merged[np.isfinite(merged["time_s_old"]) & np.isfinite(merged["time_s_new"])]
    # times over the machine's speed measured beside them, where both runs have it; else the raw times
    # and one drift for the whole run
    has_norm = {"norm_old", "norm_new", "norm_q25_new", "norm_q75_old"} <= set(timed.columns)
    raw = (timed["time_s_new"] / timed["time_s_old"]).to_numpy(dtype=float)
    if has_norm:
        normed = (np.isfinite(timed["norm_old"]) & np.isfinite(timed["norm_new"])).to_numpy()
        ratios = np.where(normed, (timed["norm_new"] / timed["norm_old"]).to_numpy(dtype=float), raw)
    else:
        normed, ratios = np.zeros(len(timed), dtype=bool), raw
    drift = machine_drift(ratios)
    findings: list[Finding] = []
    for r, by_speed in zip(timed.itertuples(index=False), normed):
        if by_speed:  # dimensionless: calls of the reference kernel per call
            base, base_q75, now, now_q25 = r.norm_old, r.norm_q75_old, r.norm_new, r.norm_q25_new
        else:
            base, now = r.time_s_old, r.time_s_new
            base_q75 = r.q75_s_old if math.isfinite(r.q75_s_old) else base
            now_q25 = r.q25_s_new if math.isfinite(r.q25_s_new) else now
        # the old run's figures as this machine would have measured them during the new run
        t_old, q75_old = base * drift, base_q75 * drift
        if slower(t_old, q75_old, now, now_q25, factor, 0.0) and r.time_s_new - r.time_s_old * drift > min_delta_s:
            basis = "over the machine's speed beside them" if by_speed else "raw"
            findings.append(Finding("slower", r.impl, r.op, r.shape, r.dtype, r.device,
                                    f"{r.time_s_old * 1e6:.4g} us -> {r.time_s_new * 1e6:.4g} us ({now / t_old:.2f}x "
                                    f"{basis}, after a drift of {drift:.2f}x; threshold {factor:.2f}x; IQRs do not "
                                    f"overlap)", old_s=t_old, old_q75_s=q75_old,
                                    basis="norm" if by_speed else "time", old_time_s=r.time_s_old * drift))
    return findings + correctness(old, new, new_checks, old_checks), len(timed)


def correctness(old, new, new_checks=None, old_checks=None) -> list[Finding]:
    """The correctness regressions between two runs' rows and check records: an error that crossed its
    tolerance since the old run, a check case that now fails (one already failing there is a known failure)."""
    findings: list[Finding] = []
    old_err = {tuple(getattr(r, k) for k in KEYS): r.error_ratio for r in old.itertuples(index=False)}
    for r in new.itertuples(index=False):
        key = tuple(getattr(r, k) for k in KEYS)
        if r.error_ratio > 1 and not old_err.get(key, 0) > 1:
            findings.append(Finding("error", r.impl, r.op, r.shape, r.dtype, r.device,
                                    f"error {r.error_ratio:.3g}x the tolerance (was {old_err.get(key, math.nan):.3g})"))
    if new_checks is not None and not new_checks.empty:
        failed_before = set()
        if old_checks is not None and not old_checks.empty:
            failed_before = {(r.impl, r.op, r.dtype, r.device, r.case)
                             for r in old_checks[old_checks["verdict"] == "fail"].itertuples(index=False)}
        for r in new_checks[new_checks["verdict"] == "fail"].itertuples(index=False):
            if (r.impl, r.op, r.dtype, r.device, r.case) in failed_before:
                continue
            findings.append(Finding("error", r.impl, r.op, f"case {r.case}", r.dtype, r.device, r.message or "failed"))
    return findings


def _timed(df):
    """A run's rows that have a time (a skipped or failed benchmark has none)."""
    return df[np.isfinite(df["time_s"].to_numpy(dtype=float))]


def unmatched(old, new) -> tuple[int, int]:
    """How many benchmarks the old run timed that the new one did not, and the other way round: those had
    no counterpart and were not compared."""
    old_keys, new_keys = (set(_timed(df)[KEYS].itertuples(index=False, name=None)) for df in (old, new))
    return len(old_keys - new_keys), len(new_keys - old_keys)


def _some(values, most: int = 6) -> str:
    values = sorted(set(map(str, values)))
    return ", ".join(values[:most]) + (f" and {len(values) - most} more" if len(values) > most else "")


def contents(run: store.Run, df) -> str:
    """What one run timed, in a few words: its workload, how many benchmarks, of which entries, shapes and dtypes."""
    timed = _timed(df)
    what = f"run {run.id} (workload {results.workload_name(run.meta())})"
    if timed.empty:
        return f"{what} timed no benchmark"
    return (f"{what} timed {len(timed)} benchmarks of {_some(timed['impl'])} at shapes {_some(timed['shape'])} "
            f"in {_some(timed['dtype'])}")


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_runs` found between two runs."""

    old: store.Run
    new: store.Run
    findings: list[Finding]
    #: benchmarks timed in both runs (the ones compared)
    compared: int
    #: benchmarks each run timed with no counterpart in the other (not compared)
    old_only: int = 0
    new_only: int = 0
    #: why nothing was compared ("" when something was): each run's workload and entries
    nothing: str = ""

    def unmatched_line(self) -> str | None:
        """A line saying how many benchmarks of each run had no counterpart; None when every one had one, or
        when nothing was compared (``nothing`` says why)."""
        if not self.compared or not (self.old_only or self.new_only):
            return None
        return (f"not compared (no counterpart in the other run): {self.old_only} benchmarks of the old run "
                f"{self.old.id}, {self.new_only} of the new run {self.new.id}")


def _split(df, ids: tuple[str, ...]) -> list:
    """``df``'s rows of each run of ``ids`` (a frame with no rows, or no columns, gives each the same)."""
    if df.empty or "run" not in df:
        return [df] * len(ids)
    return [df[df["run"] == rid] for rid in ids]


def complete_metas() -> dict[str, dict[str, Any]]:
    """Every complete run's ``meta.json`` by run id, oldest first, each file read once."""
    out = {}
    for run in store.all_runs():
        if run.meta_path.exists():
            meta = run.meta()
            if meta.get("complete"):
                out[run.id] = meta
    return out


def previous_run(runs: list[store.Run], new_run: store.Run,
                 metas: Mapping[str, Mapping[str, Any]] | None = None) -> store.Run:
    """The newest complete run before ``new_run`` on the same workload (the default grid's runs are one
    workload) and the same machine: a vocab run is never the baseline of a default-grid run, nor another
    machine's run of this one's. ``metas``: each run's meta.json by id, where read already."""
    meta = (lambda r: metas[r.id]) if metas is not None else (lambda r: r.meta())
    workload, machine = results.workload_name(dict(meta(new_run))), meta(new_run).get("machine")
    earlier = [r for r in runs if r.id < new_run.id and results.workload_name(dict(meta(r))) == workload
               and meta(r).get("machine") == machine]
    if not earlier:
        raise store.StoreError(f"no complete run before {new_run.id} on the {workload} workload on machine "
                               f"{machine} to compare with")
    return earlier[-1]


def compare_runs(old_id: str | None = None, new_id: str | None = None, factor: float = DEFAULT_FACTOR,
                 min_delta_s: float = DEFAULT_MIN_DELTA_S, machine: str | None = None,
                 metas: Mapping[str, Mapping[str, Any]] | None = None) -> Comparison:
    """Compare two stored runs by id (default: the last two complete runs of one workload, on ``machine``
    where given: its newest run against the one before it; ``metas``: :func:`complete_metas`, where read
    already). A run compared with itself, or an old run newer than the new one, is a
    :class:`~softgrad.history.store.StoreError`."""
    metas = complete_metas() if metas is None else metas
    home = store.runs_dir()
    runs = [store.Run(home / rid) for rid in metas]
    by_id = {r.id: r for r in runs}
    for rid in (old_id, new_id):
        if rid is not None and rid not in by_id:
            raise store.StoreError(f"no complete run {rid!r} in {store.runs_dir()}")
    if new_id is None:
        if len(runs) < (1 if old_id else 2):
            raise store.StoreError(f"need two complete runs to compare, found {len(runs)} in {store.runs_dir()}")
        pool = runs if machine is None else [r for r in runs if metas[r.id].get("machine") == machine]
        if not pool:
            raise store.StoreError(f"no complete run of machine {machine} in {store.runs_dir()}")
        new_run = pool[-1]
    else:
        new_run = by_id[new_id]
    if old_id is None:
        old_run = previous_run(runs, new_run, metas)
    else:
        old_run = by_id[old_id]
    if old_run.id == new_run.id:
        raise store.StoreError(f"run {old_run.id} is both the old and the new run: a run compared with itself "
                               f"checks nothing; name two runs")
    machines = metas[old_run.id].get("machine"), metas[new_run.id].get("machine")
    if machines[0] != machines[1]:
        raise store.StoreError(f"run {old_run.id} was timed on machine {machines[0]} and run {new_run.id} on "
                               f"{machines[1]}: the gate compares runs of one machine")
    if old_run.id > new_run.id:  # run ids sort by time
        raise store.StoreError(f"the old run {old_run.id} is newer than the new run {new_run.id}: name the older "
                               f"run first")
    old, new = _split(results.load([old_run, new_run]), (old_run.id, new_run.id))  # one read of the history
    if old.empty or new.empty:
        raise store.StoreError(f"run {old_run.id if old.empty else new_run.id} has no benchmark results")
    new_checks, old_checks = _split(results.load_checks([new_run, old_run]), (new_run.id, old_run.id))
    findings, n = compare_frames(old, new, factor, min_delta_s, new_checks, old_checks)
    old_only, new_only = unmatched(old, new)
    nothing = "" if n else (f"no benchmark was timed in both runs: {contents(old_run, old)}; "
                            f"{contents(new_run, new)}")
    return Comparison(old_run, new_run, findings, n, old_only, new_only, nothing)
