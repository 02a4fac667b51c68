"""Where the fastest correct entry changes along n, and when a compiled entry pays back its compile.

Crossovers: per op, dtype, rows (batch), layouts and device, each measured row length's winner under
:func:`softgrad.history.choose.candidates` (the one rule ``choose`` recommends by: only entries that passed
every check of the run that timed them), over each entry's newest measurement of each point
(:func:`softgrad.history.results.newest_per_entry`: the default grid and every workload alike). Where the
winner changes between two measured row lengths, the change lies in that interval; where both entries were
measured at both ends, the point where their log-log time curves cross is interpolated; and where either end's
two entries are within each other's quartiles, the change is not a clear one (a rerun may move or remove it).

Break-even: a program of N calls pays a compiled entry's compile once (``compile_s``: first call minus a
steady one, plus the cold build), so its total is ``compile_s + N * time_s``; :func:`break_even` is the
least N at which a compiled entry's total is no more than another's, in the same arithmetic
:func:`softgrad.history.choose.candidates` ranks by.

Example::

    from softgrad.history import crossovers, results
    stored = results.newest_per_entry(results.load())
    along = crossovers.along_n(stored, "vjp", batch=256, dtype="float32")
    print("\\n".join(along.lines()))   # n 16..64: numba-parallel / below n = 96 numba-parallel, above it ...
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from . import results
from .choose import candidates, total
from .units import format_seconds

#: the columns that make one curve along n (g's layout only where the op reads g: the VJP)
CURVE = ("op", "dtype", "batch", "device", "x_layout", "g_layout")

#: what the report says above its crossover table (:func:`table_rows`)
CAPTION = ("Per op, dtype, rows, device and layouts, the fastest entry that passed every check of its run at each "
           "measured row length (each entry's newest measurement: the default grid and every workload), by range "
           "of n, and the crossovers: the winner changes between the two measured n's given, `about` where the two "
           "entries' time curves cross (interpolated in log n), `not clear` where the two are within each other's "
           "quartiles at either end, so a rerun may move or remove the change.")


@dataclass(frozen=True)
class Stretch:
    """Consecutive measured row lengths with the same winner."""

    impl: str
    n_first: int
    n_last: int
    sizes: int

    def line(self) -> str:
        span = f"n = {self.n_first}" if self.n_first == self.n_last else f"n = {self.n_first}..{self.n_last}"
        return f"{span}: {self.impl}"


@dataclass(frozen=True)
class Crossover:
    """The winner changes from ``below`` (fastest at the measured ``n_lo``) to ``above`` (at ``n_hi``)."""

    below: str
    above: str
    n_lo: int
    n_hi: int
    #: the row length where the two entries' curves cross, interpolated in log n and log time (None: either
    #: entry was not a candidate at both ends)
    estimate: float | None
    #: False: at ``n_lo`` or ``n_hi`` the two are within each other's quartiles (not a clear change); None:
    #: no end has both entries' quartiles
    clear: bool | None

    def sentence(self) -> str:
        if self.estimate is not None:
            text = (f"below n = {round(self.estimate)} {self.below}, above it {self.above} (interpolated between "
                    f"the measured n = {self.n_lo} and {self.n_hi})")
        else:
            text = f"between the measured n = {self.n_lo} and {self.n_hi} the fastest changes from {self.below} to {self.above}"
        if self.clear is False:
            text += "; within each other's measured spread there: not a clear change"
        return text


@dataclass(frozen=True)
class AlongN:
    """The winners of one curve along n, and where they change."""

    op: str
    dtype: str
    batch: int
    device: str
    x_layout: str
    g_layout: str | None
    calls: int | None
    stretches: tuple[Stretch, ...]
    crossovers: tuple[Crossover, ...]

    def title(self) -> str:
        layouts = f"x {self.x_layout}" + (f", g {self.g_layout}" if self.g_layout else "")
        per = "per call" if self.calls is None else f"for {self.calls:,} calls"
        return f"{self.op}, {self.batch} rows, {self.dtype}, {self.device} ({layouts}), fastest correct entry {per}"

    def lines(self) -> list[str]:
        """Each stretch of one winner, and between two stretches the crossover, in order of n."""
        out = [self.stretches[0].line()]
        for change, stretch in zip(self.crossovers, self.stretches[1:]):
            out += [change.sentence(), stretch.line()]
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for c, change in zip(d["crossovers"], self.crossovers):
            c["sentence"] = change.sentence()
        return d


def _curves(df):
    """``df`` timed, with its g layout blanked where the op does not read g (as ``choose`` matches it)."""
    timed = df[df["time_s"].notna()] if not df.empty else df
    if timed.empty:
        return timed
    x = timed["x_layout"] if "x_layout" in timed else "contiguous"
    g = timed["g_layout"] if "g_layout" in timed else "contiguous"
    return timed.assign(x_layout=x, g_layout=g).assign(
        g_layout=lambda t: t["g_layout"].where(t["op"] == "vjp", ""))


def _along(curve, key: tuple, calls: int | None) -> AlongN | None:
    """The winners of one curve's rows (one op, dtype, batch, device and layouts) along n."""
    winners: list[tuple[int, Any, Any]] = []  # (n, the winner's row, every candidate by entry)
    for n, at in curve.groupby("n", sort=True):
        ok, _ = candidates(at, calls)
        if not ok.empty:
            winners.append((int(n), ok.iloc[0], ok.set_index("impl")))
    if not winners:
        return None
    stretches: list[Stretch] = []
    changes: list[Crossover] = []
    for i, (n, best, _) in enumerate(winners):
        if stretches and stretches[-1].impl == best["impl"]:
            last = stretches[-1]
            stretches[-1] = Stretch(last.impl, last.n_first, n, last.sizes + 1)
            continue
        if stretches:
            changes.append(_crossover(winners[i - 1], winners[i], calls))
        stretches.append(Stretch(str(best["impl"]), n, n, 1))
    op, dtype, batch, device, x_layout, g_layout = key
    return AlongN(op=op, dtype=dtype, batch=int(batch), device=device, x_layout=x_layout, g_layout=g_layout or None,
                  calls=calls, stretches=tuple(stretches), crossovers=tuple(changes))


