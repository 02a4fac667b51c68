"""``softgrad run``: the main job. Check correctness, sweep speed, publish the dashboard, report.

Steps, each with progress on stderr:

1. ``softgrad check`` over the selected implementations (records stored with the run);
2. this machine's copy bandwidth (the roofline for the report);
3. per family: one worker process times the family's grid (:mod:`softgrad.bench.sweep`), its records kept
   in the run folder as they come; the timings go into asv's results file for the commit (with the
   library versions, which asv does not record with ``--python=same``), each time over the machine's speed
   into ``speed.json``, the machine's load before and after into ``meta.json``, and a sample of points
   timed again by the frameworks' own timers into ``agreement.json`` (:mod:`softgrad.bench.agreement`).
   An interruption loses at most the family in progress;
4. ``asv publish`` (HTML under ``results/html``) and ``softgrad report``.

``--resume`` continues the latest interrupted run, skipping the families it already stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import paths, registry, workloads
from .bench import agreement, grid, threads
from .bench.asv_suite import benchmark_class
from .bench import asv_machine
from .bench.asv_driver import (RunError, asv_config, families, measure_build, publish, stamp_versions,
                               validate_asv_results)
from .bench.progress import Progress
from .bench.sweep import DEFAULT_ROUNDS, discover, store_normalized, sweep_family, write_asv
from .history import provenance, store
from .history.dashboard import vendor_dashboard
from .stored import read_json, write_json
from .workloads import Workload

__all__ = ["RunError", "RunOptions", "run"]

# names this module had before asv's driving moved to softgrad.bench.asv_driver
from .bench.allocator import MALLOC_TUNABLES  # noqa: E402,F401

repo_root = paths.repo_root
_Progress = Progress


@dataclass
class RunOptions:
    quick: bool = False
    impls: list[str] | None = None
    threads: int | None = None
    resume: bool = False
    check: bool = True
    report: bool = True
    progress: bool = True
    check_timeout_s: float = 60.0
    rounds: int | None = None  # None: DEFAULT_ROUNDS, or the resumed run's own
    agreement: bool = True  # time a sample of each family again with the frameworks' own timers
    workload: Workload | None = None  # None: the default grid

    @property
    def sweep_grid(self) -> grid.Grid:
        """The sweep's grid: ``quick``, ``full``, or the workload's (already resolved: no lookup by name)."""
        return grid.Grid.of(self.workload, self.quick)


def _duration(seconds: float) -> str:
    """Seconds under a minute and a half, else minutes: ``40 s``, ``12 min``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def snapshot_results(results: Path, run_: store.Run, impl_names: list[str], grid_name: grid.GridLike = None) -> None:
    """Copy asv's results into the run, keeping only this run's implementations on its grid: asv's file for
    a commit also holds what earlier runs of that commit measured for other implementations and workloads."""
    data = read_json(results)
    prefixes = tuple(f"{benchmark_class(n, grid_name)}." for n in impl_names)
    for key in ("results", "durations"):
        data[key] = {k: v for k, v in (data.get(key) or {}).items() if k.startswith(prefixes)}
    write_json(run_.folder / "asv.json", data)


def run(opts: RunOptions, stream: IO[str] | None = None) -> int:
    """The main job; returns the exit status (0 ok, 1 when a check failed or a family's benchmarks errored)."""
    stream = stream or sys.stderr
    progress = Progress(opts.progress, stream)
    if opts.threads is not None:
        threads.apply(opts.threads)
    threads.requested()  # a malformed SOFTGRAD_THREADS fails here, before any work
    try:
        provenance.machine_name()  # so does a SOFTGRAD_MACHINE that cannot name a machine
    except provenance.MachineNameError as exc:
        raise RunError(str(exc)) from None
    repo = paths.repo_root()
    commit = provenance.git_commit(repo)
    if not commit:
        raise RunError(f"{repo} is not a git checkout with a commit: asv stores results per commit")
    if opts.resume and store.latest_incomplete() is None:  # before the lock creates anything
        raise _nothing_to_resume()
    paths.require_writable(paths.results_dir())
    with _exclusive(paths.results_dir()) as lock_fd:
        return _run_locked(opts, progress, stream, repo, commit, lock_fd)


def _update_index(stream: IO[str]) -> None:
    """The history's index (:mod:`softgrad.history.index`) updated once a run is complete; the run folders are
    the truth, so a failure is one line on ``stream`` and the next command that reads rebuilds it."""
    from .history import index as history_index

    try:
        history_index.sync(notice=lambda text: print(f"softgrad: {text}", file=stream, flush=True))
    except Exception as exc:  # noqa: BLE001 - a cache: never fail a stored run for it
        print(f"softgrad run: the index was not updated ({type(exc).__name__}: {exc}); the run is stored",
              file=stream, flush=True)


