"""softgrad's run history on disk: one folder per run, written atomically, never rewritten.

``results/runs/<run id>/`` holds ``meta.json`` (machine, commit, versions, threads, copy bandwidth, grid,
whether the run completed), ``checks.json`` (the correctness records) and ``asv.json`` (a copy of asv's
results for the run's commit, taken when the run ends). asv itself keeps one results file per machine x
commit x environment, so two runs of one commit would leave one point there; this history keeps both.

Every file is written to a temporary name and renamed into place, so an interrupted run never leaves a
half-written file. Reading is the other boundary: a file that cannot be read or parsed, or whose fields do
not have the types softgrad's readers use (:data:`META`, :data:`CHECK_RECORD`, :func:`check_asv`), gets
:class:`StoreError`, one line naming the file and the field, never a traceback from deeper in.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import paths

FORMAT = "softgrad-run/1"


class StoreError(Exception):
    """A stored file is corrupt or foreign; the message names it."""


def runs_dir() -> Path:
    return paths.results_dir() / "runs"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line (whitespace runs made one space), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json(path: Path) -> Any:
    """Parse a JSON file; :class:`StoreError` with the file's name when it cannot be read or parsed
    (not JSON, not UTF-8, an integer past Python's digit limit, nesting too deep, a folder, ...)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise StoreError(f"{path}: not valid JSON (not UTF-8: {one_line(exc)})") from None
    except ValueError as exc:  # JSONDecodeError, and an integer with more digits than Python converts
        raise StoreError(f"{path}: not valid JSON ({one_line(exc)})") from None
    except RecursionError:
        raise StoreError(f"{path}: not softgrad's JSON (nested too deeply to read)") from None
    except MemoryError:
        raise StoreError(f"{path}: too large to read") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot be read ({exc.strerror or one_line(exc)})") from None


# --- what a stored value must look like ----------------------------------------------------------------
# Small validators composed into one description per file. ``problem(value)`` is None when the value fits,
# else one line such as "field 'threads' must be an object, not str". Only the fields softgrad reads are
# described; other fields may hold anything (a newer softgrad may add some).

#: integers must fit in an int64 (pandas keeps larger ones as Python objects, which its arithmetic and
#: numpy's ufuncs refuse)
_INT_LIMIT = 2**63


def _utf8(text: str) -> bool:
    """Whether ``text`` can be printed or written as UTF-8 (JSON's ``\\ud800`` escapes a lone surrogate,
    which cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(value: Any) -> str:
    """A stored value's JSON type, as a message names it."""
    if value is None:
        return "null"
    if isinstance(value, str) and not _utf8(value):
        return "a str with a lone surrogate (not UTF-8)"
    if isinstance(value, float) and value != value:
        return "NaN"
    if type(value) is int:  # the value itself: a 0 or -1 may be what is wrong
        return f"int {value}" if -_INT_LIMIT < value < _INT_LIMIT else "an int past 64 bits"
    return {dict: "object", list: "list", bool: "bool", int: "int", float: "float", str: "str"}.get(
        type(value), type(value).__name__)


def _bad_key(path: str) -> str:
    return (f"field '{path}' has" if path else "has") + " a key with a lone surrogate (not UTF-8)"


def _field(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Shape:
    """What one stored JSON value must be: ``what`` says it in words, ``fits`` tests a scalar value;
    :class:`ListOf`, :class:`MapOf` and :class:`Fields` compose shapes into a file's description."""

    def __init__(self, what: str, fits: Callable[[Any], bool]):
        self.what = what
        self._fits = fits

    def problem(self, value: Any, path: str = "") -> str | None:
        return None if self._fits(value) else self.mismatch(value, path)

    def mismatch(self, value: Any, path: str) -> str:
        where = f"field '{path}' " if path else ""
        return f"{where}must be {self.what}, not {_kind(value)}"

    def or_null(self) -> "Shape":
        return _OrNull(self)


class _OrNull(Shape):
    def __init__(self, inner: Shape):
        super().__init__(f"{inner.what} or null", lambda v: v is None or inner._fits(v))
        self.inner = inner

    def problem(self, value: Any, path: str = "") -> str | None:
        if value is None:
            return None
        if not self.inner._fits(value):  # the wrong type altogether: name both choices
            return self.mismatch(value, path)
        return self.inner.problem(value, path)


class ListOf(Shape):
    """A list whose items all fit ``item``."""

    def __init__(self, item: Shape, what: str | None = None):
        super().__init__(what or f"a list ({item.what} each)", lambda v: isinstance(v, list))
        self.item = item

    def problem(self, value: Any, path: str = "") -> str | None:
        if not isinstance(value, list):
            return self.mismatch(value, path)
        for k, v in enumerate(value):
            p = self.item.problem(v, _field(path, k))
            if p:
                return p
        return None


class MapOf(Shape):
    """An object whose values all fit ``value``."""

    def __init__(self, value: Shape, what: str | None = None):
        super().__init__(what or f"an object ({value.what} each)", lambda v: isinstance(v, dict))
        self.value = value

    def problem(self, value: Any, path: str = "") -> str | None:
        if not isinstance(value, dict):
            return self.mismatch(value, path)
        for k, v in value.items():
            if not _utf8(k):
                return _bad_key(path)
            p = self.value.problem(v, _field(path, k))
            if p:
                return p
        return None


class Fields(Shape):
    """An object with the named fields (``required`` ones must be there; the others are checked when
    present); fields not named must fit ``rest``, or may hold anything when it is None."""

    def __init__(self, fields: dict[str, Shape], required: tuple[str, ...] = (), rest: Shape | None = None,
                 what: str = "an object"):
        super().__init__(what, lambda v: isinstance(v, dict))
        self.fields = fields
        self.required = required
        self.rest = rest

    def problem(self, value: Any, path: str = "") -> str | None:
        if not isinstance(value, dict):
            return self.mismatch(value, path)
        for name in self.required:
            if name not in value:
                return f"field '{_field(path, name)}' is missing"
        for name, v in value.items():
            if not _utf8(name):
                return _bad_key(path)
            shape = self.fields.get(name, self.rest)
            p = shape.problem(v, _field(path, name)) if shape is not None else None
            if p:
                return p
        return None


class OneOf(Shape):
    """One of the given strings."""

    def __init__(self, *choices: str):
        super().__init__("one of " + ", ".join(map(repr, choices)), lambda v: isinstance(v, str) and v in choices)

    def mismatch(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            return super().mismatch(value, path)
        return (f"field '{path}' " if path else "") + f"must be {self.what}, not {one_line(repr(value), 40)}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -_INT_LIMIT < v < _INT_LIMIT


STR = Shape("a str", lambda v: isinstance(v, str) and _utf8(v))
BOOL = Shape("true or false", lambda v: isinstance(v, bool))
#: a float (NaN and infinities included: asv writes them) or an int64 (bools are not numbers)
NUMBER = Shape("a number", lambda v: isinstance(v, float) or _is_int(v))
POSITIVE_INT = Shape("a positive integer", lambda v: _is_int(v) and v > 0)
COUNT = Shape("a non-negative integer", lambda v: _is_int(v) and v >= 0)
OBJECT = Shape("an object", lambda v: isinstance(v, dict))
#: a scalar: what a table cell prints
SCALAR = Shape("a str, number, bool or null", lambda v: v is None or isinstance(v, (bool, float)) or _is_int(v)
               or STR.problem(v) is None)

#: ``meta.json``: what :func:`softgrad.provenance.snapshot` and the runner write, as the readers use it
#: (results, report, choose, compare, ``run --resume``). Every field but ``format`` may be missing (a run
#: stores its meta in steps).
META = Fields({
    "format": STR,
    "id": STR,
    "date": STR.or_null(),
    "commit": STR.or_null(),
    "dirty": BOOL,
    "complete": BOOL,
    "machine": STR.or_null(),
    "cpu": STR.or_null(),
    "cores": POSITIVE_INT.or_null(),
    "memory_gib": NUMBER.or_null(),
    "llc_bytes": COUNT.or_null(),
    "os": STR.or_null(),
    "arch": STR.or_null(),
    "python": STR.or_null(),
    "grid": OneOf("full", "quick"),
    "impls": ListOf(STR, "a list of str"),
    "rounds": POSITIVE_INT,
    "plugins": ListOf(STR, "a list of str"),
    "families_done": ListOf(STR, "a list of str"),
    "versions": MapOf(STR.or_null(), "an object of str"),
    "threads": Fields({"requested": POSITIVE_INT.or_null()}, rest=SCALAR),
    "copy_bandwidth": Fields({"gbps": NUMBER, "method": STR, "buffer_bytes": COUNT, "repeats": COUNT}),
    "build_s": MapOf(NUMBER.or_null(), "an object of numbers"),
    "seconds": NUMBER,
}, required=("format",))

#: one record of ``checks.json`` (:class:`softgrad.checker.Record`): the fields the readers use are required
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

_NUMBERS = ListOf(NUMBER.or_null(), "a list of numbers").or_null()
#: the columns of one asv result row that softgrad reads, and what each must be
ASV_COLUMNS = {"result": _NUMBERS, "params": ListOf(ListOf(STR, "a list of str"), "a list of lists of str"),
               **{f"stats_{s}": _NUMBERS for s in ("ci_99_a", "ci_99_b", "q_25", "q_75", "repeat")}}
#: ``asv.json``: asv's results file for the run's commit (results: benchmark name -> one row per
#: ``result_columns``)
ASV = Fields({"results": MapOf(Shape("a list", lambda v: isinstance(v, list)), "an object of lists"),
              "result_columns": ListOf(STR, "a list of str"),
              "params": OBJECT}, required=("results", "params"), what="an asv results object")


def check(shape: Shape, data: Any, path: Path | str, where: str = "") -> None:
    """:class:`StoreError` naming ``path`` (and ``where`` in it) when ``data`` does not fit ``shape``."""
    problem = shape.problem(data)
    if problem:
        raise StoreError(f"{path}: {where}{one_line(problem, 300)}")


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
        check(META, meta, self.meta_path)
        return meta

    def update_meta(self, **fields: Any) -> dict[str, Any]:
        meta = self.meta() if self.meta_path.exists() else {"format": FORMAT, "id": self.id}
        meta.update(fields)
        write_json(self.meta_path, meta)
        return meta

    @property
    def complete(self) -> bool:
        """Whether the run finished; a corrupt or foreign ``meta.json`` raises :class:`StoreError`."""
        return bool(self.meta().get("complete"))

    def checks(self) -> list[dict[str, Any]]:
        """The run's correctness records ([] without ``checks.json``); :class:`StoreError` naming the file,
        the record and the field when one lacks a field softgrad reads or has it in the wrong type."""
        path = self.folder / "checks.json"
        if not path.exists():
            return []
        data = read_json(path)
        if not isinstance(data, list):
            raise StoreError(f"{path}: not a list of softgrad check records (a {_kind(data)})")
        for k, record in enumerate(data):
            check(CHECK_RECORD, record, path, f"record {k}: ")
        return data

    def asv(self) -> dict[str, Any] | None:
        """The run's copy of asv's results (None without ``asv.json``), checked by :func:`check_asv`."""
        path = self.folder / "asv.json"
        if not path.exists():
            return None
        return check_asv(read_json(path), path)


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
