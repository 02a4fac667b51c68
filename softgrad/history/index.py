"""The history's index: one SQLite file beside the run folders, so a command reads one file, not every run.

``results/index.sqlite`` (beside ``results/runs``, not in it: the nightly job commits the run folders, never
the index) holds, per run folder, its :class:`~softgrad.history.blocks.Block` (what
:func:`softgrad.history.results.load` and :func:`~softgrad.history.results.load_checks` read, packed) keyed by
the run id with a fingerprint of its files (size and modification time of ``meta.json``, ``asv.json``,
``speed.json`` and ``checks.json``), and for queries by hand three plain tables: ``runs`` (one row per run: its
machine, date, commit, workload, grid, threads, copy bandwidth, and the machine's fingerprint as JSON,
``machine_fingerprint``), ``points`` (one row per run and benchmark
point: machine, implementation, op, shape, dtype, device and the summary statistics) and ``verdicts`` (one row
per run and implementation its checks.json judged: checks passed and failed, the worst error ratio), e.g.
``sqlite3 results/index.sqlite "select run, time_s from points where machine = 'vm' and impl = 'numpy'"``.

The run folders stay the source of truth. Every read (:func:`sync`) lists them and compares fingerprints: a
run added, changed or removed since is re-read from its folder and the index updated in one transaction (a
crash mid-update leaves the old index; two processes updating at once serialise on SQLite's lock). A run
whose files changed within :data:`RACY_S` of being indexed is read again next time (a file rewritten within
the file system's timestamp resolution keeps its fingerprint). A missing, damaged or other-format index is
rebuilt; one that cannot be written (a read-only home) is read as far as it is current, the rest from the
folders. Each of these says so in one line on stderr (a first build of fewer than :data:`NOTICE_RUNS` runs
quietly; a reading command builds none below :data:`MIN_RUNS`). ``SOFTGRAD_INDEX=off`` reads the folders
alone; ``softgrad index --rebuild`` rebuilds it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import json
import os
import sqlite3
import sys
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import pathname2url

from .. import paths
from . import blocks, store
from .blocks import Block, BlockError

#: the environment variable that turns the index off (``off``: every command reads the run folders)
ENV = "SOFTGRAD_INDEX"
#: the modules whose code decides what a block holds (what is read, what is refused): an index written by
#: another version of any of them is rebuilt
READERS = ("softgrad.history.blocks", "softgrad.history.store", "softgrad.bench.asv_results", "softgrad.bench.sweep",
           "softgrad.bench.grid", "softgrad.stored", "softgrad.workloads", "softgrad.contract", "softgrad.prepared",
           "softgrad.registry")
#: the files whose size and modification time make a run's fingerprint (what a block is read from)
FILES = ("meta.json", "asv.json", "speed.json", "checks.json")
#: a run whose files were modified this close to its indexing is read again (timestamps are coarse)
RACY_S = 2.0
#: a reading command builds a missing index once the history holds this many runs (fewer read as fast from
#: their folders, and a command that fails then leaves the home as it was); ``softgrad run`` and ``softgrad
#: index`` build it at any size
MIN_RUNS = 20
#: this many runs new to the index (a first build, a history restored) say so before they are read
NOTICE_RUNS = 20
#: seconds a writer waits for another's transaction
BUSY_TIMEOUT_S = 120.0

Notice = Callable[[str], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, indexed_ns INTEGER NOT NULL,
    machine TEXT, date TEXT, commit_id TEXT, workload TEXT, grid TEXT, complete INTEGER NOT NULL,
    cpu TEXT, cores INTEGER, threads TEXT, copy_gbps REAL, error TEXT,
    facts TEXT NOT NULL, points BLOB, checks BLOB, machine_fingerprint TEXT);
CREATE TABLE IF NOT EXISTS points (
    run TEXT NOT NULL, machine TEXT, workload TEXT, impl TEXT NOT NULL, unresolved INTEGER NOT NULL,
    op TEXT NOT NULL, shape TEXT NOT NULL, batch INTEGER NOT NULL, n INTEGER NOT NULL, x_layout TEXT NOT NULL,
    g_layout TEXT NOT NULL, dtype TEXT NOT NULL, device TEXT NOT NULL,
    time_s REAL, q25_s REAL, q75_s REAL, ci99_low_s REAL, ci99_high_s REAL, repeats REAL, error_ratio REAL,
    first_call_s REAL, peakmem_bytes REAL, norm REAL, norm_q25 REAL, norm_q75 REAL, speed_s REAL);
CREATE INDEX IF NOT EXISTS points_by_run ON points (run);
CREATE INDEX IF NOT EXISTS points_by_point ON points (machine, op, dtype, batch, n);
CREATE TABLE IF NOT EXISTS verdicts (
    run TEXT NOT NULL, machine TEXT, impl TEXT NOT NULL, check_passed INTEGER, check_failed INTEGER,
    check_worst_ratio REAL, failed_cases TEXT);
CREATE INDEX IF NOT EXISTS verdicts_by_run ON verdicts (run);
"""
_POINT_COLUMNS = ("impl", "unresolved", "op", "shape", "batch", "n", "x_layout", "g_layout", "dtype", "device",
                  *blocks.VALUES)


