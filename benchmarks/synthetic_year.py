"""A year of nights, timed: ``python benchmarks/synthetic_year.py [--from HOME] [--nights 365] [--home DIR]``.

Builds a synthetic history from real run folders and times the commands that read it. The sources are the
complete runs of ``--from HOME`` (default: two small real runs made first in a scratch home, ``softgrad run
--quick --impl numpy --impl loops`` on the default grid and on a small attention-like workload, about 3 min).
Each source is copied under one dated run id per night and machine (``meta.json``'s id, date and, past the
first machine, its machine name rewritten: ``--machines 2``, the default, adds ``<machine>-2``; the times in
``asv.json`` and ``speed.json`` scaled by a per-night noise of about 3%, and numpy's by 1.3 from two thirds of
the way on, so ``history`` has a step to find; the other files copied as they are), so every night holds one
run per source (per workload) on each machine.

Then, each in a process of its own (as a user types them): ``softgrad index --rebuild``, ``choose``,
``compare``, ``history`` and ``report`` (and with ``--folders`` the same four reading the run folders,
``SOFTGRAD_INDEX=off``), with the wall-clock and CPU seconds of each, and the history's size per night: the
run folders (what the nightly job commits) and the index (not committed). The targets (issue 23, 2 cores):
choose 1 s, compare 2 s, history 3 s, report 20 s, rebuild 2 min.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import itertools
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the small workload of the default sources: attention-like scores, masked and not, two layouts of g
WORKLOAD = """name = "night-small"
description = "a small attention-like workload for the synthetic year"
shapes = ["8x4x64x64", "1x2x128x512"]
dtypes = ["float32"]
ops = ["softmax", "vjp"]
g_layouts = ["contiguous", "transposed"]
values = ["normal", "masked"]
"""
TARGETS_S = {"index --rebuild": 120.0, "choose": 1.0, "compare": 2.0, "history": 3.0, "report": 20.0}
#: asv's time statistics scaled with the time (per combination of params)
TIME_STATS = ("result", "stats_ci_99_a", "stats_ci_99_b", "stats_q_25", "stats_q_75")


def softgrad(home: Path, *args: str,
             env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
    """``softgrad ARGS`` in its own process with SOFTGRAD_HOME=home: (result, wall s, CPU s of the process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "softgrad.cli", *args], capture_output=True, text=True,
                         env={**os.environ, "SOFTGRAD_HOME": str(home), **(env or {})}, cwd=str(ROOT))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def make_sources(home: Path) -> None:
    """Two small real runs in ``home``: the default quick grid and the small workload, numpy and loops."""
    home.mkdir(parents=True, exist_ok=True)
    spec = home / "night-small.toml"
    spec.write_text(WORKLOAD)
    base = ["run", "--quick", "--impl", "numpy", "--impl", "loops", "--no-progress", "--no-report"]
    for extra in ([], ["--workload", str(spec)]):
        print(f"synthetic_year: softgrad {' '.join(base + extra)}", flush=True)
        out, wall, _ = softgrad(home, *base, *extra)
        if out.returncode not in (0, 1):  # 1: a check failed; the run is stored all the same
            raise RuntimeError(f"the source run failed: {(out.stdout + out.stderr).strip()[-400:]}")
        print(f"synthetic_year: stored in {wall:.0f} s", flush=True)


def sources(home: Path) -> list[Path]:
    """The complete runs of ``home``, oldest first."""
    runs = sorted(p for p in (home / "results" / "runs").iterdir() if (p / "meta.json").is_file())
    return [p for p in runs if json.loads((p / "meta.json").read_text()).get("complete")]


def _scaled(values, factor: float):
    return [v * factor if isinstance(v, (int, float)) and v is not None else v for v in values]


