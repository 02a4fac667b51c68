"""The stored history as pandas DataFrames: the one place that reads runs for the report, choose and compare.

:func:`load` gives one tidy row per run x implementation x op x shape x dtype x device, with the run's
machine, commit and library versions, the timing (median, quartiles, 99% interval), the worst error
relative to tolerance at that shape, first-call and build (JIT) times, peak memory, bytes moved and the
achieved bandwidth as a fraction of the copy bandwidth measured in the same run (``in_cache``: the bytes
fit in the machine's last-level cache, so that figure is not a memory bandwidth), and the
implementation's correctness verdict from the run's check. :func:`load_checks` gives one row per check
record. Both read ``results/runs`` (see :mod:`softgrad.history.store`).

Example::

    from softgrad.history import results
    df = results.load()                      # every run
    last = results.latest(df)                # the newest complete run on this machine
    each = results.newest_per_entry(df)      # each entry's newest measurement of each point (choose's)
    last.query("op == 'vjp' and n == 1024 and batch == 256 and dtype == 'float32'")
"""

from __future__ import annotations

import math
from typing import Any

from .. import registry
from ..bench import asv_results, grid
from ..contract import DTYPE_INFO
from ..workloads import name_in_json, parse_shape_token
from . import store

#: names this module had before reading asv's files moved to softgrad.bench.asv_results
KINDS = asv_results.KINDS
_asv_rows = asv_results.rows

#: a point is marked ``slow_machine`` when the machine's speed beside it read this many times its best in the run
SLOW_MACHINE = 1.25

RUN_COLUMNS = ("run", "date", "machine", "cpu", "cores", "commit", "grid", "workload", "threads", "copy_gbps",
               "llc_bytes")
VERSION_COLUMNS = ("numpy", "numba", "torch", "jax")


def clear_win(fastest_q75_s: float, runner_up_q25_s: float) -> bool | None:
    """Whether the runner-up's lower quartile is above the fastest's upper quartile (False: the two are
    within the measured spread and may swap places on a rerun; None: a quartile is unknown)."""
    if not (math.isfinite(fastest_q75_s) and math.isfinite(runner_up_q25_s)):
        return None
    return bool(runner_up_q25_s > fastest_q75_s)


def _class_to_impl(names: list[str]) -> dict[str, str]:
    known = list(dict.fromkeys([*names, *(i.name for i in registry.all_implementations())]))
    return {grid.class_name(n): n for n in known}


def checks_for(run: store.Run) -> store.Run | None:
    """The run whose correctness records apply to ``run``: itself, or (for a ``--no-check`` run) the newest
    earlier run with checks on the same commit and library versions."""
    if (run.folder / "checks.json").exists():
        return run
    meta = run.meta()
    same = [r for r in store.all_runs() if r.id < run.id and (r.folder / "checks.json").exists()
            and r.meta_path.exists() and r.meta().get("commit") == meta.get("commit")
            and r.meta().get("versions") == meta.get("versions")]
    return same[-1] if same else None