@functools.lru_cache(maxsize=1)
def index_format() -> str:
    """What this softgrad writes: the index's and the block's formats and a digest of :data:`READERS`' code;
    an index of another format is rebuilt."""
    digest = hashlib.sha256()
    for name in READERS:
        module = importlib.import_module(name)
        try:
            digest.update(Path(module.__file__ or "").read_bytes())
        except OSError:  # no source file (a frozen install): the installed version stands for it
            digest.update(f"{name} {_version()}".encode())
    return f"softgrad-index/2 {blocks.FORMAT} {digest.hexdigest()[:16]}"


def _version() -> str:
    try:
        return importlib.metadata.version("softgrad")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class IndexDamaged(Exception):
    """The index file is damaged: SQLite cannot read it, or what it holds does not read back."""


class IndexUnavailable(Exception):
    """The index file cannot be read now (no permission, locked past the timeout, an I/O error)."""


def path() -> Path:
    """The index file: ``results/index.sqlite``."""
    return paths.results_dir() / "index.sqlite"


def enabled() -> bool:
    """Whether commands read the index (``SOFTGRAD_INDEX=off``: the run folders alone)."""
    return os.environ.get(ENV, "").strip().lower() not in ("off", "0", "no", "false")


def say(text: str) -> None:
    """The default notice: one line on stderr."""
    print(f"softgrad: {text}", file=sys.stderr, flush=True)


def fingerprint(folder: Path) -> str:
    """A run folder's fingerprint: the size and modification time (ns) of each of :data:`FILES` (or of its
    compressed ``.gz`` form, :mod:`softgrad.history.retention`), or that it is missing."""
    parts, base = [], os.fspath(folder) + os.sep
    for name in FILES:
        for stored in (name, name + ".gz"):
            try:
                st = os.stat(base + stored)
            except OSError:
                continue
            parts.append(f"{stored}:{st.st_size}:{st.st_mtime_ns}")
            break
        else:
            parts.append(f"{name}:-")
    return ";".join(parts)


@dataclass
class _Row:
    """A run as the index holds it: its fingerprint, when it was indexed, its facts."""

    fingerprint: str
    indexed_ns: int
    facts: str


