"""``softgrad choose``: which implementation to use for an op, size, dtype and device, from stored timings.

Only implementations that passed every correctness case of the run (and whose error at the benchmark
shape is within tolerance) are candidates, whatever their speed. The measurement used is the one at the
requested batch and n, else the nearest measured n within a factor of 2 at the same batch; otherwise
there is no answer and the message says how to measure it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from . import results
from .units import format_seconds


class NoResult(Exception):
    """No stored measurement near the request; the message suggests the command that would measure it."""


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
    #: the runner-up's lower quartile is above the fastest's upper quartile (None: no runner-up or no
    #: quartiles); when False the two are within the measured spread and may swap places on a rerun
    clear_win: bool | None = None
    #: the winner or the runner-up was timed while the whole machine ran slow (``slow_machine``)
    slow_machine: bool = False

    @property
    def far(self) -> bool:
        """The answer comes from another row count, or a row length more than 2x away."""
        return self.measured_batch != self.batch or not (self.measured_n / 2 <= self.n <= self.measured_n * 2)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "far": self.far}

    def sentence(self) -> str:
        why = [f"{self.impl}: {format_seconds(self.time_s)}"]
        if self.runner_up:
            why.append(f"{self.speedup:.3g}x faster than {self.runner_up} ({format_seconds(self.runner_up_time_s)}"
                       + (", within the measured spread: either will do)" if self.clear_win is False else ")"))
        why.append(f"passed all {self.passed_cases} correctness cases")
        if self.compile_s >= 0.01:
            why.append(f"compile {self.compile_s:.2g} s once")
        where = "" if (self.measured_n, self.measured_batch) == (self.n, self.batch) else \
            f" (measured at batch {self.measured_batch}, n {self.measured_n})"
        if self.far:
            where += (f"; this is the nearest measured point, {_times(self.measured_batch, self.batch)} the rows and "
                      f"{_times(self.measured_n, self.n)} the row length asked: at other sizes (in cache or not) "
                      f"the ranking can differ; time this shape with {measure_command(self.op, self.n, self.batch, self.dtype, self.device)}")
        note = ("; note: measured while the machine ran slow (other load), rerun to be sure"
                if self.slow_machine else "")
        return ", ".join(why) + where + note


def _times(measured: int, asked: int) -> str:
    ratio = measured / asked
    return "the same as" if ratio == 1 else f"{ratio:.3g}x" if ratio > 1 else f"1/{1 / ratio:.3g} of"


def measure_command(op: str, n: int, batch: int, dtype: str, device: str) -> str:
    return (f"`softgrad run --workload FILE` (a workload file with shapes = [\"{batch}x{n}\"], dtypes = "
            f"[\"{dtype}\"], ops = [\"{op}\"])")


def recommend(df, op: str, n: int, batch: int = 1, dtype: str = "float32", device: str = "cpu",
              x_layout: str = "contiguous", g_layout: str = "contiguous") -> Choice:
    """The fastest passing implementation for the request, from the rows of one run (see results.latest);
    ``batch`` is the number of rows (the leading dims' product), x and g laid out as asked."""
    if not df.empty:
        layouts = df["x_layout"] if "x_layout" in df else "contiguous"
        g_layouts = df["g_layout"] if "g_layout" in df else "contiguous"
        df = df[(layouts == x_layout) & ((g_layouts == g_layout) | (op != "vjp"))]
    timed = df[(df["op"] == op) & (df["dtype"] == dtype) & (df["device"] == device)] if not df.empty else df
    timed = timed[timed["time_s"].notna()] if not timed.empty else timed
    if timed.empty or n <= 0 or batch <= 0:
        dtypes = sorted(set(df[df["time_s"].notna()]["dtype"])) if not df.empty else []
        raise NoResult(f"no stored timing for {op} {dtype} on {device}"
                       + (f" (timed here: {', '.join(dtypes)})" if dtypes else "") + "; measure it with: "
                       + measure_command(op, n, batch, dtype, device))
    rows = timed[timed["batch"] == batch]
    measured = sorted(set(rows["n"]))
    nearest = min(measured, key=lambda m: abs(math.log(m / n))) if measured else None
    if nearest is not None and nearest / 2 <= n <= nearest * 2:
        nearest_batch = batch
    else:  # no row count like it within 2x of n: the nearest measured point, said so
        points = set(zip(timed["batch"], timed["n"]))
        nearest_batch, nearest = min(points, key=lambda p: (abs(math.log(p[0] / batch)) + abs(math.log(p[1] / n)),
                                                           p))
        rows = timed[timed["batch"] == nearest_batch]
    at = rows[rows["n"] == nearest]
    at = at.sort_values("run").drop_duplicates("impl", keep="last")  # the newest run's, where two workloads share it
    ok = at[at["passed"]].sort_values("time_s")
    excluded = [{"impl": r.impl, "time_s": r.time_s,
                 "reason": (f"failed {r.check_failed} correctness cases" if r.check_failed else
                            "not checked in this run" if not r.checked else
                            f"error {r.error_ratio:.3g}x tolerance at this shape")}
                for r in at[~at["passed"]].itertuples()]
    if ok.empty:
        raise NoResult(f"no implementation measured for {op} {dtype} on {device} at batch {batch}, n {nearest} "
                       f"passed every correctness case")
    best = ok.iloc[0]
    second = ok.iloc[1] if len(ok) > 1 else None
    compile_s = float(best["compile_s"]) if math.isfinite(best["compile_s"]) else 0.0
    clear_win = None if second is None else results.clear_win(float(best["q75_s"]), float(second["q25_s"]))
    return Choice(
        op=op, n=n, batch=batch, dtype=dtype, device=device, impl=str(best["impl"]), time_s=float(best["time_s"]),
        measured_n=int(nearest), measured_batch=int(nearest_batch),
        runner_up=None if second is None else str(second["impl"]),
        runner_up_time_s=None if second is None else float(second["time_s"]),
        speedup=None if second is None else float(second["time_s"] / best["time_s"]),
        passed_cases=int(best["check_passed"]), compile_s=compile_s,
        run=str(best["run"]), commit=str(best["commit"]), excluded=excluded, clear_win=clear_win,
        slow_machine=bool(best.get("slow_machine", False) or (second is not None and second.get("slow_machine", False))),
    )
