"""What one run folder gives the history, read once: a :class:`Block`.

A block is a function of its run folder alone (``meta.json``, ``asv.json``, ``speed.json``, ``checks.json``):
the facts other runs need (commit, library versions, whether it has checks), the run's columns of
:func:`softgrad.history.results.load` (one value per run) and its points (one row per implementation x op x
shape x dtype x device, as arrays), its check summary and records. Nothing in it depends on other runs or on
the registry, so the index (:mod:`softgrad.history.index`) keeps one per run and re-reads only the runs whose
files changed, and :func:`softgrad.history.results.load` assembles the same frame from blocks read from the
index or straight from the folders.

A stored file softgrad refuses is kept as the error it raised (``meta_error``, ``asv_error``,
``checks_error``, ``points_error``): :mod:`softgrad.history.results` raises it where reading the folder
raises it, when the run is used, never while indexing. :func:`pack` and :func:`unpack` turn a block into
bytes and back (JSON and raw little-endian arrays, zlib-compressed: its checksum catches a damaged copy).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..bench import asv_results, grid
from ..contract import DTYPE_INFO
from ..workloads import name_in_json, parse_shape_token
from . import store

#: the per-point text columns of a block, in the frame's order
TEXT = ("impl", "op", "shape", "x_layout", "g_layout", "dtype", "device")
#: the per-point integer columns
INTS = ("batch", "n", "bytes_moved")
#: the per-point measurements (NaN where not measured), in the frame's order: asv's and ``speed.json``'s
VALUES = ("time_s", "q25_s", "q75_s", "ci99_low_s", "ci99_high_s", "repeats", "error_ratio", "first_call_s",
          "peakmem_bytes", "norm", "norm_q25", "norm_q75", "speed_s")
#: derived within the run: the first call's excess over a warm one, at the nearest tracked row length
EXCESS = "first_call_excess_s"
#: which points name an implementation the run's ``meta.json`` does not list (their ``impl`` is the asv class
#: name; :mod:`softgrad.history.results` maps it through the registry of the reading process, or drops them)
UNRESOLVED = "unresolved"
FLOATS = (*VALUES, EXCESS)
VERSION_COLUMNS = ("numpy", "numba", "torch", "jax")


class BlockError(ValueError):
    """Packed bytes that are not a block (a damaged index)."""


class Unresolved(str):
    """An asv class name that the run's ``meta.json`` does not map to an implementation."""


class _Resolver(dict):
    """``impl_of`` for :func:`softgrad.bench.asv_results.rows`: the run's own names, any other class kept as
    :class:`Unresolved` (resolved later, by the reading process's registry)."""

    def get(self, key: Any, default: Any = None) -> Any:
        found = super().get(key)
        return found if found is not None else Unresolved(key)


@dataclass
class Block:
    """One run folder's contribution (see the module docstring); ``columns`` holds one array per point column."""

    run: str
    has_meta: bool = False
    meta_error: str | None = None
    complete: bool = False
    commit: str | None = None
    versions: Any = None
    has_checks: bool = False
    checks_error: str | None = None
    check_summary: dict[str, dict[str, Any]] | None = None
    #: the run's columns of the frame (:data:`softgrad.history.results.RUN_COLUMNS` and the library versions)
    info: dict[str, Any] = field(default_factory=dict)
    build_s: dict[str, Any] = field(default_factory=dict)
    has_asv: bool = False
    asv_error: str | None = None
    #: the first error reading the points past ``asv.json``'s structure (its benchmarks, then ``speed.json``)
    points_error: str | None = None
    #: the run's points (rows of the frame); ``columns`` holds them, or is empty until read from the index
    points: int = 0
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    #: the check records (for :func:`softgrad.history.results.load_checks`); None without a readable checks.json
    checks: list[dict[str, Any]] | None = None
    #: which points the run measured and which it timed (:func:`points_key`): of the runs of one machine with the
    #: same key only the newest can hold an entry's newest measurement of a point
    points_key: str = ""