def _check_summary(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in checks:
        s = out.setdefault(r["impl"], {"check_passed": 0, "check_failed": 0, "check_worst_ratio": math.nan,
                                       "failed_cases": []})
        if r.get("verdict") == "pass":
            s["check_passed"] += 1
        elif r.get("verdict") == "fail":
            s["check_failed"] += 1
            s["failed_cases"].append(f"{r['op']} {r['dtype']} {r['case']}")
        ratio = r.get("ratio")
        if ratio is not None and not (isinstance(ratio, float) and math.isnan(ratio)):
            s["check_worst_ratio"] = ratio if math.isnan(s["check_worst_ratio"]) else max(s["check_worst_ratio"], ratio)
    return out


def text_as_objects(df):
    """``df`` with its text columns held as Python strings (object dtype), not pandas' ``str`` dtype: pandas
    3.1's ``str`` column compares unequal to a scalar that is only NUL (``Series(["\\x00"]) == "\\x00"`` is
    False), so a machine or entry named so in a stored file would select none of its own rows."""
    import pandas as pd

    text = [c for c in df.columns if pd.api.types.is_string_dtype(df[c]) and df[c].dtype != object]
    return df.astype({c: object for c in text}) if text else df


def _run_info(run: store.Run, meta: dict[str, Any]) -> dict[str, Any]:
    info = {
        "run": run.id,
        "date": meta.get("date"),
        "machine": meta.get("machine"),
        "cpu": meta.get("cpu"),
        "cores": meta.get("cores"),
        "commit": (meta.get("commit") or "")[:8],
        "grid": meta.get("grid"),
        "workload": workload_name(meta),
        "threads": (meta.get("threads") or {}).get("requested") or "default",
        "copy_gbps": (meta.get("copy_bandwidth") or {}).get("gbps", math.nan),
        "llc_bytes": meta.get("llc_bytes") or math.nan,
    }
    for lib in VERSION_COLUMNS:
        info[lib] = (meta.get("versions") or {}).get(lib, "")
    return info


def workload_name(meta: dict[str, Any]) -> str:
    """The run's workload: ``default`` for the default grid, else the name it stored (unreadable: ``?``)."""
    raw = meta.get("workload")
    return name_in_json(raw) if raw else "default"


def load(runs: list[store.Run] | None = None, complete_only: bool = True):
    """One row per run x implementation x op x shape x dtype x device (see the module docstring).

    A complete run without ``asv.json``, or whose ``asv.json`` holds no softgrad benchmark, is left out
    with a line saying so in ``df.attrs["warnings"]`` (a list of str, empty when nothing was left out)."""
    import pandas as pd

    runs = runs if runs is not None else (store.complete_runs() if complete_only else store.all_runs())
    rows = []
    warnings: list[str] = []
    for run in runs:
        meta = run.meta()
        data = run.asv()
        if data is None:
            if meta.get("complete"):  # a finished run whose timings were deleted: say so, don't answer silently
                warnings.append(f"run {run.id} is complete but has no {run.folder / 'asv.json'}: left out")
            continue
        info = _run_info(run, meta)
        source = checks_for(run)
        info["checks_from"] = source.id if source else ""
        checks = _check_summary(source.checks()) if source else {}
        impl_of = _class_to_impl(list(meta.get("impls", [])))
        measured = asv_results.rows(data, impl_of, str(run.folder / "asv.json"))
        speed = run.speed()
        if not measured and meta.get("complete"):
            warnings.append(f"run {run.id} is complete but its {run.folder / 'asv.json'} holds no softgrad "
                            f"benchmark results: left out")
        for (impl, op, shape, dtype, device), values in measured.items():
            batch, n = grid.parse_shape(shape)
            _, x_layout, g_layout = parse_shape_token(shape)
            row = {**info, "impl": impl, "op": op, "shape": shape, "batch": batch, "n": n, "x_layout": x_layout,
                   "g_layout": g_layout, "dtype": dtype,
                   "device": device, "build_s": (meta.get("build_s") or {}).get(impl), **values,
                   **speed.get((impl, op, shape, dtype, device), {})}
            c = checks.get(impl)
            row["checked"] = c is not None
            row["check_passed"] = c["check_passed"] if c else 0
            row["check_failed"] = c["check_failed"] if c else 0
            row["check_worst_ratio"] = c["check_worst_ratio"] if c else math.nan
            row["failed_cases"] = "; ".join(c["failed_cases"][:5]) if c else ""
            rows.append(row)
    df = text_as_objects(pd.DataFrame(rows))
    df.attrs["warnings"] = warnings
    if df.empty:
        return df
    for col in ("time_s", "q25_s", "q75_s", "error_ratio", "first_call_s", "build_s", "peakmem_bytes", "norm",
                "norm_q25", "norm_q75", "speed_s"):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else math.nan
    entries = {name: _entry(name) for name in df["impl"].unique()}
    df["family"] = df["impl"].map(lambda n: entries[n].family if entries[n] else "")
    df["spread"] = (df["q75_s"] - df["q25_s"]) / df["time_s"]
    df["bytes_moved"] = [grid.bytes_moved(o, b, n, DTYPE_INFO[d].itemsize, gl) for o, b, n, d, gl in
                         zip(df["op"], df["batch"], df["n"], df["dtype"], df["g_layout"])]
    df["gbps"] = df["bytes_moved"] / df["time_s"] / 1e9
    df["bw_fraction"] = df["gbps"] / df["copy_gbps"]
    # data that fits in the last-level cache stays there between calls: its "bandwidth" is the cache's
    df["in_cache"] = df["bytes_moved"] <= df["llc_bytes"]
    # the one-off JIT cost to amortise: first call over a warm one, plus the cold build; 0 without a JIT.
    # The first call is tracked at a few row lengths (grid.TRACK_N_VALUES): other sizes take the excess
    # measured at the nearest tracked n of the same run, op, batch, dtype and device.
    jit = df["impl"].map(lambda n: bool(entries[n] and entries[n].compiles))
    excess = _nearest_tracked((df["first_call_s"] - df["time_s"]).clip(lower=0), df)
    df["compile_s"] = (excess.fillna(0) + df["build_s"].fillna(0)).where(jit, 0.0)
    df["passed"] = df["checked"] & (df["check_failed"] == 0) & ~(df["error_ratio"] > 1)
    # measured while the whole machine ran slow (other tenants): the reference kernel beside the point took
    # SLOW_MACHINE times its best reading of the run, or longer
    best = df.groupby("run")["speed_s"].transform("min")
    df["slow_machine"] = df["speed_s"] > SLOW_MACHINE * best
    return df


def agreement_warning(run: store.Run) -> str | None:
    """A line when some of the run's points disagree with the frameworks' own timers beyond their bound."""
    from ..bench.agreement import warning

    return warning(run.agreement(), run.id)


def _nearest_tracked(values, df):
    """``values`` with each missing entry taken from the same run, implementation, op, batch, dtype and
    device at the nearest row length (in log2 n) where it is known."""
    import numpy as np

    out = values.copy()
    log_n = np.log2(df["n"].astype(float))
    for _, idx in df.groupby(["run", "impl", "op", "batch", "dtype", "device"]).groups.items():
        known = [i for i in idx if np.isfinite(values[i])]
        if not known:
            continue
        for i in idx:
            if not np.isfinite(values[i]):
                out[i] = values[min(known, key=lambda k: abs(log_n[k] - log_n[i]))]
    return out


def _entry(name: str) -> registry.Implementation | None:
    try:
        return registry.get(name)
    except KeyError:  # a plugin not loaded in this process
        return None


def latest(df, machine: str | None = None):
    """The rows of the newest run (on ``machine``, default: the newest run's machine)."""
    if df.empty:
        return df
    if machine is not None:
        df = df[df["machine"] == machine]
    newest = df.sort_values("run")["run"].iloc[-1]
    return df[df["run"] == newest]


def _on_machine(df, machine: str | None):
    """The rows of ``machine`` (default: the newest run's machine)."""
    machine = machine if machine is not None else df.sort_values("run")["machine"].iloc[-1]
    return df[df["machine"] == machine]


def latest_per_workload(df, machine: str | None = None):
    """The rows of the newest run of each workload (on ``machine``, default: the newest run's machine): what
    the report's Workloads section shows."""
    if df.empty:
        return df
    df = _on_machine(df, machine)
    workload = df["workload"] if "workload" in df else "default"
    newest = df.assign(_w=workload).groupby("_w")["run"].transform("max")
    return df[df["run"] == newest]


#: one entry at one point: ``choose`` answers from the newest measurement of each
ENTRY_POINT = ("impl", "op", "batch", "n", "x_layout", "g_layout", "dtype", "device")


def newest_per_entry(df, machine: str | None = None):
    """Per entry and point (:data:`ENTRY_POINT`), the row of the newest run on ``machine`` (default: the newest
    run's machine) that timed it, else (no run stored a time there) the newest run's row, its time NaN: what
    ``choose`` answers from. A newer run of other entries or other shapes hides nothing; whether the entry
    passed is the verdict of the run that timed it (``passed``), and ``run``/``date`` say which and when."""
    if df.empty:
        return df
    df = _on_machine(df, machine)
    ordered = df.assign(_timed=df["time_s"].notna()).sort_values(["_timed", "run"], kind="stable")
    return ordered.drop_duplicates(list(ENTRY_POINT), keep="last").drop(columns="_timed").sort_index()


def load_checks(runs: list[store.Run] | None = None, complete_only: bool = True):
    """One row per stored check record, with its run's id, commit and date."""
    import pandas as pd

    runs = runs if runs is not None else (store.complete_runs() if complete_only else store.all_runs())
    rows = []
    for run in runs:
        meta = run.meta()
        for r in run.checks():
            rows.append({"run": run.id, "date": meta.get("date"), "commit": (meta.get("commit") or "")[:8], **r})
    return text_as_objects(pd.DataFrame(rows))
