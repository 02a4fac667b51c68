"""Replay nightly histories with planted slowdowns through both regression gates, side by side:
``python benchmarks/replay_history.py [--nights 45] [--series 100] [--seed 0] [--json FILE]``.

Each benchmark gets ``--nights`` nights of noise (one run a night) and, in the planted sets, one change at a
night 16 to 13 nights before the end (so that :data:`HORIZON` nights follow its full size): a sudden step
(+10%, +25%, 2x), the same sizes creeping in over 4 nights, the same sizes holding 5 nights then recovering
half of it, a creep of 4 x 7% (each night under the 10% threshold), and a one-night blip of +50% that the
next night clears (a gate must not fail on it). Night by night, as the nightly job runs, two gates judge the
newest night:

- ``softgrad gate`` (:mod:`softgrad.history.history_gate`): the newest night against the whole history;
- ``softgrad compare`` (:func:`softgrad.history.gate.compare_frames`): the newest night against the one
  before (over all benchmarks of the night, with its machine-drift correction);

each plainly and with its ``--confirm`` rerun (a fresh draw of the night's noise at the true level, judged by
:func:`softgrad.history.gate.confirm_findings`). Printed: false alarms per 100 benchmark-nights (the steady
set, every night from the second on) and, per planted kind, how often each gate failed within two nights of
the change reaching its full size, and at all within :data:`HORIZON` nights.

**The noise.** Where the store (``SOFTGRAD_HOME``, or ``--home``) holds identical runs (same machine,
workload, commit, library versions and threads; 30 residuals at least), each night's value is the benchmark's
usual level times a residual drawn from those runs (log of each run's time over the machine's speed, or its
seconds, less the mean of its identical runs, scaled by sqrt(n / (n - 1))): each simulated benchmark takes a
stored one's residuals when it has 8 or more, else the machine's pool; its samples' quartiles and count and
its seconds are the stored benchmark's. Where none are stored, the stated model (:func:`model_noise`): a
night-to-night scatter of a lognormal sigma drawn log-uniformly from 1% to 5% per benchmark (the normalized
times of identical runs on the shared 2-core machines move by a few percent), 1 night in 100 a slow outlier
of 1.25x to 2x (a slow phase the normalization missed, a process whose allocator landed badly: the README's
24 us read as 42 us), each night's samples' interquartile range 2% to 8% over 15 samples, base times 1 to
10 ms (above the gates' 50 us floor for a 10% step; ``--min-delta`` sets both gates' floor).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: nights after a planted change in which the gates are watched for it
HORIZON = 8
#: nights a recovering step holds before it goes back half of the way
RECOVER_AFTER = 5
#: creeping changes reach their full size over this many nights
CREEP_NIGHTS = 4
#: residuals a stored benchmark needs to be drawn from on its own (else the machine's pool)
OWN_RESIDUALS = 8
#: the gates judged, each plainly and with its rerun
GATES = ("gate", "gate+rerun", "compare", "compare+rerun")
BENCH = {"workload": "default", "op": "vjp", "shape": "1x1024", "dtype": "float32", "device": "cpu"}


@dataclass(frozen=True)
class Plant:
    """One planted change: ``shape`` "sudden", "creep", "recover", "blip" or "none"; ``size`` its full move."""

    name: str
    shape: str
    size: float

    def levels(self, nights: int, at: int) -> np.ndarray:
        """The true level of each night (1 before ``at``; a blip leaves it at 1: see :meth:`measured`)."""
        k = np.arange(nights)
        full = 1 + self.size
        if self.shape == "sudden":
            return np.where(k >= at, full, 1.0)
        if self.shape == "creep":
            return np.where(k >= at, full ** (np.minimum(k - at + 1, CREEP_NIGHTS) / CREEP_NIGHTS), 1.0)
        if self.shape == "recover":
            return np.where(k >= at + RECOVER_AFTER, 1 + self.size / 2, np.where(k >= at, full, 1.0))
        return np.ones(nights)

    def measured(self, nights: int, at: int) -> np.ndarray:
        """What each night's measurement reads over its true level: a blip is in the measurement alone (the
        machine slow that night), so a rerun reads the true level."""
        return np.where(np.arange(nights) == at, 1 + self.size, 1.0) if self.shape == "blip" else np.ones(nights)

    def full_at(self, at: int) -> int:
        """The night the change reaches its full size."""
        return at + CREEP_NIGHTS - 1 if self.shape == "creep" else at


PLANTS = tuple(Plant(f"{shape} {'2x' if size == 1 else f'+{size:.0%}'}", shape, size)
               for shape in ("sudden", "creep", "recover") for size in (0.10, 0.25, 1.0)) + (
    Plant("creep 4 x 7%", "creep", 1.07**4 - 1), Plant("blip +50%, one night", "blip", 0.5))


# --- noise ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """One benchmark's noise: its seconds at level 1, residuals to draw from (None: the model's lognormal
    ``sigma`` and outliers), its samples' interquartile range (log) and count."""

    base_s: float
    iqr: float
    repeats: int
    sigma: float = 0.0
    residuals: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Noise:
    """Where each night's scatter comes from (``source``, a sentence) and the benchmarks' profiles."""

    source: str
    profiles: tuple[Profile, ...]
    pool: tuple[float, ...] = ()
    outlier_rate: float = 0.0
    outlier_range: tuple[float, float] = (1.25, 2.0)

    def draw(self, rng: np.random.Generator, p: Profile, size: int) -> np.ndarray:
        """``size`` log residuals of a benchmark of profile ``p``."""
        if p.residuals is not None:
            own = p.residuals if len(p.residuals) >= OWN_RESIDUALS else self.pool
            return rng.choice(np.asarray(own), size)
        out = rng.normal(0.0, p.sigma, size)
        slow = rng.random(size) < self.outlier_rate
        return out + np.where(slow, np.log(rng.uniform(*self.outlier_range, size)), 0.0)


