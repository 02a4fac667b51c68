"""Run the checker over a selection, each implementation in a worker process of its own.

Isolation: a worker that hangs past the per-case time limit is killed and that case fails with
``timeout``; a worker that dies (a segfault in a framework) fails the case it was on; either way a new
worker carries on with the remaining cases. Each family thus also runs with no other framework loaded.
Up to ``jobs`` workers run at once, each on one implementation and some of its dtypes.

Start-up (imports and ``build()``) has a limit of its own: a worker not ready within it, or dead before
it is ready, fails every remaining case of its implementation at once, and that implementation's other
work units fail without starting a worker. Workers die with the process that started them.

Protocol: a worker sends ``("ready",)`` once built, then ``("record", Record.to_dict())`` per case in
order. Anything else fails the case it arrived for, and the worker is replaced.

Interruption: a terminal's Ctrl-C reaches the workers too; they ignore it (blocked from their start,
ignored once running), so none prints a traceback. The parent stops them: on Ctrl-C or SIGTERM
(:class:`softgrad.children.Terminated`) in :func:`run_plan`, each lane kills its worker within 0.1 s and
starts no other, and the exception goes on to the caller.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from .. import paths, registry
from .cases import CATALOGUE, Case, get_case
from .checker import Record, check_case
from ..children import die_with_parent, scratch_tmp
from ..contract import OPS, check_dtype, check_op

#: worker processes at a time (one implementation and dtype each); two on this project's 2-core machines
DEFAULT_JOBS = max(1, min(2, os.cpu_count() or 1))
#: without a terminal, a progress line at most this often (seconds) between the entries' summary lines
HEARTBEAT_S = 30.0


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
    startup_timeout_s: float | None = None  # None: STARTUP_TIMEOUT_S
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
        if self.startup_timeout_s is not None and self.startup_timeout_s <= 0:
            raise ValueError("the start-up limit must be positive")

    def selected_cases(self) -> list[Case]:
        if self.cases:
            return [get_case(c) for c in self.cases]
        return [c for c in CATALOGUE if c.quick or not self.quick]

    def implementations(self) -> list[registry.Implementation]:
        if not self._impls:
            self.validate()
        return self._impls


Task = tuple[str, str, str, str]  # op, dtype, device, case
#: Time a worker may take to start, import its framework and build, before the per-case limits apply.
STARTUP_TIMEOUT_S = 120.0
#: Time added to the per-case limit of a compiled entry's (``compiles=True``) first case of each op, dtype and
#: device in a worker: that call also compiles its kernels (numba-fused's cold VJP kernels took past 60 s with
#: three compiling jobs on the 2-core machine, and failed a correct entry on its first case)
FIRST_COMPILE_S = 120.0
READY = ("ready",)


class ProtocolError(Exception):
    """A worker's message that is not the one due (unreadable, untagged, or a record of another case)."""


class _Stopped(Exception):
    """The run is being stopped (Ctrl-C, SIGTERM): the lane kills its worker and starts no other."""


class StartupFailures:
    """Start-up failures by implementation name, shared by the lanes of one run (thread-safe): once a
    worker of an implementation failed to start, its other units fail at once instead of waiting again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_impl: dict[str, tuple[str, str]] = {}

    def get(self, impl: str) -> tuple[str, str] | None:
        """The (failure kind, message) ``impl``'s start-up failed with, if it did."""
        with self._lock:
            return self._by_impl.get(impl)

    def add(self, impl: str, failure: str, message: str) -> None:
        with self._lock:
            self._by_impl.setdefault(impl, (failure, message))


def tasks_for(impl: registry.Implementation, sel: CheckSelection) -> list[Task]:
    """Every (op, dtype, device, case) the selection asks of ``impl`` (unsupported ones included: they skip)."""
    devices = sel.devices or list(impl.present_devices()) or ["cpu"]
    ops = sel.ops or list(OPS)
    dtypes = sel.dtypes or list(impl.dtypes)
    return [(op, dt, dev, c.name) for op in ops for dt in dtypes for dev in devices for c in sel.selected_cases()
            if op in c.ops]  # a case for the VJP's g alone is not a softmax case skipped


def _halves(dtypes: list[str]) -> list[list[str]]:
    """Split an implementation's dtypes into two work units (balances the lanes; each unit pays one
    framework import)."""
    k = (len(dtypes) + 1) // 2
    return [d for d in (dtypes[:k], dtypes[k:]) if d]