def check_summary(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per implementation: checks passed and failed, the worst error ratio, the failed cases."""
    out: dict[str, dict[str, Any]] = {}
    for r in checks:
        s = out.setdefault(r["impl"], {"check_passed": 0, "check_failed": 0, "check_worst_ratio": math.nan,
                                       "failed_cases": []})
        if r.get("verdict") == "pass":
            s["check_passed"] += 1
        elif r.get("verdict") == "fail":
            s["check_failed"] += 1
            s["failed_cases"].append(f"{r['op']} {r['dtype']} {r['case']}")
        ratio = r.get("ratio")
        if ratio is not None and not (isinstance(ratio, float) and math.isnan(ratio)):
            s["check_worst_ratio"] = ratio if math.isnan(s["check_worst_ratio"]) else max(s["check_worst_ratio"], ratio)
    return out


def workload_name(meta: dict[str, Any]) -> str:
    """The run's workload: ``default`` for the default grid, else the name it stored (unreadable: ``?``)."""
    raw = meta.get("workload")
    return name_in_json(raw) if raw else "default"


def run_info(run_id: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The run's columns of the frame, from its ``meta.json``."""
    info = {
        "run": run_id,
        "date": meta.get("date"),
        "machine": meta.get("machine"),
        "cpu": meta.get("cpu"),
        "cores": meta.get("cores"),
        "commit": (meta.get("commit") or "")[:8],
        "grid": meta.get("grid"),
        "workload": workload_name(meta),
        "threads": (meta.get("threads") or {}).get("requested") or "default",
        "copy_gbps": (meta.get("copy_bandwidth") or {}).get("gbps", math.nan),
        "fill_gbps": (meta.get("fill_bandwidth") or {}).get("gbps", math.nan),  # NaN: stored before it was measured
        "llc_bytes": meta.get("llc_bytes") or math.nan,
        # the machine's fingerprint (softgrad.history.provenance), as JSON text; None: stored before it
        "fingerprint": json.dumps(meta["fingerprint"], sort_keys=True) if isinstance(meta.get("fingerprint"), dict)
        else None,
    }
    for lib in VERSION_COLUMNS:
        info[lib] = (meta.get("versions") or {}).get(lib, "")
    return info


def from_folder(run: store.Run) -> Block:
    """The block of ``run``'s folder; a refused file is kept as its error, never raised."""
    block = Block(run.id)
    if not run.meta_path.exists():
        return block
    block.has_meta = True
    try:
        meta = run.meta()
    except store.StoreError as exc:
        block.meta_error = str(exc)
        return block
    block.complete = bool(meta.get("complete"))
    block.commit, block.versions = meta.get("commit"), meta.get("versions")
    block.info, block.build_s = run_info(run.id, meta), dict(meta.get("build_s") or {})
    block.has_checks = run.has_checks
    if block.has_checks:
        try:
            block.checks = run.checks()
        except store.StoreError as exc:
            block.checks_error = str(exc)
        else:
            block.check_summary = check_summary(block.checks)
    try:
        data = run.asv()
    except store.StoreError as exc:
        block.asv_error = str(exc)
        return block
    if data is None:
        return block
    block.has_asv = True
    impl_of = _Resolver({grid.class_name(n): n for n in meta.get("impls", [])})
    try:
        measured = asv_results.rows(data, impl_of, str(run.folder / "asv.json"))
        speed = run.speed()
    except store.StoreError as exc:
        block.points_error = str(exc)
        return block
    block.columns = _columns(measured, speed)
    block.points = len(measured)
    block.points_key = points_key(block)
    return block


#: a point of one entry, as :func:`softgrad.history.results.newest_per_entry` groups them
ENTRY_POINT = ("impl", "op", "batch", "n", "x_layout", "g_layout", "dtype", "device")


def points_key(block: Block) -> str:
    """A digest of the entry points ``block`` measured (:data:`ENTRY_POINT`), each with whether it was timed;
    the run id itself where an entry is :class:`Unresolved` (the reading process's registry names it)."""
    if block.columns[UNRESOLVED].any():
        return f"run {block.run}"
    timed = ~np.isnan(block.columns["time_s"])
    keys = sorted(zip(*(block.columns[c].tolist() for c in ENTRY_POINT), timed.tolist()))
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:32]


def _columns(measured: dict[tuple, dict[str, Any]], speed: dict[tuple, dict[str, float]]) -> dict[str, np.ndarray]:
    text: dict[str, list] = {c: [] for c in TEXT}
    ints: dict[str, list] = {c: [] for c in INTS}
    values = np.full((len(measured), len(VALUES)), np.nan)
    where = {c: k for k, c in enumerate(VALUES)}
    unresolved = []
    for i, (key, got) in enumerate(measured.items()):
        impl, op, shape, dtype, device = key
        batch, n = grid.parse_shape(shape)
        _, x_layout, g_layout = parse_shape_token(shape)
        for c, v in zip(TEXT, (str(impl), op, shape, x_layout, g_layout, dtype, device)):
            text[c].append(v)
        unresolved.append(isinstance(impl, Unresolved))
        for c, v in zip(INTS, (batch, n, grid.bytes_moved(op, batch, n, DTYPE_INFO[dtype].itemsize, g_layout))):
            ints[c].append(v)
        for c, v in (*got.items(), *speed.get(key, {}).items()):
            values[i, where[c]] = v
    columns: dict[str, np.ndarray] = {c: _text_array(v) for c, v in text.items()}
    columns.update({c: np.array(v, dtype=np.int64) for c, v in ints.items()})
    columns.update({c: values[:, k].copy() for c, k in where.items()})
    columns[UNRESOLVED] = np.array(unresolved, dtype=bool)
    columns[EXCESS] = _nearest_tracked(columns)
    return columns


def _text_array(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def nearest_tracked(values: np.ndarray, keys: list, n: np.ndarray) -> np.ndarray:
    """``values`` with each missing (non-finite) one taken from the same key (``keys``: one sequence per part
    of it) at the nearest row length ``n`` in log2 where it is known (the first such where two are as near)."""
    out = np.array(values, dtype=float)
    log_n = np.log2(np.asarray(n, dtype=float))
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*keys)):
        groups.setdefault(key, []).append(i)
    for idx in groups.values():
        known = [i for i in idx if np.isfinite(values[i])]
        if not known:
            continue
        for i in idx:
            if not np.isfinite(values[i]):
                out[i] = values[min(known, key=lambda k: abs(log_n[k] - log_n[i]))]
    return out


