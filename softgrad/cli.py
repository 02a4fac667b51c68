"""The ``softgrad`` command: a thin face over the registry, checker, runner and report.

Exit codes: 0 success, 1 a check or gate failed (or checked nothing), 2 a usage error or unusable stored
data (one line on stderr naming the flag or the file), 3 an internal error (one line; ``SOFTGRAD_DEBUG=1``
shows the traceback). 130 when interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .check import isolated
from . import paths, registry, workloads
from .backends import MAX_PER_CORE, max_threads
from .contract import DTYPES, OPS
from .prepared import G_LAYOUTS, LAYOUTS
from .stored import StoreError, one_line

DEBUG_ENV = "SOFTGRAD_DEBUG"


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``softgrad check: error: argument --timeout: ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


#: the most any integer flag takes: what every stored file's reader holds (an int64); a flag's own limit is lower
MAX_INT = 2**63 - 1
#: the most a time limit or a slowdown floor takes: a week
MAX_SECONDS = 7 * 24 * 3600.0
def _number(what: str, *, integer: bool = False, low: float, high: float | Callable[[], float],
            low_open: bool = False) -> Callable[[str], float]:
    """An argparse type for a number flag: the one rule every number on the command line goes through. The
    text must parse (an ``int`` where ``integer``: no digit limit error, no float) and
    :func:`softgrad.registry.check_number` must accept it (finite, in ``[low, high]``; ``high`` may be a
    function of the machine), else a one-line error that shows a long text by its length."""

    def parse(text: str) -> float:
        shown = repr(text) if len(text) <= 40 else f"{text[:12]!r}... ({len(text)} characters)"
        limit = high() if callable(high) else high
        try:
            value = int(text) if integer else float(text)
            return registry.check_number(what, value, low=low, high=limit, integer=integer, low_open=low_open)
        except (TypeError, ValueError, OverflowError):
            shown_limit = f"{int(limit)}" if integer else f"{limit:g}"
            span = f"{'(' if low_open else '['}{low:g}, {shown_limit}]"
            raise argparse.ArgumentTypeError(f"{shown} is not {what} in {span}") from None

    parse.__name__ = what
    return parse


positive_int = _number("an integer", integer=True, low=1, high=MAX_INT)
per_core = _number(f"a count ({MAX_PER_CORE} per core at most)", integer=True, low=1, high=max_threads)
rounds_count = _number("a number of rounds", integer=True, low=1, high=100)
positive_seconds = _number("a number of seconds", low=0, high=MAX_SECONDS, low_open=True)
nonnegative_seconds = _number("a number of seconds", low=0, high=MAX_SECONDS)
slowdown_factor = _number("a factor", low=1, high=1000)
change_fraction = _number("a fraction", low=0, high=10, low_open=True)


def _date(text: str):
    """An argparse type for a date flag: an ISO date or date and time (UTC unless a zone is given)."""
    from .history.changes import parse_since

    try:
        return parse_since(text)
    except ValueError:
        shown = repr(text) if len(text) <= 40 else f"{text[:12]!r}... ({len(text)} characters)"
        raise argparse.ArgumentTypeError(f"{shown} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None


def _one_line(text: object) -> str:
    return one_line(text, limit=2000) or "(no message)"


def _known_devices() -> list[str]:
    return sorted({"cpu", *(d for i in registry.all_implementations() for d in i.devices)})


def _check_devices(devices: Sequence[str] | None) -> None:
    known = _known_devices()
    for dev in devices or ():
        if dev not in known:
            raise UsageError(f"unknown device {dev!r}; implementations declare {', '.join(known)}")


def _add_plugins(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="FILE", type=paths.user_path,
                   help="Python file registering extra implementations (repeatable); "
                        f"${registry.PLUGINS_ENV} does the same for every command")


def _load_plugins(paths: Sequence[str]) -> None:
    try:
        registry.load_env_plugins()
        for path in paths:
            registry.load_plugin(path)
    except registry.PluginError as exc:
        raise UsageError(str(exc)) from None


def cmd_list(args: argparse.Namespace) -> int:
    entries = []
    for impl in registry.all_implementations():
        d = impl.describe()
        if d["available"]:
            try:
                d["devices_present"] = list(impl.available_devices())
            except Exception as exc:  # a broken framework install is a status, not a crash
                d["available"], d["reason"] = False, f"import failed: {type(exc).__name__}: {exc}"
                d["devices_present"] = []
        else:
            d["devices_present"] = []
        entries.append(d)
    if args.json:
        json.dump(entries, sys.stdout, indent=2)
        print()
        return 0
    rows = [("name", "family", "ops", "dtypes", "devices", "status")]
    for d in entries:
        status = "available" if d["available"] else f"unavailable ({d['reason']})"
        if d["distribution"]:
            status += f", from {d['distribution']['distribution']} {d['distribution']['version']}".rstrip()
        devices = ",".join(d["devices_present"] or d["devices"])
        dtypes = ",".join(x.replace("float", "f").replace("bf16", "bf16") for x in d["dtypes"])
        rows.append((d["name"], d["family"], ",".join(d["ops"]), dtypes, devices, status))
    _print_table(rows)
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def cmd_check(args: argparse.Namespace) -> int:
    from .check.isolated import CheckSelection, run_checks, summarize

    cases, ops, dtypes = args.case, args.op, args.dtype
    if args.workload is not None:
        w = _workload(args.workload)
        if args.case or args.quick:
            raise UsageError("--workload names its own cases: leave out --case and --quick")
        cases = workloads.check_cases(w)
        ops = [op for op in w.ops if not args.op or op in args.op]
        dtypes = [d for d in w.dtypes if not args.dtype or d in args.dtype]
        if not ops or not dtypes:
            raise UsageError(f"workload {w.name} has ops {', '.join(w.ops)} and dtypes {', '.join(w.dtypes)}: "
                             f"--op and --dtype leave none")
        print(f"softgrad check: workload {w.name}: {len(cases)} cases at its shapes (rows cut to at most "
              f"{workloads.CHECK_ELEMENTS} elements), {', '.join(ops)}, {', '.join(dtypes)}", file=sys.stderr)
    sel = CheckSelection(impls=args.impl, ops=ops, dtypes=dtypes, cases=cases,
                         devices=args.device, quick=args.quick, timeout_s=args.timeout,
                         jobs=args.jobs)
    try:
        sel.validate()
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    _check_devices(args.device)
    if args.json:  # before minutes of checking, not after
        target = Path(args.json)
        folder = target.resolve().parent
        if target.is_dir():
            raise UsageError(f"--json {args.json}: is a folder; name a file")
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise UsageError(f"--json {args.json}: {folder} is not a writable folder")
    records = run_checks(sel, progress=not args.no_progress)
    ok = summarize(records, sys.stdout)
    if args.json:
        from .stored import write_json

        write_json(Path(args.json), [r.to_dict() for r in records])
        print(f"wrote {len(records)} records to {args.json}")
    if not any(r.verdict != "skip" for r in records):  # a gate that checked nothing must not pass
        reasons = list(dict.fromkeys(r.message for r in records if r.message))
        why = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
        print(f"softgrad check: nothing was checked ({why or 'no case applies to the selection'})",
              file=sys.stderr)
        return 1
    return 0 if ok else 1


def _workload(spec: str) -> workloads.Workload:
    try:
        return workloads.load(spec)
    except workloads.WorkloadError as exc:
        raise UsageError(str(exc)) from None


def cmd_workloads(args: argparse.Namespace) -> int:
    try:
        found = workloads.known(Path.cwd())  # what --workload NAME resolves to, refused where it is refused
    except workloads.WorkloadError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        json.dump([{**dataclasses.asdict(w), "check_cases": workloads.check_cases(w)} for w in found.values()],
                  sys.stdout, indent=2)
        print()
        return 0
    rows = [("name", "shapes", "dtypes", "ops", "layouts x / g", "values")]
    for w in found.values():
        shapes = ", ".join("x".join(map(str, s)) for s in w.shapes)
        rows.append((w.name, shapes, ",".join(w.dtypes), ",".join(w.ops), f"{','.join(w.x_layouts)} / "
                     f"{','.join(w.g_layouts)}", ",".join(w.values)))
    _print_table(rows)
    for w in found.values():
        print(f"{w.name}: {w.description}" + (f" ({w.sources})" if w.sources else ""))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import RunError, RunOptions, run

    registry.export_plugins()  # asv's benchmark processes load the same plugins
    for name in args.impl or []:
        try:
            registry.get(name)
        except KeyError as exc:
            raise UsageError(str(exc).strip("'\"")) from None
    w = _workload(args.workload) if args.workload is not None else None
    if w is workloads.PRESETS["default"]:
        w = None  # the default preset is the default grid (no other workload takes its name: workloads.parse)
    if args.threads is not None and args.threads > (os.cpu_count() or 1):
        print(f"softgrad run: warning: --threads {args.threads} is more than this machine's {os.cpu_count()} "
              f"cores: the run times the frameworks oversubscribed", file=sys.stderr)
    opts = RunOptions(quick=args.quick, impls=args.impl, threads=args.threads, resume=args.resume, rounds=args.rounds,
                      check=not args.no_check, report=not args.no_report, progress=not args.no_progress,
                      agreement=not args.no_agreement, workload=w)
    try:
        return run(opts)
    except (RunError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def cmd_report(args: argparse.Namespace) -> int:
    from .history.report import ReportError, write_reports

    out = Path(args.out) if args.out else paths.reports_dir()
    def warn(text: str) -> None:
        print(f"softgrad report: warning: {_one_line(text)}", file=sys.stderr)

    try:  # the warnings: what the history warns of, and answering for another machine than this one
        written = write_reports(out, warn=warn, machine=args.machine, note=warn)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    for index in written:
        print(f"wrote {index} and {index.with_name('report.md')}")
    return 0


def cmd_choose(args: argparse.Namespace) -> int:
    from .history import machines, results
    from .history.choose import beside, recommend_on

    _check_devices([args.device])
    _choose_among(args)  # an unknown name: one line, before any work
    loaded = results.load(newest=True)  # the runs each entry's newest measurements are in; a bad stored file:
    if args.measure and _measure(args, loaded):  # StoreError, one line from main
        loaded = results.load(newest=True)  # with the run it stored
    _warn(args, loaded)
    sel = _machines(args, machines.names(loaded))  # an unknown --machine is named first, even in an empty history
    if loaded.empty:
        raise UsageError("no complete run stored yet: run `softgrad run --quick` (or `make bench`) first, or add "
                         "--measure to check and time the candidates at exactly this shape")
    among = [i.name for i in _choose_among(args)] if args.impl else None
    request = dict(op=args.op, n=args.n, batch=args.batch, dtype=args.dtype, device=args.device,
                   x_layout=args.x_layout, g_layout=args.g_layout, calls=args.calls)
    if sel.every:
        return _choose_every(args, [recommend_on(loaded, m, among, **request) for m in sel.machines])
    answer = recommend_on(loaded, sel.machine, among, **request)
    others = beside([recommend_on(loaded, m, among, **request) for m in sel.others])
    df, choice = answer.df, answer.choice
    if choice is None:
        if args.json:
            print(json.dumps({"recommendation": None, "reason": answer.reason, "machine": answer.machine,
                              "other_machines": [o.to_dict() for o in others]}, indent=1, default=float))
        else:
            print(f"softgrad choose: {answer.reason}", file=sys.stderr)
            for o in others:
                print(f"  {o.line()}")
        return 1
    from .history import store

    for run_id in dict.fromkeys(r for r in (choice.run, choice.runner_up_run) if r):
        line = results.agreement_warning(store.Run(store.runs_dir() / run_id))
        if line:
            print(f"softgrad choose: {line}", file=sys.stderr)
    from .history.crossovers import along_n

    # the winners along n at the row count the answer comes from
    along = along_n(df, args.op, choice.measured_batch, args.dtype, args.device, args.x_layout, args.g_layout,
                    calls=args.calls) if args.explain or args.json else None
    if args.json:
        print(json.dumps({**choice.to_dict(), "along_n": along.to_dict() if along else None,
                          "machine": answer.machine, "other_machines": [o.to_dict() for o in others]},
                         indent=1, default=float))
    else:
        print(choice.sentence())
        for ex in choice.excluded:
            print(f"  not recommended: {ex['impl']} ({ex['reason']})")
        for line in choice.sources():
            print(f"  {line}")
        for o in others:  # the other machines' answers, one line each: never compared with this one's
            print(f"  {o.line()}")
        if args.explain and along:
            print(f"along n: {along.title()}")
            for line in along.lines():
                print(f"  {line}")
    return 0


def _choose_every(args: argparse.Namespace, answers: list) -> int:
    """``choose --machine all``: each machine's answer, a line each (JSON: one object each); 1 when none answered."""
    if args.json:
        print(json.dumps({"machines": [a.to_dict() for a in answers]}, indent=1, default=float))
    else:
        for a in answers:
            print(a.line())
    return 0 if any(a.choice is not None for a in answers) else 1


