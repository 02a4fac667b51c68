"""``softgrad choose``: which implementation to use for an op, size, dtype and device, from stored timings.

What it answers from: each entry's newest measurement of each point (op, rows, row length, dtype, device,
layouts) on this machine (:func:`softgrad.history.results.newest_per_entry`), however old, and a newer run
of other entries hides nothing; the answer names the run, date and age of the winner's and the runner-up's.
Only entries that passed every correctness case of the run that timed them (and whose error at the
benchmark shape is within tolerance) are candidates, whatever their speed (:func:`candidates`, the one rule
the crossovers along n use too).

For a program that makes N calls (``calls``), the winner is the least total, a compiled entry's one-off
compile counted once: ``compile_s + N * time_s``; a compiled winner says after how many calls it pays back
its compile against the best entry that does not compile (:func:`softgrad.history.crossovers.payback`).

Which point: the one at the requested batch and n, else the nearest measured n within a factor of 2 at
the same batch, else the nearest measured point (said so, with how far it is). The sane distance: a point
answers only when its rows and its row length are each within :data:`MAX_EXTRAPOLATION` of those asked;
past that, and for any request whose bytes (x and the result, plus g for the VJP; n x n per row for the
Jacobian: :func:`softgrad.bench.grid.bytes_moved`) exceed this machine's memory, there is no answer.

Every answer without a measurement says how to get one, and only where it can be had
(:func:`unmeasurable`): a one-shape workload that :func:`softgrad.workloads.parse` accepts (its memory
share), whose result fits the sweep's output budget, and whose one call fits the sweep's per-call limit
(:data:`softgrad.bench.grid.MAX_CALL_SECONDS`) at the fastest rate an entry reached past the cache here
(the sweep's model, :data:`softgrad.bench.plan.EXPECTED_GBPS`, where none did), and never where a
stored run measured that very shape and timed no call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import workloads
from ..bench import grid
from ..contract import DTYPE_INFO
from . import results
from .units import format_bytes, format_seconds

if TYPE_CHECKING:
    from .crossovers import Payback

#: a measured point answers for a request only when its rows and its row length are each within this
#: factor of those asked (six doublings: the default grid's 4096 answers up to n = 262144)
MAX_EXTRAPOLATION = 64


class NoResult(Exception):
    """No answer for the request: one line saying why, and how to measure it where it can be measured."""


@dataclass
class Choice:
    op: str
    n: int
    batch: int
    dtype: str
    device: str
    impl: str
    time_s: float
    measured_n: int
    measured_batch: int
    runner_up: str | None
    runner_up_time_s: float | None
    speedup: float | None
    passed_cases: int
    compile_s: float
    run: str
    commit: str
    excluded: list[dict[str, Any]] = field(default_factory=list)
    #: when the winner's and the runner-up's measurements were made (the runs' dates) and how old they were
    #: when chosen, in seconds (None: the run has no date)
    date: str | None = None
    age_s: float | None = None
    runner_up_run: str | None = None
    runner_up_commit: str | None = None
    runner_up_date: str | None = None
    runner_up_age_s: float | None = None
    #: how to time this very shape, or why it cannot be (see :func:`advice`)
    advice: str = ""
    #: the runner-up's lower quartile is above the fastest's upper quartile (None: no runner-up or no
    #: quartiles); when False the two are within the measured spread and may swap places on a rerun
    clear_win: bool | None = None
    #: the winner or the runner-up was timed while the whole machine ran slow (``slow_machine``)
    slow_machine: bool = False
    #: the program's number of calls the answer is for (None: per call), the runner-up's compile, and each one's
    #: total for those calls (compile once + calls x time); ``speedup`` is then the totals' ratio
    calls: int | None = None
    runner_up_compile_s: float | None = None
    total_s: float | None = None
    runner_up_total_s: float | None = None
    #: after how many calls the fastest entry per call, where it compiles, pays back its compile against the best
    #: entry that does not (None: it does not compile, or no such entry was measured here, or it never does)
    payback: Payback | None = None

    @property
    def far(self) -> bool:
        """The answer comes from another row count, or a row length more than 2x away."""
        return self.measured_batch != self.batch or not (self.measured_n / 2 <= self.n <= self.measured_n * 2)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "far": self.far}

    def sentence(self) -> str:
        either = ", within the measured spread: either will do)" if self.clear_win is False else ")"
        if self.calls is None:
            why = [f"{self.impl}: {format_seconds(self.time_s)}"]
            if self.runner_up:
                why.append(f"{self.speedup:.3g}x faster than {self.runner_up} "
                           f"({format_seconds(self.runner_up_time_s)}{either}")
        else:
            why = [f"for {self.calls:,} calls {self.impl}: {format_seconds(self.total_s)} in all "
                   f"({_cost(self.compile_s, self.time_s, self.calls)})"]
            if self.runner_up:
                why.append(f"{self.speedup:.3g}x less than {self.runner_up} ({format_seconds(self.runner_up_total_s)}: "
                           f"{_cost(self.runner_up_compile_s or 0.0, self.runner_up_time_s, self.calls)}{either}")
        why.append(f"passed all {self.passed_cases} correctness cases")
        if self.payback:
            why.append(self.payback.sentence())
        elif self.compile_s >= 0.01 and self.calls is None:
            why.append(f"compile {self.compile_s:.2g} s once")
        where = "" if (self.measured_n, self.measured_batch) == (self.n, self.batch) else \
            f" (measured at batch {self.measured_batch}, n {self.measured_n})"
        if self.far:
            where += (f"; this is the nearest measured point, {_times(self.measured_batch, self.batch)} the rows and "
                      f"{_times(self.measured_n, self.n)} the row length asked: at other sizes (in cache or not) "
                      f"the ranking can differ; {self.advice}")
        note = ("; note: measured while the machine ran slow (other load), rerun to be sure"
                if self.slow_machine else "")
        return ", ".join(why) + where + note

    def sources(self) -> list[str]:
        """Where the winner's (and the runner-up's) figure comes from: run, commit, date and age."""
        lines = [f"{self.impl}: {_source(self.run, self.commit, self.date, self.age_s)}"]
        if self.runner_up:
            lines.append(f"{self.runner_up} (runner-up): "
                         f"{_source(self.runner_up_run, self.runner_up_commit, self.runner_up_date, self.runner_up_age_s)}")
        return lines


def _cost(compile_s: float, time_s: float | None, calls: int) -> str:
    """A total's parts: ``180 ms compile + 1,000 x 10 us`` (no compile: ``1,000 x 10 us``)."""
    each = f"{calls:,} x {format_seconds(time_s)}"
    return f"{format_seconds(compile_s)} compile + {each}" if compile_s > 0 else each