def _worker_environment(tmp: str) -> None:
    """Settings for check workers, made before any framework loads (the benchmarks leave the last two unset).

    - ``TMPDIR`` is ``tmp``, the parent's :func:`softgrad.children.scratch_tmp`: a worker is killed (a hang,
      Ctrl-C) with no chance to clean up, and whatever it left there goes when softgrad exits.
    - JAX keeps compiled programs on disk between check workers: each case is a new shape, so jit
      compiles on nearly every call, and ``jax-jacfwd`` shares ``jax-jit``'s softmax and VJP programs.
      The cache key covers the program, the compile options and the jax version: a hit cannot change
      a result. torch.compile's inductor keeps its kernels the same way (each shape costs a C++ compile).
    - OpenMP threads (torch, Numba's omp layer) wait passively: two workers share the cores, and a
      spinning barrier in one slowed the other up to tenfold (``torch.autograd.functional.jacobian`` at
      n = 1025 took 1.6 s alone and 14.6 s beside a JAX worker). Thread counts are left as they are, so
      parallel code paths are still the ones checked.
    """
    os.environ["TMPDIR"] = tempfile.tempdir = tmp
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(paths.cache_dir() / "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(paths.cache_dir() / "inductor"))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _worker(entry: str | registry.Implementation, plugins: list[str], tasks: list[Task], out: Any,
            parent_pid: int, tmp: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches us too: the parent stops us
    die_with_parent(parent_pid)  # a kill -9 of softgrad must not leave a hung worker behind
    _worker_environment(tmp)
    for path in plugins:
        registry.load_plugin(path)
    impl = registry.get(entry) if isinstance(entry, str) else entry
    for device in dict.fromkeys(t[2] for t in tasks):
        try:
            impl.ops_for(device)  # import the framework before the per-case clock starts
        except Exception:
            pass  # check_case reports the build error on every case
    out.send(READY)  # a pipe: sent before a crash can lose it
    for op, dtype, device, case in tasks:
        out.send(("record", check_case(impl, op, dtype, get_case(case), device).to_dict()))


def _failed(impl: registry.Implementation, task: Task, failure: str, message: str) -> Record:
    op, dtype, device, case = task
    return Record(impl.name, impl.family, op, dtype, device, case, list(get_case(case).shape), "fail",
                  [failure], message=message)


def _receive(conn: Any, proc: Any, timeout_s: float, stop: threading.Event | None = None) -> Any:
    """The worker's next message; ``queue.Empty`` once ``timeout_s`` passes or the worker has died,
    ``ProtocolError`` for bytes that do not unpickle, ``_Stopped`` within 0.1 s of ``stop`` being set."""
    deadline = time.monotonic() + timeout_s
    while True:
        if stop is not None and stop.is_set():
            raise _Stopped
        if conn.poll(min(0.1, max(0.0, deadline - time.monotonic()))):
            try:
                return conn.recv()
            except EOFError:
                proc.join(1.0)  # closed on its way out: reaped, so the caller sees it dead
                raise queue.Empty from None
            except Exception as exc:
                raise ProtocolError(f"worker broke the protocol: unreadable message "
                                    f"({type(exc).__name__}: {exc}); worker killed") from None
        if not proc.is_alive() and not conn.poll(0):
            raise queue.Empty
        if time.monotonic() >= deadline:
            raise queue.Empty


def _record_of(impl: registry.Implementation, task: Task, msg: Any) -> Record:
    """The record in ``msg``, which must be the worker's record of ``task``; ``ProtocolError`` otherwise."""
    if not (isinstance(msg, tuple) and len(msg) == 2 and msg[0] == "record" and isinstance(msg[1], dict)):
        raise ProtocolError(f"worker broke the protocol: expected the record of this case, got {msg!r:.120}; "
                            f"worker killed")
    try:
        rec = Record(**msg[1])
    except TypeError as exc:
        raise ProtocolError(f"worker broke the protocol: malformed record ({exc}); worker killed") from None
    if (rec.impl, rec.op, rec.dtype, rec.device, rec.case) != (impl.name, *task):
        raise ProtocolError(f"worker broke the protocol: sent the record of {rec.impl} {rec.op} {rec.dtype} "
                            f"{rec.device} {rec.case} for this case; worker killed")
    return rec


def _start_up(conn: Any, proc: Any, limit_s: float, stop: threading.Event | None) -> tuple[str, str] | None:
    """Wait for the worker's ready message; the (failure kind, message) if it never comes."""
    try:
        msg = _receive(conn, proc, limit_s, stop)
    except queue.Empty:
        if proc.is_alive():
            return "timeout", (f"worker not ready within the {limit_s:g} s start-up limit (import or build); "
                               f"worker killed")
        return "error", f"worker process died during start-up (import or build), exit code {proc.exitcode}"
    except ProtocolError as exc:
        return "error", f"during start-up (import or build): {exc}"
    if msg != READY:
        return "error", (f"during start-up (import or build): worker broke the protocol: expected {READY!r}, "
                         f"got {msg!r:.120}; worker killed")
    return None


def _sendable(impl: registry.Implementation) -> str | registry.Implementation:
    """What the worker rebuilds ``impl`` from: the name of a registered entry (the worker loads the same
    plugins and finds it), else the entry itself, pickled (its callables must be importable by name)."""
    try:
        if registry.get(impl.name) is impl:
            return impl.name
    except KeyError:
        pass
    return impl


def _start_deaf_to_ctrl_c(proc: Any) -> None:
    """Start ``proc`` with SIGINT blocked: the signal mask survives fork and exec, so a Ctrl-C that comes
    while the worker starts Python, imports and unpickles its work stays pending until :func:`_worker`
    ignores it, instead of raising there (with a traceback). Only this thread's mask changes, for the start."""
    if not hasattr(signal, "pthread_sigmask"):
        proc.start()
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # the first start launches it, then unblocks SIGINT: launch it first
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _run_worker(impl: registry.Implementation, pending: list[Task], timeout_s: float, startup_timeout_s: float,
                startup_failures: StartupFailures, emit: Any, stop: threading.Event | None = None) -> int:
    """Check ``pending`` in one fresh worker until it is done, hangs, dies or breaks the protocol; the number
    of tasks settled (0 when it failed to start: that goes to ``startup_failures``). ``_Stopped`` once
    ``stop`` is set, the worker killed."""
    ctx = mp.get_context("spawn")
    conn, child_end = ctx.Pipe(duplex=False)
    args = (_sendable(impl), registry.loaded_plugins(), pending, child_end, os.getpid(), scratch_tmp())
    proc = ctx.Process(target=_worker, args=args, daemon=True)
    done = 0
    try:
        _start_deaf_to_ctrl_c(proc)
        failed = _start_up(conn, proc, startup_timeout_s, stop)
        if failed:
            startup_failures.add(impl.name, *failed)
            return 0
        compiled: set[tuple[str, str, str]] = set()
        while done < len(pending):
            task = pending[done]
            first = impl.compiles and task[:3] not in compiled
            compiled.add(task[:3])
            limit_s = timeout_s + FIRST_COMPILE_S if first else timeout_s
            try:
                emit(_record_of(impl, task, _receive(conn, proc, limit_s, stop)))
            except queue.Empty:
                if proc.is_alive():
                    within = (f"{limit_s:g} s ({timeout_s:g} s per case and {FIRST_COMPILE_S:g} s for its first "
                              "compile)" if first else f"{timeout_s:g} s per-case limit")
                    emit(_failed(impl, task, "timeout", f"no result within the {within}; worker killed"))
                else:
                    emit(_failed(impl, task, "error", f"worker process died (exit code {proc.exitcode})"))
                return done + 1
            except ProtocolError as exc:
                emit(_failed(impl, task, "error", str(exc)))
                return done + 1
            done += 1
        return done
    finally:
        if proc.pid is not None:  # started
            if proc.is_alive():
                proc.kill()
            proc.join()
        conn.close()
        child_end.close()


def check_isolated(impl: registry.Implementation, tasks: list[Task], timeout_s: float,
                   on_record: Any = None, startup_timeout_s: float | None = None,
                   startup_failures: StartupFailures | None = None,
                   stop: threading.Event | None = None) -> list[Record]:
    """Check ``tasks`` of one implementation in worker processes, surviving hangs and crashes.

    A worker gets ``startup_timeout_s`` (default :data:`STARTUP_TIMEOUT_S`) to import and build, then
    ``timeout_s`` per case (a compiled entry's first case of each op, dtype and device :data:`FIRST_COMPILE_S`
    more). Once a worker of ``impl`` failed to start (here or in another unit sharing
    ``startup_failures``), every remaining task fails at once with that reason. Once ``stop`` is set, the
    worker is killed and the records so far come back (the caller is being interrupted).
    """
    startup_timeout_s = STARTUP_TIMEOUT_S if startup_timeout_s is None else startup_timeout_s
    startup_failures = StartupFailures() if startup_failures is None else startup_failures
    records: list[Record] = []

    def emit(rec: Record) -> None:
        records.append(rec)
        if on_record:
            on_record(rec)

    pending = list(tasks)
    while pending and not (stop is not None and stop.is_set()):
        failed = startup_failures.get(impl.name)
        if failed:
            for task in pending:
                emit(_failed(impl, task, *failed))
            break
        try:
            pending = pending[_run_worker(impl, pending, timeout_s, startup_timeout_s, startup_failures, emit,
                                          stop):]
        except _Stopped:
            break
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
    return records + run_plan(plan, sel.timeout_s, sel.jobs, progress, stream, sel.startup_timeout_s)


def run_plan(plan: list[tuple[registry.Implementation, list[Task]]], timeout_s: float = 60.0,
             jobs: int = DEFAULT_JOBS, progress: bool = True, stream: IO[str] | None = None,
             startup_timeout_s: float | None = None) -> list[Record]:
    """Check each implementation's tasks in isolated workers, ``jobs`` at a time; records in plan order.

    Work units are one implementation and half its dtypes each (each unit pays one framework import),
    run largest first so the lanes finish together. Units of an implementation whose worker failed to
    start (``startup_timeout_s``, default :data:`STARTUP_TIMEOUT_S`) fail at once, without a worker.
    An exception in this thread (Ctrl-C's ``KeyboardInterrupt``, SIGTERM's ``Terminated``) stops every
    lane: their workers are killed, no unit starts, and the exception is raised within a fraction of a second.
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
    startup_failures = StartupFailures()
    done_units: dict[str, int] = {}
    got_by_impl: dict[str, list[Record]] = {}

    running: dict[str, int] = {}  # lanes at work, by entry
    last_line = [t0]

    def tick(rec: Record) -> None:
        nonlocal count
        with lock:
            count += 1
            if tty:
                stream.write(f"\r\033[Kcheck [{count}/{total}] {rec.impl} {rec.op} {rec.dtype} {rec.case}")
                stream.flush()
            elif progress and time.perf_counter() - last_line[0] >= HEARTBEAT_S:
                # a log's reader sees the check move between the entries' summary lines (a cold torch-compile
                # check compiles for many minutes before its line)
                last_line[0] = time.perf_counter()
                stream.write(f"check [{count}/{total}] {time.perf_counter() - t0:.0f} s, checking "
                             f"{', '.join(running)}\n")
                stream.flush()

    stop = threading.Event()

    def run_unit(unit: tuple[registry.Implementation, list[Task]]) -> None:
        if stop.is_set():
            return
        impl, tasks = unit
        with lock:
            running[impl.name] = running.get(impl.name, 0) + 1
        try:
            got = check_isolated(impl, tasks, timeout_s, tick, startup_timeout_s, startup_failures, stop)
        finally:
            with lock:
                running[impl.name] -= 1
                if not running[impl.name]:
                    del running[impl.name]
        if stop.is_set():
            return  # cut short: no summary line for it
        with lock:
            got_by_impl.setdefault(impl.name, []).extend(got)
            done_units[impl.name] = done_units.get(impl.name, 0) + 1
            if progress and not tty and done_units[impl.name] == n_units[impl.name]:
                recs = got_by_impl[impl.name]
                fails = sum(r.verdict == "fail" for r in recs)
                stream.write(f"check [{count}/{total}] {impl.name}: {len(recs)} cases, {fails} failed "
                             f"({time.perf_counter() - t0:.0f} s)\n")
                stream.flush()

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        list(pool.map(run_unit, units))
    except BaseException:  # Ctrl-C, SIGTERM (or a bug of ours): the lanes stop, their workers killed
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if tty:
            stream.write("\r\033[K")  # the progress line goes, so a message after it stands alone
            stream.flush()
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