def model_noise(rng: np.random.Generator, count: int = 64) -> Noise:
    """The stated noise model (the module's docstring) for ``count`` benchmark profiles."""
    profiles = tuple(Profile(base_s=float(math.exp(rng.uniform(math.log(1e-3), math.log(1e-2)))),
                             iqr=float(math.exp(rng.uniform(math.log(0.02), math.log(0.08)))), repeats=15,
                             sigma=float(math.exp(rng.uniform(math.log(0.01), math.log(0.05)))))
                     for _ in range(count))
    return Noise("the stated model (no identical runs stored): lognormal night-to-night sigma 1% to 5% per "
                 "benchmark, 1 night in 100 a slow outlier of 1.25x to 2x, samples' IQR 2% to 8% of 15 samples, "
                 "1 to 10 ms a call", profiles, outlier_rate=0.01)


#: what makes two runs identical: the same code and setting on the same machine
IDENTICAL = ("machine", "workload", "commit", "numpy", "numba", "torch", "jax", "threads")


def stored_noise(df, least: int = 30) -> tuple[Noise | None, str]:
    """The noise of the identical runs in ``df`` (results.load()'s frame) on its newest run's machine, and ""
    (else None and why not: fewer than ``least`` residuals stored)."""
    if df.empty:
        return None, "no stored runs"
    from softgrad.history import changes

    df = changes.in_order(df)
    df = changes.runs_on(df, changes.newest_machine(df))
    df = df[np.isfinite(df["time_s"].to_numpy(dtype=float)) & (df["time_s"] > 0)]
    same = [c for c in IDENTICAL if c in df]
    residuals: dict[tuple, list[float]] = {}
    sets = 0
    for _, runs in df.fillna({c: "" for c in same}).groupby(same, sort=False):
        sets += runs["run"].nunique() >= 2
        for key, g in runs.groupby(list(changes.BENCHMARK), sort=False):
            column = "norm" if "norm" in g and bool(g["norm"].notna().all()) else "time_s"
            v = np.log(g[column].to_numpy(dtype=float))
            if len(v) >= 2:  # each run's residual from the mean of its identical runs, as a sample's
                residuals.setdefault(key, []).extend((v - v.mean()) * math.sqrt(len(v) / (len(v) - 1)))
    pool = tuple(float(r) for rs in residuals.values() for r in rs)
    if len(pool) < least:
        return None, f"{len(pool)} residuals from {sets} sets of identical stored runs (fewer than {least})"
    profiles = tuple(_profile(g, residuals[key]) for key, g in df.groupby(list(changes.BENCHMARK), sort=False)
                     if key in residuals)
    spread = 1.4826 * statistics.median(abs(r) for r in pool)
    return Noise(f"{len(pool)} residuals of {len(profiles)} benchmarks from {df['run'].nunique()} stored runs on "
                 f"machine {df['machine'].iloc[-1]} ({sets} sets of identical runs); their robust sigma "
                 f"{spread:.1%}, the largest {math.exp(max(pool)):.2f}x", profiles, pool), ""


