"""Run the checker over a selection, each implementation in a worker process of its own.

Isolation: a worker that hangs past the per-case time limit is killed and that case fails with
``timeout``; a worker that dies (a segfault in a framework) fails the case it was on; either way a new
worker carries on with the remaining cases. Each family thus also runs with no other framework loaded.
Up to ``jobs`` workers run at once, each on one implementation and some of its dtypes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from . import paths, registry
from .cases import CATALOGUE, Case, get_case
from .checker import Record, check_case
from .contract import OPS, check_dtype, check_op

#: worker processes at a time (one implementation and dtype each); two on this project's 2-core machines
DEFAULT_JOBS = max(1, min(2, os.cpu_count() or 1))


@dataclass
class CheckSelection:
    """What to check; ``None`` or empty means everything available."""

    impls: list[str] | None = None
    ops: list[str] | None = None
    dtypes: list[str] | None = None
    cases: list[str] | None = None
    devices: list[str] | None = None
    quick: bool = False
    timeout_s: float = 60.0
    jobs: int = DEFAULT_JOBS
    _impls: list[registry.Implementation] = field(default_factory=list, repr=False)

    def validate(self) -> None:
        """Raise KeyError/ValueError with a one-line message for names that do not exist."""
        names = self.impls or [i.name for i in registry.all_implementations()]
        self._impls = [registry.get(n) for n in names]
        for op in self.ops or ():
            check_op(op)
        for dt in self.dtypes or ():
            check_dtype(dt)
        for c in self.cases or ():
            get_case(c)
        if self.timeout_s <= 0:
            raise ValueError("--timeout must be positive")

    def selected_cases(self) -> list[Case]:
        if self.cases:
            return [get_case(c) for c in self.cases]
        return [c for c in CATALOGUE if c.quick or not self.quick]

    def implementations(self) -> list[registry.Implementation]:
        if not self._impls:
            self.validate()
        return self._impls


Task = tuple[str, str, str, str]  # op, dtype, device, case
#: Time a worker may take to start and import its framework, before the per-case limits apply.
STARTUP_TIMEOUT_S = 120.0


def tasks_for(impl: registry.Implementation, sel: CheckSelection) -> list[Task]:
    """Every (op, dtype, device, case) the selection asks of ``impl`` (unsupported ones included: they skip)."""
    devices = sel.devices or list(impl.available_devices()) or ["cpu"]
    ops = sel.ops or list(OPS)
    dtypes = sel.dtypes or list(impl.dtypes)
    return [(op, dt, dev, c.name) for op in ops for dt in dtypes for dev in devices for c in sel.selected_cases()]


def _halves(dtypes: list[str]) -> list[list[str]]:
    """Split an implementation's dtypes into two work units (balances the lanes; each unit pays one
    framework import)."""
    k = (len(dtypes) + 1) // 2
    return [d for d in (dtypes[:k], dtypes[k:]) if d]


def _worker_environment() -> None:
    """Settings for check workers only (the benchmarks leave both unset), made before any framework loads.

    - JAX keeps compiled programs on disk between check workers: each case is a new shape, so jit
      compiles on nearly every call, and ``jax-jacfwd`` shares ``jax-jit``'s softmax and VJP programs.
      The cache key covers the program, the compile options and the jax version: a hit cannot change
      a result.
    - OpenMP threads (torch, Numba's omp layer) wait passively: two workers share the cores, and a
      spinning barrier in one slowed the other up to tenfold (``torch.autograd.functional.jacobian`` at
      n = 1025 took 1.6 s alone and 14.6 s beside a JAX worker). Thread counts are left as they are, so
      parallel code paths are still the ones checked.
    """
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(paths.cache_dir() / "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _worker(name: str, plugins: list[str], tasks: list[Task], out: Any) -> None:
    _worker_environment()
    for path in plugins:
        registry.load_plugin(path)
    impl = registry.get(name)
    for device in dict.fromkeys(t[2] for t in tasks):
        try:
            impl.ops_for(device)  # import the framework before the per-case clock starts
        except Exception:
            pass  # check_case reports the build error on every case
    out.send({"ready": True})  # a pipe: sent before a crash can lose it
    for op, dtype, device, case in tasks:
        out.send(check_case(impl, op, dtype, get_case(case), device).to_dict())


def _failed(impl: registry.Implementation, task: Task, failure: str, message: str) -> Record:
    op, dtype, device, case = task
    return Record(impl.name, impl.family, op, dtype, device, case, list(get_case(case).shape), "fail",
                  [failure], message=message)


def _receive(conn: Any, proc: Any, timeout_s: float) -> Any:
    """The worker's next message; ``queue.Empty`` once ``timeout_s`` passes or the worker has died."""
    deadline = time.monotonic() + timeout_s
    while True:
        if conn.poll(min(0.1, max(0.0, deadline - time.monotonic()))):
            try:
                return conn.recv()
            except EOFError:
                raise queue.Empty from None
        if not proc.is_alive() and not conn.poll(0):
            raise queue.Empty
        if time.monotonic() >= deadline:
            raise queue.Empty


def check_isolated(impl: registry.Implementation, tasks: list[Task], timeout_s: float,
                   on_record: Any = None) -> list[Record]:
    """Check ``tasks`` of one implementation in worker processes, surviving hangs and crashes."""
    ctx = mp.get_context("spawn")
    plugins = registry.loaded_plugins()
    records: list[Record] = []
    pending = list(tasks)
    while pending:
        q, child_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(impl.name, plugins, pending, child_end), daemon=True)
        proc.start()
        done = 0
        try:
            try:
                _receive(q, proc, STARTUP_TIMEOUT_S)
            except queue.Empty:
                pass  # the first case's wait below reports the dead or stuck worker
            while done < len(pending):
                try:
                    rec = Record(**_receive(q, proc, timeout_s))
                except queue.Empty:
                    task = pending[done]
                    if proc.is_alive():
                        rec = _failed(impl, task, "timeout", f"no result within the {timeout_s:g} s per-case limit; worker killed")
                    else:
                        rec = _failed(impl, task, "error", f"worker process died (exit code {proc.exitcode})")
                    records.append(rec)
                    if on_record:
                        on_record(rec)
                    done += 1
                    break
                records.append(rec)
                if on_record:
                    on_record(rec)
                done += 1
        finally:
            if proc.is_alive():
                proc.kill()
            proc.join()
            q.close()
            child_end.close()
        pending = pending[done:]
    return records


