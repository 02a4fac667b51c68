"""One history from several: merge a results tree (one machine's, one leg of the nightly matrix's) into another.

``softgrad merge-results SRC [DEST] [--machine NAME]``; SRC and DEST are results folders (holding ``runs/`` and
``asv/``) or project roots holding ``results/``; a DEST holding neither is made a results folder (default:
this home's ``results/``). What is merged:

- ``runs/<id>/``: the union of run folders. A folder only in SRC is copied whole (under a temporary name, then
  renamed). A folder in both: the union of its files (and of its subfolders', the same way); a file in both must be equal, where a file and its
  ``.gz`` form (:mod:`softgrad.history.retention`) count as equal when they decompress equal (the compressed
  form is kept, as ``softgrad prune`` leaves it).
- ``asv/<machine>/``: the union of machine folders and of their files. ``machine.json`` in both must be equal.
  asv's results file (one per machine x commit x environment) in both: asv rewrites the file of a commit at
  every run of that commit on that machine, so two nights of one commit hold two versions of one file. They
  merge benchmark by benchmark, each the row asv started last (``started_at``); the file's other fields come
  from the side holding the newest row. Different rows started at the same instant are a conflict.
- ``asv/benchmarks.json`` (asv's description of every benchmark, whose ``params`` asv's publish reads every
  machine's results through): the union of the benchmarks; a benchmark in both takes SRC's description (SRC is
  taken to be the newer) with each parameter's values the union of both sides' (a GPU machine's classes have
  device ``cuda`` too), DEST's order first.
- nothing else: ``index.sqlite`` is never merged (commands bring it up to date from the run folders on their
  next read; ``softgrad index``), nor the dashboard, the report, caches or asv's configuration.

With ``machine``, only that machine's part of SRC is taken (what one leg of the nightly owns): its run folders
(``meta.json``'s ``machine``) and ``asv/<machine>/``, whose ``machine.json`` then replaces DEST's (the
machine's own description as of its newest run), and ``benchmarks.json``.

Every conflict is found before anything is written: a conflict writes nothing (:class:`MergeConflict`, one
line). Each write is atomic (temporary name, rename); a merge interrupted midway leaves whole files, and merging
again completes it. Merging what is merged already writes nothing. A file is never removed, except a plain file
whose equal ``.gz`` form replaces it.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..stored import StoreError, one_line, read_json

#: asv's description of the benchmarks, at the top of its results folder
BENCHMARKS = "benchmarks.json"
#: asv's description of a machine, in the machine's folder
MACHINE = "machine.json"


class MergeConflict(StoreError):
    """SRC and DEST hold different versions of one file that the merge cannot reconcile; nothing was written."""


@dataclass
class Merged:
    """What :func:`merge` did (or, with nothing written, found to do)."""

    src: Path
    dest: Path
    runs_added: list[str] = field(default_factory=list)
    run_files: int = 0
    machines_added: list[str] = field(default_factory=list)
    asv_files: int = 0
    asv_merged: int = 0
    benchmarks: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.runs_added or self.run_files or self.machines_added or self.asv_files or self.asv_merged
                    or self.benchmarks)

    def line(self) -> str:
        """One line saying what was merged."""
        if not self.changed:
            return f"merge-results: nothing to merge: {self.dest} holds everything of {self.src} already"
        counts = [(len(self.runs_added), "run folder(s) added"), (self.run_files, "file(s) added to run folders"),
                  (len(self.machines_added), f"asv machine folder(s) added ({', '.join(self.machines_added)})"),
                  (self.asv_files, "asv file(s) added"), (self.asv_merged, "asv results file(s) merged")]
        parts = [f"{n} {what}" for n, what in counts if n] + (["benchmarks.json merged"] if self.benchmarks else [])
        return f"merge-results: {self.src} into {self.dest}: {', '.join(parts)}"


# --- reading ---------------------------------------------------------------------------------------------------

def results_folder(folder: Path, *, must_exist: bool) -> Path:
    """The results folder ``folder`` names: itself when it holds ``runs/`` or ``asv/``, else its ``results/``
    when that exists; a SRC without either is a :class:`StoreError` (a DEST may be new: ``folder`` itself)."""
    folder = Path(folder)
    if (folder / "runs").is_dir() or (folder / "asv").is_dir():
        return folder
    if (folder / "results").is_dir():
        return folder / "results"
    if must_exist:
        raise StoreError(f"{folder}: holds neither runs/ nor asv/ (nor a results/ folder holding them): "
                         f"not a softgrad results folder")
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"{folder}: not a folder")
    return folder


def _listed(folder: Path) -> list[Path]:
    """The entries of ``folder`` softgrad and asv write (temporary and hidden names left out), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _bytes(path: Path) -> bytes:
    """A file's content, decompressed when it is a ``.gz``."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise StoreError(f"{path}: cannot be read ({one_line(exc)})") from None


def _canonical(data: Any) -> str:
    """JSON text that is equal for equal data (NaN included, keys in any order)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _machine_of(run: Path) -> str | None:
    """The ``machine`` of a run folder's ``meta.json``; None when it has none or cannot be read."""
    try:
        meta = read_json(run / "meta.json")
    except StoreError:
        return None
    name = meta.get("machine") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


