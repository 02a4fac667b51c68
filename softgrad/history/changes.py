"""Change points in the stored history: where a benchmark's time, error or peak memory moved, by how much,
and what changed between the runs on either side (``softgrad history``).

Per benchmark (:data:`BENCHMARK`) on one machine, the runs in date order (run id breaking ties, never file
order) give one series per metric (:data:`METRICS`): the time over the machine's speed measured beside it
(``norm`` of ``speed.json``) where every run of the series has it, else seconds (``basis`` says which); the
worst error over its tolerance; the peak memory. asv's :func:`~asv.step_detect.detect_steps` splits a series
into levels, weighted as ``asv publish`` weighs its points (2 / the width of a run's 99% interval; for
normalized times, which have quartiles only, 2 / the interquartile range; no weights for error and memory):

- a level of fewer than :data:`MIN_RUNS` runs (a one-night blip, or the newest run alone) is no level: its
  runs are left out as missing data and the levels found again;
- a **step** is a boundary between two levels that asv's :func:`~asv.step_detect.detect_regressions` flags
  when given those two levels and ``threshold`` (the move must beat the threshold and either level's scatter);
- a **creep** is a stretch between steps that moved past the threshold in smaller moves: asv's detector reads
  a staircase of small steps as one level with correlated noise, so each stretch is tested for a monotone
  trend (Mann-Kendall, ``|z| >=`` :data:`CREEP_Z`) and its first and last k runs (k = max(2, n // 5)) are
  judged as the two levels of a step;
- a change whose 95% interval holds no move at all is not reported;
- a change that later moved back part of the way (beyond both levels' intervals) says how much, and at
  which run (``recovered``, ``recovered_at``).

A size is after / before - 1, with a 95% interval from each level's scatter (1.25 x its mean absolute
deviation, at least the runs' own spread) as a median's standard error (1.25 sigma over the square root of
its runs). :func:`differences` compares the
meta.json of the run before a change with the first run at which it holds: commit (with ``git log
--oneline`` of the range when the repository is at hand), library versions, thread settings, machine
fingerprint, copy bandwidth; when exactly one thing changed it is named as the likely cause.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import statistics
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import registry
from ..workloads import PRESETS
from . import store
from .units import format_bytes, format_seconds

#: the relative move that counts (asv's regressions page defaults to 5%; normalized times of identical runs
#: on the shared 2-core machines move by a few percent)
THRESHOLD = 0.1
#: runs a level must hold (asv's ``min_size``): a single run is a blip, not a level
MIN_RUNS = 2
#: runs on one machine before any change point can be found: a level on either side
MIN_HISTORY = 2 * MIN_RUNS
#: |z| of the Mann-Kendall statistic that makes a stretch's drift a trend (two-sided p < 0.01)
CREEP_Z = 2.576
#: the copy bandwidth counts as changed when the two runs' figures differ by more than this fraction
COPY_CHANGE = 0.15
#: the libraries whose versions (meta.json "versions") are compared
LIBRARIES = ("numpy", "numba", "llvmlite", "torch", "jax", "jaxlib", "asv")
#: the meta.json fields that fingerprint the machine ("gpus": its fingerprint's GPU models and drivers)
FINGERPRINT = ("machine", "cpu", "cores", "memory_gib", "os", "arch", "gpus")
#: what names one benchmark
BENCHMARK = ("workload", "impl", "op", "shape", "dtype", "device")
#: commits of a range listed in a line (the JSON has them all)
SHOWN_COMMITS = 5
_Z95 = 1.96
#: a normal sigma over its mean absolute deviation, and a median's standard error over sigma / sqrt(n): sqrt(pi / 2)
_SIGMA_PER_MAD = math.sqrt(math.pi / 2)


class HistoryError(ValueError):
    """A request the stored history cannot answer (an implementation or workload it never timed)."""


@dataclass(frozen=True)
class Metric:
    """One measured quantity: its column, the smallest value that counts (values below count as it), and the
    words for a rise and a fall."""

    name: str
    column: str
    basis: str
    floor: float
    up: str
    down: str


METRICS = (
    Metric("time", "time_s", "seconds", 0.0, "slower", "faster"),
    # errors far inside the tolerance move by more than 10% with no meaning: below a tenth of it they count as a tenth
    Metric("error", "error_ratio", "error/tolerance", 0.1, "larger error", "smaller error"),
    Metric("memory", "peakmem_bytes", "bytes", 0.0, "more memory", "less memory"),
)


@dataclass(frozen=True)
class Difference:
    """One thing that differs between two runs' meta.json."""

    thing: str
    before: str
    after: str
    #: the commit range's ``git log --oneline`` (newest first); None when the repository is not at hand
    commits: tuple[str, ...] | None = None
    #: a thing of several fields (threads, machine): (field, before, after) of each that differs
    fields: tuple[tuple[str, str, str], ...] = ()

    def text(self) -> str:
        if self.fields:
            return f"{self.thing} " + ", ".join(f"{name} {old} -> {new}" for name, old, new in self.fields)
        if self.thing != "commit":
            return f"{self.thing} {self.before} -> {self.after}"
        text = f"commit {self.before}..{self.after}"
        if self.commits is not None and len(self.commits) == 1:
            return f"commit {self.commits[0]}"
        if self.commits:
            return f"{text} ({len(self.commits)} commits)"
        return text


