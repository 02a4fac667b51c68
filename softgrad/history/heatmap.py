"""The report's first picture: which entry to use, per stored workload, at a glance.

For each workload (the default grid included), on the newest run's machine, each entry's newest measurement
of each point in that workload's runs (:func:`softgrad.history.results.newest_per_entry`), and at each op and
point the winner under :func:`softgrad.history.choose.candidates` (the one rule ``softgrad choose`` and the
crossovers along n use: only entries that passed every check of the run that timed them, fastest per call
first). A cell holds the winner, its margin (the runner-up's time over its own) and whether the win is clear
(:func:`softgrad.history.results.clear_win`: the runner-up's lower quartile above the winner's upper one).

A panel per dtype, device and layouts, its columns the points by row length; where each number of rows was
measured at :data:`MIN_COLUMNS` row lengths or more (a grid such as the default one), or there is one number
of rows, a panel per number of rows too, its columns labelled by n; else (a workload of scattered shapes, each
its own number of rows) one panel whose columns are labelled rows x n.

Example::

    from softgrad.history import heatmap, results
    for workload, panels in heatmap.panels(results.load()).items():
        print(workload, [(c.op, c.batch, c.n, c.impl, c.margin) for c in panels[0].cells])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import results
from .choose import candidates
from .plotting import OPS
from .plotting import plt as _plt

#: what one panel holds at most: the points of one dtype x device x layouts
PANEL = ("dtype", "device", "x_layout", "g_layout")
#: a panel per number of rows where each was measured at this many row lengths or more
MIN_COLUMNS = 3
#: the colour of a cell where no entry passed
NO_WINNER = (0.93, 0.93, 0.93, 1.0)
#: the mark of a win within the measured spread
NOT_CLEAR = "\u2248"  # ≈

CAPTION = ("Per op (rows) and row length n (columns; rows x n where a workload's shapes each have their own number "
           "of rows), in a panel per number of rows, dtype, device and layouts: "
           "the colour is the fastest entry that passed every correctness check of the run that timed it (each "
           "entry's newest measurement in this workload, the rule `softgrad choose` answers by); the number is "
           f"the runner-up's time over the fastest's; {NOT_CLEAR} and hatching: the runner-up is within the "
           "measured spread (its lower quartile at or below the fastest's upper quartile), so a rerun may swap "
           "them; `only`: no other entry passed there; grey: no entry both passed and was timed there (none passed, "
           "or the grid does not time that point, e.g. a Jacobian over the sweep's output budget).")


@dataclass(frozen=True)
class Cell:
    """The winner at one op and point (rows, row length) of a panel."""

    op: str
    batch: int
    n: int
    impl: str
    time_s: float
    runner_up: str | None
    #: the runner-up's time over the winner's (None: no runner-up)
    margin: float | None
    #: :func:`softgrad.history.results.clear_win` of the two (None: no runner-up or no quartiles)
    clear: bool | None

    def text(self) -> str:
        """What the picture writes in the cell: the margin, marked where it is within the spread."""
        if self.margin is None:
            return "only"
        return (NOT_CLEAR if self.clear is False else "") + f"{self.margin:.3g}x"


@dataclass(frozen=True)
class Panel:
    """The cells of one dtype x device x layouts (and number of rows, ``batch``; None: several) of a workload."""

    workload: str
    dtype: str
    device: str
    x_layout: str
    g_layout: str
    batch: int | None
    #: the columns: (rows, row length), by row length
    points: tuple[tuple[int, int], ...]
    cells: tuple[Cell, ...]

    @property
    def ns(self) -> tuple[int, ...]:
        return tuple(n for _, n in self.points)

    def title(self) -> str:
        layouts = "" if (self.x_layout, self.g_layout) == ("contiguous", "contiguous") else \
            f", x {self.x_layout}, g {self.g_layout}"
        rows = "rows x n" if self.batch is None else f"{self.batch} row{'' if self.batch == 1 else 's'}"
        return f"{rows}, {self.dtype}, {self.device}{layouts}"

    def labels(self) -> list[str]:
        """Each column's label: n, or rows x n where the panel holds several numbers of rows."""
        return [_n_label(n) if self.batch is not None else f"{b}x{_n_label(n)}" for b, n in self.points]

    def ops(self) -> list[str]:
        found = {c.op for c in self.cells}
        return [op for op in OPS if op in found] + sorted(found - set(OPS))

    def cell(self, op: str, n: int, batch: int | None = None) -> Cell | None:
        return next((c for c in self.cells if c.op == op and c.n == n and batch in (None, c.batch)), None)