# --- planning: what to write, every conflict found first -------------------------------------------------------

@dataclass
class _Plan:
    copy_dirs: list[tuple[Path, Path]] = field(default_factory=list)
    copy_files: list[tuple[Path, Path]] = field(default_factory=list)
    write_json: list[tuple[Path, Any, bool]] = field(default_factory=list)  # (path, data, asv's compact form)
    remove: list[Path] = field(default_factory=list)  # plain files whose .gz form is copied beside them


def _logical(path: Path) -> str:
    return path.name[:-3] if path.name.endswith(".gz") else path.name


def _plan_files(src: Path, dest: Path, plan: _Plan, done: Merged) -> None:
    """The union of two run folders' files (a file and its ``.gz`` form are one file); a differing file is a
    :class:`MergeConflict`."""
    groups: dict[str, dict[str, dict[bool, Path]]] = {}
    for side, folder in (("src", src), ("dest", dest)):
        for p in _listed(folder):
            if p.is_dir():  # softgrad writes none; a newer one might: merged the same way
                if side == "src":
                    _plan_folder(p, dest / p.name, plan, done)
                continue
            groups.setdefault(_logical(p), {"src": {}, "dest": {}})[side][p.name.endswith(".gz")] = p
    for name, sides in groups.items():
        mine, theirs = sides["src"], sides["dest"]
        if not mine:
            continue
        if not theirs:
            if any((dest / p.name).is_dir() for p in mine.values()):
                raise MergeConflict(f"{dest / name}: a folder here, a file in {src}; nothing was merged")
            plan.copy_files += [(p, dest / p.name) for p in mine.values()]
            done.run_files += len(mine)
            continue
        a = mine.get(True) or mine[False]
        b = theirs.get(True) or theirs[False]
        if _bytes(a) != _bytes(b):
            raise MergeConflict(f"{dest / name}: differs from {a} (a run folder is written once: two different "
                                f"runs under one id?); nothing was merged")
        if True in mine and True not in theirs:  # SRC's compressed form replaces DEST's plain one
            plan.copy_files.append((mine[True], dest / mine[True].name))
            plan.remove.append(theirs[False])
            done.run_files += 1


def _plan_folder(src: Path, target: Path, plan: _Plan, done: Merged) -> None:
    """A folder of SRC into ``target``: copied whole when DEST has none, else merged file by file."""
    if not target.exists():
        plan.copy_dirs.append((src, target))
        done.run_files += sum(1 for p in src.rglob("*") if p.is_file())
    elif not target.is_dir():
        raise MergeConflict(f"{target}: not a folder, and {src} is one; nothing was merged")
    else:
        _plan_files(src, target, plan, done)


