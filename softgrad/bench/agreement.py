"""Agreement built in: a sample of each family's points timed again by the frameworks' own timers.

After a family's sweep, :func:`check_family` picks a stratified sample of its timed points
(:func:`pick_points`: per implementation its shortest call over :data:`MIN_CALL_S`, its longest up to
:data:`MAX_CALL_S` and one between) and times them in a plain process of their own
(:mod:`softgrad.bench.independent`), where softgrad's block sampler and the framework's timer read each
point alternately. Two figures per point: ``ratio``, softgrad's sampler over the independent timer in the
same process and minute (the method alone differs), must be within ``bound`` = max(:data:`BOUND`, the
independent timer's own spread, :func:`own_spread`); ``stored_ratio``, the sweep's stored median over the
independent median (another process, minutes earlier: a missed warm-up, a missed device wait or a
process-dependent cost shows here), within a factor of :data:`STORED_FACTOR`. Calls the independent timer
reads under :data:`MIN_CALL_S` are shown but not held to either. The independent process runs under the
sweep's conditions (allocator settings, thread count). The points go to the run's ``agreement.json``; the
report shows them, and ``compare`` and ``choose`` warn about a run with a point outside its bounds.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

from .. import children
from . import grid
from ..stored import BOOL, NUMBER, STR, Fields, ListOf, check, read_json, write_json
from .allocator import MALLOC_TUNABLES
from .sampling import median
from .sweep import pooled

#: ``agreement.json``: softgrad's medians beside the frameworks' own timers (:mod:`softgrad.bench.agreement`)
AGREEMENT = Fields({
    "format": STR,
    "bound": NUMBER,
    "points": ListOf(Fields({"key": STR, "softgrad_s": NUMBER, "independent_s": ListOf(NUMBER, "a list of numbers"),
                             "softgrad_here_s": ListOf(NUMBER, "a list of numbers"), "ratio": NUMBER,
                             "stored_ratio": NUMBER, "spread": NUMBER, "bound": NUMBER, "held": BOOL,
                             "agrees": BOOL,
                             "error": STR}, required=("key",), what="an agreement point"), "a list of points"),
}, required=("points",), what="a softgrad agreement file")

#: softgrad's median may differ from the independent timer's by this much (or by that timer's own spread)
BOUND = 0.10
#: the sweep's stored median and the independent median, minutes apart, may differ by this factor: the shared
#: machines ran a whole minute up to 1.6x slower; a method that misses a warm-up or a device wait is off by more
STORED_FACTOR = 2.0
#: calls shorter than this are shown but not held to the bound
MIN_CALL_S = 10e-6
#: longest call picked: each point is read by both timers three times, each reading several calls
MAX_CALL_S = 0.02
#: an implementation with no call up to MAX_CALL_S (a large workload's) is sampled at its shortest call if it
#: is at most this long (about 3 s of readings)
MAX_LONE_CALL_S = 0.3
#: points picked per implementation (shortest over MIN_CALL_S, longest, one between)
PER_IMPL = 3
#: points per implementation in a quick run (its shortest and longest)
QUICK_PER_IMPL = 2
FORMAT = "softgrad-agreement/1"


def pick_points(medians: dict[tuple, float], per_impl: int = PER_IMPL) -> list[tuple]:
    """A stratified sample of timed keys (impl, op, shape, dtype, device) -> median seconds: for each
    implementation its shortest call over :data:`MIN_CALL_S` (or its shortest), its longest up to
    :data:`MAX_CALL_S`, and points evenly between, in that order; an implementation whose every call is
    longer (a large workload's) gets its shortest one if it is at most :data:`MAX_LONE_CALL_S`."""
    by_impl: dict[str, list[tuple]] = {}
    for key in sorted(medians, key=lambda k: (medians[k], k)):
        by_impl.setdefault(key[0], []).append(key)
    out = []
    for every in by_impl.values():
        keys = [k for k in every if medians[k] <= MAX_CALL_S]
        if not keys:
            out += [every[0]] if medians[every[0]] <= MAX_LONE_CALL_S else []
            continue
        held = [k for k in keys if medians[k] >= MIN_CALL_S] or keys
        chosen = [held[0], held[-1]]
        for j in range(1, per_impl - 1):
            chosen.append(held[round(j * (len(held) - 1) / (per_impl - 1))])
        out += list(dict.fromkeys(chosen))[:per_impl]
    return out


def independent_times(keys: list[tuple], grid_name: grid.GridLike, folder: Path, label: str) -> dict[tuple, dict[str, Any]]:
    """The independent timer's readings (``independent_s``) or ``error`` per key, from one plain process."""
    spec_path, out_path = folder / f"independent-{label}.spec.json", folder / f"independent-{label}.jsonl"
    out_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({"keys": [list(k) for k in keys], "grid": grid.selected(grid_name), "out": str(out_path),
                                     "parent": os.getpid()}))
    env = children.python_env({"PYTHONUNBUFFERED": "1", "GLIBC_TUNABLES": MALLOC_TUNABLES})
    with open(folder / f"independent-{label}.log", "w") as log:
        subprocess.run(children.python("-m", "softgrad.bench.independent", str(spec_path)), stdout=log,
                       stderr=subprocess.STDOUT, env=env,
                       cwd=children.neutral_cwd(), check=False, timeout=600)
    found: dict[tuple, dict[str, Any]] = {}
    if out_path.exists():
        for line in out_path.read_text().splitlines():
            try:
                rec = json.loads(line)
                found[tuple(rec["key"])] = rec
            except (ValueError, KeyError, TypeError):
                continue
    return found


