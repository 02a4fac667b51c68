"""``softgrad gate``: the nightly regression gate that reads the whole history (``softgrad compare`` judges two
runs).

The newest complete run (of ``--workload``, when given) is judged against every earlier run of its workload on
its machine, benchmark by benchmark, over the time (normalized where every run has it, else seconds):

- a **regression** is a step up past the threshold that holds on the newest run and first held within the
  newest :data:`WINDOW` runs of the benchmark, by more than ``min_delta_s`` in seconds: the gate fails and
  names the likely cause (what changed between the runs on either side,
  :func:`softgrad.history.changes.differences`). The steps are :mod:`softgrad.history.changes`' (asv's
  levels, creeps) and, since asv's levels (fitting correlated noise) often keep the newest few runs in the
  level before them, the newest two or more runs that are each past the threshold and :data:`TAIL_Z` robust
  sigmas over the earlier runs of the last level;
- an **outlier** is the newest run alone so far above that level: it warns, and fails only when the rerun
  reproduces it. A one-night blip that the next night clears is then nothing;
- a step up that holds but first held before the window is **known**: listed, not failed again.

With a rerun (``--confirm``, :mod:`softgrad.bench.confirm`) each regression and outlier is kept when the rerun
is slower than the level before it by compare's test (:func:`softgrad.history.gate.confirm_findings`, at a
factor of 1 + threshold); the others are cleared. Correctness is judged as compare does, between the newest run
and the one before it of the same workload (:func:`softgrad.history.gate.correctness`). A gate that compared
nothing fails and says why: the first run of a workload on a machine, the newest run without results, no
benchmark of it timed before. An empty store is refused as compare refuses it
(:class:`~softgrad.history.store.StoreError`), a workload neither stored nor a preset is a
:class:`~softgrad.history.changes.HistoryError`. ``benchmarks/replay_history.py`` measures false alarms and
detection on replayed noise.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..workloads import PRESETS
from . import changes, gate, results, store

TIME = changes.METRICS[0]
#: a change is new while it first held within this many of the benchmark's newest runs: the night it shows
#: (an outlier, failed when the rerun reproduces it), the next (a level of two runs) and one more, since
#: asv's levels may place a step a run late in the noise (benchmarks/replay_history.py measures the choice)
WINDOW = 3
THRESHOLD = changes.THRESHOLD
#: the newest runs must each be this many sigmas of the level before them over it (and past the threshold):
#: two runs at once by chance, about 1 in 10**5 for normal noise
TAIL_Z = 2.5
_SIGMA_PER_MEDIAN_AD = 1.4826


@dataclass(frozen=True)
class Suspect:
    """A move of one benchmark's series that the gate judges: ``kind`` "step" or "creep" (a change of the
    history that holds on the newest run; ``new`` when it first held within the window) or "outlier" (the
    newest run alone above the level before it)."""

    kind: str
    new: bool
    event: changes.Event


def _holds(e: changes.Event, y: Sequence[float], last: int) -> bool:
    """Whether the newest run (position ``last``) is at the level after ``e``: nearer it than the level before,
    in ratio (asv may put one run at the end of a series in the level before it, whichever it is nearer)."""
    return y[last] >= math.sqrt(e.before.value * e.after.value)


def judge(y: Sequence[float], w: Sequence[float | None] | None, own: Sequence[float],
          threshold: float = THRESHOLD, window: int = WINDOW) -> Suspect | None:
    """The rise of one benchmark's series (``y`` oldest first, NaN: not timed; asv's weights ``w``; each run's
    own sigma ``own``, as :func:`softgrad.history.changes.values` gives them) that holds on its newest run: the
    newest new one, else the newest known one; None when there is none, or the newest run did not time it, or
    nothing earlier did."""
    valid = [i for i, v in enumerate(y) if v == v]
    last = len(y) - 1
    if len(valid) < 2 or valid[-1] != last:
        return None
    found = changes.levels(y, w) if len(valid) >= changes.MIN_HISTORY else []
    recent = valid[-min(window, len(valid))]
    held = [Suspect(e.kind, e.at >= recent, e) for e in (changes.events(y, w, own, threshold, found) if found else [])
            if e.after.value > e.before.value and _holds(e, y, last)]
    if held and held[-1].new:
        return held[-1]
    # asv's levels (fitting correlated noise) often leave the newest few runs in the level before them: the
    # newest runs each past the threshold and TAIL_Z sigmas over the earlier runs of the last level (too few
    # runs for levels: every earlier run) are a step when two or more, else the newest run alone, an outlier
    e = _tail(y, own, found, valid, threshold)
    if e is not None:
        if e.at == last:
            return Suspect("outlier", True, e)
        if e.at >= recent or not held:
            return Suspect("step", e.at >= recent, e)
    return held[-1] if held else None


def robust_sigma(y: Sequence[float], at: Sequence[int], own: Sequence[float]) -> float:
    """The scatter of the runs ``at`` as a normal sigma, from their median absolute deviation (a slow night
    among them moves it little), at least the median of their own sigmas."""
    values = [y[i] for i in at]
    mid = statistics.median(values)
    spreads = [own[i] for i in at if math.isfinite(own[i])]
    return max(_SIGMA_PER_MEDIAN_AD * statistics.median(abs(v - mid) for v in values),
               statistics.median(spreads) if spreads else 0.0)


def _tail(y: Sequence[float], own: Sequence[float], found: Sequence[changes.Level], valid: Sequence[int],
          threshold: float) -> changes.Event | None:
    """The longest run of newest runs each past ``threshold`` and :data:`TAIL_Z` sigmas (:func:`robust_sigma`)
    over the earlier runs of the last level (at least MIN_RUNS of them, else every earlier run), as a step
    after them; None when the newest is not."""
    pool = found[-1].at if found else valid
    best = None
    for k in range(1, len(valid)):
        tail = valid[-k:]
        before = [i for i in pool if i < tail[0]]
        if len(before) < changes.MIN_RUNS:
            before = [i for i in valid if i < tail[0]]
        base = changes.level(y, before)
        floor = max(base.value * (1 + threshold), base.value + TAIL_Z * robust_sigma(y, before, own))
        if not all(y[i] > floor for i in tail):
            break
        best = (before, base, tail)
    if best is None:
        return None
    before, base, tail = best
    now = changes.level(y, tail)
    return changes.Event("step", before[-1], tail[0], base, now, changes.half_width(base, own),
                         changes.half_width(now, own))


# --- the stored history ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """A suspect of one benchmark with its change point (what changed named) and the finding a rerun judges."""

    suspect: Suspect
    change: changes.Change
    finding: gate.Finding
    #: set by a rerun: "confirmed" or "cleared" (with the rerun's time in ``finding.detail``)
    rerun: str | None = None

    @property
    def fails(self) -> bool:
        """Whether this flag fails the gate: a new regression no rerun cleared, an outlier a rerun reproduced."""
        if self.suspect.kind == "outlier":
            return self.rerun == "confirmed"
        return self.suspect.new and self.rerun != "cleared"

    def line(self, window: int = WINDOW) -> str:
        text = self.change.line()
        rerun = f"; {self.finding.detail}" if self.rerun else ""
        if self.suspect.kind == "outlier":
            said = ("the newest run alone, reproduced by the rerun" if self.rerun == "confirmed" else
                    "the newest run alone, not reproduced" if self.rerun == "cleared" else
                    "the newest run alone: a warning until a second night or a rerun (--confirm) reproduces it")
            return f"{'SLOWER' if self.fails else 'OUTLIER':7s} {text} [{said}{rerun}]"
        if not self.suspect.new:
            return f"known   {text} [held since before the newest {window} runs: not failed again]"
        return f"{'SLOWER' if self.fails else 'cleared':7s} {text}" + (f" [{self.finding.detail}]" if rerun else "")


@dataclass(frozen=True)
class Verdict:
    """What :func:`judge_store` found for the newest run (``nothing``: why nothing was compared)."""

    run: str | None
    machine: str | None
    workload: str | None
    earlier: int = 0  # earlier runs of the workload on the machine
    judged: int = 0  # benchmarks of the newest run timed by an earlier one
    threshold: float = THRESHOLD
    window: int = WINDOW
    flags: list[Flag] = field(default_factory=list)
    errors: list[gate.Finding] = field(default_factory=list)
    nothing: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.nothing or self.errors or any(f.fails for f in self.flags))

    def to_rerun(self) -> list[gate.Finding]:
        """The findings a rerun judges: each new regression and outlier."""
        return [f.finding for f in self.flags if f.suspect.new]

    def after_rerun(self, kept: Sequence[gate.Finding], cleared: Sequence[gate.Finding]) -> Verdict:
        """This verdict with a rerun's outcome (:func:`softgrad.history.gate.confirm_findings`' split)."""
        outcome = {f.key: ("confirmed", f) for f in kept} | {f.key: ("cleared", f) for f in cleared}
        flags = [dataclasses.replace(fl, rerun=outcome[fl.finding.key][0], finding=outcome[fl.finding.key][1])
                 if fl.suspect.new and fl.finding.key in outcome else fl for fl in self.flags]
        return dataclasses.replace(self, flags=flags)

    def lines(self) -> list[str]:
        head = (f"softgrad gate: run {self.run} (workload {self.workload}) against {self.earlier} earlier run"
                f"{'' if self.earlier == 1 else 's'} on machine {self.machine}: {self.judged} benchmarks judged, "
                f"threshold {self.threshold:.0%}")
        if self.nothing:
            return [head] if self.run else []
        out = [head]
        for fl in self.flags:
            out += [fl.line(self.window), *fl.change.commit_lines()]
        out += [f.line() for f in self.errors]
        slower = sum(f.fails for f in self.flags)
        warned = sum(f.suspect.kind == "outlier" and f.rerun is None for f in self.flags)
        known = sum(not f.suspect.new for f in self.flags)
        cleared = sum(f.rerun == "cleared" for f in self.flags)
        counts = [f"{slower} slower", f"{len(self.errors)} correctness regressions"]
        counts += [f"{n} {what}" for n, what in ((warned, "outliers warned"), (cleared, "cleared by a rerun"),
                                                 (known, "known steps")) if n]
        return out + ["softgrad gate: " + ", ".join(counts) + ("" if self.failed else " (no regression)")]


def _median(values: Sequence[float], at: Sequence[int]) -> float:
    finite = [values[i] for i in at if math.isfinite(values[i])]
    return statistics.median(finite) if finite else math.nan


def flag_of(g, key: Sequence[Any], threshold: float = THRESHOLD, window: int = WINDOW,
            min_delta_s: float = gate.DEFAULT_MIN_DELTA_S) -> Flag | None:
    """The flag of one benchmark's rows ``g`` (in time order, the newest run last; ``key`` as
    :data:`softgrad.history.changes.BENCHMARK`): :func:`judge`'s suspect when it moved by more than
    ``min_delta_s`` in seconds, without what changed; None when there is none."""
    basis, y, w, own = changes.values(g, TIME)
    s = judge(y, w, own, threshold, window)
    if s is None:
        return None
    e = s.event
    seconds = [float(v) for v in g["time_s"]]
    t_before, t_after = _median(seconds, e.before.at), _median(seconds, e.after.at)
    if not t_after - t_before > min_delta_s:
        return None
    column = "norm_q75" if basis == "normalized" else "q75_s"
    q75 = _median([float(v) for v in g[column]], e.before.at) if column in g else math.nan
    workload, impl, op, shape, dtype, device = (str(k) for k in key)
    moved = f"{t_before * 1e6:.4g} us -> {t_after * 1e6:.4g} us"
    finding = gate.Finding("slower", impl, op, shape, dtype, device, moved,
                           old_s=e.before.value, old_q75_s=q75 if math.isfinite(q75) else e.before.value,
                           basis="norm" if basis == "normalized" else "time", old_time_s=t_before)
    return Flag(s, changes.change(e, TIME, basis, key, list(g["run"]), list(g["date"]), y), finding)


def _nothing(df, machine: str | None, workload: str, newest: str, earlier: list[str]) -> str:
    if not earlier:
        return (f"run {newest} is the first run of workload {workload} on machine {machine}: the gate needs an "
                f"earlier one to judge it against")
    new_run, old_run = (store.Run(store.runs_dir() / rid) for rid in (newest, earlier[-1]))
    return (f"no benchmark of run {newest} was timed by an earlier run of workload {workload} on machine "
            f"{machine}: {gate.contents(new_run, df[df['run'] == newest])}; "
            f"{gate.contents(old_run, df[df['run'] == earlier[-1]])}")


def newest_run(run_metas: Mapping[str, Mapping[str, Any]], workload: str | None = None) -> str | None:
    """The newest of the runs ``run_metas`` (run id -> meta.json) of ``workload`` (default: any), by date as
    :func:`softgrad.history.changes.in_order` orders them; None when there is none."""
    import pandas as pd

    runs = [(rid, meta.get("date")) for rid, meta in run_metas.items()
            if workload is None or results.workload_name(dict(meta)) == workload]
    if not runs:
        return None
    return str(changes.in_order(pd.DataFrame(runs, columns=["run", "date"]))["run"].iloc[-1])


def judge_store(df, run_metas: Mapping[str, Mapping[str, Any]], *, workload: str | None = None,
                threshold: float = THRESHOLD, window: int = WINDOW, min_delta_s: float = gate.DEFAULT_MIN_DELTA_S,
                repo: Path | None = None, machine: str | None = None) -> Verdict:
    """The verdict on the newest complete run (of ``workload``; on ``machine``, default any) of ``run_metas``
    (run id -> meta.json of every complete run) against the earlier runs of its workload on its machine in
    ``df`` (results.load()'s frame), with what changed at each flag."""
    stored = sorted({results.workload_name(dict(m)) for m in run_metas.values()})
    if workload is not None and workload not in stored and workload not in PRESETS:
        raise changes.HistoryError(f"no stored run of workload {workload!r}, nor a preset of that name (stored: "
                                   f"{', '.join(stored) or 'none'})")
    if not run_metas:  # as compare: an empty history is unusable stored data, not a comparison
        raise store.StoreError(f"need two complete runs to judge the newest, found 0 in {store.runs_dir()}")
    newest = newest_run({rid: m for rid, m in run_metas.items() if machine is None or m.get("machine") == machine},
                        workload)
    if newest is None:
        on = f" on machine {machine}" if machine is not None else ""
        return Verdict(None, machine, workload, threshold=threshold,
                       nothing=f"no complete run of workload {workload}{on} yet (stored: {', '.join(stored)})")
    meta = run_metas[newest]
    workload, machine = results.workload_name(dict(meta)), meta.get("machine")
    if df.empty or newest not in set(df["run"]):
        return Verdict(newest, machine, workload, threshold=threshold,
                       nothing=f"run {newest} has no benchmark results (its asv.json is missing or holds none)")
    hist = changes.runs_on(changes.in_order(df[df["workload"] == workload]), machine)
    earlier = [r for r in dict.fromkeys(hist["run"]) if r != newest]
    hist = hist[hist["run"].isin([*earlier, newest])]
    timed = hist[hist["time_s"].notna() & (hist["time_s"] > 0)]
    flags: list[Flag] = []
    judged = 0
    new_keys = set(timed[timed["run"] == newest][list(changes.BENCHMARK)].itertuples(index=False, name=None))
    for key, g in timed.groupby(list(changes.BENCHMARK), sort=False, dropna=False):
        if key not in new_keys or len(g) < 2:
            continue
        judged += 1
        flag = flag_of(g, key, threshold, window, min_delta_s)
        flags += [flag] if flag else []
    verdict = Verdict(newest, machine, workload, len(earlier), judged, threshold, window)
    if not judged:
        return dataclasses.replace(verdict, nothing=_nothing(hist, machine, workload, newest, earlier))
    explained = changes.explain([f.change for f in flags], run_metas, repo)
    flags = [dataclasses.replace(f, change=c) for f, c in zip(flags, explained)]
    flags.sort(key=lambda f: (not f.fails, f.suspect.kind == "outlier", not f.suspect.new, f.change.name()))
    new_run, old_run = (store.Run(store.runs_dir() / rid) for rid in (newest, earlier[-1]))
    errors = gate.correctness(hist[hist["run"] == earlier[-1]], hist[hist["run"] == newest],
                              results.load_checks([new_run]), results.load_checks([old_run]))
    return dataclasses.replace(verdict, flags=flags, errors=errors)