def _crossover(lo: tuple, hi: tuple, calls: int | None) -> Crossover:
    (n_lo, a_row, at_lo), (n_hi, b_row, at_hi) = lo, hi
    a, b = str(a_row["impl"]), str(b_row["impl"])

    def value(rows, impl, column="time_s"):
        row = rows.loc[[impl]] if impl in rows.index else None
        if row is None:
            return math.nan
        return float((row[column] if calls is None else total(row, calls, column)).iloc[0])

    estimate = None
    ends = [(value(at_lo, a), value(at_lo, b)), (value(at_hi, a), value(at_hi, b))]
    if all(math.isfinite(v) and v > 0 for end in ends for v in end):
        d_lo, d_hi = (math.log(vb / va) for va, vb in ends)  # >= 0 at n_lo (a wins), <= 0 at n_hi (b wins)
        if d_lo - d_hi > 0:
            estimate = math.exp(math.log(n_lo) + d_lo / (d_lo - d_hi) * (math.log(n_hi) - math.log(n_lo)))
    verdicts = [results.clear_win(value(at_lo, a, "q75_s"), value(at_lo, b, "q25_s")),
                results.clear_win(value(at_hi, b, "q75_s"), value(at_hi, a, "q25_s"))]
    known = [v for v in verdicts if v is not None]
    clear = None if not known else all(known)
    return Crossover(below=a, above=b, n_lo=n_lo, n_hi=n_hi, estimate=estimate, clear=clear)


def along_n(df, op: str, batch: int, dtype: str = "float32", device: str = "cpu", x_layout: str = "contiguous",
            g_layout: str = "contiguous", calls: int | None = None) -> AlongN | None:
    """The winners along n for one op, rows, dtype, device and layouts, from each entry's newest measurement
    of each point (``df``: :func:`softgrad.history.results.newest_per_entry`); for a program of ``calls`` calls
    by total. None: no candidate was measured there."""
    curves = _curves(df)
    if curves.empty:
        return None
    g = g_layout if op == "vjp" else ""
    curve = curves[(curves["op"] == op) & (curves["dtype"] == dtype) & (curves["batch"] == batch)
                   & (curves["device"] == device) & (curves["x_layout"] == x_layout) & (curves["g_layout"] == g)]
    return _along(curve, (op, dtype, batch, device, x_layout, g), calls) if not curve.empty else None


