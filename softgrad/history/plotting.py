"""The report's matplotlib setup: a headless backend, one colour per implementation, one legend per figure."""

from __future__ import annotations

from typing import Any


def plt():
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def colors(impls: list[str]) -> dict[str, Any]:
    """A stable colour per implementation name (sorted, so every figure of a report agrees)."""
    cmap = plt().get_cmap("tab20")
    return {name: cmap(k % 20) for k, name in enumerate(sorted(impls))}


def figure_legend(fig, axes) -> None:
    """One legend at the figure's right with every panel's lines, in first-seen order (an entry may be
    missing from the first panel)."""
    legend: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="center right", fontsize=8)