def _source(run: str | None, commit: str | None, date: str | None, age_s: float | None) -> str:
    when = f", {date[:16].replace('T', ' ')}" if date else ""
    return f"from run {run} (commit {commit}){when}" + (f", {_age(age_s)} old" if age_s is not None else "")


def _age(seconds: float) -> str:
    for unit, scale in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{max(seconds, 0):.0f} s"


def _age_s(date: Any, now: datetime) -> float | None:
    try:
        then = datetime.fromisoformat(str(date))
    except ValueError:
        return None
    return (now - (then if then.tzinfo else then.replace(tzinfo=timezone.utc))).total_seconds()


def _times(measured: int, asked: int) -> str:
    ratio = measured / asked
    return "the same as" if ratio == 1 else f"{ratio:.3g}x" if ratio > 1 else f"1/{1 / ratio:.3g} of"


def workload_table(op: str, n: int, batch: int, dtype: str, x_layout: str = "contiguous",
                   g_layout: str = "contiguous") -> dict[str, Any]:
    """The one-shape workload (as :func:`softgrad.workloads.parse` reads it) that times exactly this request."""
    return {"shapes": [[batch, n]], "dtypes": [dtype], "ops": [op], "x_layouts": [x_layout], "g_layouts": [g_layout]}


def measure_command(op: str, n: int, batch: int, dtype: str, x_layout: str = "contiguous",
                    g_layout: str = "contiguous", device: str = "cpu") -> str:
    """The commands that time exactly this request: ``choose --measure`` (checks and times it, then answers),
    or, to keep it in the nightly history, a workload file for ``softgrad run --workload``."""
    layouts = "".join(f", {k}_layouts = [\"{v}\"]" for k, v in (("x", x_layout), ("g", g_layout)) if v != "contiguous")
    flags = "".join(f" --{k}-layout {v}" for k, v in (("x", x_layout), ("g", g_layout)) if v != "contiguous")
    flags += f" --device {device}" if device != "cpu" else ""
    return (f"`softgrad choose --op {op} --n {n} --batch {batch} --dtype {dtype}{flags} --measure`, or, to keep "
            f"it in the history, `softgrad run --workload FILE` (a workload file with shapes = [\"{batch}x{n}\"], "
            f"dtypes = [\"{dtype}\"], ops = [\"{op}\"]{layouts})")


def _bytes(op: str, n: int, batch: int, dtype: str, g_layout: str) -> int:
    """What one call holds and moves: x and the result, plus g for the VJP (n x n per row for the Jacobian)."""
    return grid.bytes_moved(op, batch, n, DTYPE_INFO[dtype].itemsize, g_layout)


