"""Run the checker over a selection, each implementation in a worker process of its own.

Isolation: a worker that hangs past the per-case time limit is killed and that case fails with
``timeout``; a worker that dies (a segfault in a framework) fails the case it was on; either way a new
worker carries on with the remaining cases. Each family thus also runs with no other framework loaded.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from . import registry
from .cases import CATALOGUE, Case, get_case
from .checker import Record, check_case
from .contract import OPS, check_dtype, check_op


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


def _worker(name: str, plugins: list[str], tasks: list[Task], out: Any) -> None:
    for path in plugins:
        registry.load_plugin(path)
    impl = registry.get(name)
    for device in dict.fromkeys(t[2] for t in tasks):
        try:
            impl.ops_for(device)  # import the framework before the per-case clock starts
        except Exception:
            pass  # check_case reports the build error on every case
    out.put({"ready": True})
    for op, dtype, device, case in tasks:
        out.put(check_case(impl, op, dtype, get_case(case), device).to_dict())


def _failed(impl: registry.Implementation, task: Task, failure: str, message: str) -> Record:
    op, dtype, device, case = task
    return Record(impl.name, impl.family, op, dtype, device, case, list(get_case(case).shape), "fail",
                  [failure], message=message)


def check_isolated(impl: registry.Implementation, tasks: list[Task], timeout_s: float,
                   on_record: Any = None) -> list[Record]:
    """Check ``tasks`` of one implementation in worker processes, surviving hangs and crashes."""
    ctx = mp.get_context("spawn")
    plugins = registry.loaded_plugins()
    records: list[Record] = []
    pending = list(tasks)
    while pending:
        q = ctx.Queue()
        proc = ctx.Process(target=_worker, args=(impl.name, plugins, pending, q), daemon=True)
        proc.start()
        done = 0
        try:
            try:
                q.get(timeout=STARTUP_TIMEOUT_S)
            except queue.Empty:
                pass  # the first case's wait below reports the dead or stuck worker
            while done < len(pending):
                try:
                    rec = Record(**q.get(timeout=timeout_s))
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
        pending = pending[done:]
    return records


def run_checks(sel: CheckSelection, progress: bool = True, stream: IO[str] | None = None) -> list[Record]:
    """Check every selected implementation; unavailable ones come back as skipped records."""
    stream = stream or sys.stderr
    plan: list[tuple[registry.Implementation, list[Task]]] = []
    records: list[Record] = []
    for impl in sel.implementations():
        reason = impl.unavailable_reason()
        if reason:
            records.append(Record(impl.name, impl.family, "*", "*", "*", "*", [], "skip", message=reason))
            continue
        plan.append((impl, tasks_for(impl, sel)))
    total = sum(len(t) for _, t in plan)
    count = 0
    tty = progress and stream.isatty()
    t0 = time.perf_counter()

    def tick(rec: Record) -> None:
        nonlocal count
        count += 1
        if tty:
            stream.write(f"\r\033[Kcheck [{count}/{total}] {rec.impl} {rec.op} {rec.dtype} {rec.case}")
            stream.flush()

    for impl, tasks in plan:
        got = check_isolated(impl, tasks, sel.timeout_s, tick)
        records += got
        if progress and not tty:
            fails = sum(r.verdict == "fail" for r in got)
            stream.write(f"check [{count}/{total}] {impl.name}: {len(got)} cases, {fails} failed "
                         f"({time.perf_counter() - t0:.0f} s)\n")
            stream.flush()
    if tty:
        stream.write("\r\033[K")
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