def _profile(g, residuals: list[float]) -> Profile:
    """A stored benchmark's profile from its rows ``g``: median seconds, interquartile range and sample count."""
    normed = "norm_q25" in g and bool(g["norm_q25"].notna().all() and g["norm_q75"].notna().all())
    q25, q75 = (g["norm_q25"], g["norm_q75"]) if normed else (g["q25_s"], g["q75_s"])
    iqr = np.log(q75.to_numpy(dtype=float) / q25.to_numpy(dtype=float))
    repeats = g["repeats"].to_numpy(dtype=float) if "repeats" in g else np.array([math.nan])
    return Profile(base_s=float(g["time_s"].median()), iqr=float(np.nanmedian(iqr)) if np.isfinite(iqr).any() else 0.04,
                   repeats=int(np.nanmedian(repeats)) if np.isfinite(repeats).any() else 15,
                   residuals=tuple(float(r) for r in residuals))


# --- one set of benchmarks ----------------------------------------------------------------------------------


def _run_id(k: int) -> str:
    day = np.datetime64("2026-01-01") + np.timedelta64(k, "D")
    return f"{str(day).replace('-', '')}T020000000000Z-replay00"


def history_frame(noise: Noise, rng: np.random.Generator, levels: np.ndarray, profiles: list[Profile],
                  measured: np.ndarray | None = None):
    """results.load()'s columns for benchmarks ``b{i}`` at the true ``levels`` (benchmarks x nights), each
    night's value the level times ``measured`` (default 1) times a residual of the benchmark's profile; and a
    function drawing a rerun's row of benchmark i on night k (at the true level)."""
    import pandas as pd

    count, nights = levels.shape
    measured = np.ones_like(levels) if measured is None else measured
    rows = []
    for i, p in enumerate(profiles):
        v = levels[i] * measured[i] * np.exp(noise.draw(rng, p, nights))
        for k in range(nights):
            rows.append({"run": _run_id(k), "date": f"{np.datetime64('2026-01-01') + np.timedelta64(k, 'D')}"
                         f"T02:00:00+00:00", "machine": "replay", "impl": f"b{i}", **BENCH, "night": k,
                         **_row(v[k], p), "error_ratio": 0.01, "peakmem_bytes": 1e6})
    df = pd.DataFrame(rows)

    def rerun(i: int, k: int) -> dict[str, float]:
        return _row(float(levels[i, k] * np.exp(noise.draw(rng, profiles[i], 1)[0])), profiles[i])

    return df, rerun


def _row(v: float, p: Profile) -> dict[str, float]:
    half = math.exp(p.iqr / 2)
    return {"norm": v, "norm_q25": v / half, "norm_q75": v * half, "time_s": v * p.base_s,
            "q25_s": v * p.base_s / half, "q75_s": v * p.base_s * half, "repeats": float(p.repeats)}


@dataclass
class Tally:
    """Alarms of each gate: false ones over benchmark-nights, and per planted kind each series' first alarm
    (nights after the change reached its full size; None: none within HORIZON)."""

    benchmark_nights: int = 0
    #: steady benchmark-nights on which softgrad gate warned of the newest night alone (no rerun)
    warned: int = 0
    false_alarms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GATES, 0))
    first: dict[str, dict[str, list[int | None]]] = field(default_factory=dict)

    def rates(self) -> dict[str, float]:
        return {g: 100 * n / max(self.benchmark_nights, 1) for g, n in self.false_alarms.items()}

    def found(self, kind: str, gate: str, within: int | None = None) -> float:
        firsts = self.first[kind][gate]
        return sum(d is not None and (within is None or d < within) for d in firsts) / max(len(firsts), 1)


