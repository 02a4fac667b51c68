"""The report's matplotlib setup: a headless backend, one colour per implementation, one legend per figure."""

from __future__ import annotations

from typing import Any

#: the order of the ops in every figure's panels and the report's tables
OPS = ("softmax", "vjp", "jacobian")


def plt():
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported on first use; text drawn as
    written (no ``$...$`` mathtext: a stored name such as ``$x^$`` is a label, not a formula that fails), so
    log axes label their ticks in plain text (``1e-04``; matplotlib's own labels are mathtext, which would
    then show as ``$\\mathdefault{10^{-4}}$``)."""
    import matplotlib
    import matplotlib.scale

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    matplotlib.scale.register_scale(_plain_log_scale())
    import matplotlib.pyplot as pyplot

    return pyplot


def _plain_log_scale():
    """matplotlib's log scale with plain-text tick labels (registered as ``log`` by :func:`plt`)."""
    from matplotlib.scale import LogScale
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        """matplotlib's choice of which ticks to label, each label three significant digits (``1.05e-04``)."""

        def __call__(self, x, pos=None) -> str:
            return f"{x:.3g}" if super().__call__(x, pos) else ""

    class PlainLogScale(LogScale):
        name = "log"

        def __init__(self, *args, **kwargs) -> None:  # the axis where matplotlib before 3.11 passes one
            super().__init__(*args, **kwargs)

        def set_default_locators_and_formatters(self, axis) -> None:
            super().set_default_locators_and_formatters(axis)
            axis.set_major_formatter(PlainLogFormatter(self.base))
            axis.set_minor_formatter(PlainLogFormatter(self.base, labelOnlyBase=False))

    return PlainLogScale


def colors(impls: list[str]) -> dict[str, Any]:
    """A stable colour per implementation name (sorted, so every figure of a report agrees): ten distinct
    hues while they last (tab20 pairs a dark and a light shade of each, which read alike side by side)."""
    names = sorted(impls)
    cmap, size = (plt().get_cmap("tab10"), 10) if len(names) <= 10 else (plt().get_cmap("tab20"), 20)
    return {name: cmap(k % size) for k, name in enumerate(names)}


def figure_legend(fig, axes) -> None:
    """One legend at the figure's right with every panel's lines, in first-seen order (an entry may be
    missing from the first panel)."""
    legend: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="center right", fontsize=8)