def copy_night(src: Path, runs: Path, night: int, slot: int, nights: int, rng: random.Random,
               machine: int = 0) -> Path:
    """``src`` as night ``night``'s run (its ``slot``-th of the night; the last night is last night) on the
    ``machine``-th machine (0: the source's own; k: ``<name>-<k+1>``): a new id and date, times with noise."""
    meta = json.loads((src / "meta.json").read_text())
    if machine:
        meta["machine"] = f"{meta.get('machine') or 'machine'}-{machine + 1}"
    today = dt.datetime.now(dt.timezone.utc).replace(hour=2, minute=0, second=0, microsecond=0)
    when = today - dt.timedelta(days=nights - night) + dt.timedelta(minutes=30 * slot)
    commit = (meta.get("commit") or "0" * 40)[:8]
    rid = f"{when:%Y%m%dT%H%M%S}{slot:06d}Z-{commit}"
    dest = runs / rid
    dest.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in ("meta.json", "asv.json", "speed.json"):
            shutil.copy2(f, dest / f.name)
    meta.update(id=rid, date=when.isoformat())
    (dest / "meta.json").write_text(json.dumps(meta, indent=1))
    step = night >= 2 * nights // 3
    noise = {}

    def factor(impl: str) -> float:
        if impl not in noise:
            noise[impl] = math.exp(rng.gauss(0, 0.03)) * (1.3 if step and impl == "numpy" else 1.0)
        return noise[impl]

    asv = json.loads((src / "asv.json").read_text())
    cols = asv.get("result_columns") or []
    for name, row in asv.get("results", {}).items():
        cls = name.split(".")[1]
        if not name.endswith(".time_op"):
            continue
        f = factor("numpy" if cls.endswith("Impl_numpy") else cls)
        for k, col in enumerate(cols):
            if col in TIME_STATS and isinstance(row[k], list):
                row[k] = _scaled(row[k], f)
    (dest / "asv.json").write_text(json.dumps(asv))
    if (src / "speed.json").exists():
        speed = json.loads((src / "speed.json").read_text())
        for label, values in speed.get("benchmarks", {}).items():
            f = factor(label.split(" ")[0])
            for key in ("norm", "norm_q25", "norm_q75"):
                if isinstance(values.get(key), (int, float)):
                    values[key] *= f
        (dest / "speed.json").write_text(json.dumps(speed, indent=1))
    for f in dest.iterdir():  # written that night, as a nightly job's run is (not just now: see index.RACY_S)
        os.utime(f, (when.timestamp(), when.timestamp()))
    return dest


def build(source_home: Path, home: Path, nights: int, seed: int = 0, machines: int = 1) -> int:
    """The synthetic history in ``home``: every complete run of ``source_home``, once a night on each of
    ``machines`` machines; the runs made."""
    srcs = sources(source_home)
    if not srcs:
        raise RuntimeError(f"no complete run in {source_home / 'results' / 'runs'} to copy")
    runs = home / "results" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for night in range(nights):
        for machine in range(machines):
            for k, src in enumerate(srcs):
                copy_night(src, runs, night, machine * len(srcs) + k, nights, rng, machine)
    return nights * len(srcs) * machines


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def choose_args(home: Path) -> list[str]:
    """A ``choose`` request the default grid timed: vjp in float32 at the largest batch and longest row timed."""
    timed = []
    for src in sources(home):
        asv = json.loads((src / "asv.json").read_text())
        for name, row in asv.get("results", {}).items():
            if name.startswith("bench_ops.") and name.endswith(".time_op"):
                rec = dict(zip(asv["result_columns"], row))
                combos = itertools.product(*[[ast.literal_eval(v) for v in vs] for vs in rec["params"]])
                timed += [shape for (op, shape, dtype, _), t in zip(combos, rec["result"])
                          if t is not None and op == "vjp" and dtype == "float32" and shape.count("x") == 1]
    if not timed:
        return ["--op", "vjp", "--n", "1024", "--batch", "256", "--dtype", "float32"]
    batch, n = max(tuple(int(d) for d in s.split("x")) for s in timed)
    return ["--op", "vjp", "--n", str(n), "--batch", str(batch), "--dtype", "float32"]