def judge_nights(df, rerun, nights: range, *, threshold: float, window: int, min_delta_s: float, factor: float,
                 only=None) -> dict[str, dict[int, set[int]]]:
    """Night by night, which benchmarks each gate failed: {gate: {night: {benchmark index}}}, and on which
    softgrad gate warned of an outlier ("warned"); the history gate judges the benchmarks ``only`` (default
    all)."""
    from softgrad.history import gate, history_gate

    out: dict[str, dict[int, set[int]]] = {g: {} for g in (*GATES, "warned")}
    groups = {int(name[1:]): g.reset_index(drop=True) for name, g in df.groupby("impl", sort=False)}
    by_night = {k: g for k, g in df.groupby("night", sort=True)}
    for k in nights:
        for i in (only if only is not None else groups):
            flag = history_gate.flag_of(groups[i].iloc[:k + 1], ("default", f"b{i}", *list(BENCH.values())[1:]),
                                        threshold, window, min_delta_s)
            if flag is None:
                continue
            if flag.fails:
                out["gate"].setdefault(k, set()).add(i)
            elif flag.suspect.kind == "outlier":
                out["warned"].setdefault(k, set()).add(i)
            if flag.suspect.new:
                kept, _ = gate.confirm_findings([flag.finding], {flag.finding.key: rerun(i, k)}, 1 + threshold,
                                                min_delta_s)
                if kept:
                    out["gate+rerun"].setdefault(k, set()).add(i)
        if k == 0:
            continue
        findings, _ = gate.compare_frames(by_night[k - 1], by_night[k], factor, min_delta_s)
        slower = [f for f in findings if f.kind == "slower"]
        out["compare"][k] = {int(f.impl[1:]) for f in slower}
        kept, _ = gate.confirm_findings(slower, {f.key: rerun(int(f.impl[1:]), k) for f in slower}, factor,
                                        min_delta_s)
        out["compare+rerun"][k] = {int(f.impl[1:]) for f in kept}
    return out


def replay(noise: Noise, *, nights: int = 45, series: int = 100, seed: int = 0, threshold: float = 0.1,
           window: int = 3, min_delta_s: float = 50e-6, factor: float = 1.2, plants=PLANTS,
           progress=None) -> Tally:
    """False alarms of ``series`` steady benchmarks over ``nights`` nights, and the first alarm on each of
    ``series`` benchmarks per planted kind (with three steady companions each, as the pairwise gate's drift
    needs a night of mostly unchanged benchmarks)."""
    rng = np.random.default_rng(seed)
    tally = Tally()
    kw = dict(threshold=threshold, window=window, min_delta_s=min_delta_s, factor=factor)

    def profiles(count: int) -> list[Profile]:
        return [noise.profiles[j] for j in rng.integers(len(noise.profiles), size=count)]

    df, rerun = history_frame(noise, rng, np.ones((series, nights)), profiles(series))
    said = judge_nights(df, rerun, range(nights), **kw)
    tally.benchmark_nights = series * (nights - 1)
    for g in GATES:
        tally.false_alarms[g] = sum(len(v) for k, v in said[g].items() if k >= 1)
    tally.warned = sum(len(v) for v in said["warned"].values())
    if progress:
        progress(f"steady: {series} benchmarks x {nights - 1} nights judged")
    # each change at a night of the last quarter that leaves HORIZON nights after its full size
    low = max(nights - HORIZON - CREEP_NIGHTS - 4, 2)
    for plant in plants:
        at = rng.integers(low, low + 4, size=series)
        levels, measured = np.ones((4 * series, nights)), np.ones((4 * series, nights))
        for i in range(series):
            levels[i], measured[i] = plant.levels(nights, int(at[i])), plant.measured(nights, int(at[i]))
        df, rerun = history_frame(noise, rng, levels, profiles(4 * series), measured)
        start = int(at.min())
        said = judge_nights(df, rerun, range(start, min(nights, int(at.max()) + CREEP_NIGHTS + HORIZON)),
                            only=range(series), **kw)
        tally.first[plant.name] = {}
        for g in GATES:
            firsts = []
            for i in range(series):
                full = plant.full_at(int(at[i]))
                alarms = [k for k, who in said[g].items() if i in who and int(at[i]) <= k <= full + HORIZON]
                firsts.append(min(alarms) - full if alarms else None)
            tally.first[plant.name][g] = firsts
        if progress:
            progress(f"{plant.name}: {series} benchmarks judged")
    return tally


