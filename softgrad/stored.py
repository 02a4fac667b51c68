"""softgrad's JSON files, the one way they are written and read (every layer uses this, it uses nothing).

- :func:`write_json`: to a temporary name, then renamed into place: an interrupted write never leaves a
  half-written file.
- :func:`read_json`: every way a file can fail to read or parse (not JSON, not UTF-8, an integer past
  Python's digit limit, nesting too deep, a folder) is a :class:`StoreError` naming the file. A file kept
  compressed (``NAME.gz`` beside no ``NAME``, see :mod:`softgrad.history.retention`) reads the same;
  :func:`stored_path` says which form is there.
- :class:`Shape` and its combinators describe what a stored value must look like; :func:`check` turns a
  mismatch into one line naming the file and the field.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


class StoreError(Exception):
    """A stored file is corrupt or foreign; the message names it."""


def write_json(path: Path, data: Any, shape: "Shape | None" = None) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file, then rename). With ``shape`` (what the
    file's reader checks), the JSON is checked as the reader will parse it before anything is written: a
    :class:`StoreError` naming the file and the field, so softgrad never writes a file it would then refuse."""
    text = json.dumps(data, indent=1, default=str)
    if shape is not None:
        check(shape, json.loads(text), path, "refused to write: ")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
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


def gz_path(path: Path) -> Path:
    """Where ``path`` is kept compressed: ``NAME.gz`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".gz")


def stored_path(path: Path) -> Path | None:
    """``path`` if it exists, else its compressed form (:func:`gz_path`) if that exists, else None. The plain
    file wins: a compression interrupted before the original was removed leaves both, equal."""
    path = Path(path)
    if path.exists():
        return path
    packed = gz_path(path)
    return packed if packed.exists() else None


def read_json(path: Path) -> Any:
    """Parse a JSON file, or its compressed form (:func:`stored_path`) when only that is there;
    :class:`StoreError` with the file's name when it cannot be read or parsed (not JSON, not UTF-8, an
    integer past Python's digit limit, nesting too deep, a folder, not gzip, ...)."""
    path = stored_path(path) or Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return json.loads(f.read())
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
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # a truncated or damaged .gz
        raise StoreError(f"{path}: not a readable gzip file ({one_line(exc)})") from None
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


def kind_of(value: Any) -> str:
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
        return f"{where}must be {self.what}, not {kind_of(value)}"

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
#: a figure that only a positive finite number can be: a time, a rate, a normalised time
POSITIVE = Shape("a positive finite number", lambda v: (isinstance(v, float) or _is_int(v)) and 0 < v < math.inf)
POSITIVE_INT = Shape("a positive integer", lambda v: _is_int(v) and v > 0)
COUNT = Shape("a non-negative integer", lambda v: _is_int(v) and v >= 0)
OBJECT = Shape("an object", lambda v: isinstance(v, dict))
#: a scalar: what a table cell prints
SCALAR = Shape("a str, number, bool or null", lambda v: v is None or isinstance(v, (bool, float)) or _is_int(v)
               or STR.problem(v) is None)

def check(shape: Shape, data: Any, path: Path | str, where: str = "") -> None:
    """:class:`StoreError` naming ``path`` (and ``where`` in it) when ``data`` does not fit ``shape``."""
    problem = shape.problem(data)
    if problem:
        raise StoreError(f"{path}: {where}{one_line(problem, 300)}")
