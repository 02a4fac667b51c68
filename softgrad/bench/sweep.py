"""softgrad's sweep: one long-lived worker process per family, its timings written as asv results.

:func:`sweep_family` starts :mod:`softgrad.bench.family_worker` (a fresh interpreter: no fork server, no
framework imported before its threads start) with the allocator settings of
:mod:`softgrad.bench.allocator`, shows progress from its records, and restarts it after a crash or a hang
(the combination it was in fails, with the reason; everything measured before is kept). :func:`write_asv`
turns the records into asv's results file for the commit through asv's own ``Results`` API, so the
dashboard, ``asv compare`` and softgrad's history read them as before; :func:`discover` has asv write its
``benchmarks.json`` (the classes of :mod:`softgrad.bench.asv_suite`) first.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import children, registry
from . import asv_machine, grid, plan
from .allocator import MALLOC_TUNABLES
from .asv_driver import RunError
from .progress import Progress
from .asv_suite import benchmark_class
from .family_worker import read_records
from .sampling import median
from ..stored import POSITIVE, STR, Fields, MapOf, check, read_json, write_json

#: ``speed.json``: per benchmark ("impl op shape dtype device"), its per-call time over the reference kernel's
#: time measured beside it (median and quartiles of the pooled samples; :func:`softgrad.bench.sweep.normalized`)
SPEED = Fields({
    "format": STR,
    "reference": STR,
    "benchmarks": MapOf(Fields({"norm": POSITIVE, "norm_q25": POSITIVE, "norm_q75": POSITIVE, "speed_s": POSITIVE},
                               required=("norm", "norm_q25", "norm_q75")), "an object of objects"),
}, required=("benchmarks",), what="a softgrad speed file")

#: passes over a family's combinations (``softgrad run --rounds``)
DEFAULT_ROUNDS = 3
#: a combination with no record for this long is taken as hung: its worker is killed and restarted
HANG_S = 180.0


def pooled(records: list[dict[str, Any]]) -> dict[tuple, list[float]]:
    """Per key, the per-call seconds of every pass's samples, pooled in the order they came."""
    out: dict[tuple, list[float]] = {}
    for r in records:
        if r["kind"] == "samples":
            out.setdefault(r["key"], []).extend(float(v) for v in r.get("samples") or [])
    return out


def _in_progress(records: list[dict[str, Any]]) -> tuple | None:
    """The combination the worker started last and did not finish (None if the last one finished)."""
    for r in reversed(records):
        if r["kind"] in ("samples", "skip", "failed", "done"):
            return None
        if r["kind"] == "start":
            return r["key"]
    return None


class _Counter:
    """Timings done so far, from the records file read incrementally (only the bytes added since)."""

    def __init__(self, path: Path, combos: Sequence[plan.Combo], rounds: int):
        self.path, self.offset, self.done = path, 0, 0
        self.units = {c.key: rounds if "time_op" in c.kinds else 1 for c in combos}
        self.ended: set[tuple] = set()
        self.counted: dict[tuple, int] = {}
        self.partial = b""

    def update(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return self.done
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            try:
                rec = json.loads(line)
                kind, key = rec["kind"], tuple(rec["key"])
            except (ValueError, KeyError, TypeError):
                continue
            if kind == "samples" and key not in self.ended:
                self.done += 1
                self.counted[key] = self.counted.get(key, 0) + 1
            elif kind in ("skip", "failed") and key not in self.ended:  # its remaining passes never come
                self.ended.add(key)
                self.done += max(0, self.units.get(key, 1) - self.counted.get(key, 0))
        return self.done


def _append(path: Path, kind: str, key: tuple, **fields: Any) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"kind": kind, "key": list(key), **fields}) + "\n")


