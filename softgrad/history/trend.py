"""The report's history: time at one shape and the worst error across the stored runs, with the change points
of ``softgrad history`` (:func:`softgrad.history.changes.find`, the same call) marked where they hold and
listed in a table, newest first, each with its likely cause or what changed.

A marker sits at the first run at which a change holds, on the line of its benchmark: a time change of the
plotted shape and dtype on the time panel, an error change of any tracked size on the error panel (that panel
shows each run's worst error over them); its label is the size and the one-line cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .changes import BENCHMARK, Change, History
from .plotting import OPS
from .plotting import colors as _colors
from .plotting import figure_legend as _figure_legend
from .plotting import plt as _plt

#: the change table shows at most this many (``softgrad history`` lists them all)
MAX_ROWS = 40
#: a marker's label is cut at this many characters
LABEL_CHARS = 60


def history_tables(df_all, shape: str = "256x1024", dtype: str = "float32"):
    """The history view's data, one column per stored run (oldest first): the median time at ``shape``
    and, since the error is tracked on a coarser grid than the time, each run's worst error / tolerance
    over every tracked size. Both are indexed by (op, impl); empty when nothing was measured at ``shape``."""
    import pandas as pd

    cpu = df_all[(df_all["dtype"] == dtype) & (df_all["device"] == "cpu")]
    at_shape = cpu[cpu["shape"] == shape]
    if at_shape.empty:
        return pd.DataFrame(), pd.DataFrame()
    runs = sorted(at_shape["run"].unique())
    times = at_shape.pivot_table(index=["op", "impl"], columns="run", values="time_s", aggfunc="median")
    tracked = cpu[np.isfinite(cpu["error_ratio"])]
    errors = tracked.pivot_table(index=["op", "impl"], columns="run", values="error_ratio", aggfunc="max")
    return times.reindex(columns=runs), errors.reindex(columns=runs)


def cause(change: Change) -> str:
    """One line: the likely cause, else everything that changed between the two runs, else that nothing
    meta.json records did."""
    if change.cause:
        return change.cause
    if change.changed:
        return "changed: " + ", ".join(d.text() for d in change.changed)
    return "nothing meta.json records changed (the machine itself, or noise)"


@dataclass(frozen=True)
class Marker:
    """A change point on the history plot: ``panel`` is ``time`` or ``error``; ``x`` the index of its run."""

    panel: str
    op: str
    impl: str
    run: str
    x: int
    y: float
    label: str


def markers(times, errors, found: Sequence[Change], shape: str, dtype: str) -> list[Marker]:
    """Where each change of ``found`` goes on the history plot of ``times`` and ``errors``
    (:func:`history_tables` at ``shape`` and ``dtype``): one marker per panel, op, entry and run."""
    out: dict[tuple[str, str, str, str], Marker] = {}
    runs = list(times.columns)
    for c in found:
        b = dict(zip(BENCHMARK, c.benchmark))
        if b["dtype"] != dtype or b["device"] != "cpu" or c.run not in runs:
            continue
        if c.metric == "time" and b["shape"] == shape:
            panel, table = "time", times
        elif c.metric == "error":
            panel, table = "error", errors
        else:
            continue
        key = (panel, b["op"], b["impl"], c.run)
        if key in out or (b["op"], b["impl"]) not in table.index or c.run not in table.columns:
            continue
        y = float(table.loc[(b["op"], b["impl"]), c.run])
        if not np.isfinite(y):
            continue
        label = f"{b['impl']} {c.size:+.0%}: {cause(c)}"
        cut = label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 3] + "..."
        out[key] = Marker(panel, b["op"], b["impl"], c.run, runs.index(c.run), y, cut)
    return list(out.values())


@dataclass(frozen=True)
class Drawn:
    """The history plot written (``path``; None: nothing measured at the shape) and the change markers read
    back from its axes: (marker, the label drawn beside it)."""

    path: Path | None
    marked: list[tuple[Marker, str]]


#: at most this many runs are labelled under each panel of the history plot (three lines each, slanted, about 0.6 in
#: wide on a 5.2 in panel; a year of nights printed 365)
MAX_LABELLED_RUNS = 4


def labelled_runs(labels: Sequence[str], most: int = MAX_LABELLED_RUNS) -> list[int]:
    """The positions to label: every run where the label (commit, versions) changes, the first and the
    newest, thinned evenly to ``most`` (the first and the newest kept) when there are more."""
    keep = [k for k, text in enumerate(labels) if k == 0 or text != labels[k - 1]]
    if labels and keep[-1] != len(labels) - 1:
        keep.append(len(labels) - 1)
    if len(keep) <= most:
        return keep
    picked = np.unique(np.linspace(0, len(keep) - 1, most).round().astype(int))
    return [keep[i] for i in picked]


def history_plot(df_all, path: Path, shape: str = "256x1024", dtype: str = "float32",
                 found: Sequence[Change] = ()) -> Drawn:
    """Time at ``shape`` and the worst error per run (commit and versions under the runs where they change,
    :func:`labelled_runs`), each change of
    ``found`` marked (a red triangle at its run) with its one-line cause."""
    times, errors = history_tables(df_all, shape, dtype)
    if times.empty:
        return Drawn(None, [])
    plt = _plt()
    colors = _colors(list(df_all["impl"].unique()))
    runs = list(times.columns)
    ops = [op for op in OPS if op in set(times.index.get_level_values("op"))]
    first = df_all.drop_duplicates("run").set_index("run")
    labels = [f"{first.at[r, 'commit']}\ntorch {first.at[r, 'torch'] or '-'}\njax {first.at[r, 'jax'] or '-'}"
              for r in runs]
    ticks = labelled_runs(labels)
    fig, axes = plt.subplots(2, len(ops), figsize=(5.2 * len(ops), 7), squeeze=False)
    x = np.arange(len(runs))
    for j, op in enumerate(ops):
        for panel, table in ((axes[0][j], times), (axes[1][j], errors)):
            if op in set(table.index.get_level_values("op")):
                for impl, series in table.loc[op].iterrows():
                    panel.plot(x, series.to_numpy(dtype=float), marker="o", ms=3, label=impl, color=colors[impl])
        axes[0][j].set_yscale("log")
        axes[0][j].set_title(f"{op} {shape} {dtype}: time per run")
        axes[1][j].set_title(f"{op} {dtype}: worst error / tolerance")
        axes[1][j].set_yscale("log")
        axes[1][j].axhline(1, color="k", lw=0.8, ls="--")
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xticks(ticks, [labels[k] for k in ticks], fontsize=6, rotation=30, ha="right")
    placed = markers(times, errors, found, shape, dtype)
    stacked: dict[tuple[int, int], int] = {}
    for k, m in enumerate(placed):
        ax = axes[0 if m.panel == "time" else 1][ops.index(m.op)]
        ax.plot([m.x], [m.y], "v", ms=9, mfc="none", mec="red", mew=1.5, gid=f"change-{k}")
        row = stacked[(id(ax), m.x)] = stacked.get((id(ax), m.x), -1) + 1
        ax.annotate(m.label, (m.x, m.y), xytext=(6, 8 + 9 * row), textcoords="offset points", fontsize=6,
                    color="red", gid=f"change-{k}")
    drawn = _read_back(axes, placed)
    if placed:
        axes[0][-1].plot([], [], "v", ms=9, mfc="none", mec="red", mew=1.5, label="change point")
    _figure_legend(fig, axes)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Drawn(path, drawn)


def _read_back(axes, placed: list[Marker]) -> list[tuple[Marker, str]]:
    """Each marker as the axes hold it: its point (from the drawn line) and its label (the drawn text)."""
    out = []
    for ax in axes.flat:
        texts: dict[Any, str] = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
        for line in ax.get_lines():
            gid = line.get_gid()
            if gid and gid.startswith("change-") and gid in texts:
                m = placed[int(gid.split("-")[1])]
                (x, y), = line.get_xydata()
                out.append((Marker(m.panel, m.op, m.impl, m.run, int(x), float(y), m.label), texts[gid]))
    return out


def table_rows(history: History, limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """The report's change-point table, newest first (as ``history`` holds them): at most ``limit`` rows."""
    rows = []
    for c in history.changes[:limit]:
        rows.append({
            "date": (c.date or "")[:10], "run": c.run, "benchmark": c.name(), "metric": c.metric,
            "change": ("" if c.kind == "step" else "crept ") + f"{c.size:+.0%} [{c.low:+.0%}, {c.high:+.0%}] "
                      + c.direction,
            "recovered": f"{c.recovered:.0%} at {c.recovered_at}" if c.recovered is not None else "",
            "likely cause / what changed": cause(c),
        })
    return rows


def summary(history: History, limit: int = MAX_ROWS) -> str:
    """The sentence above the table: the machine, runs and threshold, how many change points, how many shown."""
    if history.note:
        return history.note[0].upper() + history.note[1:] + "."
    count = len(history.changes)
    text = (f"{history.runs} runs on machine {history.machine}, threshold {history.threshold:.0%}: "
            f"{count or 'no'} change point{'' if count == 1 else 's'} (as softgrad history finds them), newest first, "
            f"each at the first run at which it holds, its size with a 95% interval, and what changed between the run "
            f"before and that run.")
    if count > limit:
        text += f" The newest {limit} are shown; softgrad history lists all {count}."
    return text