@dataclass(frozen=True)
class Change:
    """One change point of one benchmark's metric."""

    metric: str
    basis: str
    kind: str  # "step" or "creep"
    benchmark: tuple[str, ...]  # as BENCHMARK
    run: str  # the first run at which it holds
    date: str | None
    before_run: str  # the last run before it
    before: float
    after: float
    low: float  # the size's 95% interval
    high: float
    runs: int  # runs from before_run to run (1 for a step)
    until_run: str | None = None  # a creep: the first run of its end level
    recovered: float | None = None  # the fraction a later level moved back
    recovered_at: str | None = None
    changed: tuple[Difference, ...] = ()

    @property
    def size(self) -> float:
        return self.after / self.before - 1

    @property
    def direction(self) -> str:
        metric = next(m for m in METRICS if m.name == self.metric)
        return metric.up if self.after > self.before else metric.down

    @property
    def cause(self) -> str | None:
        """The one thing that changed, or None (nothing, or several)."""
        return self.changed[0].text() if len(self.changed) == 1 else None

    def name(self) -> str:
        workload, *rest = self.benchmark
        return " ".join(rest) + ("" if workload == "default" else f" (workload {workload})")

    def line(self) -> str:
        when = f"{self.date[:10]} " if self.date else ""
        levels = f"{self.basis}: {_value(self.before, self.basis)} -> {_value(self.after, self.basis)}"
        text = f"{when}{self.run}  {self.name()}: {self.metric} "
        if self.kind == "step":
            text += (f"{_pct(self.size)} [{_pct(self.low)}, {_pct(self.high)}] {self.direction} ({levels}; "
                     f"run before {self.before_run})")
        else:
            text += (f"crept {_pct(self.size)} [{_pct(self.low)}, {_pct(self.high)}] {self.direction} over runs "
                     f"{self.before_run}..{self.until_run} ({levels}; past the threshold at this run)")
        if self.recovered is not None:
            text += f"; recovered {self.recovered:.0%} of it at run {self.recovered_at}"
        if not self.changed:
            return text + "; nothing meta.json records changed (the machine itself, or noise)"
        if self.cause:
            return text + f"; likely cause: {self.cause}"
        return text + "; changed: " + ", ".join(d.text() for d in self.changed)

    def commit_lines(self) -> list[str]:
        """The commits of the range, a few, for printing under :meth:`line`."""
        commits = next((d.commits for d in self.changed if d.thing == "commit" and d.commits), ())
        if len(commits) <= 1:
            return []
        more = len(commits) - SHOWN_COMMITS
        return [f"    {c}" for c in commits[:SHOWN_COMMITS]] + ([f"    ... and {more} more"] if more > 0 else [])

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": dict(zip(BENCHMARK, self.benchmark)), "metric": self.metric, "basis": self.basis,
                "kind": self.kind, "run": self.run, "date": self.date, "before_run": self.before_run,
                "runs": self.runs, "until_run": self.until_run, "before": self.before, "after": self.after,
                "size": self.size, "interval": [_finite(self.low), _finite(self.high)], "direction": self.direction,
                "recovered": self.recovered, "recovered_at": self.recovered_at, "likely_cause": self.cause,
                "changed": [{"thing": d.thing, "before": d.before, "after": d.after, "commits": d.commits}
                            for d in self.changed]}