def _nearest_tracked(columns: dict[str, np.ndarray]) -> np.ndarray:
    """The first call's excess over a warm call (clipped at 0), at the nearest tracked row length of the same
    implementation, op, batch, dtype and device where the first call was not tracked."""
    excess = np.clip(columns["first_call_s"] - columns["time_s"], 0, None)
    return nearest_tracked(excess, [columns[c] for c in ("impl", "op", "batch", "dtype", "device")], columns["n"])


# --- bytes ---------------------------------------------------------------------------------------------------

#: bumped whenever what a block holds, or how it is packed, changes: an index of another format is rebuilt
FORMAT = "softgrad-block/2"
_FACTS = ("has_meta", "meta_error", "complete", "commit", "versions", "has_checks", "checks_error",
          "check_summary", "info", "build_s", "has_asv", "asv_error", "points_error", "points", "points_key")


def facts_json(block: Block) -> str:
    """Everything in ``block`` but its columns and check records, as JSON (:func:`from_facts` reads it)."""
    return json.dumps({"format": FORMAT, "run": block.run, **{k: getattr(block, k) for k in _FACTS}})


def from_facts(run_id: str, text: str) -> Block:
    """The block :func:`facts_json` wrote for ``run_id`` (no columns yet); :class:`BlockError` for anything else."""
    try:
        facts = json.loads(text)
        if not isinstance(facts, dict) or facts.get("format") != FORMAT or facts.get("run") != run_id:
            raise BlockError(f"the facts of run {run_id[:60]!r} are not a block of format {FORMAT}")
        block = Block(run_id, **{k: facts[k] for k in _FACTS})
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise BlockError(f"the facts of run {run_id[:60]!r} are unreadable ({type(exc).__name__})") from None
    if not (isinstance(block.points, int) and block.points >= 0 and isinstance(block.info, dict)
            and isinstance(block.points_key, str)
            and isinstance(block.build_s, dict)
            and (block.check_summary is None or isinstance(block.check_summary, dict))):
        raise BlockError(f"the facts of run {run_id[:60]!r} have fields of the wrong types")
    return block


