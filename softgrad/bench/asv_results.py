"""asv's results files, read: what softgrad takes from them and how it checks them first.

:func:`rows` gives the ``bench_ops`` (default grid) and ``bench_workloads`` (a workload's) benchmarks of one
results file keyed by ``(impl, op, shape, dtype, device)`` (a run holds one grid's); :func:`check_asv` is the
structure check it (and the run history) applies before reading.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
from pathlib import Path
from typing import Any

from ..contract import DEVICE_NAME, DTYPE_INFO, DTYPES, OPS
from ..workloads import parse_shape_token
from . import grid
from ..stored import NUMBER, OBJECT, STR, Fields, ListOf, MapOf, Shape, StoreError, check, one_line

#: asv benchmark kind -> DataFrame column
KINDS = {
    "time_op": "time_s",
    "track_error_ratio": "error_ratio",
    "track_first_call_s": "first_call_s",
    "peakmem_op": "peakmem_bytes",
}
_NUMBERS = ListOf(NUMBER.or_null(), "a list of numbers").or_null()
#: the columns of one asv result row that softgrad reads, and what each must be
ASV_COLUMNS = {"result": _NUMBERS, "params": ListOf(ListOf(STR, "a list of str"), "a list of lists of str"),
               **{f"stats_{s}": _NUMBERS for s in ("ci_99_a", "ci_99_b", "q_25", "q_75", "repeat")}}
#: ``asv.json``: asv's results file for the run's commit (results: benchmark name -> one row per
#: ``result_columns``)
ASV = Fields({"results": MapOf(Shape("a list", lambda v: isinstance(v, list)), "an object of lists"),
              "result_columns": ListOf(STR, "a list of str"),
              "params": OBJECT}, required=("results", "params"), what="an asv results object")


def check_asv(data: Any, path: Path | str) -> dict[str, Any]:
    """``data`` (an asv results file's contents) when each benchmark's row has the columns softgrad reads
    in the types it reads them; else :class:`StoreError` naming the file and the benchmark."""
    check(ASV, data, path, "not an asv results file: ")
    cols = data.get("result_columns") or []
    for name, row in data["results"].items():
        rec = dict(zip(cols, row))
        for col, shape in ASV_COLUMNS.items():
            if col in rec:
                p = shape.problem(rec[col], col)
                if p:
                    raise StoreError(f"{path}: benchmark {one_line(name, 80)}: {one_line(p, 200)}")
    return data


#: largest batch or row length a stored shape may name
MAX_DIM = 2**31
#: a benchmark moves fewer bytes than this (the ``bytes_moved`` column is an int64)
MAX_BYTES = 2**62


#: a default-grid (``bench_ops``) shape: the grid's are all ``BATCHxN`` (:func:`softgrad.bench.grid.shape_name`)
_GRID_SHAPE = re.compile(r"[1-9][0-9]*x[1-9][0-9]*")


def _param_problem(label: str, value: Any, default_grid: bool) -> str | None:
    """What is wrong with one of a benchmark's parameter values (op, shape, dtype, device), or None
    (``default_grid``: a ``bench_ops`` benchmark, whose shapes are ``BATCHxN``)."""
    if STR.problem(value) is not None:
        return f"{label} {one_line(repr(value), 40)} is not a str of UTF-8 text"
    if label == "op" and value not in OPS:
        return f"op {one_line(repr(value), 40)} is not one of {', '.join(OPS)}"
    if label == "dtype" and value not in DTYPES:
        return f"dtype {one_line(repr(value), 40)} is not one of {', '.join(DTYPES)}"
    if label == "shape":
        try:
            dims = parse_shape_token(value)[0] if len(value) <= 200 else ()
        except ValueError:
            dims = ()
        if not dims or len(dims) > 8 or not all(1 <= d <= MAX_DIM for d in dims) or math.prod(dims) > MAX_DIM**2:
            return (f"shape {one_line(repr(value), 40)} is not AxBx...xN (1 to 8 dims from 1 to 2**31, optionally "
                    f":x=<layout> and :g=<layout>)")
        if default_grid and not _GRID_SHAPE.fullmatch(value):
            return f"shape {one_line(repr(value), 40)} is not BATCHxN (the default grid's shapes are)"
    if label == "device" and re.fullmatch(DEVICE_NAME, value) is None:
        return f"device {one_line(repr(value), 40)} is not a device's name (cpu, cuda, cuda:1, ...)"
    return None


def _params(rec: dict[str, Any], name: str, source: str, default_grid: bool) -> list[list[str]]:
    """A benchmark's parameter lists (op, shape, dtype, device), every value checked (:func:`_param_problem`)."""
    raw = rec.get("params")
    if not isinstance(raw, list) or len(raw) != 4:
        raise StoreError(f"{source}: benchmark {name} has malformed params (not 4 lists: op, shape, "
                               f"dtype, device)")
    params = []
    for label, texts in zip(("op", "shape", "dtype", "device"), raw):
        values = []
        for text in texts:
            try:  # asv stores each value as its repr; a hostile string can also exhaust the parser
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
                raise StoreError(f"{source}: benchmark {name} has malformed params: {label} "
                                       f"{one_line(repr(text), 40)} is not a Python literal") from None
            problem = _param_problem(label, value, default_grid)
            if problem:
                raise StoreError(f"{source}: benchmark {name} has malformed params: {problem}")
            values.append(value)
        params.append(values)
    return params


#: the per-combination columns of a result row: one value per combination of the params, as asv writes them
_PER_COMBINATION = ("result", "stats_ci_99_a", "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_repeat")


def _check_lined_up(rec: dict[str, Any], params: list[list[Any]], column: str, bench: str, source: str) -> None:
    """:class:`StoreError` unless each per-combination list holds one value per combination of the params (no
    param value repeated) and every figure is one its kind can take: a time, a peak or their quartiles above 0
    (a repeat count at least 1), an error ratio at least 0 (null and NaN: not measured). The bounds of asv's 99%
    interval may be anything: the lower one is below 0 when the spread is wide (a loaded night, 12-06)."""
    for label, values in zip(("op", "shape", "dtype", "device"), params):
        if len(set(values)) != len(values):
            raise StoreError(f"{source}: benchmark {bench} has malformed params: a {label} is listed twice")
    combinations = math.prod(len(values) for values in params)
    for col in _PER_COMBINATION:
        seq = rec.get(col)
        if not isinstance(seq, list):
            continue
        if len(seq) != combinations:
            raise StoreError(f"{source}: benchmark {bench}: '{col}' holds {len(seq)} values for {combinations} "
                             f"combinations of its params (asv writes one per combination)")
        if col.startswith("stats_ci_99"):
            continue
        low = 1 if col == "stats_repeat" else 0
        strict = column != "error_ratio" and col != "stats_repeat"
        for value in seq:
            if value is None or math.isnan(value):
                continue
            if value < low or (strict and value == 0) or (strict and math.isinf(value)):
                raise StoreError(f"{source}: benchmark {bench}: '{col}' holds {value!r}, which a "
                                 f"{'repeat count' if col == 'stats_repeat' else column} cannot be")
    _check_median_within_quartiles(rec, bench, source)


def _check_median_within_quartiles(rec: dict[str, Any], bench: str, source: str) -> None:
    """:class:`StoreError` where a combination's median lies outside its own quartiles (asv computes all three
    from the same samples): a row whose columns slid by one (an entry lost mid-row) still holds numbers of the
    right count and sign, but not in this order."""
    result, q25, q75 = (rec.get(c) for c in ("result", "stats_q_25", "stats_q_75"))
    if not all(isinstance(seq, list) for seq in (result, q25, q75)):
        return
    for k, (m, a, b) in enumerate(zip(result, q25, q75)):
        if any(v is None or not math.isfinite(v) for v in (m, a, b)):
            continue
        slack = 1e-9 * max(abs(a), abs(b), abs(m))
        if not (a - slack <= m <= b + slack):
            raise StoreError(f"{source}: benchmark {bench}: combination {k} has its median {m!r} outside its "
                             f"quartiles [{a!r}, {b!r}] (asv computes all three from the same samples)")


def _check_kinds_agree(params_of: dict[str, dict[str, list[list[Any]]]], source: str) -> None:
    """:class:`StoreError` unless the kinds of each class (``time_op``, ``peakmem_op``, ...) list the same
    ops, dtypes and devices, and shapes among ``time_op``'s: softgrad writes a class's kinds together, from one
    grid (the others' shapes are the coarser :func:`softgrad.bench.grid.track_shapes`), so a value found in
    one kind's params alone was changed after asv wrote it."""
    for cls, by_kind in params_of.items():
        (first_kind, first), *others = sorted(by_kind.items())
        for kind, params in others:
            for position, label in ((0, "ops"), (2, "dtypes"), (3, "devices")):
                if set(params[position]) != set(first[position]):
                    raise StoreError(f"{source}: benchmarks {cls}.{first_kind} and {cls}.{kind} list different "
                                     f"{label} (softgrad writes a class's benchmarks from one grid)")
        timed = by_kind.get("time_op")
        for kind, params in by_kind.items():
            extra = set(params[1]) - set(timed[1]) if timed is not None else set()
            if extra:
                raise StoreError(f"{source}: benchmark {cls}.{kind} has shape {one_line(repr(min(extra)), 40)}, "
                                 f"which {cls}.time_op does not (softgrad writes a class's benchmarks from one grid)")


def rows(data: dict[str, Any], impl_of: dict[str, str], source: str) -> dict[tuple, dict[str, Any]]:
    """The ``bench_ops`` results of one asv results file (``data``, read from ``source``), keyed by
    (impl, op, shape, dtype, device); :class:`StoreError` naming ``source`` and the benchmark when
    the file is not what asv writes."""
    check_asv(data, source)
    cols = data.get("result_columns") or []
    rows: dict[tuple, dict[str, Any]] = {}
    params_of: dict[str, dict[str, list[list[Any]]]] = {}
    for name, entry in data["results"].items():
        parts = name.split(".")
        if len(parts) != 3 or parts[0] not in ("bench_ops", "bench_workloads") or parts[2] not in KINDS:
            continue
        cls = parts[1].split("__", 1)[1] if parts[0] == "bench_workloads" and "__" in parts[1] else parts[1]
        impl = impl_of.get(cls)
        if impl is None:
            continue
        rec = dict(zip(cols, entry))
        bench = one_line(name, 80)
        params = _params(rec, bench, source, default_grid=parts[0] == "bench_ops")
        params_of.setdefault(one_line(f"{parts[0]}.{parts[1]}", 80), {})[parts[2]] = params
        values = rec.get("result")
        if not isinstance(values, list):
            continue
        column = KINDS[parts[2]]
        _check_lined_up(rec, params, column, bench, source)
        for k, (op, shape, dtype, device) in enumerate(itertools.product(*params)):
            value = values[k]
            if grid.bytes_moved(op, *grid.parse_shape(shape), DTYPE_INFO[dtype].itemsize) >= MAX_BYTES:
                raise StoreError(f"{source}: benchmark {bench} has malformed params: {op} {dtype} at shape "
                                       f"{shape} would move 2**62 bytes or more")
            key = (impl, op, shape, dtype, device)
            row = rows.setdefault(key, {})
            row[column] = math.nan if value is None else float(value)
            if column == "time_s":
                for stat, out in (("stats_q_25", "q25_s"), ("stats_q_75", "q75_s"),
                                  ("stats_ci_99_a", "ci99_low_s"), ("stats_ci_99_b", "ci99_high_s"),
                                  ("stats_repeat", "repeats")):
                    seq = rec.get(stat)
                    held = isinstance(seq, list) and k < len(seq) and seq[k] is not None
                    row[out] = float(seq[k]) if held else math.nan
    _check_kinds_agree(params_of, source)
    return rows