def _plan_runs(src: Path, dest: Path, machine: str | None, plan: _Plan, done: Merged) -> None:
    for run in _listed(src / "runs"):
        if not run.is_dir() or (machine is not None and _machine_of(run) != machine):
            continue
        target = dest / "runs" / run.name
        if not target.exists():
            plan.copy_dirs.append((run, target))
            done.runs_added.append(run.name)
        else:
            _plan_folder(run, target, plan, done)


def _read(path: Path) -> Any:
    data = read_json(path)
    if not isinstance(data, dict):
        raise StoreError(f"{path}: not an asv file (not a JSON object)")
    return data


def merge_asv_results(src: dict[str, Any], dest: dict[str, Any], where: Path) -> dict[str, Any]:
    """Two versions of one asv results file (one machine, commit and environment) made one: every benchmark,
    each the row asv started last; the file's other fields from the side with the newest row (see the module).
    :class:`MergeConflict` naming ``where`` when they cannot be one file."""
    for key in ("commit_hash", "env_name", "result_columns", "version"):
        if _canonical(src.get(key)) != _canonical(dest.get(key)):
            raise MergeConflict(f"{where}: the two versions have different '{key}' (not one machine, commit and "
                                f"environment's results); nothing was merged")
    src_rows, dest_rows = src.get("results"), dest.get("results")
    if not isinstance(src_rows, dict) or not isinstance(dest_rows, dict):
        raise StoreError(f"{where}: not an asv results file (no 'results' object)")
    cols = dest.get("result_columns") or []
    at = cols.index("started_at") if "started_at" in cols else None

    def started(row: Any) -> float:
        value = row[at] if at is not None and isinstance(row, list) and len(row) > at else None
        return float(value) if isinstance(value, (int, float)) else float("-inf")

    rows = dict(dest_rows)
    for name, row in src_rows.items():
        old = rows.get(name)
        if old is None:
            rows[name] = row
        elif _canonical(old) != _canonical(row):
            if started(row) == started(old):
                raise MergeConflict(f"{where}: benchmark {one_line(name, 80)} holds different results started at "
                                    f"the same time in the two versions; nothing was merged")
            if started(row) > started(old):
                rows[name] = row
    newest = max(map(started, src_rows.values()), default=float("-inf")) > max(map(started, dest_rows.values()),
                                                                              default=float("-inf"))
    base, other = (src, dest) if newest else (dest, src)
    merged = {**base, "results": rows}
    durations = {**(other.get("durations") or {}), **(base.get("durations") or {})}
    if durations or "durations" in base:
        merged["durations"] = durations
    return merged


def merge_benchmarks(src: dict[str, Any], dest: dict[str, Any], where: Path) -> dict[str, Any]:
    """asv's ``benchmarks.json`` of both sides made one: every benchmark; one in both takes SRC's description
    with each parameter's values the union of both sides' (DEST's first). :class:`MergeConflict` when the two
    files are of different asv formats."""
    if src.get("version") != dest.get("version"):
        raise MergeConflict(f"{where}: asv format version {src.get('version')!r} here, {dest.get('version')!r} "
                            f"in the other (asv versions differ); nothing was merged")
    out = dict(dest)
    for name, desc in src.items():
        old = dest.get(name)
        if name == "version" or not isinstance(desc, dict) or not isinstance(old, dict):
            out[name] = desc
            continue
        new, a, b = dict(desc), old.get("params"), desc.get("params")
        if (old.get("param_names") == desc.get("param_names") and isinstance(a, list) and isinstance(b, list)
                and len(a) == len(b) and all(isinstance(v, list) for v in (*a, *b))):
            new["params"] = [list(x) + [v for v in y if v not in x] for x, y in zip(a, b)]
        out[name] = new
    return out


