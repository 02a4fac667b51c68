"""Memory-bound figures from the runs themselves: the report's bandwidth plot and its roofline table.

A call whose bytes fit in the last-level cache finds them there when it is repeated, so its "bandwidth" is
the cache's. Both views therefore take every point of the newest run of every workload (the default grid
and ``softgrad run --workload ...``), place it by the bytes it must move over the last-level cache's size
(recorded with the run), and read memory figures only past 1. Bandwidth is the bytes that must move
(:func:`softgrad.bench.grid.bytes_moved`) over the median time, as a fraction of the copy bandwidth measured
in the same run (never of another run's: these machines drift 14 to 57 GB/s).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .plotting import OPS, colors, plt
from .units import format_bytes

#: marker per dtype in the bandwidth plot
MARKERS = {"float64": "s", "float32": "o", "float16": "^", "bfloat16": "v"}


def past_cache(df):
    """The timed points whose bytes moved exceed the last-level cache of their run (none where it is unknown)."""
    timed = df[np.isfinite(df["time_s"]) & np.isfinite(df["bw_fraction"])]
    return timed[timed["bytes_moved"] > timed["llc_bytes"]]


def roofline_table(df):
    """Per op x dtype x device, over the points past the last-level cache of the given runs: every entry
    that passed its run's correctness check, by the median fraction of the copy bandwidth it reached (how
    close to memory speed it runs), the best one's median GB/s, and the bytes / LLC range covered."""
    import pandas as pd

    rows = []
    mem = past_cache(df)
    mem = mem[mem["passed"]]
    for (op, dtype, device), g in mem.groupby(["op", "dtype", "device"]):
        ranked = sorted(((float(h["bw_fraction"].median()), impl, len(h), float(h["gbps"].median()))
                         for impl, h in g.groupby("impl")), reverse=True)
        best = ranked[0]
        ratio = g["bytes_moved"] / g["llc_bytes"]
        rows.append({
            "op": op, "dtype": dtype, "device": device,
            "points": int(g[["workload", "shape"]].drop_duplicates().shape[0]) if "workload" in g else
            int(g["shape"].nunique()),
            "bytes / LLC": f"{ratio.min():.3g} to {ratio.max():.3g}",
            "best": best[1], "of copy": best[0], "GB/s": best[3],
            "every entry (median of copy, points)": ", ".join(f"{impl} {frac:.2f} ({k})"
                                                              for frac, impl, k, _ in ranked),
        })
    return pd.DataFrame(rows, columns=["op", "dtype", "device", "points", "bytes / LLC", "best", "of copy", "GB/s",
                                       "every entry (median of copy, points)"])


def bandwidth_plot(df, path: Path) -> Path | None:
    """Achieved bandwidth / copy bandwidth against bytes moved, one panel per op, every point of the given
    runs on the CPU: colour per entry, marker per dtype, hollow inside the last-level cache (left of the
    dashed line), a cross where the entry failed its run's correctness check."""
    sub = df[(df["device"] == "cpu") & np.isfinite(df["time_s"]) & np.isfinite(df["bw_fraction"])
             & (df["bw_fraction"] > 0)]
    if sub.empty:
        return None
    pyplot = plt()
    from matplotlib.lines import Line2D

    palette = colors(list(df["impl"].unique()))
    ops = [op for op in OPS if op in set(sub["op"])]
    fig, axes = pyplot.subplots(1, len(ops), figsize=(5.4 * len(ops), 4.4), squeeze=False)
    llc = sub["llc_bytes"].dropna()
    llc_bytes = float(llc.iloc[0]) if not llc.empty else math.nan
    llc_mib = llc_bytes / 2**20
    for ax, op in zip(axes[0], ops):
        part = sub[sub["op"] == op]
        for (impl, dtype), g in part.groupby(["impl", "dtype"]):
            mib = g["bytes_moved"] / 2**20
            marker = MARKERS.get(dtype, "o")
            inside = g["bytes_moved"] <= g["llc_bytes"]
            ok = g["passed"].astype(bool)
            c = palette[impl]
            ax.plot(mib[ok & ~inside], g["bw_fraction"][ok & ~inside], marker, ls="", ms=5, color=c)
            ax.plot(mib[ok & inside], g["bw_fraction"][ok & inside], marker, ls="", ms=5, mfc="white", mec=c,
                    mew=1.0)
            ax.plot(mib[~ok], g["bw_fraction"][~ok], "x", ls="", ms=5, color=c)
        if math.isfinite(llc_mib):
            ax.axvline(llc_mib, color="k", lw=0.8, ls="--")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{op}: every workload's newest run")
        ax.set_xlabel("bytes moved per call (MiB)")
        ax.set_ylabel("fraction of copy bandwidth")
        ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], color=palette[i], marker="o", ls="", label=i) for i in sorted(set(sub["impl"]))]
    handles += [Line2D([], [], color="k", marker=MARKERS.get(d, "o"), ls="", mfc="white", label=d)
                for d in MARKERS if d in set(sub["dtype"])]
    fig.legend(handles=handles, loc="center right", fontsize=8)
    where = f"{format_bytes(llc_bytes)} last-level cache" if math.isfinite(llc_bytes) else "last-level cache (unknown size)"
    fig.suptitle(f"achieved bandwidth / copy bandwidth (dashed: the {where}; hollow: inside it, so the cache's; "
                 f"x: failed a check)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.86, 0.94))
    fig.savefig(path, dpi=90)
    pyplot.close(fig)
    return path