def agreement_point(key: tuple, softgrad_s: float, independent_s: list[float], here_s: list[float] | None = None,
                    softgrad_speed_s: float | None = None, independent_speed_s: float | None = None) -> dict[str, Any]:
    """One stored point. ``ratio``: softgrad's sampler over the independent timer, read alternately in one
    process (the median of the pairs' ratios, ``here_s[i] / independent_s[i]``; the stored median stands in
    where ``here_s`` is missing),
    judged against ``bound`` = max(:data:`BOUND`, the independent timer's own spread). ``stored_ratio``: the
    sweep's stored median over the independent median, minutes apart and in another process (at the
    machine's speed during the independent readings where both speeds are known), judged against
    :data:`STORED_FACTOR`."""
    indep = median(independent_s)
    spread = own_spread(independent_s)
    bound = max(BOUND, spread)
    if here_s and len(here_s) == len(independent_s) and min(independent_s) > 0:
        # each reading beside the independent one right after it: a slow second of the machine moves both
        ratio = median([m / t for m, t in zip(here_s, independent_s)])
    else:
        mine = median(here_s) if here_s else softgrad_s
        ratio = mine / indep if indep > 0 else float("inf")
    stored = softgrad_s / indep if indep > 0 else float("inf")
    if softgrad_speed_s and independent_speed_s:
        stored *= independent_speed_s / softgrad_speed_s
    held = indep >= MIN_CALL_S  # the call's length by the trusted timer: a timing bug cannot exempt itself
    ok = abs(ratio - 1) <= bound and 1 / STORED_FACTOR <= stored <= STORED_FACTOR
    point = {"key": " ".join(key), "softgrad_s": softgrad_s, "independent_s": list(independent_s), "ratio": ratio,
             "stored_ratio": stored, "spread": spread, "bound": bound, "held": held, "agrees": (not held) or ok}
    if here_s:
        point["softgrad_here_s"] = list(here_s)
    return point


def own_spread(readings: list[float]) -> float:
    """The independent timer's own spread: its first half of readings and its second half taken as two
    back-to-back runs of it, the larger median over the smaller, less one (two readings: their ratio)."""
    half = len(readings) // 2
    if half == 0:
        return 0.0
    first, second = median(readings[:half]), median(readings[-half:])
    low, high = min(first, second), max(first, second)
    return high / low - 1 if low > 0 else float("inf")


def check_family(records: list[dict[str, Any]], family: str, grid_name: grid.GridLike, folder: Path,
                 per_impl: int = PER_IMPL) -> list[dict[str, Any]]:
    """Time a sample of this family's points independently and merge the points into ``agreement.json``."""
    medians = {key: median(samples) for key, samples in pooled(records).items() if samples}
    speeds: dict[tuple, list[float]] = {}
    for r in records:
        if r["kind"] == "samples" and isinstance(r.get("speed_s"), (int, float)):
            speeds.setdefault(r["key"], []).append(float(r["speed_s"]))
    keys = pick_points(medians, per_impl)
    found = independent_times(keys, grid_name, folder, family) if keys else {}
    points = []
    for key in keys:
        rec = found.get(key)
        if rec and isinstance(rec.get("independent_s"), list) and rec["independent_s"]:
            speed = rec.get("speed_s") if isinstance(rec.get("speed_s"), (int, float)) else None
            points.append(agreement_point(key, medians[key], [float(v) for v in rec["independent_s"]],
                                          [float(v) for v in rec.get("softgrad_here_s") or []],
                                          median(speeds[key]) if key in speeds else None, speed))
        else:
            points.append({"key": " ".join(key), "softgrad_s": medians[key], "error":
                           (rec or {}).get("error", "the independent timer gave no reading")})
    store_points(folder / "agreement.json", points)
    return points


def store_points(path: Path, points: list[dict[str, Any]]) -> None:
    data = read_json(path) if path.exists() else {}
    if path.exists():
        check(AGREEMENT, data, path)
    keep = [p for p in data.get("points", []) if p["key"] not in {q["key"] for q in points}]
    write_json(path, {"format": FORMAT, "bound": BOUND, "min_call_s": MIN_CALL_S, "points": keep + points},
               AGREEMENT)


def outside(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The held points that disagree beyond their bound."""
    return [p for p in points if p.get("held") and p.get("agrees") is False]


def summary(points: list[dict[str, Any]]) -> str:
    """How many of a family's sampled points agree, for its progress line (or why none was held)."""
    held = [p for p in points if p.get("held")]
    if not points:
        return f"agreement: no point of {MAX_LONE_CALL_S * 1e3:g} ms or less to sample"
    if not held:
        return f"agreement: {len(points)} sampled, none {MIN_CALL_S * 1e6:g} us or longer to hold to the bound"
    return (f"agreement with the frameworks' own timers: {len(held) - len(outside(points))} of {len(held)} "
            f"sampled points within bound")


def warning(points: list[dict[str, Any]], run_id: str) -> str | None:
    """One line saying how many sampled points of the run disagree with the independent timers, or None."""
    bad = outside(points)
    if not bad:
        return None
    worst = max(bad, key=lambda p: abs(judged(p) - 1))
    return (f"warning: run {run_id}: {len(bad)} of {sum(1 for p in points if p.get('held'))} sampled points "
            f"disagree with the frameworks' own timers beyond their bound (worst {worst['key']}: softgrad "
            f"{judged(worst):.2f}x the independent median, bound {worst['bound']:.0%})")


def judged(point: dict[str, Any]) -> float:
    """The point's ratio furthest from 1 relative to its own limit (the method's, or the stored median's)."""
    ratio, stored = point.get("ratio", float("nan")), point.get("stored_ratio", float("nan"))
    if math.isfinite(stored) and not 1 / STORED_FACTOR <= stored <= STORED_FACTOR:
        return stored
    return ratio