@dataclass
class Snapshot:
    """Every run folder's block (facts only: :meth:`full` gives the columns) as of one :func:`sync`, oldest
    first; the runs read from their folders this time are held whole, the rest come from the index file."""

    runs: dict[str, Block] = field(default_factory=dict)
    fresh: dict[str, Block] = field(default_factory=dict)
    trusted: dict[str, _Row] = field(default_factory=dict)
    db: Path | None = None
    #: whether the runs read from their folders were stored (None: there was nothing to store)
    written: bool | None = None

    def full(self, ids: Iterable[str], checks: bool = False) -> dict[str, Block]:
        """The blocks of ``ids`` with their columns (and with ``checks``, their check records)."""
        ids = [i for i in ids if i in self.runs]
        out = {i: self.fresh[i] for i in ids if i in self.fresh}
        wanted = {i for i in ids if i not in out}
        if wanted:
            column = "checks" if checks else "points"
            marks = ", ".join("?" * len(wanted))
            for rid, fp, ns, data in _query(self.db, f"SELECT id, fingerprint, indexed_ns, {column} FROM runs "
                                                     f"WHERE id IN ({marks})", sorted(wanted)):
                row = self.trusted.get(rid)
                if rid not in wanted or row is None or (fp, ns) != (row.fingerprint, row.indexed_ns):
                    continue
                out[rid] = _with_checks(self.runs[rid], data) if checks else blocks.with_columns(self.runs[rid], data)
                wanted.discard(rid)
            # rewritten by another process since this one read it: read the folder
            out.update({i: blocks.from_folder(store.Run(store.runs_dir() / i)) for i in wanted})
        return {i: out[i] for i in ids}


def _with_checks(facts: Block, data: bytes | None) -> Block:
    if data is None:
        return facts
    try:
        checks = json.loads(zlib.decompress(data))
    except (zlib.error, ValueError) as exc:
        raise IndexDamaged(f"check records of run {facts.run} unreadable ({type(exc).__name__})") from None
    if not isinstance(checks, list):
        raise IndexDamaged(f"check records of run {facts.run} are not a list")
    return blocks.replace(facts, checks=checks)