def sweep_family(family: str, impls: list[registry.Implementation], grid_name: grid.GridLike, rounds: int, folder: Path,
                 progress: Progress, label: str, select: set[tuple] | None = None, keep_fds: Sequence[int] = (),
                 hang_s: float = HANG_S) -> tuple[int, list[dict[str, Any]], str]:
    """Time one family's combinations (or the ``select``ed keys) in ``rounds`` passes; returns (0 or 1 when
    a combination failed or the worker could not start, the records, how far it got)."""
    combos = plan.combos(impls, grid_name, select)
    records_path = folder / f"sweep-{family}.jsonl"
    spec_path = folder / f"sweep-{family}.spec.json"
    log_path = folder / f"sweep-{family}.log"
    spec = {"impls": [i.name for i in impls], "grid": grid.selected(grid_name), "rounds": rounds, "records": str(records_path),
            "select": sorted(select) if select is not None else None, "parent": os.getpid()}
    spec_path.write_text(json.dumps(spec))
    env = children.python_env({"PYTHONUNBUFFERED": "1", "GLIBC_TUNABLES": MALLOC_TUNABLES})
    code = 0
    t0 = time.monotonic()

    counter = _Counter(records_path, combos, rounds)
    total = sum(counter.units.values())  # one samples record per pass of a timed combination

    def reached() -> str:
        done = counter.update()
        text = f"{min(total, done)}/{total} timings"
        elapsed = time.monotonic() - t0
        if 0 < done < total and elapsed > 10:
            text += f", about {(total - done) * elapsed / done:.0f} s left"
        return text

    while True:
        with open(log_path, "a") as log:
            proc = subprocess.Popen(children.python("-m", "softgrad.bench.family_worker", str(spec_path)), env=env,
                                    cwd=children.neutral_cwd(), stdout=log, stderr=subprocess.STDOUT,
                                    pass_fds=tuple(keep_fds))
        last_size, last_change, last_line = -1, time.monotonic(), time.monotonic()
        try:
            while proc.poll() is None:
                time.sleep(1.0)  # the parent stays out of the way of the worker's timings (2 cores)
                size = records_path.stat().st_size if records_path.exists() else 0
                now = time.monotonic()
                if size != last_size:
                    last_size, last_change = size, now
                    if progress.tty:
                        progress.status(f"{label} {family}: {reached()}")
                    elif now - last_line > 60:  # a log gets a line a minute
                        progress.line(f"{label} {family}: {reached()}")
                        last_line = now
                elif now - last_change > hang_s:
                    proc.kill()
                    proc.wait()
                    break
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        records = read_records(records_path)
        if any(r["kind"] == "done" for r in records):
            break
        stuck = _in_progress(records)
        if stuck is None:  # died between combinations, or before the first: give up on the family
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            progress.line(f"{label} {family}: the worker stopped outside any benchmark (exit code "
                          f"{proc.returncode}): {tail[0][:200]}")
            return 1, records, reached()
        why = (f"no result in {hang_s:g} s: killed" if proc.returncode == -9 and time.monotonic() - last_change > hang_s
               else f"the process died (exit code {proc.returncode})")
        _append(records_path, "failed", stuck, error=why)
        progress.line(f"{label} {family}: {' '.join(stuck)} failed: {why}; restarting the worker")
        code = 1
    records = read_records(records_path)
    if any(r["kind"] == "failed" for r in records):
        code = 1
    return code, records, f"{reached()} in {time.monotonic() - t0:.0f} s"


def discover(cfg: Path, commit: str, machine: dict[str, str] | None = None) -> None:
    """asv's discovery of the benchmark classes (``benchmarks.json`` in the results folder), no timing; on
    ``machine`` (:func:`softgrad.bench.asv_machine.describe`: asv reads it from a machine file beside ``cfg``,
    never ``~/.asv-machine.json``), else on asv's default machine."""
    env = children.python_env({"PYTHONUNBUFFERED": "1"})
    if env.get("PYTHONPATH") and "ASV_PYTHONPATH" not in env:
        env["ASV_PYTHONPATH"] = env["PYTHONPATH"]  # asv drops PYTHONPATH: entries found there must be discovered too
    args = ("run", "--config", str(cfg), "--python=same", "--set-commit-hash", commit, "--bench", "just-discover")
    if machine is None:
        cmd = children.python("-m", "asv", *args)
    else:
        machine_file = asv_machine.write_collection(Path(cfg).parent / "asv-machine.json", machine)
        cmd = asv_machine.command(machine_file, *args, "--machine", machine["machine"])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=children.neutral_cwd())
    if out.returncode != 0:
        last = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RunError(f"asv could not discover the benchmarks: {last[0][:300]}")


