"""softgrad's run history on disk: one folder per run, written atomically, never rewritten.

``results/runs/<run id>/`` holds ``meta.json`` (machine, commit, versions, threads, copy bandwidth, grid,
whether the run completed), ``checks.json`` (the correctness records) and ``asv.json`` (a copy of asv's
results for the run's commit, taken when the run ends); an old run's files may be kept compressed
(``checks.json.gz``, ``asv.json.gz``, see :mod:`softgrad.history.retention`) and read the same. asv itself keeps one results file per machine x
commit x environment, so two runs of one commit would leave one point there; this history keeps both.

Each file is checked where it is read (:data:`META`, :data:`CHECK_RECORD`,
:func:`softgrad.bench.asv_results.check_asv`): a file that cannot be read or parsed, or whose fields do
not have the types softgrad's readers use, is a :class:`StoreError` naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from .. import paths
from ..bench.agreement import AGREEMENT
from ..bench.asv_results import check_asv
from ..bench.sweep import SPEED
from ..stored import (BOOL, COUNT, NUMBER, OBJECT, POSITIVE, POSITIVE_INT, SCALAR, STR, Fields, ListOf, MapOf, OneOf, StoreError,
                      check, kind_of, read_json, stored_path, write_json)

__all__ = ["FORMAT", "META", "CHECK_RECORD", "CHECKS", "SPEED", "AGREEMENT", "Run", "StoreError", "all_runs", "complete_runs", "create_run",
           "latest_incomplete", "new_run_id", "read_json", "runs_dir", "write_json"]

FORMAT = "softgrad-run/1"

def runs_dir() -> Path:
    return paths.results_dir() / "runs"


#: ``meta.json``: what :func:`softgrad.history.provenance.snapshot` and the runner write, as the readers use it
#: (results, report, choose, compare, ``run --resume``). Every field but ``format`` may be missing (a run
#: stores its meta in steps).
META = Fields({
    "format": STR,
    "id": STR,
    "date": STR.or_null(),
    "commit": STR.or_null(),
    "dirty": BOOL,
    "complete": BOOL,
    "machine": STR,
    "hostname": STR.or_null(),
    "fingerprint": OBJECT,  # softgrad.history.provenance.fingerprint(); runs stored before it have none
    "cpu": STR.or_null(),
    "cores": POSITIVE_INT.or_null(),
    "memory_gib": NUMBER.or_null(),
    "llc_bytes": COUNT.or_null(),
    "os": STR.or_null(),
    "arch": STR.or_null(),
    "python": STR.or_null(),
    "grid": OneOf("full", "quick"),
    "workload": STR,
    "impls": ListOf(STR, "a list of str"),
    "rounds": POSITIVE_INT,
    "plugins": ListOf(STR, "a list of str"),
    "distributions": MapOf(Fields({"distribution": STR, "version": STR}, what="a distribution"),
                           "an object of distributions"),
    "families_done": ListOf(STR, "a list of str"),
    "versions": MapOf(STR.or_null(), "an object of str"),
    "threads": Fields({"requested": POSITIVE_INT.or_null()}, rest=SCALAR),
    "copy_bandwidth": Fields({"gbps": POSITIVE, "method": STR, "buffer_bytes": COUNT, "repeats": COUNT}),
    # measured beside the copy (softgrad.bench.bandwidth.fill_bandwidth): runs stored before it have none
    "fill_bandwidth": Fields({"gbps": POSITIVE, "method": STR, "buffer_bytes": COUNT, "repeats": COUNT}),
    "build_s": MapOf(NUMBER.or_null(), "an object of numbers"),
    "seconds": NUMBER,
    "load": MapOf(MapOf(MapOf(NUMBER, "an object of numbers"), "an object of objects"), "an object of objects"),
}, required=("format",))
#: what a complete run must hold besides: its rows are keyed by machine and its entries named from ``impls``
COMPLETE_REQUIRED = ("machine", "impls")


def _check_meta(meta: dict[str, Any], path: Path, where: str = "") -> None:
    """:class:`StoreError` naming ``path`` unless ``meta`` fits :data:`META` and, once complete, holds
    :data:`COMPLETE_REQUIRED`."""
    check(META, meta, path, where)
    missing = [f for f in COMPLETE_REQUIRED if meta.get("complete") is True and f not in meta]
    if missing:
        raise StoreError(f"{path}: {where}a complete run without field '{missing[0]}'")

#: one record of ``checks.json`` (:class:`softgrad.check.checker.Record`): the fields the readers use are required
CHECK_RECORD = Fields({
    "impl": STR,
    "family": STR,
    "op": STR,
    "dtype": STR,
    "device": STR,
    "case": STR,
    "shape": ListOf(COUNT, "a list of non-negative integers"),
    "verdict": OneOf("pass", "fail", "skip"),
    "failed": ListOf(STR, "a list of str"),
    "max_abs_err": NUMBER.or_null(),
    "max_rel_err": NUMBER.or_null(),
    "max_ulp_err": NUMBER.or_null(),
    "ratio": NUMBER.or_null(),
    "tolerance": STR,
    "message": STR.or_null(),
    "seconds": NUMBER,
}, required=("impl", "op", "dtype", "device", "case", "verdict", "message"), what="a check record")
#: ``checks.json``: one :data:`CHECK_RECORD` per (impl, op, dtype, device, case)
CHECKS = ListOf(CHECK_RECORD, "a list of check records")


def new_run_id(commit: str | None) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{(commit or 'nocommit')[:8]}"


class Run:
    """One stored run (a folder under :func:`runs_dir`)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def meta_path(self) -> Path:
        return self.folder / "meta.json"

    def meta(self) -> dict[str, Any]:
        """The run's ``meta.json``; :class:`StoreError` naming the file and the field when a field
        softgrad reads has the wrong type (see :data:`META`)."""
        meta = read_json(self.meta_path)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise StoreError(f"{self.meta_path}: not a softgrad run (expected format {FORMAT!r})")
        _check_meta(meta, self.meta_path)
        return meta

    def update_meta(self, **fields: Any) -> dict[str, Any]:
        meta = self.meta() if self.meta_path.exists() else {"format": FORMAT, "id": self.id}
        meta.update(fields)
        _check_meta(meta, self.meta_path, "refused to write: ")
        write_json(self.meta_path, meta, META)
        return meta

    @property
    def complete(self) -> bool:
        """Whether the run finished; a corrupt or foreign ``meta.json`` raises :class:`StoreError`."""
        return bool(self.meta().get("complete"))

    @property
    def has_checks(self) -> bool:
        """Whether the run stored correctness records (``checks.json``, plain or compressed)."""
        return stored_path(self.folder / "checks.json") is not None

    def checks(self) -> list[dict[str, Any]]:
        """The run's correctness records ([] without ``checks.json``); :class:`StoreError` naming the file,
        the record and the field when one lacks a field softgrad reads or has it in the wrong type."""
        path = self.folder / "checks.json"
        if not self.has_checks:
            return []
        data = read_json(path)
        if not isinstance(data, list):
            raise StoreError(f"{path}: not a list of softgrad check records (a {kind_of(data)})")
        for k, record in enumerate(data):
            check(CHECK_RECORD, record, path, f"record {k}: ")
        return data

    def asv(self) -> dict[str, Any] | None:
        """The run's copy of asv's results (None without ``asv.json``), checked by :func:`check_asv`."""
        path = self.folder / "asv.json"
        if stored_path(path) is None:
            return None
        return check_asv(read_json(path), path)

    def speed(self) -> dict[tuple[str, ...], dict[str, float]]:
        """The run's times over the machine's speed (``speed.json``, :func:`softgrad.bench.sweep.normalized`)
        keyed by (impl, op, shape, dtype, device); {} without the file."""
        path = self.folder / "speed.json"
        if stored_path(path) is None:
            return {}
        data = read_json(path)
        check(SPEED, data, path)
        out = {}
        for label, values in data["benchmarks"].items():
            key = tuple(label.split(" "))
            if len(key) != 5:
                raise StoreError(f"{path}: benchmark {label[:80]!r} is not 'impl op shape dtype device'")
            out[key] = {k: float(values[k]) for k in ("norm", "norm_q25", "norm_q75", "speed_s") if k in values}
        return out

    def agreement(self) -> list[dict[str, Any]]:
        """The run's agreement points ([] without ``agreement.json``), checked by :data:`AGREEMENT`."""
        path = self.folder / "agreement.json"
        if stored_path(path) is None:
            return []
        data = read_json(path)
        check(AGREEMENT, data, path)
        return data["points"]


def create_run(commit: str | None) -> Run:
    run = Run(runs_dir() / new_run_id(commit))
    run.folder.mkdir(parents=True, exist_ok=False)
    return run


def all_runs() -> list[Run]:
    """Every stored run, oldest first (run ids sort by time)."""
    if not runs_dir().is_dir():
        return []
    return [Run(p) for p in sorted(runs_dir().iterdir()) if p.is_dir() and not p.name.startswith(".")]


def complete_runs() -> list[Run]:
    """Runs that finished, oldest first; a corrupt or foreign ``meta.json`` raises :class:`StoreError`."""
    return [r for r in all_runs() if r.meta_path.exists() and r.meta().get("complete")]


def latest_incomplete() -> Run | None:
    runs = [r for r in all_runs() if r.meta_path.exists() and not r.complete]
    return runs[-1] if runs else None