def _cell(op: str, batch: int, n: int, at) -> Cell | None:
    ok, _ = candidates(at)
    if ok.empty:
        return None
    best = ok.iloc[0]
    if len(ok) < 2:
        return Cell(op, batch, n, str(best["impl"]), float(best["time_s"]), None, None, None)
    second = ok.iloc[1]
    return Cell(op, batch, n, str(best["impl"]), float(best["time_s"]), str(second["impl"]),
                float(second["time_s"]) / float(best["time_s"]),
                results.clear_win(float(best["q75_s"]), float(second["q25_s"])))


def _panel(workload: str, key: tuple, batch: int | None, rows) -> Panel | None:
    dtype, device, x_layout, g_layout = key
    cells = [c for (op, b, n), at in rows.groupby(["op", "batch", "n"], sort=True)
             if (c := _cell(str(op), int(b), int(n), at)) is not None]
    if not cells:
        return None
    points = tuple(sorted({(int(b), int(n)) for b, n in zip(rows["batch"], rows["n"])}, key=lambda p: (p[1], p[0])))
    return Panel(workload, str(dtype), str(device), str(x_layout), str(g_layout), batch, points, tuple(cells))


def _panels(workload: str, rows) -> list[Panel]:
    out = []
    for key, g in rows.groupby(list(PANEL), sort=True):
        per_batch = g.groupby("batch")["n"].nunique()
        if len(per_batch) == 1 or per_batch.min() >= MIN_COLUMNS:
            found = [_panel(workload, key, int(b), part) for b, part in g.groupby("batch", sort=True)]
        else:
            found = [_panel(workload, key, None, g)]
        out += [p for p in found if p is not None]
    return out


def panels(loaded) -> dict[str, list[Panel]]:
    """Per workload (``default`` first, then by name) its panels, from the loaded history
    (:func:`softgrad.history.results.load`) on the newest run's machine."""
    if loaded.empty:
        return {}
    machine = results.latest(loaded)["machine"].iloc[0]
    out: dict[str, list[Panel]] = {}
    for workload in sorted(set(loaded["workload"]), key=lambda w: (w != "default", str(w))):
        newest = results.newest_per_entry(loaded[loaded["workload"] == workload], machine=machine)
        newest = newest[newest["time_s"].notna()] if not newest.empty else newest
        found = _panels(str(workload), newest) if not newest.empty else []
        if found:
            out[str(workload)] = found
    return out


def _ink(rgba) -> str:
    """Black or white, whichever reads on ``rgba``."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _n_label(n: int) -> str:
    return f"{n // 1024}k" if n >= 8192 and n % 1024 == 0 else str(n)


def draw(found: list[Panel], colors: dict[str, Any], path: Path, title: str) -> Path | None:
    """One figure of ``found`` (one workload's panels, two a row), each a grid of op x n coloured by the
    winner (``colors``: entry -> colour) with its margin written in; None when there is nothing to draw."""
    if not found:
        return None
    from matplotlib.patches import Patch, Rectangle

    plt = _plt()
    ncols = 1 if len(found) == 1 else 2
    nrows = math.ceil(len(found) / ncols)
    widest = max(len(p.points) for p in found)
    tallest = max(len(p.ops()) for p in found)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(max(ncols * (0.62 * widest + 1.6), 5.0), nrows * (0.42 * tallest + 1.1) + 0.9))
    winners: dict[str, Any] = {}
    hatched = False
    for ax, panel in zip(axes.flat, found):
        ops = panel.ops()
        image = [[NO_WINNER] * len(panel.points) for _ in ops]
        for i, op in enumerate(ops):
            for j, (batch, n) in enumerate(panel.points):
                cell = panel.cell(op, n, batch)
                if cell is None:
                    continue
                image[i][j] = colors.get(cell.impl, NO_WINNER)
                winners.setdefault(cell.impl, image[i][j])
                ax.text(j, i, cell.text(), ha="center", va="center", fontsize=7, color=_ink(image[i][j]))
                if cell.clear is False:
                    hatched = True
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0,
                                           edgecolor=_ink(image[i][j]), alpha=0.5))
        ax.imshow(image, aspect="auto", interpolation="nearest")
        by_n = panel.batch is not None
        ax.set_xticks(range(len(panel.points)), panel.labels(), fontsize=7, rotation=0 if by_n else 30,
                      ha="center" if by_n else "right")
        ax.set_yticks(range(len(ops)), ops, fontsize=8)
        ax.set_xlabel("n (row length)" if by_n else "rows x n", fontsize=8)
        ax.set_title(panel.title(), fontsize=9)
    for ax in list(axes.flat)[len(found):]:
        ax.set_visible(False)
    handles = [Patch(facecolor=c, edgecolor="0.5", label=impl) for impl, c in sorted(winners.items())]
    if hatched:
        handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="///",
                             label=f"{NOT_CLEAR} runner-up within the spread"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