def run_checks(sel: CheckSelection, progress: bool = True, stream: IO[str] | None = None) -> list[Record]:
    """Check every selected implementation; unavailable ones come back as skipped records."""
    plan: list[tuple[registry.Implementation, list[Task]]] = []
    records: list[Record] = []
    for impl in sel.implementations():
        reason = impl.unavailable_reason()
        if reason:
            records.append(Record(impl.name, impl.family, "*", "*", "*", "*", [], "skip", message=reason))
            continue
        plan.append((impl, tasks_for(impl, sel)))
    return records + run_plan(plan, sel.timeout_s, sel.jobs, progress, stream)


def run_plan(plan: list[tuple[registry.Implementation, list[Task]]], timeout_s: float = 60.0,
             jobs: int = DEFAULT_JOBS, progress: bool = True, stream: IO[str] | None = None) -> list[Record]:
    """Check each implementation's tasks in isolated workers, ``jobs`` at a time; records in plan order.

    Work units are one implementation and half its dtypes each (each unit pays one framework import),
    run largest first so the lanes finish together.
    """
    stream = stream or sys.stderr
    total = sum(len(t) for _, t in plan)
    count = 0
    tty = progress and stream.isatty()
    t0 = time.perf_counter()
    units = [(impl, [t for t in tasks if t[1] in ds]) for impl, tasks in plan
             for ds in _halves(list(dict.fromkeys(t[1] for t in tasks)))]
    units.sort(key=lambda u: -len(u[1]))
    n_units: dict[str, int] = {}
    for impl, _ in units:
        n_units[impl.name] = n_units.get(impl.name, 0) + 1
    lock = threading.Lock()
    done_units: dict[str, int] = {}
    got_by_impl: dict[str, list[Record]] = {}

    def tick(rec: Record) -> None:
        nonlocal count
        with lock:
            count += 1
            if tty:
                stream.write(f"\r\033[Kcheck [{count}/{total}] {rec.impl} {rec.op} {rec.dtype} {rec.case}")
                stream.flush()

    def run_unit(unit: tuple[registry.Implementation, list[Task]]) -> None:
        impl, tasks = unit
        got = check_isolated(impl, tasks, timeout_s, tick)
        with lock:
            got_by_impl.setdefault(impl.name, []).extend(got)
            done_units[impl.name] = done_units.get(impl.name, 0) + 1
            if progress and not tty and done_units[impl.name] == n_units[impl.name]:
                recs = got_by_impl[impl.name]
                fails = sum(r.verdict == "fail" for r in recs)
                stream.write(f"check [{count}/{total}] {impl.name}: {len(recs)} cases, {fails} failed "
                             f"({time.perf_counter() - t0:.0f} s)\n")
                stream.flush()

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(run_unit, units))
    if tty:
        stream.write("\r\033[K")
    order = {tuple(t): k for _, tasks in plan for k, t in enumerate(tasks)}
    records: list[Record] = []
    for impl, _ in plan:
        records += sorted(got_by_impl.get(impl.name, []),
                          key=lambda r: order.get((r.op, r.dtype, r.device, r.case), 0))
    return records


def summarize(records: Iterable[Record], out: IO[str]) -> bool:
    """Print a per-implementation table and one line per failure; True if nothing failed."""
    records = list(records)
    by_impl: dict[str, list[Record]] = {}
    for r in records:
        by_impl.setdefault(r.impl, []).append(r)
    rows = [("implementation", "passed", "failed", "skipped", "worst error/tol", "note")]
    for name, recs in by_impl.items():
        passed = sum(r.verdict == "pass" for r in recs)
        failed = sum(r.verdict == "fail" for r in recs)
        skipped = sum(r.verdict == "skip" for r in recs)
        ratios = [r.ratio for r in recs if r.ratio is not None]
        worst = f"{max(ratios):.3g}" if ratios else "-"
        note = recs[0].message if len(recs) == 1 and recs[0].case == "*" else ""
        rows.append((name, str(passed), str(failed), str(skipped), worst, note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
        if k == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
    failures = [r for r in records if r.verdict == "fail"]
    if failures:
        out.write(f"\n{len(failures)} failed:\n")
        for r in failures:
            out.write("FAIL " + r.line() + "\n")
    checked = sum(r.verdict != "skip" for r in records)
    out.write(f"\nsoftgrad check: {checked - len(failures)} cases passed, {len(failures)} failed, "
              f"{sum(r.verdict == 'skip' for r in records)} skipped\n")
    return not failures