def _connect(db: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        con = sqlite3.connect(f"file:{pathname2url(str(db))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S,
                              isolation_level=None)
    else:
        con = sqlite3.connect(str(db), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    return con


@contextlib.contextmanager
def _reading():
    """SQLite's errors while reading as :class:`IndexUnavailable` (cannot read now: locked, no permission, I/O)
    or :class:`IndexDamaged` (not a database, malformed)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise IndexUnavailable(str(exc)) from None
    except sqlite3.Error as exc:
        raise IndexDamaged(f"{type(exc).__name__}: {exc}") from None


def _query(db: Path | None, sql: str, params: Iterable = ()) -> list[tuple]:
    if db is None:
        return []
    with _reading():
        con = _connect(db, readonly=True)
        try:
            return con.execute(sql, tuple(params)).fetchall()
        finally:
            con.close()


def _writable(db: Path) -> sqlite3.Connection | None:
    """A connection that may write ``db`` (so it can roll back a crashed writer's journal), or None."""
    con = None
    try:
        con = _connect(db, readonly=False)
        con.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return con
    except sqlite3.OperationalError:
        if con is not None:
            con.close()
        return None


def _read(db: Path) -> tuple[dict[str, _Row], str | None]:
    """What the index file holds per run, and why it must be rebuilt (None: it need not; an index whose
    tables another process is creating reads as empty); :class:`IndexDamaged` when SQLite cannot read it.
    Opened for writing where it can be: a crashed writer's journal is rolled back then (a read-only
    connection cannot, and fails)."""
    with _reading():
        con = _writable(db) or _connect(db, readonly=True)
        try:
            con.execute("BEGIN")
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return {}, None
            if not {"info", "runs", "points", "verdicts"} <= tables:
                return {}, "not softgrad's index (tables missing)"
            fmt = con.execute("SELECT value FROM info WHERE key = 'format'").fetchone()
            if fmt is None or fmt[0] != index_format():
                return {}, "written by another version of softgrad"
            rows = con.execute("SELECT id, fingerprint, indexed_ns, facts FROM runs").fetchall()
            con.execute("COMMIT")
        finally:
            con.close()
    out = {}
    for rid, fp, ns, facts in rows:
        if not (isinstance(rid, str) and isinstance(fp, str) and isinstance(ns, int) and isinstance(facts, str)):
            raise IndexDamaged(f"a row of table runs of the wrong types ({str(rid)[:60]!r})")
        out[rid] = _Row(fp, ns, facts)
    return out, None


def _remove(db: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def _settled(row: _Row) -> bool:
    """Whether ``row`` was indexed well after its files were last written (else they may have changed within
    the timestamps' resolution, keeping their fingerprint)."""
    times = [int(p.rsplit(":", 1)[1]) for p in row.fingerprint.split(";") if p.count(":") == 2]
    return row.indexed_ns - int(RACY_S * 1e9) > max(times, default=0)


def sync(notice: Notice | None = None, rebuild: bool = False, create: bool = True) -> Snapshot:
    """The index brought up to date with the run folders (see the module docstring), as a :class:`Snapshot`;
    ``notice`` takes its one-line notices (default: :func:`say`). With ``rebuild``, every run is read from its
    folder again; without ``create``, a missing index of fewer than :data:`MIN_RUNS` runs is not made (the
    runs are read from their folders)."""
    notice = notice or say
    runs = store.all_runs()
    if not runs:
        return Snapshot()
    db = path()
    if not create and len(runs) < MIN_RUNS and not db.exists():
        return _from_folders(runs, None)
    prints = {r.id: fingerprint(r.folder) for r in runs}
    stored: dict[str, _Row] = {}
    reset = unreadable = None
    if db.exists():
        try:
            stored, reset = _read(db)
        except IndexDamaged as exc:
            unreadable = str(exc)
        except IndexUnavailable as exc:
            notice(f"index {db} cannot be read ({str(exc)[:120]}): reading the {len(runs)} run folders")
            return _from_folders(runs)
    trusted = {} if rebuild else {i: row for i, row in stored.items() if prints.get(i) == row.fingerprint
                                  and _settled(row)}
    stale = [r for r in runs if r.id not in trusted]
    removed = [i for i in stored if i not in prints]
    if unreadable or reset:
        notice(f"index {db} cannot be used ({(unreadable or reset)[:120]}): rebuilding it from the {len(runs)} "
               f"run folders")
    elif not rebuild:
        _say_stale(notice, db, stale, stored, prints, removed)
    fresh = {}
    for run in stale:  # the fingerprint and the time before the files are read
        fresh[run.id] = (fingerprint(run.folder), time.time_ns(), blocks.from_folder(run))
    written = None
    if fresh or removed or reset or unreadable:
        written = _write(db, fresh, removed, rebuild or bool(reset), bool(unreadable), notice)
    snap = Snapshot(db=db if db.exists() else None, written=written)
    for run in runs:
        if run.id in fresh:
            snap.runs[run.id] = snap.fresh[run.id] = fresh[run.id][2]
            continue
        try:
            snap.runs[run.id] = blocks.from_facts(run.id, trusted[run.id].facts)
        except BlockError as exc:
            notice(f"index {db} cannot be used ({str(exc)[:120]}): rebuilding it from the run folders")
            return sync(_quiet, rebuild=True)
        snap.trusted[run.id] = trusted[run.id]
    return snap


def _from_folders(runs: list[store.Run], written: bool | None = False) -> Snapshot:
    snap = Snapshot(written=written)
    snap.runs = snap.fresh = {r.id: blocks.from_folder(r) for r in runs}
    return snap


def _quiet(text: str) -> None:
    pass


def read(want: Callable[[dict[str, Block]], Iterable[str]], checks: bool = False,
         notice: Notice | None = None) -> tuple[dict[str, Block], dict[str, Block]]:
    """Every run's block (facts only), oldest first, and the blocks whose ids ``want`` picks from those whole
    (columns; with ``checks``, check records): the index synced first, rebuilt if a block does not read back."""
    notice = notice or say
    snap = sync(notice, create=False)
    try:
        return snap.runs, snap.full(want(snap.runs), checks)
    except (IndexDamaged, IndexUnavailable, BlockError) as exc:
        notice(f"index {path()} cannot be used ({str(exc)[:120]}): rebuilding it from the run folders")
        snap = sync(_quiet, rebuild=True)
        return snap.runs, snap.full(want(snap.runs), checks)


def _say_stale(notice: Notice, db: Path, stale: list[store.Run], stored: dict[str, _Row], prints: dict[str, str],
               removed: list[str]) -> None:
    """One line when runs changed or went since they were indexed, or many are new (a first build); a run
    indexed while it was being written is read again quietly."""
    changed = [r.id for r in stale if r.id in stored and stored[r.id].fingerprint != prints[r.id]
               and _settled(stored[r.id])]
    added = [r.id for r in stale if r.id not in stored]
    if changed or removed:
        named = ", ".join([*changed, *removed][:3]) + (", ..." if len(changed) + len(removed) > 3 else "")
        notice(f"index {db}: {len(changed)} runs changed and {len(removed)} removed since it was written "
               f"({named}): read again from their folders")
    elif len(added) >= NOTICE_RUNS:
        what = "is missing" if not stored else f"lacks {len(added)} runs"
        notice(f"index {db} {what}: reading {len(added)} run folders into it (later commands read the index)")


def _write(db: Path, fresh: dict[str, tuple[str, int, Block]], removed: list[str], reset: bool, unreadable: bool,
           notice: Notice) -> bool:
    """Store ``fresh`` and forget ``removed`` in one transaction (``reset``: drop everything first;
    ``unreadable``: a file SQLite cannot read is deleted first); whether it was written (a read-only home: one
    line, and False)."""
    try:
        if unreadable:
            _remove(db)
        db.parent.mkdir(parents=True, exist_ok=True)
        con = _connect(db, readonly=False)
        try:
            con.execute("BEGIN IMMEDIATE")
            if reset:
                for table in ("points", "verdicts", "runs", "info"):
                    con.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.execute("INSERT OR REPLACE INTO info VALUES ('format', ?)", (index_format(),))
            gone = [(i,) for i in (*removed, *fresh)]
            con.executemany("DELETE FROM runs WHERE id = ?", gone)
            con.executemany("DELETE FROM points WHERE run = ?", gone)
            con.executemany("DELETE FROM verdicts WHERE run = ?", gone)
            for rid, (fp, ns, block) in fresh.items():
                _insert(con, rid, fp, ns, block)
            con.execute("COMMIT")
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()
    except (sqlite3.Error, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        notice(f"index {db} cannot be written ({reason}): {len(fresh)} runs read from their folders")
        return False
    return True


def _insert(con: sqlite3.Connection, rid: str, fp: str, ns: int, block: Block) -> None:
    info = block.info
    error = block.meta_error or block.asv_error or block.points_error or block.checks_error
    threads = info.get("threads")
    con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
        rid, fp, ns, _text(info.get("machine")), _text(info.get("date")), _text(block.commit),
        _text(info.get("workload")), _text(info.get("grid")), int(block.complete), _text(info.get("cpu")),
        info.get("cores") if isinstance(info.get("cores"), int) and abs(info["cores"]) < 2**63 else None,
        None if threads is None else str(threads), _real(info.get("copy_gbps")), error,
        blocks.facts_json(block), blocks.columns_bytes(block) if block.columns else None,
        zlib.compress(json.dumps(block.checks).encode(), 1) if block.checks is not None else None,
        _text(info.get("fingerprint"))))
    machine, workload = _text(info.get("machine")), _text(info.get("workload"))
    con.executemany("INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)", [
        (rid, machine, impl, c["check_passed"], c["check_failed"], _real(c["check_worst_ratio"]),
         "; ".join(c["failed_cases"])) for impl, c in (block.check_summary or {}).items()])
    if block.points:
        cols = [block.columns[c].tolist() for c in _POINT_COLUMNS]
        con.executemany(f"INSERT INTO points VALUES ({', '.join('?' * (3 + len(cols)))})",
                        [(rid, machine, workload, *row) for row in zip(*cols)])


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _real(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def status() -> dict[str, object]:
    """What the index holds: its file, size, runs (complete) and points."""
    db = path()
    rows = _query(db, "SELECT count(*), sum(complete) FROM runs") if db.exists() else [(0, 0)]
    points = _query(db, "SELECT count(*) FROM points")[0][0] if db.exists() else 0
    return {"path": str(db), "bytes": db.stat().st_size if db.exists() else 0, "runs": rows[0][0] or 0,
            "complete": rows[0][1] or 0, "points": points}