def every_curve(df, calls: int | None = None) -> list[AlongN]:
    """:func:`along_n` for every op, dtype, rows, device and layouts measured in ``df``."""
    curves = _curves(df)
    if curves.empty:
        return []
    found = (_along(curve, key, calls) for key, curve in curves.groupby(list(CURVE), sort=True))
    return [a for a in found if a is not None]


def table_rows(loaded) -> list[dict[str, Any]]:
    """The report's crossover table from the loaded history (:func:`softgrad.history.results.load`), over each
    entry's newest measurement of each point on the newest run's machine: one row per curve, its winners by n
    range and its crossovers."""
    rows = []
    for a in every_curve(results.newest_per_entry(loaded)):
        rows.append({
            "op": a.op, "dtype": a.dtype, "batch": a.batch, "device": a.device,
            "layouts": f"x {a.x_layout}" + (f", g {a.g_layout}" if a.g_layout else ""),
            "n range -> winner": "; ".join(f"{s.n_first}..{s.n_last} -> {s.impl}" if s.n_first != s.n_last
                                           else f"{s.n_first} -> {s.impl}" for s in a.stretches),
            "crossovers": "; ".join(
                f"{c.n_lo}..{c.n_hi}" + (f" (about {round(c.estimate)})" if c.estimate is not None else "")
                + (", not clear" if c.clear is False else "") for c in a.crossovers) or "-",
        })
    return rows


@dataclass(frozen=True)
class Payback:
    """``impl`` (compiled) pays back its compile after ``calls`` calls against ``against`` (no compile)."""

    impl: str
    compile_s: float
    time_s: float
    against: str
    against_time_s: float
    calls: int

    def sentence(self) -> str:
        return (f"{self.impl} pays back its {format_seconds(self.compile_s)} compile after {self.calls:,} calls "
                f"against {self.against} ({format_seconds(self.time_s)} a call against "
                f"{format_seconds(self.against_time_s)})")


def break_even(compile_s: float, time_s: float, other_compile_s: float, other_time_s: float) -> int | None:
    """The least number of calls N >= 1 at which ``compile_s + N * time_s`` is no more than the other entry's
    ``other_compile_s + N * other_time_s`` (the sums exactly as :func:`softgrad.history.choose.total` makes
    them); None where that never happens (the first is no faster per call and costs more to compile)."""
    def cheaper(n: int) -> bool:
        return compile_s + n * time_s <= other_compile_s + n * other_time_s

    if cheaper(1):
        return 1
    if time_s >= other_time_s:
        return None
    n = max(1, math.ceil((compile_s - other_compile_s) / (other_time_s - time_s)))
    while n > 1 and cheaper(n - 1):  # the division's rounding, either way
        n -= 1
    while not cheaper(n):
        n += 1
    return n


def payback(ok) -> Payback | None:
    """For the candidates at one point (``ok``: :func:`softgrad.history.choose.candidates`), the fastest per
    call, where it compiles, against the fastest that does not compile: after how many calls it pays back."""
    if ok.empty:
        return None
    by_time = ok.sort_values("time_s", kind="stable")
    compile_s = by_time["compile_s"].fillna(0.0)
    fastest = by_time.iloc[0]
    free = by_time[compile_s == 0]
    if compile_s.iloc[0] <= 0 or free.empty:
        return None
    other = free.iloc[0]
    calls = break_even(float(compile_s.iloc[0]), float(fastest["time_s"]), 0.0, float(other["time_s"]))
    if calls is None:
        return None
    return Payback(impl=str(fastest["impl"]), compile_s=float(compile_s.iloc[0]), time_s=float(fastest["time_s"]),
                   against=str(other["impl"]), against_time_s=float(other["time_s"]), calls=calls)