def _point(df, op: str, dtype: str, device: str, x_layout: str, g_layout: str):
    """The rows of ``df`` for this op, dtype, device and layouts (g's only where the op reads it)."""
    if df.empty:
        return df
    layouts = df["x_layout"] if "x_layout" in df else "contiguous"
    g_layouts = df["g_layout"] if "g_layout" in df else "contiguous"
    df = df[(layouts == x_layout) & ((g_layouts == g_layout) | (op != "vjp"))]
    return df[(df["op"] == op) & (df["dtype"] == dtype) & (df["device"] == device)]


def unmeasurable(df, op: str, n: int, batch: int, dtype: str = "float32", device: str = "cpu",
                 x_layout: str = "contiguous", g_layout: str = "contiguous") -> str | None:
    """Why ``softgrad run --workload`` of exactly this request would time nothing on this machine, or None.

    In order: a run in ``df`` (each entry's newest rows, see :func:`recommend`) measured this very shape and
    timed no call; :func:`softgrad.workloads.parse` refuses the one-shape workload (its memory share); the
    result is over the sweep's output budget; one call would take longer than the sweep's per-call limit,
    moving its bytes at the rate :func:`_rate` expects."""
    here = _point(df, op, dtype, device, x_layout, g_layout)
    if not here.empty:
        exact = here[(here["batch"] == batch) & (here["n"] == n)]
        if not exact.empty and exact["time_s"].isna().all():
            return (f"run {exact.sort_values('run')['run'].iloc[-1]} measured {op} {batch}x{n} {dtype} and timed "
                    f"no call (each over the sweep's {grid.MAX_CALL_SECONDS:g} s per-call limit, or skipped): "
                    f"measuring it again would do the same")
    try:
        workloads.parse(workload_table(op, n, batch, dtype, x_layout, g_layout), "its workload", "choose")
    except workloads.WorkloadError as exc:
        return str(exc)
    output = grid.output_bytes(op, batch, n, DTYPE_INFO[dtype].itemsize)
    budget = grid.max_output_bytes(grid.workload_grid("choose"))
    if output > budget:
        what = f"Jacobian of {batch}x{n}x{n}" if op == "jacobian" else f"result of {batch}x{n}"
        return f"its {what} is {format_bytes(output)}, over the sweep's {format_bytes(budget)} output budget"
    gbps, basis = _rate(df, here)
    seconds = _bytes(op, n, batch, dtype, g_layout) / (gbps * 1e9)
    if seconds > grid.MAX_CALL_SECONDS:
        return (f"one call would take about {seconds:.2g} s at {gbps:.3g} GB/s ({basis}), over the "
                f"{grid.MAX_CALL_SECONDS:g} s per-call limit the sweep times")
    return None


def _rate(df, here) -> tuple[float, str]:
    """GB/s one call is expected to move its bytes at here, and on what evidence: the fastest rate an entry of
    ``df`` reached past the last-level cache for this op, dtype and device (``here``), else this machine's
    copy bandwidth as its runs measured it (no memory-bound call is much faster), else the sweep's model."""
    from ..bench.plan import EXPECTED_GBPS

    if not here.empty and "in_cache" in here and "gbps" in here:
        past = here["gbps"][~here["in_cache"].astype(bool) & (here["gbps"] > 0)]
        if not past.empty:
            return float(past.max()), "the fastest rate an entry reached past the cache here"
    copy = df["copy_gbps"][df["copy_gbps"] > 0] if not df.empty and "copy_gbps" in df else []
    if len(copy):
        return float(max(copy)), "this machine's copy bandwidth"
    return EXPECTED_GBPS, "the sweep's expected rate: no copy bandwidth is stored"


def advice(df, op: str, n: int, batch: int, dtype: str = "float32", device: str = "cpu",
           x_layout: str = "contiguous", g_layout: str = "contiguous") -> str:
    """How to time this very shape, or why it cannot be measured on this machine (:func:`unmeasurable`)."""
    reason = unmeasurable(df, op, n, batch, dtype, device, x_layout, g_layout)
    if reason:
        return f"it cannot be measured on this machine: {reason}"
    return f"measure it with: {measure_command(op, n, batch, dtype, x_layout, g_layout, device)}"