def measure(home: Path, folders: bool, report_out: Path) -> list[tuple[str, float, float, int, str]]:
    """(command, wall s, CPU s, exit status, last line) of each timed command."""
    request = choose_args(home)
    commands = [("index --rebuild", ["index", "--rebuild"]), ("choose", ["choose", *request]),
                ("compare", ["compare"]), ("history", ["history"]), ("report", ["report", "--out", str(report_out)])]
    timed = []
    for label, argv in commands:
        out, wall, cpu = softgrad(home, *argv)
        last = (out.stdout.strip().splitlines() or out.stderr.strip().splitlines() or [""])[-1]
        timed.append((label, wall, cpu, out.returncode, last))
        print(f"  {label:16s} {wall:7.2f} s wall {cpu:7.2f} s CPU  exit {out.returncode}  "
              f"(target {TARGETS_S[label]:g} s)  {last[:100]}", flush=True)
        if out.returncode not in (0, 1):
            print(out.stderr.strip()[-600:], file=sys.stderr)
    if folders:
        print("the same, reading the run folders (SOFTGRAD_INDEX=off):", flush=True)
        for label, argv in commands[1:]:
            out, wall, cpu = softgrad(home, *argv, env={"SOFTGRAD_INDEX": "off"})
            timed.append((f"{label} (folders)", wall, cpu, out.returncode, ""))
            print(f"  {label:16s} {wall:7.2f} s wall {cpu:7.2f} s CPU  exit {out.returncode}", flush=True)
    return timed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", type=Path, metavar="HOME",
                    help="a SOFTGRAD_HOME whose complete runs are copied (default: make two small real runs)")
    ap.add_argument("--nights", type=int, default=365, help="nights of history (default 365)")
    ap.add_argument("--machines", type=int, default=2, help="machines the sources run on each night (default 2)")
    ap.add_argument("--home", type=Path, help="where the synthetic history goes (default: a new temporary folder)")
    ap.add_argument("--folders", action="store_true", help="also time the commands reading the run folders")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic history (default: removed at the end)")
    args = ap.parse_args(argv)
    if args.nights < 4:
        print("synthetic_year: --nights must be at least 4 (history needs 4 runs)", file=sys.stderr)
        return 2
    if args.machines < 1:
        print("synthetic_year: --machines must be at least 1", file=sys.stderr)
        return 2
    if args.source is not None and not (args.source / "results" / "runs").is_dir():
        print(f"synthetic_year: --from {args.source}: no results/runs folder there (a SOFTGRAD_HOME with runs)",
              file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="softgrad-year-"))
    home = args.home or scratch / "home"
    try:
        source = args.source
        if source is None:
            source = scratch / "sources"
            make_sources(source)
        t0 = time.perf_counter()
        made = build(source, home, args.nights, machines=args.machines)
        runs = home / "results" / "runs"
        size = folder_bytes(runs)
        print(f"synthetic_year: {made} runs ({args.nights} nights x {made // args.nights // args.machines} runs x "
              f"{args.machines} machines) in "
              f"{time.perf_counter() - t0:.0f} s under {runs}; {size / args.nights / 1e6:.2f} MB of run folders a "
              f"night ({size / args.nights / args.machines / 1e6:.2f} MB per machine)", flush=True)
        print(f"timed on {os.cpu_count()} cores (other processes may be running: CPU seconds are the steadier "
              f"figure):", flush=True)
        timed = measure(home, args.folders, scratch / "report")
        index_file = home / "results" / "index.sqlite"
        if index_file.exists():
            size = index_file.stat().st_size
            print(f"index {size / 1e6:.1f} MB ({size / args.nights / 1e3:.0f} "
                  f"kB a night), not committed", flush=True)
        over = [t for t in timed if t[0] in TARGETS_S and t[1] > TARGETS_S[t[0]]]
        print(f"synthetic_year: {len(over)} of {len(TARGETS_S)} over their target"
              + "".join(f"; {label} {wall:.1f} s" for label, wall, *_ in over))
        return 0
    except RuntimeError as exc:
        print(f"synthetic_year: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"synthetic_year: kept {home}")


if __name__ == "__main__":
    sys.exit(main())