@dataclass(frozen=True)
class History:
    """The change points of one machine's history, newest first (``note``: why none could be found)."""

    machine: str | None
    runs: int
    threshold: float
    changes: list[Change] = field(default_factory=list)
    note: str | None = None

    def lines(self) -> list[str]:
        if self.note:
            return [f"softgrad history: {self.note}"]
        out = [f"softgrad history: {self.runs} runs on machine {self.machine}, threshold {self.threshold:.0%}: "
               f"{len(self.changes) or 'no'} change point{'' if len(self.changes) == 1 else 's'}"
               + (", newest first" if len(self.changes) > 1 else "")]
        for c in self.changes:
            out += [c.line(), *c.commit_lines()]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "runs": self.runs, "threshold": self.threshold, "note": self.note,
                "changes": [c.to_dict() for c in self.changes]}



def _pct(x: float) -> str:
    return f"{x:+.0%}" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _value(v: float, basis: str) -> str:
    if basis == "seconds":
        return format_seconds(v)
    return format_bytes(v) if basis == "bytes" else f"{v:.3g}"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


# --- one series: levels, steps, creep, recovery ------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """Runs (positions in the series) at one level: its value and scatter (mean absolute deviation)."""

    at: tuple[int, ...]
    value: float
    scatter: float


@dataclass(frozen=True)
class Event:
    """A change found in one series, by position: ``before_at`` the last run before, ``at`` the first at which
    it holds."""

    kind: str
    before_at: int
    at: int
    before: Level
    after: Level
    half_before: float  # the levels' 95% half-widths
    half_after: float
    until_at: int | None = None
    recovered: float | None = None
    recovered_at: int | None = None

    def interval(self) -> tuple[float, float]:
        low = (self.after.value - self.half_after) / (self.before.value + self.half_before) - 1
        below = self.before.value - self.half_before
        high = (self.after.value + self.half_after) / below - 1 if below > 0 else math.inf
        return low, high


def level(y: Sequence[float], at: Sequence[int], value: float | None = None) -> Level:
    values = [y[i] for i in at]
    value = statistics.median(values) if value is None else value
    return Level(tuple(at), value, sum(abs(v - value) for v in values) / len(values))


def half_width(lv: Level, own: Sequence[float]) -> float:
    """The level's 95% half-width: its scatter as a normal sigma (1.25 x the mean absolute deviation), at least
    the median of its runs' own sigmas, as a median's standard error (1.25 sigma / sqrt(its runs))."""
    spreads = [own[i] for i in lv.at if math.isfinite(own[i])]
    sigma = max(_SIGMA_PER_MAD * lv.scatter, statistics.median(spreads) if spreads else 0.0)
    return _Z95 * _SIGMA_PER_MAD * sigma / math.sqrt(len(lv.at))


def flagged(before: Level, after: Level, threshold: float) -> bool:
    """asv's own test of a move from ``before`` to ``after``: :func:`~asv.step_detect.detect_regressions` given
    the two levels (a fall is a rise of the reciprocals)."""
    from asv.step_detect import detect_regressions

    levels = [(lv.value, lv.scatter, len(lv.at)) for lv in (before, after)]
    if after.value < before.value:
        levels = [(1 / v, s / v**2, n) for v, s, n in levels]
    (b, eb, nb), (a, ea, na) = levels
    steps = [(0, nb, b, b, eb), (nb, nb + na, a, a, ea)]
    return detect_regressions(steps, threshold)[2] is not None


