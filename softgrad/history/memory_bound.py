"""Memory-bound figures from the runs themselves: the report's bandwidth plot and its roofline table.

A call whose bytes fit in the last-level cache finds them there when it is repeated, so its "bandwidth" is
the cache's. Both views therefore take every point of the newest run of every workload (the default grid
and ``softgrad run --workload ...``), place it by the bytes it must move over the last-level cache's size
(recorded with the run), and read memory figures only past 1. Bandwidth is the bytes that must move
(:func:`softgrad.bench.grid.bytes_moved`) over the median time, as a fraction of the copy bandwidth measured
in the same run (never of another run's: these machines drift 14 to 57 GB/s). The roofline table also holds
each op's limit (:data:`softgrad.bench.bandwidth.LIMIT`): the copy for softmax and the VJP, the fill
(write-only) bandwidth measured beside the copy for the Jacobian, whose n^2 written values per row are its
bytes; a run stored before the fill was measured reads "not measured" there.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..bench.bandwidth import LIMIT
from .plotting import OPS, colors, plt
from .units import format_bytes

#: marker per dtype in the bandwidth plot
MARKERS = {"float64": "s", "float32": "o", "float16": "^", "bfloat16": "v"}


def past_cache(df):
    """The timed points whose bytes moved exceed the last-level cache of their run (none where it is unknown)."""
    timed = df[np.isfinite(df["time_s"]) & np.isfinite(df["bw_fraction"])]
    return timed[timed["bytes_moved"] > timed["llc_bytes"]]


#: what the table says where a bandwidth was not stored with the run (runs before the fill was measured)
NOT_MEASURED = "not measured"


def limit_fraction(df):
    """Each point's GB/s over its op's limit measured in its run (:data:`LIMIT`): the copy for softmax and
    the VJP (``bw_fraction``), the fill for the Jacobian (NaN where the run has no fill bandwidth)."""
    fill = df["fill_gbps"] if "fill_gbps" in df else np.nan
    return df["bw_fraction"].where(df["op"].map(LIMIT) != "fill", df["gbps"] / fill)


def _bandwidth_text(g, column: str) -> str:
    """The bandwidth ``column`` of the runs of ``g``: one figure, or the range over runs, and the runs that
    did not measure it; :data:`NOT_MEASURED` where none did."""
    if column in g:
        per_run = g.drop_duplicates("run")[column] if "run" in g else g[column].drop_duplicates()
    else:
        per_run = g["gbps"].iloc[:1] * np.nan
    values = per_run[np.isfinite(per_run)]
    if values.empty:
        return NOT_MEASURED
    text = (f"{values.iloc[0]:.1f} GB/s" if values.min() == values.max()
            else f"{values.min():.1f} to {values.max():.1f} GB/s")
    missing = len(per_run) - len(values)
    return text + (f" ({NOT_MEASURED} in {missing} run{'s' if missing > 1 else ''})" if missing else "")


def roofline_table(df):
    """Per op x dtype x device, over the points past the last-level cache of the given runs: the op's limit
    (its bandwidth, measured in each point's run), every entry that passed its run's correctness check, by
    the median fraction of that limit it reached (how close to memory speed it runs; by the fraction of the
    copy where the limit was not measured), the best one's median GB/s and fraction of the copy, the fill
    bandwidth, and the bytes / LLC range covered."""
    import pandas as pd

    rows = []
    mem = past_cache(df)
    mem = mem[mem["passed"]]
    mem = mem.assign(limit_fraction=limit_fraction(mem), copy_gbps=mem["copy_gbps"] if "copy_gbps" in mem
                     else mem["gbps"] / mem["bw_fraction"])
    for (op, dtype, device), g in mem.groupby(["op", "dtype", "device"]):
        measured = bool(np.isfinite(g["limit_fraction"]).any())
        key = "limit_fraction" if measured else "bw_fraction"
        ranked = sorted(((float(h[key].median()), impl, len(h), float(h["gbps"].median()),
                          float(h["bw_fraction"].median())) for impl, h in g.groupby("impl")),
                        key=lambda r: (r[0] if math.isfinite(r[0]) else -math.inf, r[1]), reverse=True)
        best = ranked[0]
        ratio = g["bytes_moved"] / g["llc_bytes"]
        limit = LIMIT[op]
        rows.append({
            "op": op, "dtype": dtype, "device": device,
            "points": int(g[["workload", "shape"]].drop_duplicates().shape[0]) if "workload" in g else
            int(g["shape"].nunique()),
            "bytes / LLC": f"{ratio.min():.3g} to {ratio.max():.3g}",
            "limit": f"{limit} {_bandwidth_text(g, f'{limit}_gbps')}",
            "best": best[1], "of limit": best[0] if measured else NOT_MEASURED, "GB/s": best[3],
            "of copy": best[4], "fill GB/s": _bandwidth_text(g, "fill_gbps"),
            "every entry (median of limit, points)": ("" if measured else "of copy: ") + ", ".join(
                f"{impl} {frac:.2f} ({k})" for frac, impl, k, _, _ in ranked),
        })
    return pd.DataFrame(rows, columns=["op", "dtype", "device", "points", "bytes / LLC", "limit", "best", "of limit",
                                       "GB/s", "of copy", "fill GB/s", "every entry (median of limit, points)"])


def bandwidth_plot(df, path: Path) -> Path | None:
    """Achieved bandwidth / its op's limit (:func:`limit_fraction`: the copy for softmax and the VJP, the fill
    for the Jacobian; the copy where a run has no fill measured, and the panel says so) against bytes moved,
    one panel per op, every point of the given runs on the CPU: colour per entry, marker per dtype, hollow
    inside the last-level cache (left of the dashed line), a cross where the entry failed its run's check."""
    sub = df[(df["device"] == "cpu") & np.isfinite(df["time_s"]) & np.isfinite(df["bw_fraction"])
             & (df["bw_fraction"] > 0)]
    if sub.empty:
        return None
    of_limit = limit_fraction(sub)
    unmeasured = ~np.isfinite(of_limit)  # a run stored before the fill was measured: its copy stands in
    sub = sub.assign(bw_fraction=of_limit.where(~unmeasured, sub["bw_fraction"]), _fallback=unmeasured)
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
        limit = LIMIT[op] if not part["_fallback"].all() else "copy"
        ax.set_title(f"{op}: every workload's newest run" + (" (some runs: fill not measured, of copy)"
                                                             if limit != "copy" and part["_fallback"].any() else ""),
                     fontsize=9)
        ax.set_xlabel("bytes moved per call (MiB)")
        ax.set_ylabel(f"fraction of {limit} bandwidth")
        ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], color=palette[i], marker="o", ls="", label=i) for i in sorted(set(sub["impl"]))]
    handles += [Line2D([], [], color="k", marker=MARKERS.get(d, "o"), ls="", mfc="white", label=d)
                for d in MARKERS if d in set(sub["dtype"])]
    fig.legend(handles=handles, loc="center right", fontsize=8)
    where = f"{format_bytes(llc_bytes)} last-level cache" if math.isfinite(llc_bytes) else "last-level cache (unknown size)"
    fig.suptitle(f"achieved bandwidth / the op's limit (dashed: the {where}; hollow: inside it, so the cache's; "
                 f"x: failed a check)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.86, 0.94))
    fig.savefig(path, dpi=90)
    pyplot.close(fig)
    return path