def lines(tally: Tally, plants=PLANTS) -> list[str]:
    """The report: false alarms per 100 benchmark-nights, then per kind found within two nights / at all."""
    rates = tally.rates()
    head = f"{'':24s}" + "".join(f"{g:>18s}" for g in GATES)
    out = [head, f"{'false alarms / 100 b-n':24s}" + "".join(f"{rates[g]:>18.2f}" for g in GATES),
           f"{'outlier warnings':24s}{100 * tally.warned / max(tally.benchmark_nights, 1):>18.2f}  (softgrad gate "
           f"warned of the newest night alone, no rerun)",
           f"{'planted kind':24s}" + "".join(f"{'<=2 nights / ever':>18s}" for _ in GATES)]
    for plant in plants:
        if plant.name not in tally.first:
            continue
        if plant.shape == "blip":  # any alarm on a blip is a false one
            out.append(f"{plant.name + ' (failed)':24s}" + "".join(
                f"{tally.found(plant.name, g):>18.0%}" for g in GATES))
            continue
        out.append(f"{plant.name:24s}" + "".join(
            f"{f'{tally.found(plant.name, g, 2):.0%} / {tally.found(plant.name, g):.0%}':>18s}" for g in GATES))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nights", type=int, default=45, help="nights per history (at least 40 is the goal; default 45)")
    ap.add_argument("--series", type=int, default=100, help="steady benchmarks, and benchmarks per planted kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.1, help="softgrad gate's threshold (default 0.1)")
    ap.add_argument("--window", type=int, default=3, help="softgrad gate's window (default 3)")
    ap.add_argument("--min-delta", type=float, default=50e-6, metavar="S",
                    help="both gates' smallest absolute slowdown (default 50e-6 s, as theirs)")
    ap.add_argument("--home", type=Path, help="the store whose identical runs give the noise (default: "
                                              "SOFTGRAD_HOME or the current folder)")
    ap.add_argument("--model", action="store_true", help="the stated noise model even where runs are stored")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    if (args.nights < 2 * HORIZON or args.series < 1 or not 0 < args.threshold <= 10 or args.window < 1
            or not 0 <= args.min_delta < 1):
        print(f"replay_history: --nights must be at least {2 * HORIZON}, --series and --window at least 1, "
              f"--threshold in (0, 10], --min-delta in [0, 1)", file=sys.stderr)
        return 2
    if args.json is not None and not args.json.parent.is_dir():
        print(f"replay_history: --json {args.json}: no folder {args.json.parent} to write it in", file=sys.stderr)
        return 2
    if args.home is not None:
        import os

        os.environ["SOFTGRAD_HOME"] = str(args.home)
    rng = np.random.default_rng(args.seed)
    noise, why = (None, "--model") if args.model else _stored(args)
    noise = noise or model_noise(rng)
    print(f"replay_history: noise: {noise.source}" + (f" (stored: {why})" if why else ""), flush=True)
    t0 = time.perf_counter()
    tally = replay(noise, nights=args.nights, series=args.series, seed=args.seed, threshold=args.threshold,
                   window=args.window, min_delta_s=args.min_delta,
                   progress=lambda text: print(f"  {text}", file=sys.stderr, flush=True))
    print(f"{args.nights} nights; {args.series} steady benchmarks ({tally.benchmark_nights} benchmark-nights) "
          f"and {args.series} per planted kind; softgrad gate threshold {args.threshold:.0%}, window "
          f"{args.window}; compare factor 1.2; both --min-delta {args.min_delta * 1e6:g} us; seed {args.seed}; "
          f"{time.perf_counter() - t0:.0f} s")
    for line in lines(tally):
        print(line)
    if args.json:
        doc = {"noise": noise.source, "nights": args.nights, "series": args.series, "seed": args.seed,
               "min_delta_s": args.min_delta, **asdict(tally), "false_alarms_per_100": tally.rates()}
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


def _stored(args) -> tuple[Noise | None, str]:
    from softgrad.history import results
    from softgrad.stored import StoreError

    try:
        return stored_noise(results.load())
    except (StoreError, OSError) as exc:
        return None, f"unreadable: {exc}"


if __name__ == "__main__":
    sys.exit(main())