def levels(y: Sequence[float], w: Sequence[float | None] | None) -> list[Level]:
    """asv's levels of ``y`` (NaN: missing), with every level of fewer than :data:`MIN_RUNS` runs left out
    as missing data and the rest found again; [] when fewer than :data:`MIN_HISTORY` runs remain."""
    from asv.step_detect import detect_steps

    y = list(y)
    while sum(v == v for v in y) >= MIN_HISTORY:
        steps = detect_steps(y, w)
        found = [(l, r, v) for l, r, v, _, _ in steps]
        runs = [[i for i in range(l, r) if y[i] == y[i]] for l, r, _ in found]
        short = [at for at in runs if len(at) < MIN_RUNS]
        if not short:
            return [level(y, at, v) for at, (_, _, v) in zip(runs, found)]
        for at in short:
            for i in at:
                y[i] = math.nan
    return []


def mann_kendall_z(values: Sequence[float]) -> float:
    """The Mann-Kendall trend statistic of ``values`` in order, as a normal z (ties corrected)."""
    import numpy as np

    n = len(values)
    a = np.asarray(values, dtype=float)
    later = np.triu(np.ones((n, n), dtype=bool), 1)  # each pair (i, j) with i < j, once
    s = int((a[None, :] > a[:, None])[later].sum()) - int((a[None, :] < a[:, None])[later].sum())
    ties: dict[float, int] = {}
    for v in values:
        ties[v] = ties.get(v, 0) + 1
    var = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties.values())) / 18
    if var <= 0 or s == 0:
        return 0.0
    return (s - math.copysign(1, s)) / math.sqrt(var)


def _recovery(event: Event, later: Sequence[Level], own: Sequence[float]) -> Event:
    """``event`` with the most a later level moved back (a fraction of the move, at most 1), where that move
    is beyond both levels' intervals."""
    move = event.after.value - event.before.value
    best, best_at = 0.0, None
    for lv in later:
        back = (event.after.value - lv.value) / move
        if back > best and abs(event.after.value - lv.value) > event.half_after + half_width(lv, own):
            best, best_at = back, lv.at[0]
    if best_at is None:
        return event
    return dataclasses.replace(event, recovered=min(best, 1.0), recovered_at=best_at)


def events(y: Sequence[float], w: Sequence[float | None] | None, own: Sequence[float],
           threshold: float = THRESHOLD, found: list[Level] | None = None) -> list[Event]:
    """The steps and creeps of one series in time order (``y``; NaN: missing), with asv's weights ``w`` and
    each run's own sigma ``own`` (NaN: unknown), oldest first; ``found``: :func:`levels` of it, when known."""
    found = levels(y, w) if found is None else found
    out = []
    stretch: list[Level] = []
    stretches = []
    for k, lv in enumerate(found):
        if k and flagged(found[k - 1], lv, threshold):
            prev = found[k - 1]
            out.append((Event("step", prev.at[-1], lv.at[0], prev, lv, half_width(prev, own), half_width(lv, own)),
                        found[k + 1:]))
            stretches.append(stretch)
            stretch = []
        stretch.append(lv)
    stretches.append(stretch)
    k = 0
    for part in stretches:
        k += len(part)
        creep = _creep(y, [i for lv in part for i in lv.at], own, threshold)
        if creep:
            out.append((creep, found[k:]))
    return sorted((_recovery(e, later, own) for e, later in out if _clear(e)), key=lambda e: e.at)


def _clear(event: Event) -> bool:
    """Whether the move's 95% interval leaves out no move at all."""
    low, high = event.interval()
    return low > 0 or high < 0


