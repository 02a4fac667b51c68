"""What the history keeps per night: old runs' raw per-pass files compressed, so the history grows slowly.

:func:`prune` leaves the newest ``keep_raw`` complete runs of a machine, every incomplete run (``run --resume``
reads its per-pass records) and every run whose ``meta.json`` cannot be read as they are. In each older
complete run of that machine it gzip-compresses, in place, the raw per-pass files (:data:`RAW`: the sweep's and
the agreement check's records, their specs and logs, which nothing reads once a run is complete), and with
``summaries`` the summaries kept in full too (:data:`SUMMARIES`, which :mod:`softgrad.stored`'s ``read_json``
reads in either form); ``meta.json``, ``speed.json`` and ``agreement.json`` stay plain. Summaries are kept
forever: nothing the gate, ``--confirm``, ``choose``, ``compare``, the report, ``history`` or the index reads is
lost. Summaries stay plain by default because a history kept in git (the nightly job's branch) compresses and
delta-packs them itself, and a compressed copy of a file git already holds adds a second blob, not a saving.

Each file is written as ``NAME.gz`` beside ``NAME`` (to a temporary name, synced, renamed), and only then is
``NAME`` removed: a crash at any point leaves every file readable (both forms, equal, until the next prune
removes the plain one). Pruning again does nothing.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..stored import StoreError, gz_path
from . import store

#: how many of a machine's newest complete runs keep their files as written
KEEP_RAW = 14
#: the raw per-pass files of a run (patterns in its folder)
RAW = ("sweep-*.jsonl", "independent-*.jsonl", "*.log", "*.spec.json")
#: the summaries kept compressed in old runs with ``summaries`` (read through ``read_json``, which takes both forms)
SUMMARIES = ("checks.json", "asv.json")


@dataclass
class Pruned:
    """What :func:`prune` did: runs looked at and changed, files compressed, bytes before and after."""

    machine: str
    keep_raw: int
    complete: int = 0
    runs: int = 0
    files: int = 0
    before: int = 0
    after: int = 0

    def line(self) -> str:
        """One line saying what was done."""
        if not self.files:
            return (f"prune: nothing to compress ({self.complete} complete run(s) of {self.machine}; the newest "
                    f"{self.keep_raw} keep their files as written, older ones are compressed already)")
        return (f"prune: compressed {self.files} files of {self.runs} runs of {self.machine} older than the "
                f"newest {self.keep_raw}: {self.before / 1e6:.2f} MB -> {self.after / 1e6:.2f} MB")


def compress(path: Path) -> int:
    """gzip ``path`` into ``NAME.gz`` beside it (temporary file, fsync, rename), then remove ``path``; the
    compressed size. Interrupted anywhere, ``path`` or an equal ``NAME.gz`` is there to read."""
    target = gz_path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=0) as gz:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, gz)
        with open(tmp, "rb") as f:  # the gzip trailer is written on close: sync after it
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    path.unlink()
    return target.stat().st_size


def _files(folder: Path, summaries: bool) -> list[Path]:
    """The plain files of a run folder that :func:`prune` compresses."""
    found = {p for pattern in RAW for p in folder.glob(pattern)}
    found |= {folder / name for name in SUMMARIES} if summaries else set()
    return sorted(p for p in found if p.is_file() and not p.name.startswith("."))


def _machine_of(run: store.Run) -> tuple[bool, str | None]:
    """(complete, machine) from the run's meta; (False, None) when it cannot be read (left alone)."""
    try:
        meta = run.meta() if run.meta_path.exists() else {}
    except StoreError:
        return False, None
    return bool(meta.get("complete")), meta.get("machine")


def prune(machine: str, keep_raw: int = KEEP_RAW, summaries: bool = False) -> Pruned:
    """Compress the files of ``machine``'s complete runs older than its newest ``keep_raw`` (see the module)."""
    if keep_raw < 1:
        raise ValueError(f"keep_raw must be at least 1, not {keep_raw}")
    done = Pruned(machine, keep_raw)
    mine = []
    for run in store.all_runs():
        complete, owner = _machine_of(run)
        if complete and owner == machine:
            mine.append(run)
    done.complete = len(mine)
    for run in mine[:-keep_raw]:
        files = _files(run.folder, summaries)
        for path in files:
            done.before += path.stat().st_size
            done.after += compress(path)
        done.files += len(files)
        done.runs += bool(files)
    return done