def _machines(args: argparse.Namespace, known: list[str]):
    """The machines ``--machine`` picks among ``known`` (:func:`softgrad.history.machines.select`): an unknown
    name, or a ``$SOFTGRAD_MACHINE`` that cannot name one, is one line and exit 2; answering for another machine
    than this one is a warning on stderr."""
    from .history import machines, provenance

    try:
        sel = machines.select(known, args.machine)
    except (machines.UnknownMachine, provenance.MachineNameError) as exc:
        raise UsageError(str(exc)) from None
    if sel.note:  # a warning: the answer is another machine's
        print(f"softgrad {args.command}: warning: {sel.note}", file=sys.stderr)
    return sel


def _choose_among(args: argparse.Namespace) -> list[registry.Implementation]:
    try:
        return [registry.get(n) for n in args.impl] if args.impl else registry.all_implementations()
    except KeyError as exc:
        raise UsageError(str(exc).strip("'\"")) from None


def _measure(args: argparse.Namespace, loaded: "pandas.DataFrame") -> bool:
    """``choose --measure``: unless a stored run (``loaded``) of this exact request's workload has it, check the
    candidates at exactly that shape and time the passing ones (``softgrad run`` on a one-shape workload: each
    family in its own process, with progress, stored as a run). Whether it measured. A shape that could not be
    timed here (:func:`softgrad.history.choose.unmeasurable`: the workload check, the sweep's output budget,
    its per-call limit) is refused in one line before any work."""
    from .history import machines, results
    from .history.choose import unmeasurable, workload_table
    from .runner import RunError, RunOptions, run

    rows, n = args.batch, args.n
    layouts = "".join(f"-{k}{v}" for k, v in (("x", args.x_layout), ("g", args.g_layout)) if v != "contiguous")
    among = "" if not args.impl else "-" + "-".join(sorted(registry.identifier(i) for i in args.impl))
    name = f"choose-{args.op}-{rows}x{n}-{args.dtype}{layouts}{among}"[:64]
    here = _this_machine()  # what is measured is this machine's
    mine = machines.rows(loaded, here) if not loaded.empty else loaded
    if not mine.empty and name in set(mine.get("workload", [])):
        print(f"softgrad choose: {name} was measured before: answering from the store", file=sys.stderr)
        return False
    # the rates the estimate takes: this machine's, else those of the machine choose would answer for
    stored = results.newest_per_entry(loaded, machine=machines.select(machines.names(loaded), None, here).machine)
    if args.impl and not stored.empty:
        stored = stored[stored["impl"].isin([i.name for i in _choose_among(args)])]
    reason = unmeasurable(stored, args.op, n, rows, args.dtype, args.device, args.x_layout, args.g_layout)
    if reason:
        raise UsageError(f"{args.op} {rows}x{n} {args.dtype} cannot be measured on this machine: {reason}")
    try:
        w = workloads.parse({**workload_table(args.op, n, rows, args.dtype, args.x_layout, args.g_layout),
                             "name": name, "description": "what `softgrad choose --measure` timed"},
                            "choose --measure", name)
    except workloads.WorkloadError as exc:
        raise UsageError(str(exc)) from None
    candidates = [i.name for i in _choose_among(args) if i.available and args.op in i.ops
                  and args.dtype in i.dtypes and args.device in i.devices]
    if not candidates:
        raise UsageError(f"no available implementation declares {args.op} in {args.dtype} on {args.device}")
    registry.export_plugins()
    paths.require_writable(paths.results_dir())
    print(f"softgrad choose: measuring {args.op} {rows}x{n} {args.dtype} on {args.device}: checking and timing "
          f"{len(candidates)} candidates ({', '.join(candidates)})", file=sys.stderr)
    try:
        run(RunOptions(impls=candidates, workload=w, report=False, agreement=False, progress=not args.json))
    except (RunError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return True


def _warn(args: argparse.Namespace, df: object) -> None:
    """Print the warnings the loaded results carry (e.g. a run whose timings were deleted)."""
    for text in getattr(df, "attrs", {}).get("warnings", []):
        print(f"softgrad {args.command}: warning: {_one_line(text)}", file=sys.stderr)


def cmd_compare(args: argparse.Namespace) -> int:
    from .history import machines
    from .history.gate import complete_metas

    metas = complete_metas()  # every complete run's meta.json, read once
    if args.old is None and args.new is None:  # the newest runs of the machine --machine picks
        sel = _machines(args, machines.names_of_runs((rid, m.get("machine")) for rid, m in metas.items()))
        if sel.every:
            return max(_compare_on(args, m, metas, heading=True) for m in sel.machines)
        code = _compare_on(args, sel.machine, metas)
        for m in sel.others:  # beside: each other machine's newest run against the one before it, never this one's
            print(_compare_beside(args, m, metas))
        return code
    return _compare_on(args, None, metas)


def _this_machine() -> str:
    from .history import machines, provenance

    try:
        return machines.this_machine()
    except provenance.MachineNameError as exc:
        raise UsageError(str(exc)) from None


def _compare_beside(args: argparse.Namespace, machine: str, metas: dict) -> str:
    """One line: ``machine``'s newest run against the one before it (compare's test), or why not."""
    from .history.gate import compare_runs

    try:
        c = compare_runs(None, None, args.factor, args.min_delta, machine=machine, metas=metas)
    except StoreError as exc:
        return f"on {machine}: not compared ({_one_line(exc)})"
    slower = sum(f.kind == "slower" for f in c.findings)
    errors = sum(f.kind == "error" for f in c.findings)
    return (f"on {machine}: {c.old.id} -> {c.new.id}: {c.compared} benchmarks compared, {slower} slower, "
            f"{errors} correctness regressions (`softgrad compare --machine {machine}` lists them)")


def _compare_on(args: argparse.Namespace, machine: str | None, metas: dict, heading: bool = False) -> int:
    """compare on ``machine`` (None: the runs named, or the newest two); ``metas``: every complete run's
    meta.json; ``heading``: a line naming it first."""
    from .history.gate import compare_runs

    from .history.results import agreement_warning

    if heading:
        print(f"machine {machine}:")
    try:
        comparison = compare_runs(args.old, args.new, args.factor, args.min_delta, machine=machine, metas=metas)
    except StoreError as exc:
        if not heading:
            raise
        print(f"softgrad compare: not compared on {machine} ({_one_line(exc)})", file=sys.stderr)
        return 1
    old, new, findings = comparison.old, comparison.new, comparison.findings
    print(f"compared {comparison.compared} benchmarks: {old.id} -> {new.id}")
    unmatched = comparison.unmatched_line()
    if unmatched:
        print(unmatched)
    for run in (old, new):
        line = agreement_warning(run)
        if line:
            print(f"softgrad compare: {line}", file=sys.stderr)
    cleared = []
    if args.confirm and any(f.kind == "slower" for f in findings):
        findings, cleared = _confirm(new, findings, args, args.factor)
    for f in findings:
        print(f.line())
    for f in cleared:
        print(f"cleared {f.impl} {f.op} {f.shape} {f.dtype} {f.device}: {f.detail}")
    slower = sum(f.kind == "slower" for f in findings)
    errors = sum(f.kind == "error" for f in findings)
    print(f"softgrad compare: {slower} slower, {errors} correctness regressions"
          + (f", {len(cleared)} cleared by a rerun" if cleared else "")
          + ("" if findings or not comparison.compared else " (no regression)"))
    if not comparison.compared:  # a gate that compared nothing must not pass
        print(f"softgrad compare: nothing was compared ({comparison.nothing})", file=sys.stderr)
        return 1
    return 1 if findings else 0


def _confirm(new, findings, args, factor: float):
    """Rerun the flagged slowdowns on this checkout; (kept, cleared) by compare's test at ``factor``."""
    from .history import provenance
    from .history.gate import confirm_findings
    from .bench.confirm import ConfirmError, rerun
    from .runner import RunError

    meta = new.meta()
    here = _this_machine()
    if meta.get("machine") != here:  # a rerun here says nothing of another machine's times
        print(f"softgrad {args.command}: --confirm reruns on this machine ({here}): run {new.id} is of machine "
              f"{meta.get('machine')}, its findings stand", file=sys.stderr)
        return list(findings), []
    head = provenance.git_commit(paths.repo_root())
    if head != meta.get("commit"):
        raise UsageError(f"--confirm reruns this checkout (commit {str(head)[:8]}), but run {new.id} is of "
                         f"commit {str(meta.get('commit'))[:8]}: check that commit out first")
    registry.export_plugins()  # the rerun's workers load the same plugins
    asked = (meta.get("threads") or {}).get("requested")
    if asked is not None:
        from .bench import threads

        threads.apply(int(asked))  # the rerun times with the run's thread count
    keys = [f.key for f in findings if f.kind == "slower"]
    print(f"confirming {len(keys)} flagged benchmarks with a rerun on this checkout", flush=True)
    try:
        rows = rerun(keys, meta.get("grid") or "full", head, progress=not args.no_progress)
    except (ConfirmError, RunError, KeyError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    return confirm_findings(findings, rows, factor, args.min_delta)


def _history(args: argparse.Namespace) -> tuple["pandas.DataFrame", Path | None]:
    """The stored results (their warnings printed) and the repository, when at hand (for git log)."""
    from .history import results

    loaded = results.load()
    _warn(args, loaded)
    try:
        return loaded, paths.repo_root()
    except paths.PathError:
        return loaded, None


def cmd_gate(args: argparse.Namespace) -> int:
    from .history import machines
    from .history.gate import complete_metas

    loaded, repo = _history(args)
    metas = complete_metas()  # every complete run's meta.json, read once (compare's reader)
    sel = _machines(args, machines.names_of_runs((rid, m.get("machine")) for rid, m in metas.items()))
    if sel.every:
        return max(_gate_on(args, m, loaded, metas, repo, heading=True) for m in sel.machines)
    code = _gate_on(args, sel.machine, loaded, metas, repo)
    for m in sel.others:  # beside: each other machine's newest run against its own history, never this one's
        print(_gate_beside(args, m, loaded, metas, repo))
    return code


def _judge(args: argparse.Namespace, machine: str | None, loaded, metas: dict, repo):
    from .history import changes, history_gate

    try:
        return history_gate.judge_store(loaded, metas, workload=args.workload, threshold=args.threshold,
                                        window=args.window, min_delta_s=args.min_delta, repo=repo, machine=machine)
    except changes.HistoryError as exc:
        raise UsageError(str(exc)) from None


def _gate_beside(args: argparse.Namespace, machine: str, loaded, metas: dict, repo) -> str:
    """One line: ``machine``'s newest run judged against its own history (no rerun), or why nothing was."""
    verdict = _judge(args, machine, loaded, metas, repo)
    if verdict.nothing:
        return f"on {machine}: not judged ({verdict.nothing})"
    return (f"on {machine}: run {verdict.run}: {verdict.lines()[-1].removeprefix('softgrad gate: ')} "
            f"(`softgrad gate --machine {machine}` lists them)")


def _gate_on(args: argparse.Namespace, machine: str | None, loaded, metas: dict, repo, heading: bool = False) -> int:
    """The gate on ``machine``'s newest run; ``heading``: a line naming the machine first."""
    from .history import results, store

    if heading:
        print(f"machine {machine}:")
    verdict = _judge(args, machine, loaded, metas, repo)
    if verdict.run:
        line = results.agreement_warning(store.Run(store.runs_dir() / verdict.run))
        if line:
            print(f"softgrad gate: {line}", file=sys.stderr)
    rerun = verdict.to_rerun()
    if args.confirm and rerun and not verdict.nothing:
        kept, cleared = _confirm(store.Run(store.runs_dir() / verdict.run), rerun, args, 1 + args.threshold)
        verdict = verdict.after_rerun(kept, cleared)
    for line in verdict.lines():
        print(line)
    if verdict.nothing:  # a gate that compared nothing must not pass
        print(f"softgrad gate: nothing was compared ({verdict.nothing})", file=sys.stderr)
    return 1 if verdict.failed else 0


def cmd_index(args: argparse.Namespace) -> int:
    from .history import index

    snap = index.sync(rebuild=args.rebuild)
    if not snap.runs:
        print(f"softgrad index: no run stored in {paths.results_dir() / 'runs'}: nothing to index", file=sys.stderr)
        return 1  # nothing to do is no success
    if snap.written is False:
        raise UsageError(f"cannot write the index {index.path()}: commands read the run folders")
    s = index.status()
    print(f"index {s['path']}: {s['runs']} runs ({s['complete']} complete), {s['points']} points, "
          f"{s['bytes'] / 1e6:.1f} MB; {len(snap.fresh)} runs read from their folders")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from .history import provenance, retention

    done = retention.prune(str(provenance.machine()["machine"]), args.keep_raw, args.summaries)
    if not done.complete:  # no complete run of this machine: nothing to do is no success
        print(done.line(), file=sys.stderr)
        return 1
    print(done.line())
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from .history import changes, machines

    loaded, repo = _history(args)
    sel = _machines(args, machines.names(loaded))
    metas = changes.metas(loaded)

    def on(machine: str) -> "changes.History":
        return changes.find(loaded, metas, impl=args.impl, op=args.op, workload=args.workload, since=args.since,
                            threshold=args.threshold or changes.THRESHOLD, machine=machine, repo=repo)

    try:
        found = [on(m) for m in sel.machines]
    except changes.HistoryError as exc:
        raise UsageError(str(exc)) from None
    others = [changes.elsewhere(loaded, m) for m in sel.others]
    if args.json:
        if sel.every:
            print(json.dumps({"machines": [h.to_dict() for h in found]}, indent=1))
        else:
            print(json.dumps({**found[0].to_dict(), "other_machines": [o.to_dict() for o in others]}, indent=1))
        return 1 if all(h.note for h in found) else 0
    for h in found:
        if h.note and not sel.every:  # too few runs to look for a change: nothing was judged, which is no answer
            print(h.lines()[0], file=sys.stderr)
        else:
            print("\n".join(h.lines()))
    for o in others:  # each other machine's runs, counted: its change points are its own (--machine NAME)
        print(o.line())
    return 1 if all(h.note for h in found) else 0


def machine_name(text: str) -> str:
    """An argparse type: a machine's name as asv's results folder holds it (one folder name)."""
    if not text or text != text.strip() or "/" in text or text in (".", "..") or text.startswith("."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a machine's name (a folder name of results/asv)")
    return text


def cmd_merge_results(args: argparse.Namespace) -> int:
    from .history import merge

    done = merge.merge(Path(args.src), Path(args.dest) if args.dest else paths.results_dir(), args.machine)
    for note in done.notes:
        print(f"softgrad merge-results: {note}", file=sys.stderr)
    print(done.line())
    return 0


#: what ``softgrad`` with no arguments prints: what it is and the five most useful commands
OVERVIEW = """\
softgrad checks implementations of softmax, its Jacobian and its VJP against a high-precision oracle,
times them on this machine, and tells you which one to use for your shape and dtype.

The five most useful commands:
  softgrad list                  every implementation: ops, dtypes, devices, available here or why not
  softgrad check --quick         check every available implementation's correctness (exit 1 on a failure)
  softgrad run --quick           the main job, small: check, time, store, report (a few minutes)
  softgrad choose --op vjp --n 50257 --batch 512 --dtype bfloat16
                                 which implementation to use at that shape, from this machine's timings
  softgrad compare               the regression gate: the latest run against the one before (exit 1)

Every command: softgrad COMMAND --help (each with an example). Documentation: README.md and docs/."""

#: one example per command, shown by ``softgrad COMMAND --help``
EXAMPLES = {
    "list": "softgrad list --json\n    every implementation as JSON, with the reason an unavailable one is",
    "workloads": "softgrad workloads\n    the presets (default, vocab, attention, classifier) and your own",
    "check": "softgrad check --impl numpy --op vjp --dtype float32 --quick\n"
             "    one entry, one op, one dtype on the quick cases: a table, a line per failure, exit 1 if any",
    "run": "softgrad run --quick --impl numpy --impl loops\n"
           "    check, time, store and report two entries on the quick grid (about a minute)",
    "report": "softgrad report --out /tmp/report\n    index.html and report.md of the stored runs, with plots",
    "choose": "softgrad choose --op vjp --n 50257 --batch 512 --dtype bfloat16 --explain\n"
              "    the fastest entry that passed every check at that shape; --measure times it first if needed",
    "compare": "softgrad compare --confirm\n"
               "    the latest run against the one before; flagged slowdowns are timed again (exit 1 if kept)",
    "gate": "softgrad gate --workload default --confirm\n"
            "    the newest default-grid run against its history: exit 1 on a new step up the rerun reproduces",
    "history": "softgrad history --impl numpy --since 2026-11-01\n"
               "    numpy's change points since November, a line each, with what changed",
    "index": "softgrad index --rebuild\n"
             "    read every run folder into results/index.sqlite again (commands update it themselves)",
    "prune": "softgrad prune --keep-raw 30 --summaries\n"
             "    this machine's complete runs older than the newest 30 kept gzip-compressed (run compresses raw files past 14)",
    "merge-results": "softgrad merge-results ~/from-gpu-box/results\n"
                     "    another machine's runs and asv results into this history (a differing file: exit 2, nothing written)",
}


def _add_gate_flags(p: argparse.ArgumentParser, confirm: str) -> None:
    """The flags compare and gate share: --min-delta, --confirm (``confirm``: its help), --no-progress, --plugin."""
    p.add_argument("--min-delta", type=nonnegative_seconds, default=50e-6, metavar="S",
                   help="smallest absolute slowdown that counts (default 50e-6 s)")
    p.add_argument("--confirm", action="store_true", help=confirm)
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr (with --confirm)")
    _add_plugins(p)


def _machine_or_all(text: str) -> str:
    """An argparse type: ``all``, or text that can name a machine (whether the history holds it is asked later)."""
    from .history import machines, provenance

    if text == machines.ALL:
        return text
    try:
        return provenance.check_name(text, "--machine")
    except provenance.MachineNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_machine(p: argparse.ArgumentParser, what: str) -> None:
    """``--machine NAME|all``: whose runs answer (default: this machine's; see softgrad.history.machines)."""
    p.add_argument("--machine", metavar="NAME|all", type=_machine_or_all,
                   help=f"{what} for the machine NAME (as its runs store it; default: this machine, "
                        "$SOFTGRAD_MACHINE or <hostname>-<hash of its hardware>), or for every machine (all); "
                        f"the other machines' answers are shown beside")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="softgrad", description=__doc__.splitlines()[0],
                     epilog=OVERVIEW.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="every implementation with its ops, dtypes, devices and availability")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_plugins(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("workloads", help="the workload presets and ./pyproject.toml's workloads")
    p.add_argument("--json", action="store_true", help="print JSON (with each workload's correctness cases)")
    p.set_defaults(func=cmd_workloads)

    p = sub.add_parser("check", help="check implementations against the oracle, properties and policies")
    p.add_argument("--impl", action="append", metavar="NAME", help="implementation (repeatable; default all available)")
    p.add_argument("--op", action="append", choices=OPS, help="op (repeatable; default all)")
    p.add_argument("--dtype", action="append", choices=DTYPES, help="dtype (repeatable; default all supported)")
    p.add_argument("--case", action="append", metavar="CASE", help="case from the catalogue (repeatable)")
    p.add_argument("--device", action="append", metavar="DEV", help="device (repeatable; default every present one)")
    p.add_argument("--quick", action="store_true", help="only the quick cases")
    p.add_argument("--workload", metavar="NAME|FILE",
                   help="check at a workload's shapes, dtypes and layouts instead of the catalogue: a preset "
                        "(softgrad workloads), a .toml file, or a [tool.softgrad.workloads.NAME] of ./pyproject.toml")
    p.add_argument("--timeout", type=positive_seconds, default=60.0, metavar="S",
                   help="per-case time limit in seconds (a compiled entry's first case of each op, dtype and device "
                        f"gets {isolated.FIRST_COMPILE_S:g} s more: it compiles)")
    p.add_argument("--jobs", type=per_core, default=isolated.DEFAULT_JOBS, metavar="N",
                   help=f"worker processes at a time (default {isolated.DEFAULT_JOBS})")
    p.add_argument("--json", metavar="PATH", type=paths.user_path,
                   help="write one record per (impl, op, dtype, case) as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    _add_plugins(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="the main job: check, speed sweep (asv results), dashboard, report")
    p.add_argument("--quick", action="store_true", help="the quick grid and quick cases (a few minutes); with "
                                                         "--workload, its first shape only")
    p.add_argument("--workload", metavar="NAME|FILE",
                   help="time (and check) a workload's shapes, dtypes and layouts instead of the default grid")
    p.add_argument("--impl", action="append", metavar="NAME", help="implementation (repeatable; default all)")
    p.add_argument("--threads", type=per_core, metavar="N", help="threads for every family (sets SOFTGRAD_THREADS)")
    p.add_argument("--resume", action="store_true", help="continue the latest interrupted run")
    p.add_argument("--rounds", type=rounds_count, metavar="N",
                   help="passes over each family's benchmarks, samples pooled (steadier; longer; default 3)")
    p.add_argument("--no-check", action="store_true", help="skip the correctness check")
    p.add_argument("--no-agreement", action="store_true",
                   help="skip re-timing a sample of points with the frameworks' own timers")
    p.add_argument("--no-report", action="store_true", help="skip the report")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    _add_plugins(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="HTML and Markdown report with plots from the latest run")
    p.add_argument("--out", metavar="DIR", type=paths.user_path, help="output folder (default reports/latest)")
    _add_machine(p, "report (with all: one report per machine, in DIR/<machine>/)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("choose", help="which implementation to use for an op, size, dtype and device")
    p.add_argument("--op", required=True, choices=OPS)
    p.add_argument("--n", required=True, type=positive_int, help="row length")
    p.add_argument("--batch", type=positive_int, default=1, help="rows: the leading dims' product (default 1)")
    p.add_argument("--x-layout", default="contiguous", choices=LAYOUTS, help="how x is laid out (default contiguous)")
    p.add_argument("--g-layout", default="contiguous", choices=G_LAYOUTS,
                   help="how the VJP's g is laid out (default contiguous)")
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--device", default="cpu")
    p.add_argument("--impl", action="append", metavar="NAME",
                   help="choose among these implementations only (repeatable; default every one)")
    p.add_argument("--measure", action="store_true",
                   help="check and time the candidates at exactly this shape first (stored as a run; the next "
                        "identical choose answers from the store)")
    p.add_argument("--calls", type=positive_int, metavar="N",
                   help="answer for a program that makes N calls: compile once + N x time per call")
    p.add_argument("--explain", action="store_true",
                   help="also print the winners along n at these rows and where they change (crossovers)")
    p.add_argument("--json", action="store_true",
                   help="print the recommendation as JSON (with the winners along n: along_n)")
    _add_machine(p, "answer")
    _add_plugins(p)
    p.set_defaults(func=cmd_choose)

    p = sub.add_parser("compare", help="regression gate between two stored runs (exit 1 on a regression)")
    p.add_argument("old", nargs="?", help="run id (default: the run before NEW)")
    p.add_argument("new", nargs="?", help="run id (default: the latest complete run)")
    p.add_argument("--factor", type=slowdown_factor, default=1.2, help="slowdown that counts (default 1.2)")
    _add_machine(p, "compare the newest two runs")
    _add_gate_flags(p, "time each flagged slowdown again on this checkout; keep only those that reproduce")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("gate", help="nightly regression gate: the newest run against its whole history (exit 1 on "
                                    "a new step up that holds, or a correctness regression)")
    p.add_argument("--workload", metavar="NAME",
                   help="judge the newest run of this workload (default: the newest run's)")
    p.add_argument("--threshold", type=change_fraction, default=0.1, metavar="F",
                   help="the relative move that counts (default 0.1)")
    p.add_argument("--window", type=positive_int, default=3, metavar="N",
                   help="a step is new while it first held within the newest N runs (default 3)")
    _add_gate_flags(p, "time each new step and outlier again on this checkout; fail only on those that reproduce")
    _add_machine(p, "judge the newest run")
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser("history", help="change points of each benchmark over the stored runs, and what changed")
    p.add_argument("--impl", metavar="NAME", help="one implementation's benchmarks")
    p.add_argument("--op", choices=OPS, help="one op's benchmarks")
    p.add_argument("--workload", metavar="NAME", help="one workload's benchmarks (default grid: default)")
    p.add_argument("--since", type=_date, metavar="DATE", help="only change points from DATE on (YYYY-MM-DD)")
    p.add_argument("--threshold", type=change_fraction, metavar="F", help="the relative move that counts (default 0.1)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_machine(p, "list the change points")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("index", help="bring the history's index (results/index.sqlite) up to date with the run folders")
    p.add_argument("--rebuild", action="store_true", help="read every run folder again, whatever the index holds")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("prune", help="keep this machine's old complete runs compressed (run does it after each run)")
    p.add_argument("--keep-raw", type=positive_int, default=14, metavar="N",
                   help="the newest N complete runs keep their files as written (default 14)")
    p.add_argument("--summaries", action="store_true",
                   help="compress the old runs' checks.json and asv.json too (for a home not kept in git)")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("merge-results", help="merge another results folder (another machine's, a nightly leg's) "
                                             "into this history; a differing file is refused, nothing written")
    p.add_argument("src", metavar="SRC", type=paths.user_path, help="a results folder, or a project root holding results/")
    p.add_argument("dest", metavar="DEST", nargs="?", type=paths.user_path,
                   help="the history to merge into (default: this home's results/)")
    p.add_argument("--machine", type=machine_name, metavar="NAME",
                   help="take only this machine's runs and asv folder from SRC (what one nightly leg owns)")
    p.set_defaults(func=cmd_merge_results)
    for name, command in sub.choices.items():  # an example under each command's --help
        command.epilog = f"example:\n  {EXAMPLES[name]}" if name in EXAMPLES else None
        command.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .children import Terminated, sigterm_as_interrupt

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # what softgrad is and where to start, not argparse's "a command is required"
        print(OVERVIEW)
        return 0
    args = parser.parse_args(argv)
    try:
        with sigterm_as_interrupt():  # kill: the cleanup Ctrl-C gets (workers, temporary folders), then one line
            _load_plugins(getattr(args, "plugin", None) or [])  # every command: a bad plugin is always named
            return int(args.func(args) or 0)
    except (UsageError, registry.PluginError, StoreError, paths.PathError) as exc:  # one line, exit 2
        print(f"softgrad {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: 130; SIGTERM: 143 (128 + the signal, as a shell says it)
        said, code = ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        hint = ("; the families it finished are stored: `softgrad run --resume` completes it"
                if args.command == "run" else "")
        print(f"softgrad {args.command}: {said}{hint}", file=sys.stderr)
        return code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a file softgrad was asked to read or write
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"softgrad {args.command}: error: {where}{_one_line(exc.strerror or exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug of ours: still one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"softgrad {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              f"(set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