def _plan_asv(src: Path, dest: Path, machine: str | None, plan: _Plan, done: Merged) -> None:
    for entry in _listed(src / "asv"):
        target = dest / "asv" / entry.name
        if entry.is_file() and entry.name == BENCHMARKS:
            if not target.exists():
                plan.copy_files.append((entry, target))
                done.benchmarks += 1
                continue
            have = _read(target)
            merged = merge_benchmarks(_read(entry), have, target)
            if _canonical(merged) != _canonical(have):
                plan.write_json.append((target, merged, False))
                done.benchmarks += 1
        elif entry.is_dir() and (machine is None or entry.name == machine):
            if not target.exists():
                plan.copy_dirs.append((entry, target))
                done.machines_added.append(entry.name)
                continue
            for path in _listed(entry):
                _plan_asv_file(path, target / path.name, machine, plan, done)


def _plan_asv_file(path: Path, target: Path, machine: str | None, plan: _Plan, done: Merged) -> None:
    if path.is_dir():
        raise StoreError(f"{path}: a folder inside an asv machine folder (asv writes none there)")
    if not target.exists():
        plan.copy_files.append((path, target))
        done.asv_files += 1
        return
    if _bytes(path) == _bytes(target):
        return
    if not path.name.endswith(".json"):
        raise MergeConflict(f"{target}: differs from {path}; nothing was merged")
    mine, have = _read(path), _read(target)
    if _canonical(mine) == _canonical(have):
        return
    if path.name == MACHINE:
        if machine is None:
            raise MergeConflict(f"{target}: differs from {path} (two machines under the name "
                                f"{target.parent.name}?); nothing was merged")
        plan.copy_files.append((path, target))  # the machine's own leg: its description is the newest
        done.asv_files += 1
        done.notes.append(f"{target}: replaced by {machine}'s description as of its newest run")
        return
    merged = merge_asv_results(mine, have, target)
    if _canonical(merged) != _canonical(have):
        plan.write_json.append((target, merged, True))
        done.asv_merged += 1


# --- writing ---------------------------------------------------------------------------------------------------

def _replace(target: Path, make: Callable[[Path], object]) -> None:
    """``make`` a file at a temporary name beside ``target``, then rename it to ``target`` (atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        make(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _synced_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _atomic_copytree(src: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=lambda _, names: [n for n in names if n.startswith(".")])
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _apply(plan: _Plan) -> None:
    for src, target in plan.copy_dirs:
        _atomic_copytree(src, target)
    for src, target in plan.copy_files:
        _replace(target, lambda tmp, src=src: shutil.copy2(src, tmp))
    for target, data, compact in plan.write_json:  # as asv writes them: results compact, benchmarks.json indented
        text = json.dumps(data) if compact else json.dumps(data, indent=4, sort_keys=True)
        _replace(target, lambda tmp, text=text: _synced_text(tmp, text))
    for path in plan.remove:
        path.unlink(missing_ok=True)


def merge(src: Path, dest: Path, machine: str | None = None) -> Merged:
    """Merge the results tree ``src`` into ``dest`` (see the module); what was merged. :class:`MergeConflict`
    (nothing written) when a file cannot be merged, :class:`StoreError` when a folder is not a results tree."""
    given = Path(src)
    src = results_folder(given, must_exist=machine is None)
    if machine is not None and not (src / "asv" / machine).is_dir() and not any(
            _machine_of(r) == machine for r in _listed(src / "runs")):
        raise StoreError(f"{given}: holds no run folder nor asv folder of machine {machine!r}")
    dest = results_folder(dest, must_exist=False)
    if src.resolve() == dest.resolve():
        raise StoreError(f"{src}: SRC and DEST are the same folder")
    done = Merged(src, dest)
    plan = _Plan()
    _plan_runs(src, dest, machine, plan, done)
    _plan_asv(src, dest, machine, plan, done)
    _apply(plan)
    return done
