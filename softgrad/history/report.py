"""``softgrad report``: ``index.html`` and ``report.md`` with PNG plots from the latest run on this machine.

First, under a one-line table of contents, the answer at a glance: per stored workload a picture of which
entry to use at each op and row length (:mod:`.heatmap`, by ``choose``'s rule). After the plots, the change
points that ``softgrad history`` lists, in a table newest first with their likely causes, also marked on the
history plot (:mod:`.trend`). Plots: time vs n per op (log-log, interquartile band), speedup over NumPy,
achieved bandwidth as a fraction of the copy bandwidth measured in the same run against the bytes moved over
the last-level cache (every workload's newest run: :mod:`.memory_bound`), the empirical scaling exponent,
worst error vs tolerance per implementation and dtype, and the history of time and error across runs. Tables: the
choice table (fastest implementation that passed every case, per op x size band x dtype x device, its
margin over the runner-up, whether that margin is outside the measured spread, and its one-off compile
cost), the write-up's claim checked against the measurements, the workloads, the roofline of the points
past the last-level cache, and the run's metadata.

Stored text (entry names, error messages, workload names, versions, the machine's) is shown, never obeyed:
every cell of ``report.md``'s tables and every stored piece of its prose goes through :func:`md_text`, and
``index.html`` escapes all of it.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import paths, registry
from . import changes, heatmap, memory_bound, results, store, trend
from .plotting import OPS
from .plotting import colors as _colors
from .plotting import figure_legend as _figure_legend
from .plotting import plt as _plt
from .trend import history_tables  # noqa: F401 (the history view's data, as the report has always offered it)
from .units import format_bytes, format_seconds

#: Size bands of the choice table: (label, smallest n, largest n).
BANDS = (("n <= 64", 1, 64), ("64 < n <= 1024", 65, 1024), ("n > 1024", 1025, 1 << 62))


def roles() -> tuple[str, tuple[str, ...], str | None]:
    """From the registry's role data: the baseline entry of the speedups, the write-up's three ways to get
    J (tag ``writeup``) and the one it calls "the fastest and most efficient" (tag ``writeup-claimed``),
    whose claim the report checks against the run."""
    baseline = next((i.name for i in registry.with_role(baseline=True)), "numpy")
    writeup = tuple(i.name for i in registry.with_role("writeup"))
    claimed = next((i.name for i in registry.with_role("writeup-claimed")), None)
    return baseline, writeup, claimed


#: a control character (line feed, carriage return, vertical tab, NEL, ...) or a line / paragraph separator:
#: anything a markdown reader or ``str.splitlines`` could take for the end of a line
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: a character that could end a table cell or open a code span, link, emphasis, strikethrough or math
_INLINE = re.compile(r"([\\`|\[\]*_~$])")
#: what could start a block at the beginning of a line: a heading, a list item, a setext or thematic rule
_BLOCK = re.compile(r"^(\s*)(#|[-+=](?=[-+=\s]|$))|^(\s*\d{1,9})([.)])(?=\s|$)")


def md_text(value: object) -> str:
    """``value`` as inert inline markdown, the one rule for every cell of the report's tables and every stored
    piece of its prose: on one line (each control character and line separator made a space), ``&``, ``<`` and
    ``>`` as HTML entities (no raw tag reaches ``report.md``), a backslash before each character that could end
    a cell or open a code span, link or emphasis (``\\ ` | [ ] * _ ~ $``), and before a leading ``#``,
    ``-``, ``+``, ``=`` or ``1.`` that could start a heading, list or rule."""
    text = _BREAKS.sub(" ", str(value)).encode("utf-8", "replace").decode("utf-8")
    text = _INLINE.sub(r"\\\1", html.escape(text, quote=False))
    return _BLOCK.sub(lambda m: (f"{m[1]}\\{m[2]}" if m[2] is not None else f"{m[3]}\\{m[4]}"), text, count=1)


class ReportError(Exception):
    """Nothing to report (no complete run stored); the message says what to run."""


def _panels(df, batch: int, dtype: str, value, ylabel: str, title: str, path: Path, log_y: bool = True,
            band: tuple[str, str] | None = None, hline: float | None = None,
            palette: dict[str, Any] | None = None) -> Path | None:
    """One log-x panel per op of ``value`` against n, a line per implementation (dotted if it failed a
    check) in its ``palette`` colour; ``band`` shades between two columns."""
    sub = df[(df["batch"] == batch) & (df["dtype"] == dtype) & (df["device"] == "cpu")]
    sub = sub[np.isfinite(sub[value])] if not sub.empty else sub
    if sub.empty:
        return None
    plt = _plt()
    colors = palette or _colors(list(df["impl"].unique()))
    ops = [op for op in OPS if op in set(sub["op"])]
    fig, axes = plt.subplots(1, len(ops), figsize=(5.2 * len(ops), 4.2), squeeze=False)
    for ax, op in zip(axes[0], ops):
        part = sub[sub["op"] == op]
        for impl, g in part.groupby("impl"):
            g = g.sort_values("n")
            style = "-" if bool(g["passed"].all()) else ":"
            ax.plot(g["n"], g[value], style, marker="o", ms=3, label=impl, color=colors[impl])
            if band and band[0] in g and g[band[0]].notna().any():
                ax.fill_between(g["n"], g[band[0]], g[band[1]], color=colors[impl], alpha=0.2, lw=0)
        if hline is not None:
            ax.axhline(hline, color="k", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(f"{op} (batch {batch}, {dtype})")
        ax.set_xlabel("n (row length)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    _figure_legend(fig, axes)
    fig.suptitle(title + "  (dotted: failed a correctness check)")
    fig.tight_layout(rect=(0, 0, 0.86, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def scaling_exponents(df, batch: int, dtype: str, min_n: int = 64):
    """time ~ n^k fitted per implementation and op on n >= min_n (least squares in log-log)."""
    import pandas as pd

    rows = []
    sub = df[(df["batch"] == batch) & (df["dtype"] == dtype) & (df["n"] >= min_n) & np.isfinite(df["time_s"])]
    for (impl, op), g in sub.groupby(["impl", "op"]):
        if g["n"].nunique() < 3:
            continue
        k, _ = np.polyfit(np.log(g["n"]), np.log(g["time_s"]), 1)
        rows.append({"impl": impl, "op": op, "exponent": float(k), "points": int(g["n"].nunique())})
    return pd.DataFrame(rows)


def _exponent_plot(exps, path: Path, batch: int, dtype: str) -> Path | None:
    if exps.empty:
        return None
    plt = _plt()
    ops = [op for op in OPS if op in set(exps["op"])]
    fig, axes = plt.subplots(1, len(ops), figsize=(5.2 * len(ops), 4), squeeze=False)
    for ax, op in zip(axes[0], ops):
        part = exps[exps["op"] == op].sort_values("exponent")
        ax.barh(part["impl"], part["exponent"], color="tab:blue")
        for ref in (1, 2):
            ax.axvline(ref, color="k", lw=0.8, ls="--")
        ax.set_title(f"{op}: time ~ n^k (batch {batch}, {dtype})")
        ax.set_xlabel("k (1 = linear, 2 = quadratic)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _error_plot(checks, path: Path) -> Path | None:
    if checks.empty or "ratio" not in checks:
        return None
    plt = _plt()
    table = checks.pivot_table(index="impl", columns="dtype", values="ratio", aggfunc="max")
    failed = checks[checks["verdict"] == "fail"].groupby(["impl", "dtype"]).size()
    fig, ax = plt.subplots(figsize=(1.6 * len(table.columns) + 3, 0.42 * len(table) + 1.5))
    data = np.log10(np.clip(table.to_numpy(dtype=float), 1e-6, 1e3))
    im = ax.imshow(data, cmap="RdYlGn_r", vmin=-4, vmax=1, aspect="auto")
    ax.set_xticks(range(len(table.columns)), table.columns)
    ax.set_yticks(range(len(table.index)), table.index)
    for i, impl in enumerate(table.index):
        for j, dt in enumerate(table.columns):
            v = table.iloc[i, j]
            text = "-" if not np.isfinite(v) else f"{v:.2g}"
            if (impl, dt) in failed.index:
                text += f"\n{failed[(impl, dt)]} FAIL"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="log10(worst error / tolerance)")
    ax.set_title("worst error / tolerance over all cases (above 1 fails)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def beside_choices(choices, every, others: list[str]):
    """``choices`` (:func:`choice_table` of one machine) with a column ``other machines``: at each row's op,
    batch, band, dtype and device, each of ``others``' fastest entry and its time in its newest default-grid run
    (``every``: results.load()'s frame of every machine), e.g. ``gpu-box: torch-native 3.1 us``. Each figure is
    that machine's own: nothing is compared across machines."""
    from . import machines

    if choices.empty or not others:
        return choices
    key = ["op", "batch", "band", "dtype", "device"]
    beside: dict[tuple, list[str]] = {}
    for m in others:
        rows = machines.rows(every, m)
        default = rows[rows["workload"] == "default"] if "workload" in rows else rows
        theirs = choice_table(results.latest(default if not default.empty else rows))
        for r in theirs.to_dict("records"):
            beside.setdefault(tuple(r[k] for k in key), []).append(
                f"{m}: {r['fastest']} {format_seconds(r['time (geo-mean)'])}")
    out = choices.copy()
    out["other machines"] = ["; ".join(beside.get(tuple(r[k] for k in key), [])) or "-"
                             for r in choices.to_dict("records")]
    return out


def choice_table(df):
    """Per op x size band x batch x dtype x device: the fastest passing implementation (geometric mean of
    its time over the band's sizes), the runner-up and the margin, and the compile cost to amortise."""
    import pandas as pd

    rows = []
    for (op, batch, dtype, device), g in df[np.isfinite(df["time_s"])].groupby(["op", "batch", "dtype", "device"]):
        for label, lo, hi in BANDS:
            band = g[(g["n"] >= lo) & (g["n"] <= hi)]
            if band.empty:
                continue
            sizes = sorted(set(band["n"]))
            cand = []
            for impl, h in band[band["passed"]].groupby("impl"):
                if len(set(h["n"])) < len(sizes):
                    continue  # not measured over the whole band (a size limit): not comparable
                cand.append((_geomean(h["time_s"]), impl, float(h["compile_s"].max()),
                             _geomean(h["q25_s"]), _geomean(h["q75_s"])))
            if not cand:
                continue
            cand.sort()
            best, second = cand[0], (cand[1] if len(cand) > 1 else None)
            rows.append({
                "op": op, "batch": int(batch), "band": label, "dtype": dtype, "device": device,
                "sizes": f"{sizes[0]}..{sizes[-1]}", "fastest": best[1], "time (geo-mean)": best[0],
                "runner-up": second[1] if second else "", "margin": (second[0] / best[0]) if second else math.nan,
                "clear win": _separated(best, second),
                "compile": best[2],
            })
    return pd.DataFrame(rows)


def workload_table(df):
    """Per workload x op x shape x dtype x device (the latest run of each workload): the fastest passing
    implementation, its time, the runner-up and the margin, and the fastest's achieved bandwidth with the
    bytes it moves over the last-level cache (above 1: memory-bound figures, below: the cache's)."""
    import pandas as pd

    rows = []
    timed = df[np.isfinite(df["time_s"])]
    for (workload, op, shape, dtype, device), g in timed.groupby(["workload", "op", "shape", "dtype", "device"],
                                                                  sort=False):
        ok = g[g["passed"]].sort_values("time_s")
        if ok.empty:
            continue
        best = ok.iloc[0]
        second = ok.iloc[1] if len(ok) > 1 else None
        rows.append({
            "workload": workload, "op": op, "shape": shape, "dtype": dtype, "device": device,
            "fastest": best["impl"], "time": float(best["time_s"]),
            "runner-up": second["impl"] if second is not None else "",
            "margin": float(second["time_s"] / best["time_s"]) if second is not None else math.nan,
            "GB/s": float(best["gbps"]), "of copy": float(best["bw_fraction"]),
            "bytes / LLC": float(best["bytes_moved"] / best["llc_bytes"]) if best["llc_bytes"] else math.nan,
            "not passed": ", ".join(sorted(set(g[~g["passed"]]["impl"]))),
        })
    return pd.DataFrame(rows)


def _geomean(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.exp(np.log(v).mean())) if v.size and np.all(v > 0) else math.nan


def _separated(best: tuple, second: tuple | None) -> str:
    """"yes" when the runner-up's lower quartile is above the fastest's upper quartile; "no (spread)"
    when the two interquartile ranges overlap: on these machines the order may flip on a rerun."""
    if second is None:
        return "only one"
    return {True: "yes", False: "no (spread)", None: "?"}[results.clear_win(best[4], second[3])]


def writeup_claim(df, dtype: str):
    """The write-up's three ways to get J against each other and against the fastest passing entry, per
    n at batch 1, and a one-line verdict on its claim that ``torch.autograd.functional.jacobian`` (the
    entry tagged ``writeup-claimed``) is the fastest. Returns ``(table, verdict)``; an empty table if the
    run did not measure the claimed entry."""
    import pandas as pd

    _, writeup, claimed = roles()
    if claimed is None:
        return pd.DataFrame(), ""

    sub = df[(df["op"] == "jacobian") & (df["batch"] == 1) & (df["dtype"] == dtype) & (df["device"] == "cpu")
             & np.isfinite(df["time_s"])]
    if claimed not in set(sub["impl"]):
        return pd.DataFrame(), ""
    rows = []
    for n, g in sub.groupby("n"):
        times = dict(zip(g["impl"], g["time_s"]))
        if not any(impl in times for impl in writeup):
            continue  # past every one's size limit
        passing = g[g["passed"]]
        row: dict[str, Any] = {"n": int(n)}
        for impl in writeup:
            row[impl] = times.get(impl, math.nan)
        three = {k: v for k, v in times.items() if k in writeup}
        row["fastest of the three"] = min(three, key=three.get) if len(three) > 1 else "(only one measured)"
        if not passing.empty:
            best = passing.loc[passing["time_s"].idxmin()]
            row["fastest overall"] = best["impl"]
            row[f"{claimed} / fastest"] = times[claimed] / float(best["time_s"]) \
                if claimed in times else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table, ""
    raced = table[table["fastest of the three"] != "(only one measured)"]
    wins = raced[raced["fastest of the three"] == claimed]["n"].tolist()
    loses = raced[raced["fastest of the three"] != claimed]["n"].tolist()
    top = table.iloc[-1]
    verdict = (f"Among the write-up's three ways, {claimed} is fastest at n = "
               f"{', '.join(map(str, wins)) or 'none of the sizes measured'}"
               + (f" and not at n = {', '.join(map(str, loses))}" if loses else "") + ". ")
    if top.get("fastest overall") == claimed:
        verdict += f"At n = {top['n']} it is also the fastest of every entry measured."
    else:
        verdict += (f"Against every entry that passed the correctness check it is "
                    f"{top[f'{claimed} / fastest']:.3g}x slower than {top['fastest overall']} at "
                    f"n = {top['n']} (the largest n it was measured at): \"the fastest and most efficient\" "
                    f"holds, at best, among the three.")
    return table, verdict


def agreement_table(run: store.Run):
    """The run's sampled points beside the frameworks' own timers (:mod:`softgrad.bench.agreement`)."""
    import pandas as pd

    rows = []
    for p in run.agreement():
        indep = p.get("independent_s") or []
        here = p.get("softgrad_here_s") or []
        rows.append({"point": p["key"], "softgrad (sweep)": p.get("softgrad_s", math.nan),
                     "softgrad (beside)": float(np.median(here)) if here else math.nan,
                     "independent": float(np.median(indep)) if indep else math.nan,
                     "beside / independent": p.get("ratio", math.nan),
                     "sweep / independent": p.get("stored_ratio", math.nan),
                     "independent's own spread": p.get("spread", math.nan), "bound": p.get("bound", math.nan),
                     "verdict": p.get("error") or (("within" if p.get("agrees") else "OUTSIDE")
                                                   + ("" if p.get("held", True) else " (under 10 us: not held)"))})
    return pd.DataFrame(rows)


def slow_machine_note(df) -> str:
    """How many of the run's points were timed while the machine ran slow, and which entries they hit most."""
    if "slow_machine" not in df or not df["slow_machine"].any():
        return "No point was timed while the machine ran slow (the reference kernel within " \
               f"{results.SLOW_MACHINE:g}x of its best reading of the run)."
    hit = df[df["slow_machine"]]
    worst = hit["impl"].value_counts().head(3)
    return (f"{len(hit)} of {len(df)} points were timed while the machine ran slow (the reference kernel beside "
            f"them took {results.SLOW_MACHINE:g}x its best reading of the run or longer): other load, not the "
            f"entries' speed; most in " + ", ".join(f"{k} ({v})" for k, v in worst.items()) + ".")


def _fmt(v: Any, seconds: bool = False) -> str:
    if isinstance(v, float):
        if seconds:
            return format_seconds(v)
        return f"{v:.3g}" if math.isfinite(v) else "-"
    return str(v)


def _md_table(df, seconds: tuple[str, ...] = ()) -> str:
    """A markdown table; the columns named in ``seconds`` hold durations and print with their unit."""
    if df.empty:
        return "(none)\n"
    cols = list(df.columns)
    lines = [_md_row(cols), "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append(_md_row(_fmt(r[c], c in seconds) for c in cols))
    return "\n".join(lines) + "\n"


def _md_row(cells) -> str:
    """One row of a markdown table, each cell through :func:`md_text` (the only way a row is written)."""
    return "| " + " | ".join(md_text(c) for c in cells) + " |"


#: where the table of contents goes, filled in once every section is written (:func:`_md_contents`)
TOC_MARK = "\x00contents\x00"
#: marks each image as loaded with its drawn size, and the page's width against the window's (a browser test
#: reads them: every picture shown, and no sideways scroll)
LAYOUT_PROBE = ("<script>window.addEventListener('load',()=>{document.querySelectorAll('img').forEach(i=>{"
                "i.dataset.loaded=String(i.complete&&i.naturalWidth>0);"
                "i.dataset.shown=String(Math.round(i.getBoundingClientRect().width))+'x'+"
                "String(Math.round(i.getBoundingClientRect().height))});"
                "const d=document.documentElement;d.dataset.scrollWidth=String(d.scrollWidth);"
                "d.dataset.clientWidth=String(d.clientWidth)});</script>")


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub and most markdown renderers make it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _md_contents(md: list[str], plots: list[str]) -> str:
    """``md`` joined, the element :data:`TOC_MARK` made a one-line table of contents: each ``## `` section, the
    figures titled ``plots`` as one. Only softgrad's own headings start a line with ``## ``: every stored
    piece goes through :func:`md_text`."""
    headings = re.findall(r"^## (.+)$", "\n".join(md), flags=re.M)
    links = [f"[{'Plots' if h == plots[0] else h}](#{_slug(h)})" for h in headings if h not in plots[1:]]
    contents = "Contents: " + " · ".join(links) + "\n"
    return "\n".join(contents if part == TOC_MARK else part for part in md)


def _html_contents(parts: list[str]) -> str:
    """``parts`` joined, the element :data:`TOC_MARK` made a table of contents of the ``<h2 id=...>`` sections
    (the plots, ids ``plots`` and ``plot-k``, as one)."""
    headings = re.findall(r"<h2 id='([\w-]+)'>(.*?)</h2>", "\n".join(parts))
    links = [f"<a href='#{i}'>{'Plots' if i == 'plots' else title}</a>" for i, title in headings
             if not i.startswith("plot-")]
    contents = "<nav class='toc'><b>Contents</b>: " + " ".join(links) + "</nav>"
    return "\n".join(contents if part == TOC_MARK else part for part in parts)


def _glance(df_all, out_dir: Path, colors: dict[str, Any]) -> list[tuple[str, Path]]:
    """The first picture, one per stored workload (:mod:`.heatmap`): (its title, its PNG)."""
    out = []
    for k, (workload, panels) in enumerate(heatmap.panels(df_all).items()):
        title = "default grid" if workload == "default" else f"workload {workload}"
        path = heatmap.draw(panels, colors, out_dir / f"glance_{k}.png", f"Which entry to use: {title}")
        if path is not None:
            out.append((title, path))
    return out


def _repo() -> Path | None:
    """The checkout whose ``git log`` names a change point's commits (None: not at hand)."""
    try:
        return paths.repo_root()
    except paths.PathError:
        return None


def _html_table(df, seconds: tuple[str, ...] = ()) -> str:
    if df.empty:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r[c], c in seconds))}</td>" for c in df.columns)
                   + "</tr>" for _, r in df.iterrows())
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def write_reports(out_dir: Path | None = None, warn: Callable[[str], None] | None = None,
                  machine: str | None = None, note: Callable[[str], None] | None = None) -> list[Path]:
    """The report of the machine ``--machine`` picks (:func:`softgrad.history.machines.select`: default this
    machine; ``note`` receives the line saying it answers for another), in ``out_dir``; with ``all``, one report
    per machine in ``out_dir/<machine>/``. Returns their index.html files; an unknown machine is a
    :class:`ReportError` naming those stored."""
    from . import machines, provenance

    loaded = results.load()
    for text in loaded.attrs.get("warnings", []) if warn else ():
        warn(text)
    try:  # an unknown machine is named first, even in an empty history
        sel = machines.select(machines.names(loaded), machine)
    except (machines.UnknownMachine, provenance.MachineNameError) as exc:
        raise ReportError(str(exc)) from None
    if loaded.empty:
        raise ReportError("no complete run stored yet: run `softgrad run --quick` first")
    if sel.note and note:
        note(sel.note)
    out_dir = Path(out_dir or paths.reports_dir())
    if not sel.every:
        return [write_report(out_dir, machine=sel.machine, loaded=loaded)]
    return [write_report(out_dir / m, machine=m, loaded=loaded) for m in sel.machines]


def write_report(out_dir: Path | None = None, warn: Callable[[str], None] | None = None, machine: str | None = None,
                 loaded=None) -> Path:
    """Write ``index.html``, ``report.md`` and the PNGs for the latest complete run (of ``machine``, from its
    runs alone, with the other machines' fastest entries beside its choice table; None: of the newest run's
    machine, every run read); return index.html. ``loaded``: results.load()'s frame, when read already.
    ``warn`` receives what the loaded history warns of (a run whose timings were lost, say). Everything stored
    is read first: with nothing to report, or a stored file that cannot be read, ``out_dir`` is not created."""
    import pandas as pd

    from . import machines

    out_dir = Path(out_dir or paths.reports_dir())
    df_all = results.load() if loaded is None else loaded
    for text in df_all.attrs.get("warnings", []) if warn else ():
        warn(text)
    if df_all.empty:
        raise ReportError("no complete run stored yet: run `softgrad run --quick` first")
    every, others = df_all, []
    if machine is not None:
        others = [m for m in machines.names(df_all) if m != machine]
        df_all = machines.rows(df_all, machine)
        if df_all.empty:
            raise ReportError(f"no complete run of machine {machine} stored")
    default = df_all[df_all["workload"] == "default"] if "workload" in df_all else df_all
    df = results.latest(default if not default.empty else df_all)  # the plots: the default grid's latest run
    per_workload = results.latest_per_workload(df_all)
    workloads_df = workload_table(per_workload[per_workload["workload"] != "default"])
    run_id = df["run"].iloc[0]
    run = store.Run(store.runs_dir() / run_id)
    meta = run.meta()
    run_machine = str(meta.get("machine"))
    source = df["checks_from"].iloc[0]  # the run the loaded frame took its verdicts from ("": none)
    checks = results.load_checks([store.Run(store.runs_dir() / source)] if source else [])
    agree = agreement_table(run)
    copy = meta.get("copy_bandwidth") or {}
    fill = meta.get("fill_bandwidth") or {}  # runs stored before the fill was measured have none
    dtype = "float32" if "float32" in set(df["dtype"]) else sorted(set(df["dtype"]))[0]
    big_batch = int(df["batch"].max())
    out_dir.mkdir(parents=True, exist_ok=True)  # every stored file read: the report will be written

    figures: list[tuple[str, str, Path | None]] = []
    palette = _colors(list(df_all["impl"].unique()))  # one colour per entry in every figure of the report
    for batch in sorted(set(df["batch"])):
        figures.append((f"Time vs n, batch {batch}", "median time per call; band: interquartile range",
                        _panels(df, int(batch), dtype, "time_s", "seconds per call", f"time per call ({dtype})",
                                out_dir / f"time_vs_n_batch{batch}.png", band=("q25_s", "q75_s"), palette=palette)))
    baseline, writeup, _ = roles()
    numpy_t = df[df["impl"] == baseline].set_index(["op", "shape", "dtype", "device"])["time_s"]
    df = df.copy()
    df["speedup_vs_numpy"] = [numpy_t.get((o, s, d, v), math.nan) / t for o, s, d, v, t in
                              zip(df["op"], df["shape"], df["dtype"], df["device"], df["time_s"])]
    figures.append(("Speedup over NumPy", "NumPy's time / the implementation's time (above 1: faster)",
                    _panels(df, big_batch, dtype, "speedup_vs_numpy", "speedup over numpy", "speedup over numpy",
                            out_dir / "speedup_vs_numpy.png", hline=1.0, palette=palette)))
    llc = meta.get("llc_bytes")
    llc_text = f"the {format_bytes(llc)} last-level cache" if llc else "the last-level cache (size unknown)"
    figures.append(("Achieved bandwidth", f"bytes that must move / time, as a fraction of the op's limit "
                    f"measured in the same run: the copy for softmax and the VJP ({copy.get('gbps', math.nan):.1f} "
                    f"GB/s in this one, {copy.get('method', '?')}), the fill for the Jacobian, which only writes "
                    f"(the copy where a run has no fill measured), against the bytes a call moves, for every point of the newest "
                    f"run of each workload; right of the dashed line the bytes exceed {llc_text}, so the figure "
                    f"is memory's; hollow points fit inside it, where repeated calls find their data, so they "
                    f"measure the cache", memory_bound.bandwidth_plot(per_workload, out_dir / "bandwidth.png")))
    exps = scaling_exponents(df, big_batch, dtype)
    figures.append(("Scaling exponent", "k in time ~ n^k, fitted for n >= 64: about 1 for softmax and the VJP, "
                    "2 for the Jacobian", _exponent_plot(exps, out_dir / "scaling.png", big_batch, dtype)))
    figures.append(("Correctness", "worst error / tolerance per implementation and dtype over all check cases",
                    _error_plot(checks, out_dir / "errors.png")))
    ref_shape = "256x1024" if "256x1024" in set(df_all["shape"]) else df["shape"].iloc[-1]
    history = changes.find(df_all, changes.metas(df_all), repo=_repo())  # what `softgrad history` lists
    drawn = trend.history_plot(df_all, out_dir / "history.png", ref_shape, dtype, history.changes)
    figures.append(("History", "time at one shape and the worst error over the tracked sizes across stored runs "
                    "(commit and library versions under the runs where they change); a red triangle marks a change point at the "
                    "first run at which it holds, with its size and likely cause", drawn.path))
    change_rows = pd.DataFrame(trend.table_rows(history))
    glance = _glance(df_all, out_dir, palette)

    choices = beside_choices(choice_table(df), every, others)
    choice_seconds = ("time (geo-mean)", "compile")
    claim, claim_verdict = writeup_claim(df, "float64" if "float64" in set(df["dtype"]) else dtype)
    claim_seconds = writeup
    meta_rows = pd.DataFrame([
        {"field": k, "value": v} for k, v in (
            ("run", run_id), ("date", meta.get("date")), ("machine", meta.get("machine")), ("cpu", meta.get("cpu")),
            ("cores", meta.get("cores")), ("memory GiB", meta.get("memory_gib")),
            ("last-level cache", format_bytes(meta["llc_bytes"]) if meta.get("llc_bytes") else "unknown"),
            ("commit", f"{meta.get('commit')}{' (dirty tree)' if meta.get('dirty') else ''}"),
            ("grid", meta.get("grid")), ("threads", meta.get("threads")),
            ("copy bandwidth", f"{copy.get('gbps', math.nan):.1f} GB/s ({copy.get('method', '?')})"),
            ("fill bandwidth", f"{fill['gbps']:.1f} GB/s ({fill.get('method', '?')})" if "gbps" in fill
             else memory_bound.NOT_MEASURED),
            *((f"version {k}", v) for k, v in (meta.get("versions") or {}).items() if v),
        )])
    summary = checks.groupby("impl")["verdict"].value_counts().unstack(fill_value=0) if not checks.empty else None

    md = [f"# softgrad report: run {md_text(run_id)}\n",
          f"Generated by `softgrad report` from the latest complete run on machine {md_text(run_machine)}. "
          "Timings are medians of the sweep's samples (stored as asv results); compare ratios within one run, not absolute times across machines.\n",
          TOC_MARK]
    md += ["## Which entry to use\n", heatmap.CAPTION + "\n"]
    for title, path in glance:
        # the workload's name is stored text: a bold line, never a heading (stored text makes no heading)
        md += [f"\n**{md_text(title)}**\n", f"![{md_text(title)}]({path.name})\n"]
    if not glance:
        md += ["No entry passed every check at any timed point.\n"]
    md += ["\n## Choice table\n",
          "Fastest implementation that passed every correctness case, by op, batch, size band, dtype and device "
          "(geometric mean over the band's sizes); `margin` is the runner-up's time over the fastest's; "
          "`compile` is the one-off JIT cost to amortise.\n",
          _md_table(choices, choice_seconds),
          "`clear win` says whether the runner-up's lower quartile is above the fastest's upper quartile; "
          "where it is not, the two are within the measured spread and the order may flip on a rerun.\n"]
    from . import crossovers

    crossings = pd.DataFrame(crossovers.table_rows(df_all))  # where the winner changes along n
    md += ["\n## Crossovers along n\n", crossovers.CAPTION + "\n", _md_table(crossings)]
    if not claim.empty:
        md += ["\n## The write-up's claim\n", "Time per call of the write-up's three ways to get the "
               "Jacobian of one row, and the fastest entry that passed every correctness case.\n",
               _md_table(claim, claim_seconds), f"\n{md_text(claim_verdict)}\n"]
    agree_seconds = ("softgrad (sweep)", "softgrad (beside)", "independent")
    agree_caption = ("A sample of each family's points timed again in a plain process per family by the frameworks' "
                     "own timers (torch: `torch.utils.benchmark.Timer(num_threads=torch.get_num_threads())"
                     ".blocked_autorange()`; others: `timeit` around the same call and its device wait), "
                     "in six slices of about 50 ms alternating with softgrad's block sampler in that process, under "
                     "the sweep's allocator settings and thread count. `beside / independent` (the method alone "
                     "differs, the median of the slices' ratios) must be within 10%, or the independent timer's "
                     "own spread if larger (its first and last three readings as two back-to-back runs); "
                     "`sweep / independent` (the "
                     "stored figure, minutes earlier in the family's worker) within a factor of 2.")
    slow_note = slow_machine_note(df)
    if not agree.empty:
        md += ["\n## softgrad vs the frameworks' own timers\n", agree_caption + "\n", _md_table(agree, agree_seconds)]
    wl_caption = ("The latest run of each workload (`softgrad run --workload NAME|FILE`): per shape (`:x=` and `:g=` "
                  "give the layouts of x and g), the fastest entry that passed every correctness case of that run "
                  "(the quick catalogue and the workload's own shapes), the runner-up, and the fastest's achieved "
                  "bandwidth: bytes that must move / time, as a fraction of the copy bandwidth measured in the same "
                  "run; `bytes / LLC` above 1 means the call's data does not fit the last-level cache, so the "
                  "figure is memory's.")
    wl_seconds = ("time",)
    if not workloads_df.empty:
        md += ["\n## Workloads\n", wl_caption + "\n", _md_table(workloads_df, wl_seconds)]
    roof = memory_bound.roofline_table(per_workload)
    roof_caption = ("Every point of the newest run of each workload whose bytes moved exceed " + llc_text + " (`bytes / LLC` "
                    "above 1), per op, dtype and device: each entry that passed its run's correctness check, by the "
                    "median fraction of the op's limit (measured in that run) it reached over those points. The "
                    "limit is the bandwidth that bounds the op: the copy (read + write) for softmax and the VJP, "
                    "which read their inputs and write their result once; the fill (write only, measured beside "
                    "the copy) for the Jacobian, which writes n^2 values per row of n it reads. A run stored "
                    "before the fill was measured says `not measured`.")
    roof_none = ("No stored run timed a shape past " + llc_text + ", so there is no memory-bound figure yet: "
                 "`softgrad run --workload vocab` (or `attention`) times shapes that are.")
    md += ["\n## Roofline: memory-bound points\n", (roof_caption if not roof.empty else roof_none) + "\n"]
    if not roof.empty:
        md += [_md_table(roof)]
    md += ["\n## Load\n", md_text(slow_note) + "\n"]
    md += ["\n## Scaling exponents\n", _md_table(exps)]
    if summary is not None:
        md += ["\n## Correctness verdicts\n", _md_table(summary.reset_index())]
    for title, caption, path in figures:
        if path is not None:
            md += [f"\n## {title}\n", f"{md_text(caption)}\n", f"![{md_text(title)}]({path.name})\n"]
    md += ["\n## Change points\n", md_text(trend.summary(history)) + "\n"]
    if not change_rows.empty:
        md += [_md_table(change_rows)]
    md += ["\n## Run metadata\n", _md_table(meta_rows)]
    (out_dir / "report.md").write_text(_md_contents(md, [t for t, _, p in figures if p is not None] or [""]))

    css = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
           "th{background:#eee}img{max-width:100%;border:1px solid #ddd}figure{margin:2em 0}"
           # wide tables scroll in their own box and long stored words wrap: the page never scrolls sideways
           ".wide{overflow-x:auto;max-width:100%}body{overflow-wrap:anywhere}"
           "nav.toc{background:#f6f6f6;padding:.5em 1em;line-height:1.8}nav.toc a{margin-right:1.2em}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'>"
             f"<title>softgrad report {html.escape(run_id)}</title><style>{css}</style></head>"
             "<body><h1>softgrad report</h1>",
             f"<p>Run <code>{html.escape(run_id)}</code> on {html.escape(str(meta.get('machine')))}, commit "
             f"<code>{html.escape(str(meta.get('commit'))[:8])}</code>. Dashboard: <a href='../../results/html/index.html'>"
             f"asv</a>.</p>", TOC_MARK,
             "<h2 id='glance'>Which entry to use</h2>", f"<p>{html.escape(heatmap.CAPTION)}</p>"]
    for title, path in glance:
        parts.append(f"<figure class='glance'><h3>{html.escape(title)}</h3><img src='{path.name}' "
                     f"alt='{html.escape('which entry to use: ' + title)}'></figure>")
    if not glance:
        parts.append("<p>No entry passed every check at any timed point.</p>")
    parts += ["<h2 id='choice'>Choice table</h2>", _html_table(choices, choice_seconds),
             "<p><code>clear win</code>: the runner-up's lower quartile is above the fastest's upper quartile; "
             "otherwise the two are within the measured spread.</p>"]
    parts += ["<h2 id='crossovers'>Crossovers along n</h2>", f"<p>{html.escape(crossovers.CAPTION)}</p>",
              _html_table(crossings)]
    if not claim.empty:
        parts += ["<h2 id='claim'>The write-up's claim</h2><p>Time per call of the write-up's three ways "
                  "to get the Jacobian of one row, and the fastest entry that passed every case.</p>",
                  _html_table(claim, claim_seconds), f"<p>{html.escape(claim_verdict)}</p>"]
    if not agree.empty:
        parts += ["<h2 id='agreement'>softgrad vs the frameworks' own timers</h2>",
                  f"<p>{html.escape(agree_caption)}</p>", _html_table(agree, agree_seconds)]
    if not workloads_df.empty:
        parts += ["<h2 id='workloads'>Workloads</h2>", f"<p>{html.escape(wl_caption)}</p>",
                  _html_table(workloads_df, wl_seconds)]
    parts += ["<h2 id='roofline'>Roofline: memory-bound points</h2>",
              f"<p>{html.escape(roof_caption if not roof.empty else roof_none)}</p>"]
    if not roof.empty:
        parts += [_html_table(roof)]
    parts += ["<h2 id='load'>Load</h2>", f"<p>{html.escape(slow_note)}</p>"]
    parts += ["<h2 id='scaling'>Scaling exponents</h2>", _html_table(exps)]
    if summary is not None:
        parts += ["<h2 id='verdicts'>Correctness verdicts</h2>", _html_table(summary.reset_index())]
    plots = [(title, caption, path) for title, caption, path in figures if path is not None]
    for k, (title, caption, path) in enumerate(plots):
        parts.append(f"<figure class='plot'><h2 id='{'plots' if k == 0 else f'plot-{k}'}'>{html.escape(title)}</h2>"
                     f"<img src='{path.name}' alt='{html.escape(title)}'><figcaption>{html.escape(caption)}"
                     "</figcaption></figure>")
    parts += ["<h2 id='changes'>Change points</h2>", f"<p>{html.escape(trend.summary(history))}</p>"]
    if not change_rows.empty:
        parts += [_html_table(change_rows)]
    parts += ["<h2 id='meta'>Run metadata</h2>", _html_table(meta_rows), LAYOUT_PROBE, "</body></html>"]
    index = out_dir / "index.html"
    index.write_text(_html_contents(parts))
    return index