def columns_bytes(block: Block) -> bytes:
    """``block``'s columns as bytes, zlib-compressed: a JSON header (the row count and each text column's
    values), then the text columns as indices into their values (uint32), the integer columns (int64), the
    float columns (float64) and :data:`UNRESOLVED` (a byte), each kind one little-endian array of rows x columns."""
    vocab, codes = [], []
    for name in TEXT:
        values = block.columns[name].tolist()
        vocab.append(list(dict.fromkeys(values)))
        index = {v: k for k, v in enumerate(vocab[-1])}
        codes.append([index[v] for v in values])
    head = json.dumps({"rows": block.points, "vocab": vocab}).encode()
    body = [np.array(codes, dtype="<u4").reshape(len(TEXT), block.points),
            np.array([block.columns[c] for c in INTS], dtype="<i8").reshape(len(INTS), block.points),
            np.array([block.columns[c] for c in FLOATS], dtype="<f8").reshape(len(FLOATS), block.points),
            block.columns[UNRESOLVED].astype("u1")]
    return zlib.compress(struct.pack("<Q", len(head)) + head + b"".join(a.tobytes() for a in body), 1)


#: bytes a point takes in :func:`columns_bytes`'s body
_ROW_BYTES = 4 * len(TEXT) + 8 * len(INTS) + 8 * len(FLOATS) + 1


def with_columns(facts: Block, data: bytes | None) -> Block:
    """``facts`` (from :func:`from_facts`) with the columns :func:`columns_bytes` packed; :class:`BlockError`
    when they do not read back as the block's (a damaged index)."""
    rows = facts.points
    if data is None:
        if rows:
            raise BlockError(f"run {facts.run}: {rows} points recorded, none stored")
        return dataclasses.replace(facts, columns={})
    try:
        raw = zlib.decompress(data)  # its checksum catches a damaged copy
        (size,) = struct.unpack_from("<Q", raw)
        head = json.loads(raw[8:8 + size])
        vocab = head["vocab"]
        body = memoryview(raw)[8 + size:]
        if (head["rows"] != rows or len(body) != rows * _ROW_BYTES or len(vocab) != len(TEXT)
                or {type(v) for values in vocab for v in values} - {str}):
            raise BlockError(f"run {facts.run}: the packed points are not {rows} rows of this format")
        codes = np.frombuffer(body, "<u4", len(TEXT) * rows).reshape(len(TEXT), rows)
        at = codes.nbytes
        ints = np.frombuffer(body, "<i8", len(INTS) * rows, at).reshape(len(INTS), rows)
        at += ints.nbytes
        floats = np.frombuffer(body, "<f8", len(FLOATS) * rows, at).reshape(len(FLOATS), rows)
        unresolved = np.frombuffer(body, "u1", rows, at + floats.nbytes)
    except BlockError:
        raise
    except (zlib.error, struct.error, ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
        raise BlockError(f"run {facts.run}: the points are not a packed block ({type(exc).__name__})") from None
    if rows and (any(int(c.max()) >= len(v) for c, v in zip(codes, vocab)) or int(unresolved.max()) > 1):
        raise BlockError(f"run {facts.run}: the packed points point past their values")
    columns = {name: _text_array(values)[c] for name, values, c in zip(TEXT, vocab, codes)}
    columns.update({name: ints[k].astype(np.int64, copy=False) for k, name in enumerate(INTS)})
    columns.update({name: floats[k].astype(np.float64, copy=False) for k, name in enumerate(FLOATS)})
    columns[UNRESOLVED] = unresolved.astype(bool)
    return dataclasses.replace(facts, columns=columns)


def replace(block: Block, **fields: Any) -> Block:
    """``block`` with ``fields`` replaced."""
    return dataclasses.replace(block, **fields)