def _values(records: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """Per key: ``samples`` (per-call seconds, every round pooled), ``number``, the setup's fields,
    ``skip`` or ``failed``."""
    samples = pooled(records)
    out: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r["kind"] == "start" or r["kind"] == "done":
            continue
        v = out.setdefault(r["key"], {"samples": samples.get(r["key"], [])})
        if r["kind"] == "samples":
            v["number"] = int(r["number"])
        elif r["kind"] == "setup":
            v.update({k: r.get(k) for k in ("first_call_s", "error_ratio", "peakmem_bytes")})
        else:
            v[r["kind"]] = r.get("reason") or r.get("error") or r["kind"]
    return out


_FIELD = {"peakmem_op": "peakmem_bytes", "track_error_ratio": "error_ratio", "track_first_call_s": "first_call_s"}


def benchmark_result(bench: dict[str, Any], impl: str, kind: str, values: dict[tuple, dict[str, Any]]):
    """asv's ``BenchmarkResult`` for one benchmark (its parameter grid) from the records' values: a skipped
    combination is NaN (asv's "n/a"), a failed or unmeasured one None (asv's failure)."""
    import ast
    import itertools

    from asv.runner import BenchmarkResult

    result, samples, number, errors = [], [], [], []
    for params in itertools.product(*[[ast.literal_eval(p) for p in ps] for ps in bench["params"]]):
        v = values.get((impl, *params))
        if v is None or "failed" in v:
            result.append(None)
            samples.append(None)
            number.append(None)
            if v is not None:
                errors.append(f"{impl} {' '.join(params)}: {v['failed']}")
        elif "skip" in v:
            result.append(math.nan)
            samples.append(None)
            number.append(None)
        elif kind == "time_op":
            if not v["samples"]:
                result.append(None)
                samples.append(None)
                number.append(None)
                continue
            result.append(median(v["samples"]))
            samples.append(v["samples"])
            number.append(v.get("number", 1))
        else:
            value = v.get(_FIELD[kind])
            result.append(math.nan if value is None else float(value))
            samples.append(None)
            number.append(None)
    return BenchmarkResult(result=result, samples=samples, number=number, errcode=1 if errors else 0,
                           stderr="\n".join(errors), profile=None)


def normalized(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per timed key ("impl op shape dtype device"): each sample divided by the machine's speed read before
    its round (:func:`softgrad.bench.sampling.machine_speed`), pooled: median ``norm``, quartiles, and the
    median speed itself (``speed_s``)."""
    import numpy as np

    pooled: dict[tuple, list[float]] = {}
    speeds: dict[tuple, list[float]] = {}
    for r in records:
        speed = r.get("speed_s") if r["kind"] == "samples" else None
        if isinstance(speed, (int, float)) and speed > 0 and r.get("samples"):
            pooled.setdefault(r["key"], []).extend(float(s) / speed for s in r["samples"])
            speeds.setdefault(r["key"], []).append(float(speed))
    out = {}
    for key, values in pooled.items():
        q25, med, q75 = np.percentile(values, [25, 50, 75])
        out[" ".join(key)] = {"norm": float(med), "norm_q25": float(q25), "norm_q75": float(q75),
                              "speed_s": float(np.median(speeds[key]))}
    return out


def store_normalized(path: Path, records: list[dict[str, Any]]) -> None:
    """Merge :func:`normalized` of ``records`` into the run's ``speed.json`` at ``path``."""
    data = read_json(path) if path.exists() else {}
    if path.exists():
        check(SPEED, data, path)
    merged = {**data.get("benchmarks", {}), **normalized(records)}
    write_json(path, {"format": "softgrad-speed/1", "reference": REFERENCE, "benchmarks": merged}, SPEED)


#: what the normalized times are divided by
REFERENCE = "softgrad.bench.sampling.machine_speed: a pure-Python loop of 1000 float multiply-adds"


def write_asv(cfg: Path, commit: str, impls: list[registry.Implementation], records: list[dict[str, Any]],
              duration_s: float, grid_name: grid.GridLike = None, machine: dict[str, str] | None = None) -> Path:
    """Add the records' results for ``impls`` to asv's results file for ``commit`` (created if absent)
    through asv's ``Results`` API, under ``machine`` (:func:`softgrad.bench.asv_machine.describe`, its
    ``machine.json`` written beside; default: asv's machine from ``~/.asv-machine.json``); returns the file."""
    from asv import environment
    from asv.benchmarks import Benchmarks
    from asv.config import Config
    from asv.machine import Machine
    from asv.repo import get_repo
    from asv.results import Results, get_filename

    conf = Config.load(str(cfg))
    env = next(iter(environment.get_environments(conf, [f"existing:{sys.executable}"], verbose=False)))
    if machine is None:
        machine = Machine.load(interactive=False, use_defaults=True).__dict__
    else:
        asv_machine.write_machine(Path(conf.results_dir), machine)
    params = {**machine, "python": env.python, **env.requirements}
    results = Results(params, env.requirements, commit, get_repo(conf).get_date(commit), env.python, env.name,
                      env.env_vars)
    results.load_data(conf.results_dir)
    benchmarks = Benchmarks.load(conf)
    values = _values(records)
    now = datetime.datetime.now(datetime.timezone.utc)
    for impl in impls:
        for kind in ("time_op", *_FIELD):
            name = f"{benchmark_class(impl.name, grid_name)}.{kind}"
            if name in benchmarks:
                results.add_result(benchmarks[name], benchmark_result(benchmarks[name], impl.name, kind, values),
                                   started_at=now, duration=duration_s, record_samples=True)
    results.save(conf.results_dir)
    return Path(conf.results_dir) / get_filename(params["machine"], commit, env.name)


__all__ = ["DEFAULT_ROUNDS", "HANG_S", "REFERENCE", "benchmark_result", "discover", "normalized", "pooled",
           "store_normalized", "sweep_family", "write_asv"]