def candidates(at, calls: int | None = None):
    """The rule for what may be recommended at one measured point, and in what order. ``at``: the timed rows
    of one op, dtype, device, layouts, batch and n (from any runs). Each entry's row of the newest run (where
    two workloads share the point); a candidate passed every correctness case of the run that timed it and
    its error at this shape is within tolerance (``passed``, see :func:`softgrad.history.results.load`).
    Returns (the candidates, fastest first: by time per call, or for ``calls`` calls by
    :func:`total` with ties to the faster per call; the rows left out)."""
    at = at.sort_values("run").drop_duplicates("impl", keep="last")
    ok = at[at["passed"]]
    if calls is None:
        ok = ok.sort_values("time_s")
    else:
        ok = ok.assign(_total=total(ok, calls)).sort_values(["_total", "time_s"], kind="stable").drop(columns="_total")
    return ok, at[~at["passed"]]


def total(rows, calls: int, column: str = "time_s"):
    """What ``calls`` calls cost each row: its compile once (``compile_s``, NaN as none) plus ``calls`` x ``column``."""
    return rows["compile_s"].fillna(0.0) + calls * rows[column]


def recommend(df, op: str, n: int, batch: int = 1, dtype: str = "float32", device: str = "cpu",
              x_layout: str = "contiguous", g_layout: str = "contiguous", now: datetime | None = None,
              calls: int | None = None) -> Choice:
    """The fastest passing implementation for the request, from each entry's newest measurement of each
    point (``df``: see :func:`softgrad.history.results.newest_per_entry`); ``batch`` is the number of rows
    (the leading dims' product), x and g laid out as asked; for a program of ``calls`` calls, the least total
    (compile once + calls x time). :class:`NoResult` (one line) past what this machine holds, past
    :data:`MAX_EXTRAPOLATION` from every measurement, or where nothing passed."""
    from .crossovers import payback

    now = now or datetime.now(timezone.utc)
    asked = f"{op} {batch}x{n} {dtype}"
    memory = workloads._memory_bytes()
    if n <= 0 or batch <= 0:
        raise NoResult(f"{asked}: give at least one row of at least one element")
    if memory and _bytes(op, n, batch, dtype, g_layout) > memory:
        held = "x, g and the result" if op == "vjp" else "x and the result"
        raise NoResult(f"{asked} needs {format_bytes(_bytes(op, n, batch, dtype, g_layout))} for {held}, more than "
                       f"this machine's {format_bytes(memory)}: it cannot be used or measured here")
    how = advice(df, op, n, batch, dtype, device, x_layout, g_layout)
    point = _point(df, op, dtype, device, x_layout, g_layout)
    timed = point[point["time_s"].notna()] if not point.empty else point
    if timed.empty:
        dtypes = sorted(set(df[df["time_s"].notna()]["dtype"])) if not df.empty else []
        raise NoResult(f"no stored timing for {op} {dtype} on {device}"
                       + (f" (timed here: {', '.join(dtypes)})" if dtypes else "") + "; " + how)
    points = {(int(b), int(m)) for b, m in zip(timed["batch"], timed["n"])}
    sane = {p for p in points if _factor(p[0], batch) <= MAX_EXTRAPOLATION and _factor(p[1], n) <= MAX_EXTRAPOLATION}
    if not sane:
        b, m = min(points, key=lambda p: (_distance(p, batch, n), p))
        raise NoResult(f"no measurement within {MAX_EXTRAPOLATION}x of the rows and of the row length asked for "
                       f"{asked} on {device}: the nearest measured point, batch {b}, n {m}, is "
                       f"{_times(b, batch)} the rows and {_times(m, n)} the row length; " + how)
    same_rows = sorted(m for b, m in sane if b == batch)
    nearest = min(same_rows, key=lambda m: abs(math.log(m / n))) if same_rows else None
    if nearest is not None and nearest / 2 <= n <= nearest * 2:
        nearest_batch = batch
    else:  # no row count like it within 2x of n: the nearest measured point within the sane distance, said so
        nearest_batch, nearest = min(sane, key=lambda p: (_distance(p, batch, n), p))
    at = timed[(timed["batch"] == nearest_batch) & (timed["n"] == nearest)]
    ok, failed = candidates(at, calls)
    excluded = [{"impl": r.impl, "time_s": r.time_s, "run": r.run,
                 "reason": (f"failed {r.check_failed} correctness cases" if r.check_failed else
                            "not checked in this run" if not r.checked else
                            f"error {r.error_ratio:.3g}x tolerance at this shape")}
                for r in failed.itertuples()]
    if ok.empty:
        raise NoResult(f"no implementation measured for {op} {dtype} on {device} at batch {nearest_batch}, n {nearest} "
                       f"passed every correctness case")
    best = ok.iloc[0]
    second = ok.iloc[1] if len(ok) > 1 else None
    compile_s = float(best["compile_s"]) if math.isfinite(best["compile_s"]) else 0.0
    second_compile_s = None if second is None else \
        (float(second["compile_s"]) if math.isfinite(second["compile_s"]) else 0.0)
    if calls is None:
        clear_win = None if second is None else results.clear_win(float(best["q75_s"]), float(second["q25_s"]))
        speedup = None if second is None else float(second["time_s"] / best["time_s"])
        totals = (None, None)
    else:
        two = ok.iloc[:2]
        totals = tuple(float(t) for t in total(two, calls)) + (None,) * (2 - len(two))
        q75, q25 = float(total(two, calls, "q75_s").iloc[0]), float(total(two, calls, "q25_s").iloc[-1])
        clear_win = None if second is None else results.clear_win(q75, q25)
        speedup = None if second is None else totals[1] / totals[0]
    date, second_date = (_date(r) for r in (best, second))
    return Choice(
        op=op, n=n, batch=batch, dtype=dtype, device=device, impl=str(best["impl"]), time_s=float(best["time_s"]),
        measured_n=int(nearest), measured_batch=int(nearest_batch),
        runner_up=None if second is None else str(second["impl"]),
        runner_up_time_s=None if second is None else float(second["time_s"]),
        speedup=speedup,
        passed_cases=int(best["check_passed"]), compile_s=compile_s,
        run=str(best["run"]), commit=str(best["commit"]), excluded=excluded, clear_win=clear_win,
        slow_machine=bool(best.get("slow_machine", False) or (second is not None and second.get("slow_machine", False))),
        date=date, age_s=_age_s(date, now) if date else None,
        runner_up_run=None if second is None else str(second["run"]),
        runner_up_commit=None if second is None else str(second["commit"]),
        runner_up_date=second_date, runner_up_age_s=_age_s(second_date, now) if second_date else None,
        advice=how, calls=calls, runner_up_compile_s=second_compile_s, total_s=totals[0],
        runner_up_total_s=totals[1], payback=payback(ok),
    )