def _creep(y: Sequence[float], at: list[int], own: Sequence[float], threshold: float) -> Event | None:
    """The stretch of runs ``at`` as a creep: a monotone trend whose first and last k runs asv flags."""
    n = len(at)
    k = max(MIN_RUNS, n // 5)
    if n < 2 * k + 1:
        return None
    values = [y[i] for i in at]
    z = mann_kendall_z(values)
    start, end = level(y, at[:k]), level(y, at[-k:])
    if abs(z) < CREEP_Z or (z > 0) != (end.value > start.value) or not flagged(start, end, threshold):
        return None
    up = end.value > start.value

    def past(v: float) -> bool:
        return v > start.value * (1 + threshold) if up else v < start.value / (1 + threshold)

    # the first run that, with the next, is past the threshold, and whose next k runs' median is past it too
    holds = next((p for p in range(n) if all(map(past, values[p:p + MIN_RUNS]))
                  and past(statistics.median(values[p:p + k]))), n - k)
    # the last run before it still within the start level's scatter
    edge = start.value + math.copysign(_SIGMA_PER_MAD * start.scatter, end.value - start.value)
    before = next((p for p in range(holds - 1, -1, -1) if (values[p] <= edge if up else values[p] >= edge)),
                  max(holds - 1, 0))
    halves = half_width(start, own), half_width(end, own)
    if holds == before + 1:  # made whole between two consecutive runs: a step asv's levels missed in the noise
        return Event("step", at[before], at[holds], start, end, *halves)
    return Event("creep", at[before], at[holds], start, end, *halves, until_at=at[max(holds, n - k)])


# --- the frame: series per benchmark and metric ----------------------------------------------------------------


def in_order(df):
    """``df`` sorted by each run's date (else the time in its id), then run id; with the time as ``_when``."""
    import pandas as pd

    when = pd.to_datetime(df["date"], utc=True, errors="coerce", format="ISO8601")
    if when.isna().any():  # the time in the id of a run without a date (parsing every row's id costs)
        when = when.fillna(pd.to_datetime(df["run"].astype(str).str[:22], utc=True, errors="coerce",
                                          format="%Y%m%dT%H%M%S%fZ"))
    return df.assign(_when=when).sort_values(["_when", "run"], kind="stable", na_position="first")


def _column(g, name: str):
    import numpy as np

    return g[name].to_numpy(dtype=float) if name in g else np.full(len(g), np.nan)


def series(g, metric: Metric):
    """(basis, values, asv weights, each run's own sigma) of one benchmark's rows ``g`` (in time order) for
    ``metric``; None when it cannot move by a threshold (fewer than MIN_HISTORY values)."""
    found = values(g, metric)
    return found if sum(v == v for v in found[1]) >= MIN_HISTORY else None


def values(g, metric: Metric):
    """(basis, values, asv weights, each run's own sigma) of one benchmark's rows ``g`` (in time order) for
    ``metric``, however few (NaN: a run without a value)."""
    import numpy as np

    y = _column(g, metric.column)
    basis, own, weights = metric.basis, np.full(len(y), np.nan), None
    if metric.name == "time":
        norm = _column(g, "norm")
        timed = np.isfinite(y) & (y > 0)
        if timed.any() and (np.isfinite(norm[timed]) & (norm[timed] > 0)).all():
            basis, y = "normalized", np.where(timed, norm, np.nan)
            width = _column(g, "norm_q75") - _column(g, "norm_q25")
            # the samples' interquartile range as a normal sigma, then as their median's standard error where
            # the number of samples is known
            repeats = _column(g, "repeats")
            known = np.isfinite(repeats) & (repeats > 0)
            own = width / 1.349 * np.where(known, _SIGMA_PER_MAD / np.sqrt(np.where(known, repeats, 1.0)), 1.0)
        else:
            width = _column(g, "ci99_high_s") - _column(g, "ci99_low_s")
            own = width / (2 * 2.576)  # the median's 99% interval as a normal sigma
        # asv's _stats.get_weight: 2 / the interval's width; None (asv: the median weight) where unknown
        weights = [2 / x if math.isfinite(x) and x > 0 else None for x in np.abs(width)]
    valid = np.isfinite(y) & ((y > 0) | (metric.floor > 0))
    y = np.where(valid, np.maximum(y, metric.floor), np.nan)
    return basis, [float(v) for v in y], weights, [float(v) for v in own]


def newest_machine(ordered) -> str | None:
    """The machine of the newest run of ``ordered`` (None: not recorded)."""
    machine = ordered["machine"].iloc[-1]
    return machine if isinstance(machine, str) else None


def runs_on(df, machine: str | None):
    key = df["machine"].fillna("").astype(str)
    return df[key == (machine if isinstance(machine, str) else "")]


def change(e: Event, metric: Metric, basis: str, key: Sequence[Any], runs: Sequence[str], dates: Sequence[Any],
           y: Sequence[float]) -> Change:
    """The :class:`Change` of the event ``e`` found in the series ``y`` of the benchmark ``key`` (as
    :data:`BENCHMARK`), whose runs and dates are ``runs`` and ``dates``."""
    low, high = e.interval()
    return Change(metric.name, basis, e.kind, tuple(str(k) for k in key), runs[e.at],
                  dates[e.at] if isinstance(dates[e.at], str) else None, runs[e.before_at], e.before.value,
                  e.after.value, low, high, runs=sum(1 for i in range(e.before_at + 1, e.at + 1) if y[i] == y[i]),
                  until_run=None if e.until_at is None else runs[e.until_at], recovered=e.recovered,
                  recovered_at=None if e.recovered_at is None else runs[e.recovered_at])


def detect(df, *, machine: str | None = None, threshold: float = THRESHOLD) -> list[Change]:
    """Every change point of ``df`` (results.load()'s frame) on ``machine`` (default: the newest run's), newest
    first, without what changed (:func:`explain` adds it)."""
    if df.empty:
        return []
    if machine is None:
        df = in_order(df)
        df = runs_on(df, newest_machine(df))
    else:  # the machine's rows alone put in order (a stable sort: the order sorting every machine's gives)
        df = in_order(runs_on(df, machine))
    out = []
    for key, g in df.groupby(list(BENCHMARK), sort=False, dropna=False):
        runs, dates = list(g["run"]), list(g["date"])
        for metric in METRICS:
            found = series(g, metric)
            if found is None:
                continue
            basis, y, w, own = found
            finite = [v for v in y if v == v]
            if max(finite) < (1 + threshold) * min(finite):
                continue  # no two levels can be a threshold apart
            out += [change(e, metric, basis, key, runs, dates, y) for e in events(y, w, own, threshold)]
    order = {run: k for k, run in enumerate(dict.fromkeys(df["run"]))}
    out.sort(key=lambda c: (c.name(), c.metric))
    return sorted(out, key=lambda c: order[c.run], reverse=True)


# --- what changed -------------------------------------------------------------------------------------------

_HEX = re.compile(r"[0-9a-fA-F]{4,40}")


def git_log(repo: Path | None, old: str | None, new: str | None) -> tuple[str, ...] | None:
    """``git log --oneline old..new`` in ``repo`` (newest first); None when either commit is not there."""
    if repo is None or not (old and new and _HEX.fullmatch(old) and _HEX.fullmatch(new)):
        return None
    try:
        out = subprocess.run(["git", "-C", str(repo), "log", "--oneline", "--no-decorate", f"{old}..{new}"],
                             capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return tuple(line for line in out.stdout.splitlines() if line.strip())


def _shown(value: Any) -> str:
    if value is None:
        return "default"
    return "not installed" if value == "" else str(value)


def _fields(thing: str, before: Mapping, after: Mapping, names) -> list[Difference]:
    """``thing`` as one :class:`Difference` over the fields ``names`` both record and that differ; [] when none does."""
    moved = [(n, _shown(before[n]), _shown(after[n])) for n in names if n in before and n in after
             and before[n] != after[n]]
    if not moved:
        return []
    return [Difference(thing, ", ".join(f"{n} {old}" for n, old, _ in moved),
                       ", ".join(f"{n} {new}" for n, _, new in moved), fields=tuple(moved))]


def differences(before: Mapping[str, Any], after: Mapping[str, Any], repo: Path | None = None
                ) -> tuple[Difference, ...]:
    """What differs between two runs' meta.json: commit (and whether the tree was dirty), each of
    :data:`LIBRARIES`, the thread settings, the machine's fingerprint, the copy bandwidth (beyond
    :data:`COPY_CHANGE`). A field one run does not record is not compared."""
    out = []
    old, new = before.get("commit"), after.get("commit")
    if (old or new) and (old, bool(before.get("dirty"))) != (new, bool(after.get("dirty"))):
        name = [f"{(c or '?')[:8]}{'+dirty' if meta.get('dirty') else ''}" for c, meta in ((old, before), (new, after))]
        out.append(Difference("commit", *name, git_log(repo, old, new) if old != new else None))
    libs_before, libs_after = before.get("versions") or {}, after.get("versions") or {}
    for lib in LIBRARIES:
        if None not in (libs_before.get(lib), libs_after.get(lib)) and libs_before[lib] != libs_after[lib]:
            out.append(Difference(lib, _shown(libs_before[lib]), _shown(libs_after[lib])))
    threads_before, threads_after = before.get("threads") or {}, after.get("threads") or {}
    # the machine's cores are its fingerprint's; "requested" (--threads) first
    out += _fields("threads", threads_before, threads_after,
                   sorted(set(threads_before) - {"cores"}, key=lambda n: (n != "requested", n)))
    out += _fields("machine", _machine_fields(before), _machine_fields(after), FINGERPRINT)
    bw = [(m.get("copy_bandwidth") or {}).get("gbps") for m in (before, after)]
    if all(isinstance(b, (int, float)) and b > 0 for b in bw) and max(bw) > (1 + COPY_CHANGE) * min(bw):
        out.append(Difference("copy bandwidth", f"{bw[0]:.1f} GB/s", f"{bw[1]:.1f} GB/s"))
    return tuple(out)


def _machine_fields(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The run's recorded fields (None: not recorded), and its GPUs with their drivers where it stored a
    fingerprint (:func:`softgrad.history.provenance.fingerprint`; a run stored before has no "gpus")."""
    out = {k: v for k, v in meta.items() if v is not None}
    fp = meta.get("fingerprint")
    if isinstance(fp, dict) and isinstance(fp.get("gpus"), list):
        out["gpus"] = ", ".join(f"{g.get('model')} (driver {g.get('driver')})" for g in fp["gpus"]
                                if isinstance(g, dict)) or "none"
    return out


def explain(changes: list[Change], metas: Mapping[str, Mapping[str, Any]], repo: Path | None = None) -> list[Change]:
    """``changes`` with what changed between each one's ``before_run`` and ``run`` (``metas``: run id ->
    meta.json); a run without meta compares nothing."""
    cache: dict[tuple[str, str], tuple[Difference, ...]] = {}
    out = []
    for c in changes:
        pair = (c.before_run, c.run)
        if pair not in cache:
            cache[pair] = differences(metas.get(c.before_run) or {}, metas.get(c.run) or {}, repo)
        out.append(dataclasses.replace(c, changed=cache[pair]))
    return out


# --- the listing -----------------------------------------------------------------------------------------------


def parse_since(text: str) -> dt.datetime:
    """``--since``: an ISO date or date and time (UTC when no zone is given)."""
    when = dt.datetime.fromisoformat(text.strip())
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


class _Metas(Mapping):
    """Run id -> its meta.json, each read when first asked for (:func:`explain` asks for the runs on either side
    of each change, a few of a year of nights)."""

    def __init__(self, ids: Iterable[str]) -> None:
        self._ids, self._read = dict.fromkeys(ids), {}

    def __getitem__(self, rid: str) -> dict[str, Any]:
        if rid not in self._read:
            if rid not in self._ids:
                raise KeyError(rid)
            self._read[rid] = store.Run(store.runs_dir() / rid).meta()
        return self._read[rid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def metas(df) -> Mapping[str, dict[str, Any]]:
    """The meta.json of each run in ``df``, each read when first asked for."""
    return _Metas([] if df.empty else df["run"].unique())


def _pick(df, column: str, wanted: str | None, what: str, known: Iterable[str]):
    """The rows of ``df`` whose ``column`` is ``wanted``; :class:`HistoryError` for a name neither stored nor
    ``known`` (registered: it may just not have been timed yet)."""
    if wanted is None:
        return df
    stored = sorted(set(df[column].astype(str))) if column in df else []
    if wanted not in stored and wanted not in known:
        raise HistoryError(f"no stored run timed {what} {wanted!r} (stored: {', '.join(stored) or 'none'})")
    return df[df[column] == wanted] if stored else df


def find(df, run_metas: Mapping[str, Mapping[str, Any]], *, impl: str | None = None, op: str | None = None,
         workload: str | None = None, since: dt.datetime | None = None, threshold: float = THRESHOLD,
         machine: str | None = None, repo: Path | None = None) -> History:
    """The change points of ``df`` (results.load()'s frame) for the benchmarks chosen, with what changed;
    :class:`HistoryError` for an implementation or workload the history never timed."""
    df = _pick(df, "impl", impl, "implementation", [i.name for i in registry.all_implementations()])
    df = _pick(df, "workload", workload, "workload", PRESETS)
    df = df[df["op"] == op] if op and not df.empty else df
    if df.empty:
        return History(machine, 0, threshold, note=f"0 runs stored{_for(impl, op, workload)}; change points need "
                                                   f"at least {MIN_HISTORY} on one machine")
    ordered = in_order(df)
    machine = machine if machine is not None else newest_machine(ordered)
    runs = runs_on(ordered, machine)["run"].nunique()
    if runs < MIN_HISTORY:
        return History(machine, runs, threshold, note=f"{runs} run{'' if runs == 1 else 's'} on machine {machine}"
                       f"{_for(impl, op, workload)}; change points need at least {MIN_HISTORY} "
                       f"({MIN_RUNS} on either side of a change)")
    found = explain(detect(df, machine=machine, threshold=threshold), run_metas, repo)
    if since is not None:
        when = ordered.drop_duplicates("run").set_index("run")["_when"]
        found = [c for c in found if not (when[c.run] < since)]
    return History(machine, runs, threshold, found)


@dataclass(frozen=True)
class Elsewhere:
    """What ``softgrad history`` shows of another machine beside this one's: its runs and the newest, counted
    without looking for its change points (that costs as much as this machine's: ``--machine NAME`` does it)."""

    machine: str
    runs: int
    newest: str | None

    def line(self) -> str:
        newest = f", the newest {self.newest}" if self.newest else ""
        return (f"on {self.machine}: {self.runs} run{'' if self.runs == 1 else 's'}{newest} (`softgrad history "
                f"--machine {self.machine}` lists its change points)")

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "runs": self.runs, "newest_run": self.newest}


def elsewhere(df, machine: str) -> Elsewhere:
    """:class:`Elsewhere` of ``machine`` in ``df`` (results.load()'s frame)."""
    runs = runs_on(df, machine)["run"] if not df.empty else []
    return Elsewhere(machine, int(len(set(runs))), str(max(runs)) if len(runs) else None)


def _for(impl: str | None, op: str | None, workload: str | None) -> str:
    chosen = [f"{what} {name}" for what, name in (("implementation", impl), ("op", op), ("workload", workload)) if name]
    return f" for {' and '.join(chosen)}" if chosen else ""