def _prune(meta: dict[str, object], progress: Progress) -> None:
    """This machine's complete runs older than the newest :data:`~softgrad.history.retention.KEEP_RAW` kept
    compressed (:mod:`softgrad.history.retention`); a failure is one line, never a failed run (nothing is lost)."""
    from .history import retention

    try:
        done = retention.prune(str(meta.get("machine")), retention.KEEP_RAW)
        if done.files:  # a run that compressed nothing says nothing of it
            progress.line(done.line())
    except (OSError, ValueError) as exc:
        progress.line(f"run: old runs were not compressed ({type(exc).__name__}: {exc}); `softgrad prune` retries")


def _nothing_to_resume() -> RunError:
    """``--resume`` with no interrupted run: a failure, never a new full run that nobody asked for."""
    return RunError(f"--resume: no interrupted run in {store.runs_dir()} to continue; `softgrad run` starts a "
                    f"new one")


@contextlib.contextmanager
def _exclusive(results: Path):
    """One ``softgrad run`` at a time per results folder: two would write the same asv results file
    (one per machine and commit) and the same run's families. Yields the lock's file descriptor: asv's
    guard inherits it, so the lock stays held while any benchmark process of the run lives (a flock is
    released when its last descriptor closes)."""
    import fcntl

    results.mkdir(parents=True, exist_ok=True)
    with open(results / ".run.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read(32).strip()
            holder = holder if holder.isdigit() else "?"
            raise RunError(f"another softgrad run (pid {holder}) is writing to {results}: wait for it to "
                           f"finish, or set SOFTGRAD_HOME to another folder") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield lock.fileno()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _resumed(opts: RunOptions, meta: dict) -> RunOptions:
    """The options of a resumed run come from the run itself (its implementations, grid, rounds, thread
    count and plugins), so its families stay comparable; a flag that contradicts them is an error."""
    stored = list(meta.get("impls") or [])
    own = workloads.from_json(meta["workload"]) if meta.get("workload") else None
    if opts.workload is not None and (own is None or opts.workload.name != own.name):
        raise RunError(f"--resume continues run {meta.get('id')} on "
                       f"{'the workload ' + own.name if own else 'the default grid'}; drop --workload")
    if own is not None:
        workloads.export(own)
    if opts.impls and sorted(opts.impls) != sorted(stored):
        raise RunError(f"--resume continues run {meta.get('id')} with its own implementations "
                       f"({', '.join(stored)}); drop --impl")
    if opts.quick and meta.get("grid") != "quick":
        raise RunError(f"--resume continues run {meta.get('id')} on its {meta.get('grid')} grid; drop --quick")
    rounds = int(meta.get("rounds") or DEFAULT_ROUNDS)
    if opts.rounds is not None and opts.rounds != rounds:
        raise RunError(f"--resume continues run {meta.get('id')} with --rounds {rounds}; drop --rounds")
    asked = (meta.get("threads") or {}).get("requested")
    stored_threads = f"--threads {asked}" if asked is not None else "each library's default thread count"
    if opts.threads is not None and opts.threads != asked:
        raise RunError(f"--resume continues run {meta.get('id')} with {stored_threads}; drop --threads")
    if asked is None and threads.requested() is not None:
        raise RunError(f"--resume continues run {meta.get('id')} with {stored_threads}, but {threads.ENV} is "
                       f"{threads.requested()}: unset it")
    if asked is not None and threads.requested() != asked:
        threads.apply(int(asked))
    for plugin in meta.get("plugins") or []:
        try:
            registry.load_plugin(plugin)  # once per file
        except registry.PluginError as exc:
            raise RunError(f"run {meta.get('id')} used a plugin that no longer loads: {exc}") from None
    registry.export_plugins()  # asv's benchmark processes load the same plugins
    return dataclasses.replace(opts, impls=stored or None, quick=meta.get("grid") == "quick", rounds=rounds,
                               workload=own)


def _families_stored(run_: store.Run, fams: dict[str, list[registry.Implementation]],
                     claimed: list[str], grid_name: grid.GridLike = None) -> list[str]:
    """The families of ``claimed`` whose timings are in the run's ``asv.json`` (a family marked done whose
    results were lost, or never written, is timed again rather than taken as done)."""
    data = run_.asv()
    present = {name.rsplit(".", 1)[0] for name in (data or {}).get("results", {}) if name.count(".") == 2}
    return [f for f in claimed if f in fams and all(benchmark_class(i.name, grid_name) in present for i in fams[f])]


def _run_locked(opts: RunOptions, progress: "Progress", stream: IO[str], repo: Path, commit: str,
                lock_fd: int) -> int:
    validate_asv_results()
    t_start = time.perf_counter()

    run_ = store.latest_incomplete() if opts.resume else None
    if opts.resume and run_ is None:  # another process completed it while this one waited
        raise _nothing_to_resume()
    if run_ is not None:
        meta = run_.meta()
        if meta.get("commit") != commit:
            raise RunError(f"run {run_.id} was for commit {str(meta.get('commit'))[:8]}, the checkout is at "
                           f"{commit[:8]}")
        here = provenance.machine_name()
        if "fingerprint" in meta and meta.get("machine") != here:  # a run stored before fingerprints: its host name
            raise RunError(f"run {run_.id} was started on machine {meta.get('machine')}, this is {here}: a run's "
                           f"families are timed on one machine (`softgrad run` starts a new one here)")
        opts = _resumed(opts, {**meta, "id": run_.id})
    opts = dataclasses.replace(opts, rounds=opts.rounds or DEFAULT_ROUNDS)
    try:
        impls = [registry.get(n) for n in opts.impls] if opts.impls else registry.all_implementations()
    except KeyError as exc:  # a resumed run's entry that no plugin registers any more
        raise RunError(str(exc).strip("'\"")) from None
    if opts.workload is not None:
        workloads.export(opts.workload)  # the sweep's workers and asv's discovery resolve it by name
    if run_ is None:
        run_ = store.create_run(commit)
        if opts.workload is not None:
            run_.update_meta(workload=workloads.to_json(opts.workload))
        run_.update_meta(complete=False, grid="quick" if opts.quick else "full", impls=[i.name for i in impls],
                         rounds=opts.rounds, plugins=registry.loaded_plugins(), families_done=[],
                         distributions={i.name: d for i in impls if (d := registry.distributions().get(i.name))},
                         **provenance.snapshot(repo))
    meta = run_.meta()
    on = f"workload {opts.workload.name} ({meta['grid']})" if opts.workload else f"{meta['grid']} grid"
    progress.line(f"run {run_.id}: {len(impls)} implementations, {on}, results in {run_.folder}")
    status = 0

    # 1. correctness
    if opts.check and not (run_.folder / "checks.json").exists():
        from .check.isolated import CheckSelection, run_checks, summarize

        sel = CheckSelection(impls=[i.name for i in impls], quick=opts.quick, timeout_s=opts.check_timeout_s,
                             dtypes=grid.dtypes("quick") if opts.quick else None)
        if opts.workload is not None:  # the quick catalogue and the workload's own shapes, in its dtypes
            from .check.cases import CATALOGUE

            w = opts.workload
            sel = dataclasses.replace(sel, quick=False, dtypes=list(w.dtypes), ops=list(w.ops),
                                      cases=[c.name for c in CATALOGUE if c.quick] + workloads.check_cases(w))
        sel.validate()
        progress.line("run [1/4] correctness check")
        records = run_checks(sel, progress=opts.progress, stream=stream)
        write_json(run_.folder / "checks.json", [r.to_dict() for r in records], store.CHECKS)
        import io

        table = io.StringIO()
        ok = summarize(records, table)
        progress.line(table.getvalue().rstrip().splitlines()[-1])
        if not ok:
            status = 1
            progress.line("run: some checks failed (see checks.json); failing implementations are never recommended")

    # 2. roofline: the copy (softmax's and the VJP's limit) and the fill (the Jacobian's), one after the other
    for kind in ("copy", "fill"):
        if f"{kind}_bandwidth" not in meta:  # a resumed run keeps what it measured
            from .bench.bandwidth import measure

            progress.line(f"run [2/4] measuring this machine's {kind} bandwidth")
            bw = measure(kind)
            meta = run_.update_meta(**{f"{kind}_bandwidth": bw.to_dict()})
            progress.line(f"run: {kind} bandwidth {bw.gbps:.1f} GB/s ({bw.method})")

    # 3. speed, one family at a time
    cfg = asv_config(repo)
    machine = asv_machine.describe(meta)  # asv's results/asv/<machine>/, named and described by the run's meta
    asv_machine.write_machine(paths.asv_results_dir(), machine)
    fams = families(impls)
    sweep_grid = opts.sweep_grid  # the workload resolved once, for the plan, the sweep, asv and the agreement
    done = _families_stored(run_, fams, meta.get("families_done", []), sweep_grid)
    todo = [f for f in fams if f not in done]
    progress.line(f"run [3/4] speed sweep: {len(fams)} families ({', '.join(fams)}); {len(todo)} to run")
    # Numba compiles when an entry is built: measure that once, cold, in a process of its own with an
    # empty cache folder; asv's benchmark processes then load the kernels from that folder. torch.compile's
    # kernels likewise start from an empty folder per run: each first call is a cold compile.
    os.environ["NUMBA_CACHE_DIR"] = str(paths.cache_dir() / f"numba-{run_.id}")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(paths.cache_dir() / f"inductor-{run_.id}")
    if todo and opts.workload is not None:
        from .bench import plan

        planned = plan.combos([i for f in todo for i in fams[f]], sweep_grid)
        expected = plan.expected_seconds(planned, opts.rounds or DEFAULT_ROUNDS)
        progress.line(f"run [3/4] workload {opts.workload.name}: {len(planned)} combinations in {len(todo)} "
                      f"families, about {_duration(expected)} of sweep expected (a model: 4 calls a pass at 2 GB/s; "
                      f"the progress line follows the real rate)")
    if todo:
        discover(cfg, commit, machine)
    for k, family in enumerate(todo, 1):
        t0 = time.perf_counter()
        jit = [i.name for i in fams[family] if i.compiles]
        if jit:
            meta = run_.update_meta(build_s={**meta.get("build_s", {}), **measure_build(jit)})
        # a family interrupted before (--resume) goes on after the records it kept
        load_before = provenance.machine_load()
        code, records, reached = sweep_family(family, fams[family], sweep_grid,
                                              opts.rounds or DEFAULT_ROUNDS, run_.folder, progress,
                                              f"run [3/4] [{k}/{len(todo)}]", keep_fds=(lock_fd,))
        meta = run_.update_meta(load={**meta.get("load", {}), family: {"before": load_before,
                                                                        "after": provenance.machine_load()}})
        store_normalized(run_.folder / "speed.json", records)
        if opts.agreement:
            progress.status(f"run [3/4] [{k}/{len(todo)}] {family}: the frameworks' own timers on a sample")
            points = agreement.check_family(records, family, sweep_grid, run_.folder,
                                            per_impl=agreement.QUICK_PER_IMPL if opts.quick else agreement.PER_IMPL)
            reached += "; " + agreement.summary(points)
        results = write_asv(cfg, commit, fams[family], records, time.perf_counter() - t0, sweep_grid, machine)
        stamp_versions(results, meta["versions"], meta["threads"])
        snapshot_results(results, run_, [i.name for i in impls], sweep_grid)
        if _families_stored(run_, {family: fams[family]}, [family], sweep_grid):
            done.append(family)
            meta = run_.update_meta(families_done=done)
        else:
            code = code or 1
            reached += ", no results stored"
        note = "" if code == 0 else f" (some benchmarks failed: see sweep-{family}.jsonl and .log)"
        progress.line(f"run [3/4] [{k}/{len(todo)}] {family}: {reached}{note}")
        if code != 0:
            status = 1

    # 4. dashboard and report
    missing = [f for f in fams if f not in done]
    if missing:
        raise RunError(f"run {run_.id} stored no timings for {', '.join(missing)} (see asv-<family>.log in "
                       f"{run_.folder}); `softgrad run --resume` times them again")
    progress.line("run [4/4] publishing the dashboard")
    index = publish(cfg)
    vendor_dashboard(paths.asv_html_dir())  # the CDN scripts, shipped with softgrad: works offline
    for compiled in ("numba", "inductor"):
        shutil.rmtree(paths.cache_dir() / f"{compiled}-{run_.id}", ignore_errors=True)
    meta = run_.update_meta(complete=True, seconds=round(time.perf_counter() - t_start + meta.get("seconds", 0), 1))
    _prune(meta, progress)
    _update_index(stream)
    progress.line(f"run: dashboard {index}")
    if opts.report:
        try:
            from .history.report import write_report
        except ImportError as exc:
            progress.line(f"run: no report ({exc})")
        else:
            try:
                out = write_report(paths.reports_dir(), machine=str(meta.get("machine")))  # this machine's
            except Exception as exc:  # the run is stored and complete: say so, and how to retry
                progress.line(f"run: the report failed ({type(exc).__name__}: {exc}); the run is stored, "
                              f"`softgrad report` writes it again")
                status = 1
            else:
                progress.line(f"run: report {out}")
    progress.line(f"run {run_.id} done in {meta['seconds']:.0f} s")
    return status