def _date(row) -> str | None:
    """The date of the run a row comes from (None: no row, or a run without one)."""
    date = None if row is None else row.get("date")
    return date if isinstance(date, str) else None


def _factor(measured: int, asked: int) -> float:
    """How many times larger or smaller the measured size is than the one asked (>= 1)."""
    return max(measured / asked, asked / measured)


def _distance(p: tuple[int, int], batch: int, n: int) -> float:
    return abs(math.log(p[0] / batch)) + abs(math.log(p[1] / n))


# --- one machine's answer, and the other machines' beside it ------------------------------------------------


@dataclass
class Answer:
    """:func:`recommend` on one machine's runs: its :class:`Choice`, or why there is none (``reason``), and the
    rows it answered from (``df``: :func:`softgrad.history.results.newest_per_entry` on that machine)."""

    machine: str
    choice: Choice | None
    reason: str = ""
    df: Any = None

    def line(self) -> str:
        """``on gpu-box: torch-native (cuda), 3.1 us (run R)``, or ``on gpu-box: no answer (why)``."""
        if self.choice is None:
            return f"on {self.machine}: no answer ({self.reason.split('; ')[0]})"
        c = self.choice
        device = "" if c.device == "cpu" else f" ({c.device})"
        what = (f"{format_seconds(c.total_s)} for {c.calls:,} calls" if c.calls is not None and c.total_s is not None
                else format_seconds(c.time_s))
        where = "" if (c.measured_n, c.measured_batch) == (c.n, c.batch) else \
            f", measured at batch {c.measured_batch}, n {c.measured_n}"
        return f"on {self.machine}: {c.impl}{device}, {what} (run {c.run}{where})"

    def to_dict(self) -> dict[str, Any]:
        if self.choice is None:
            return {"machine": self.machine, "recommendation": None, "reason": self.reason}
        return {"machine": self.machine, **self.choice.to_dict()}


def recommend_on(loaded, machine: str, among: list[str] | None = None, **request: Any) -> Answer:
    """:func:`recommend` of ``request`` from ``machine``'s runs alone in ``loaded`` (results.load()'s frame),
    among the entries ``among`` (None: every one): each machine's timings answer for that machine only."""
    df = results.newest_per_entry(loaded, machine=machine)
    if among is not None and not df.empty:
        df = df[df["impl"].isin(among)]
    try:
        return Answer(machine, recommend(df, **request), df=df)
    except NoResult as exc:
        return Answer(machine, None, str(exc), df=df)


def beside(answers: list[Answer]) -> list[Answer]:
    """The other machines' answers to show beside this one's: those with a choice first (each line names its
    machine), then those without."""
    return sorted(answers, key=lambda a: a.choice is None)
