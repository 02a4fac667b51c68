"""No stored file makes a softgrad command crash: a run's ``meta.json``, ``checks.json``, ``asv.json``,
``speed.json`` or ``agreement.json``
that is unreadable, not JSON, JSON that Python cannot hold (a 5000-digit integer, nesting 200000 deep), or
JSON of the wrong shape (a field of the wrong type, a missing field, strings for numbers, params that are
not literals, a shape that is not BxN) gets exit status 2 and one line naming the file, and a complete run
whose ``asv.json`` was deleted is left out with a warning, not silently. A damaged file that is accepted must
give the valid store's answer, unless it still holds valid data of another value (told from the formats by
:func:`other_valid_data`, not by softgrad's readers). The damage softgrad once took for other data (asv lists that
no longer line up, a time of 0 s, a machine-speed figure that is not a positive finite number, a run without its
entries or its machine) is refused now: :data:`FORMER_GAPS`.

The store is synthetic (two complete runs of numpy and an unregistered ``fake-impl``, in asv's format), so
nothing here runs asv or a framework.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import functools
import io
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

pd = pytest.importorskip("pandas")

import helpers  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from softgrad.bench import asv_results, grid  # noqa: E402
from softgrad.history import results, store  # noqa: E402
from softgrad.cli import main  # noqa: E402

IMPLS = ("numpy", "fake-impl")
OPS = ("softmax", "vjp")
SHAPES = ("1x8", "1x16", "256x8", "256x16")
DTYPES = ("float32", "float64")
RUN_IDS = ("20260101T000000000000Z-aaaaaaaa", "20260102T000000000000Z-aaaaaaaa")
CHOOSE = ["choose", "--op", "vjp", "--n", "16", "--batch", "256", "--dtype", "float32"]


def _meta(run_id: str) -> dict:
    return helpers.run_meta(run_id, list(IMPLS), ["numpy", "fake"])


def _checks() -> list[dict]:
    """One passing checker.Record per implementation, op and dtype."""
    return helpers.check_records(IMPLS, (*OPS, "jacobian"), DTYPES)


def _asv(slow: float) -> dict:
    """asv's results file with time_op and track_error_ratio for both implementations; ``fake-impl`` runs at
    ``slow`` times numpy's speed."""
    params = helpers.asv_params(OPS, SHAPES, DTYPES, ("cpu",))
    count = len(OPS) * len(SHAPES) * len(DTYPES)
    out = {}
    for impl, factor in (("numpy", 1.0), ("fake-impl", slow)):
        cls = grid.class_name(impl)
        times = [factor * 1e-5 * (1 + k % 7) for k in range(count)]
        times[-1] = None  # a combination that was skipped (NotImplementedError in setup)
        out[f"bench_ops.{cls}.time_op"] = helpers.asv_time_op(times, params)
        out[f"bench_ops.{cls}.track_error_ratio"] = helpers.asv_track([0.01] * count, params)
    return helpers.asv_file(out)


def _speed(slow: float) -> dict:
    """``speed.json``: each benchmark's time over the machine's speed (fake-impl ``slow`` times numpy's)."""
    keys = [f"{impl} {op} {shape} {dtype} cpu" for impl in IMPLS for op in OPS for shape in SHAPES for dtype in DTYPES]
    return {"format": "softgrad-speed/1", "reference": "a loop",
            "benchmarks": {k: {"norm": m, "norm_q25": 0.97 * m, "norm_q75": 1.03 * m, "speed_s": 3e-5}
                           for k in keys for m in [(slow if k.startswith("fake") else 1.0) * 3.0]}}


def _agreement() -> dict:
    """``agreement.json``: one point within its bound."""
    return {"format": "softgrad-agreement/1", "bound": 0.1, "min_call_s": 1e-5,
            "points": [{"key": "numpy vjp 256x16 float32 cpu", "softgrad_s": 2e-5, "independent_s": [2e-5, 2.1e-5],
                        "softgrad_here_s": [2e-5, 2e-5], "ratio": 0.98, "stored_ratio": 0.98, "spread": 0.05,
                        "bound": 0.1, "held": True, "agrees": True}]}


#: (run id, file name) -> the file's valid contents; the newer run's fake-impl got 3x slower
VALID = {}
for _rid, _slow in zip(RUN_IDS, (0.5, 1.5)):
    VALID[(_rid, "meta.json")] = _meta(_rid)
    VALID[(_rid, "checks.json")] = _checks()
    VALID[(_rid, "asv.json")] = _asv(_slow)
    VALID[(_rid, "speed.json")] = _speed(_slow)
    VALID[(_rid, "agreement.json")] = _agreement()
TARGETS = sorted(VALID)


def _write_store(home: Path, replace: dict | None = None) -> None:
    """The valid store under ``home``; ``replace`` maps (run id, file) to the text to write there instead,
    or to None to leave that file out."""
    helpers.write_run_files(home, {**VALID, **(replace or {})})


def _softgrad(home: Path, *argv: str) -> tuple[int, str, str]:
    """``softgrad ARGV`` in this process with SOFTGRAD_HOME=home: (exit status, stdout, stderr)."""
    # encoded as a terminal's would be: stdout strict UTF-8, stderr with backslash escapes (Python's defaults)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)
    before = os.environ.get("SOFTGRAD_HOME")
    os.environ["SOFTGRAD_HOME"] = str(home)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(argv))
    finally:
        if before is None:
            del os.environ["SOFTGRAD_HOME"]
        else:
            os.environ["SOFTGRAD_HOME"] = before
    return rc, out.buffer.getvalue().decode(), err.buffer.getvalue().decode()


def _errors(stderr: str) -> list[str]:
    """stderr's lines, less the CLI's warnings (a left-out run is said on a line of its own)."""
    return [line for line in stderr.splitlines() if line.strip() and ": warning: " not in line]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    _write_store(tmp_path)
    return tmp_path


def test_points_timed_while_the_machine_ran_slow_are_marked(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    speed = copy.deepcopy(VALID[(RUN_IDS[1], "speed.json")])
    slow = "numpy vjp 256x16 float32 cpu"
    speed["benchmarks"][slow]["speed_s"] = 2 * 3e-5  # the reference kernel took twice its best beside it
    _write_store(tmp_path, {(RUN_IDS[1], "speed.json"): json.dumps(speed)})
    df = results.load([store.Run(tmp_path / "results" / "runs" / RUN_IDS[1])])
    marked = df[df["slow_machine"]]
    assert list(zip(marked["impl"], marked["op"], marked["shape"], marked["dtype"])) == [("numpy", "vjp", "256x16",
                                                                                        "float32")]


# --- (a) a valid store answers -----------------------------------------------------------------------------


def test_a_valid_store_answers_choose_and_compare(home, capsys):
    assert main(CHOOSE) == 0
    out = capsys.readouterr().out
    assert out.startswith("numpy: ") and "faster than fake-impl" in out and f"from run {RUN_IDS[1]}" in out
    assert main(["compare"]) == 1  # fake-impl got 3x slower, quartiles apart, by more than 50 us at 256x16
    out = capsys.readouterr().out
    assert f"compared 30 benchmarks: {RUN_IDS[0]} -> {RUN_IDS[1]}" in out
    assert "SLOWER  fake-impl" in out and "SLOWER  numpy" not in out


def test_a_valid_store_loads_as_before(home):
    df = results.load()
    assert df.attrs["warnings"] == []
    assert len(df) == 2 * len(IMPLS) * len(OPS) * len(SHAPES) * len(DTYPES)
    assert set(df["impl"]) == set(IMPLS) and set(df["shape"]) == set(SHAPES)
    assert df["passed"].all() and df["check_passed"].eq(len(DTYPES) * 3).all()
    skipped = df[(df["op"] == "vjp") & (df["shape"] == "256x16") & (df["dtype"] == "float64")]
    assert skipped["time_s"].isna().all() and skipped["error_ratio"].notna().all()
    row = df[(df["run"] == RUN_IDS[1]) & (df["impl"] == "numpy") & (df["shape"] == "1x8")].iloc[0]
    assert row["q25_s"] == pytest.approx(row["time_s"] * 0.98) and row["threads"] == "default"
    assert row["copy_gbps"] == 25.0 and row["llc_bytes"] == 32 << 20 and row["numpy"] == "2.4.6"
    assert len(results.load_checks()) == 2 * len(_checks())


def test_nan_in_asv_results_loads_as_not_measured_and_an_infinite_time_is_refused(tmp_path):
    doc = _asv(1.0)
    entry = doc["results"][f"bench_ops.{grid.class_name('numpy')}.time_op"]
    entry[0][0] = math.nan  # NaN: asv's JSON for a benchmark that did not run
    _write_store(tmp_path, {(RUN_IDS[1], "asv.json"): json.dumps(doc)})
    path = tmp_path / "results" / "runs" / RUN_IDS[1] / "asv.json"
    rows = asv_results.rows(store.read_json(path), {grid.class_name("numpy"): "numpy"}, "asv.json")
    first, second = (rows[("numpy", "softmax", "1x8", d, "cpu")] for d in DTYPES)
    assert math.isnan(first["time_s"]) and second["time_s"] == pytest.approx(2e-5)
    entry[5][1] = -1.5e-5  # asv's 99% interval reaches below 0 when the spread is wide (a run stored on 12-06)
    again = asv_results.rows(json.loads(json.dumps(doc)), {grid.class_name("numpy"): "numpy"}, "asv.json")
    assert again[("numpy", "softmax", "1x8", DTYPES[1], "cpu")]["ci99_low_s"] == -1.5e-5
    for bad in (math.inf, -math.inf, 0.0, -1e-6):
        entry[7][0] = bad  # a quartile no time can be
        with pytest.raises(store.StoreError, match="'stats_q_25' holds .*which a time_s cannot be"):
            asv_results.rows(json.loads(json.dumps(doc)), {grid.class_name("numpy"): "numpy"}, "asv.json")


# --- (b) no stored file crashes a command ------------------------------------------------------------------

DEEP = "[" * 200_000 + "]" * 200_000
#: raw JSON (or not JSON) put in place of one value, or of a whole file
HOSTILE_TOKENS = ["1" + "0" * 4999, "-" + "9" * 5000, DEEP, '{"a":' * 100_000 + "1" + "}" * 100_000, "NaN",
                  "-Infinity", "1e999", "1" + "0" * 400, "true", "null", '"x"', '"1.5"', "[]", "{}", '["1x8"]',
                  '"\\ud800"', "0", "-1", "1e-320"]
HOSTILE_FILES = ["", "{ not json", "\ufeff{}", b"\xff\xfe\x00garbage", b'{"format": "\xe9"}', "[" * 200_000,
                 *HOSTILE_TOKENS]
#: strings that asv's params might hold instead of a value's repr
HOSTILE_PARAMS = ["'x'", "1", "None", "'1x'", "'0x8'", "'8'", "'1x8x2'", "'-1x8'", "'99999999999x8'", "'1 x 8'",
                  "(" * 500, "[" * 100_000, "'softmax' + 'x'", "__import__('os').getcwd()", "'float128'",
                  "'Softmax'", "''", "('softmax',)", "b'softmax'", "1e999", "'\\x00'", "\x00", "'1x8'", "'vjp'",
                  "'jacobian'", "'float16'", "'cuda'"]
_SENTINEL = "\x00softgrad-hostile-token\x00"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10)
replacement = (json_values | st.sampled_from(HOSTILE_PARAMS) | st.sampled_from(HOSTILE_TOKENS).map(lambda t: (t,))
               | st.sampled_from(["x", "1.5", "", "pass", "fail", "skip", "quick", "full"]))


def _paths(data, prefix=()):
    """Every place in a JSON document: tuples of keys and indices."""
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, (*prefix, i))


def _mutated(data, path: tuple, how: str, value) -> str:
    """``data`` as JSON text with the value at ``path`` replaced by ``value`` (a 1-tuple: raw JSON text),
    or deleted."""
    data = copy.deepcopy(data)
    raw = value[0] if isinstance(value, tuple) else None
    new = _SENTINEL if raw is not None else value
    if not path:
        data = new
    else:
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if how == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = new
    text = json.dumps(data)
    return text.replace(json.dumps(_SENTINEL), raw) if raw is not None else text


@dataclasses.dataclass(frozen=True)
class Damage:
    """One stored file of the two runs, damaged: ``text`` is what is written instead (None: the file is
    deleted); ``kind`` is ``file``, ``delete-file``, ``field`` or ``delete-field``; ``path`` and ``value``
    say which field and what was put there (a 1-tuple: raw JSON text)."""

    rid: str
    name: str
    text: str | bytes | None
    kind: str
    path: tuple = ()
    value: Any = None

    @property
    def what(self) -> str:
        if self.kind in ("file", "delete-file"):
            return {"file": "whole file", "delete-file": "file deleted"}[self.kind]
        return f"{self.path} deleted" if self.kind == "delete-field" else f"{self.path} = {str(self.value)[:60]!r}"


@st.composite
def damage(draw):
    rid, name = draw(st.sampled_from(TARGETS))
    data = VALID[(rid, name)]
    kind = draw(st.sampled_from(["field", "field", "field", "delete-field", "file", "delete-file"]))
    if kind == "file":
        return Damage(rid, name, draw(st.sampled_from(HOSTILE_FILES) | json_values.map(json.dumps)), kind)
    if kind == "delete-file":
        return Damage(rid, name, None, kind)
    paths = [p for p in _paths(data) if p]
    path = draw(st.sampled_from(paths))
    if kind == "delete-field":
        return Damage(rid, name, _mutated(data, path, "delete", None), kind, path)
    value = draw(replacement)
    return Damage(rid, name, _mutated(data, path, "replace", value), kind, path, value)


# --- what a damaged file may change: other valid data, told from the formats, not from softgrad's readers ---

OP_NAMES, DTYPE_NAMES, DEVICES = ("softmax", "jacobian", "vjp"), ("float16", "bfloat16", "float32", "float64"), \
    ("cpu", "cuda")
#: (file, the field's path with indices and free keys as "*") -> the strings that are valid there
_WORDS = {("checks.json", "*", "verdict"): ("pass", "fail", "skip"), ("checks.json", "*", "op"): OP_NAMES,
          ("checks.json", "*", "dtype"): DTYPE_NAMES, ("checks.json", "*", "device"): DEVICES,
          ("meta.json", "grid"): ("full", "quick")}
#: fields whose string must be exactly what is stored (a format tag, a date softgrad reads, a point's key)
_FIXED = {("meta.json", "format"), ("speed.json", "format"), ("agreement.json", "format"), ("meta.json", "date"),
          ("agreement.json", "points", "*", "key")}


def _pattern(name: str, path: tuple) -> tuple:
    """``path`` with list indices and benchmark names (asv's and speed.json's keys) as "*"."""
    return (name, *("*" if isinstance(k, int) or (name in ("asv.json", "speed.json") and i == 1) else k
                    for i, k in enumerate(path)))


def _new_value(value):
    """The JSON value a replacement puts in the file (raw text read as Python's json module reads it)."""
    if isinstance(value, tuple):
        try:
            return json.loads(value[0])
        except (ValueError, RecursionError):
            return _SENTINEL  # not a JSON value: never valid
    return value


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    """A number a float holds, and finite (10**400 is not: no reader holds it as a time)."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _same_kind(old, new) -> bool:
    """``new`` is a value of the kind ``old`` is: a bool for a bool; a finite number, positive where ``old``
    is and non-negative where it is, for a number; a str of valid Unicode for a str; a list of such str for a
    list of str."""
    if isinstance(old, bool):
        return isinstance(new, bool)
    if _number(old):
        return _number(new) and _finite(new) and (new > 0 if old > 0 else new >= 0 if old >= 0 else True)
    if isinstance(old, str):
        return isinstance(new, str) and new != _SENTINEL and _valid_unicode(new)
    if isinstance(old, list) and all(isinstance(v, str) for v in old):
        return isinstance(new, list) and all(isinstance(v, str) and _valid_unicode(v) for v in new)
    return False


def _asv_param_ok(path: tuple, new, params: list) -> bool:
    """``new`` at ``path`` (results, benchmark, 1, position, index) is the repr of a valid value for that
    position (op, shape, dtype, device), one the position's list does not hold already."""
    try:
        value = ast.literal_eval(new) if isinstance(new, str) else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return False
    position, index = path[3], path[4]
    if position == 1:
        ok = isinstance(value, str) and re.fullmatch(r"[1-9]\d{0,5}(x[1-9]\d{0,5})+", value) is not None
    elif position == 3:  # a device is whatever an entry declares (a plugin's backend may name its own)
        ok = isinstance(value, str) and re.fullmatch(r"[a-z][a-z0-9_]*(:[0-9]+)?", value) is not None
    else:
        ok = value in {0: OP_NAMES, 2: DTYPE_NAMES, 3: DEVICES}[position]
    return ok and new == repr(value) and new not in [v for k, v in enumerate(params) if k != index]


def other_valid_data(d: Damage) -> str | None:
    """Why the damaged store still holds valid data, so that another answer is the right one; None when it
    does not (an answer from it must then be the valid store's, or the file must be refused)."""
    if d.kind == "delete-file":
        return f"{d.name} deleted: a run without it (meta.json: no run; asv.json: left out, with a warning)"
    if d.kind == "file":
        return "no check records" if d.name == "checks.json" and d.text == "[]" else None
    pattern = _pattern(d.name, d.path)
    if d.kind == "delete-field":
        return {("checks.json", "*"): "a check record fewer", ("meta.json", "impls", "*"): "an entry fewer",
                ("meta.json", "complete"): "a run not marked complete",
                ("agreement.json", "points", "*"): "a point fewer", ("asv.json", "results", "*"): "a benchmark not run",
                ("speed.json", "benchmarks", "*"): "a point without its machine speed"}.get(pattern)
    old = VALID[(d.rid, d.name)]
    for key in d.path:
        old = old[key]
    new = _new_value(d.value)
    if pattern in _FIXED:
        return None
    if pattern[:3] == ("asv.json", "results", "*") and len(d.path) == 5 and d.path[2] == 1:
        params = VALID[(d.rid, d.name)]["results"][d.path[1]][1][d.path[3]]
        return "another combination's params" if _asv_param_ok(d.path, new, params) else None
    if pattern[:3] == ("asv.json", "results", "*") and len(d.path) == 4 and d.path[2] != 1 and (
            new is None or (_number(new) and not _finite(new))):
        return "a failed, skipped or unbounded combination (asv writes None, NaN and Infinity)"
    if d.name == "asv.json" and len(d.path) == 3 and d.path[0] == "results" and d.path[2] == 0 and new is None:
        return "a benchmark that failed as a whole (asv stores no result)"
    if pattern in _WORDS:
        return "another valid word" if new in _WORDS[pattern] else None
    if old is None:
        return "a value where none was" if new is None or (_number(new) and _finite(new) and new >= 0) else None
    return "another value of the same kind" if _same_kind(old, new) else None


def _answer(command: str, rc: int, out: str) -> tuple[int, str]:
    """What a command answered: its exit status and its output, less the commit, date and age on ``choose``'s
    lines saying where each figure comes from (meta.json's provenance; which run it is stays in)."""
    return rc, re.sub(r"(from run \S+) \(commit [^)]*\).*", r"\1", out)


COMMANDS = (("choose", CHOOSE), ("compare", ["compare"]))


@functools.cache
def _valid_answers() -> dict[str, tuple[int, str]]:
    home = Path(tempfile.mkdtemp(prefix="softgrad-valid-"))
    try:
        _write_store(home)
        return {command: _answer(command, *_softgrad(home, *argv)[:2]) for command, argv in COMMANDS}
    finally:
        shutil.rmtree(home, ignore_errors=True)


#: stderr of a store that lost a complete run (its meta.json damaged so that it is not complete, or deleted):
#: not about the file, and not a crash
_TOO_FEW_RUNS = ("no complete run stored yet", "need two complete runs", "no complete run before")


def _assert_answers_or_names_the_file(rc, out, err, command, d: Damage):
    """``softgrad COMMAND``'s exit status, output and errors on a store with damage ``d``."""
    lines = _errors(err)
    assert rc in (0, 1, 2), (command, d.what, rc, err)
    if rc == 2:
        assert len(lines) == 1, (command, d.what, err)
        line = lines[0]
        assert line.startswith(f"softgrad {command}: error: "), (command, d.what, err)
        names_it = f"{d.rid}/{d.name}" in line or d.rid in line
        assert names_it or (d.name == "meta.json" and any(m in line for m in _TOO_FEW_RUNS)), (command, d.what, err)
        return
    if rc == 0:
        assert out.strip(), (command, d.what, err)
    else:
        assert out.strip() or (len(lines) == 1 and lines[0].startswith(f"softgrad {command}: ")), (command, d.what, err)
    if _answer(command, rc, out) != _valid_answers()[command]:
        assert other_valid_data(d) is not None, (
            f"softgrad {command} accepted {d.rid}/{d.name} with {d.what} and answered otherwise than from the "
            f"valid store; it should refuse the file (exit 2):\n{out}{err}")


def _gap(name: str, path: tuple, value=None, rid: str = RUN_IDS[1], kind: str = "field") -> Damage:
    data = VALID[(rid, name)]
    return Damage(rid, name, _mutated(data, path, "delete" if kind == "delete-field" else "replace", value), kind,
                  path, value)


_NUMPY_TIMES = ("results", f"bench_ops.{grid.class_name('numpy')}.time_op")
_SPEED = ("benchmarks", "numpy vjp 256x16 float32 cpu")
#: one case of each kind of damage softgrad once took for other data (the fuzz found them): each is refused now
FORMER_GAPS = {
    "asv-value-deleted": _gap("asv.json", (*_NUMPY_TIMES, 0, 2), kind="delete-field"),
    "asv-param-deleted": _gap("asv.json", (*_NUMPY_TIMES, 1, 1, 0), kind="delete-field"),
    "asv-param-repeated": _gap("asv.json", (*_NUMPY_TIMES, 1, 1, 0), "'256x16'"),
    "asv-column-shortened": _gap("asv.json", (*_NUMPY_TIMES, 0), [1e-5]),
    # an entry lost mid-row: every later column slides by one (the quartiles take the next column's values)
    "asv-columns-slid": _gap("asv.json", (*_NUMPY_TIMES, 7), kind="delete-field"),
    "asv-shape-one-dim": _gap("asv.json", (*_NUMPY_TIMES, 1, 1, 0), "'8'", RUN_IDS[0]),
    "asv-zero-time": _gap("asv.json", ("results", f"bench_ops.{grid.class_name('fake-impl')}.time_op", 0, 6), 0),
    "speed-negative": _gap("speed.json", (*_SPEED, "speed_s"), -1),
    "speed-zero": _gap("speed.json", (*_SPEED, "speed_s"), 0),
    "norm-infinite": _gap("speed.json", ("benchmarks", "fake-impl softmax 256x8 float64 cpu", "norm"), ("1e999",)),
    "norm-zero": _gap("speed.json", ("benchmarks", "fake-impl softmax 256x8 float64 cpu", "norm"), 0, RUN_IDS[0]),
    "impls-deleted": _gap("meta.json", ("impls",), kind="delete-field"),
    "machine-null": _gap("meta.json", ("machine",), None),
}


@pytest.mark.parametrize("case", list(FORMER_GAPS))
def test_damage_once_taken_for_other_data_is_refused(case):
    """Each command exits 2 with one line naming the damaged file (the fuzz's assertion would also take the
    valid store's answer; these must be refused: the data is not what softgrad or asv writes)."""
    d = FORMER_GAPS[case]
    assert other_valid_data(d) is None
    home = Path(tempfile.mkdtemp(prefix="softgrad-gap-"))
    try:
        _write_store(home, {(d.rid, d.name): d.text})
        for command, argv in COMMANDS:
            rc, out, err = _softgrad(home, *argv)
            _assert_answers_or_names_the_file(rc, out, err, command, d)
            assert rc == 2, (command, case, rc, out, err)
    finally:
        shutil.rmtree(home, ignore_errors=True)


#: a class's kinds that no longer agree, though each holds values valid on their own: (kind changed, position,
#: index, new value, what the error names)
DISAGREEING_KINDS = {
    "time-shape-moved": ("time_op", 1, 0, "2x8", "has shape '1x8', which"),
    "track-shape-added": ("track_error_ratio", 1, 3, "512x16", "has shape '512x16', which"),
    "track-dtype-swapped": ("track_error_ratio", 2, 1, "float16", "list different dtypes"),
    "time-op-swapped": ("time_op", 0, 1, "jacobian", "list different ops"),
}


@pytest.mark.parametrize("case", list(DISAGREEING_KINDS))
def test_a_class_whose_kinds_were_written_from_different_grids_is_refused(case):
    """softgrad writes every kind of a class from one grid; a param value changed in one kind's list alone
    (each value valid, so no other check sees it) is refused, naming the file and the class."""
    kind, position, index, value, says = DISAGREEING_KINDS[case]
    data = json.loads(json.dumps(VALID[(RUN_IDS[0], "asv.json")]))  # the kinds' lists unshared, as read
    assert asv_results.rows(data, {grid.class_name(i): i for i in IMPLS}, "run/asv.json")  # valid as written
    data["results"][f"bench_ops.{grid.class_name('numpy')}.{kind}"][1][position][index] = repr(value)
    with pytest.raises(store.StoreError, match=f"run/asv.json: benchmarks? bench_ops.Impl_numpy.* {re.escape(says)}"):
        asv_results.rows(data, {grid.class_name(i): i for i in IMPLS}, "run/asv.json")


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(damage())
def test_no_stored_file_crashes_choose_or_compare_or_is_silently_taken_for_other_data(d):
    """Exit 0 or 1 with the valid store's answer, or with another where the damaged file still holds valid
    data (:func:`other_valid_data`), or exit 2 with one line naming the file."""
    home = Path(tempfile.mkdtemp(prefix="softgrad-fuzz-"))
    try:
        _write_store(home, {(d.rid, d.name): d.text})
        for command, argv in COMMANDS:
            rc, out, err = _softgrad(home, *argv)
            _assert_answers_or_names_the_file(rc, out, err, command, d)
    finally:
        shutil.rmtree(home, ignore_errors=True)


#: explicit cases from the hostile tester's list: id -> (the file damaged, how, what the error says)
EXPLICIT = {
    "5000-digit-int": ((RUN_IDS[1], "meta.json"), "1" + "0" * 4999, "not valid JSON"),
    "200000-deep": ((RUN_IDS[1], "asv.json"), DEEP, "nested too deeply"),
    "not-utf8": ((RUN_IDS[0], "checks.json"), b"\xff\xfe", "not UTF-8"),
    "threads-str": ((RUN_IDS[1], "meta.json"), {"threads": "x"}, "field 'threads' must be an object, not str"),
    "gbps-str": ((RUN_IDS[1], "meta.json"), {"copy_bandwidth": {"gbps": "25"}},
                 "field 'copy_bandwidth.gbps' must be a positive finite number"),
    "llc-str": ((RUN_IDS[1], "meta.json"), {"llc_bytes": "32 MiB"},
                "field 'llc_bytes' must be a non-negative integer or null"),
    "impls-int": ((RUN_IDS[1], "meta.json"), {"impls": 5}, "field 'impls' must be a list of str, not int"),
    "complete-str": ((RUN_IDS[1], "meta.json"), {"complete": "yes"}, "field 'complete' must be true or false, not str"),
    "versions-list": ((RUN_IDS[0], "meta.json"), {"versions": ["numpy"]},
                      "field 'versions' must be an object of str, not list"),
    "record-without-op": ((RUN_IDS[1], "checks.json"), [{"impl": "numpy"}], "record 0: field 'op' is missing"),
    "verdict-unknown": ((RUN_IDS[1], "checks.json"), [{**_checks()[0], "verdict": "maybe"}],
                        "field 'verdict' must be one of"),
    "ratio-str": ((RUN_IDS[1], "checks.json"), [{**_checks()[0], "ratio": "0.5"}],
                  "field 'ratio' must be a number or null"),
    "checks-object": ((RUN_IDS[1], "checks.json"), {"impl": "numpy"}, "not a list of softgrad check records"),
    "results-str": ((RUN_IDS[1], "asv.json"), "results-as-strings", "time_op' must be a list, not str"),
    "values-str": ((RUN_IDS[1], "asv.json"), "values-as-strings", "must be a number or null, not str"),
    "params-not-literals": ((RUN_IDS[1], "asv.json"), "params-not-literals", "has malformed params"),
    "shape-not-BxN": ((RUN_IDS[1], "asv.json"), "shape-not-BxN", "shape '1-8' is not AxBx...xN"),
    "op-unknown": ((RUN_IDS[1], "asv.json"), "unknown-op", "op 'softmaxx' is not one of"),
    "surrogate-machine": ((RUN_IDS[1], "meta.json"), {"machine": "vm\ud800"},
                          "field 'machine' must be a str, not a str with a lone surrogate"),
    "surrogate-key": ((RUN_IDS[0], "meta.json"), {"versions": {"\udc80": "1"}},
                      "field 'versions' has a key with a lone surrogate"),
    "surrogate-device": ((RUN_IDS[1], "asv.json"), "surrogate-device", "device '\\ud800' is not a str of UTF-8"),
    "stats-str": ((RUN_IDS[0], "asv.json"), "stats-as-strings",
                  "field 'stats_q_25[0]' must be a number or null, not str"),
    "norm-str": ((RUN_IDS[1], "speed.json"), {"benchmarks": {"numpy vjp 1x8 float32 cpu": {
        "norm": "3", "norm_q25": 2.9, "norm_q75": 3.1}}}, "must be a positive finite number, not str"),
    "speed-key-short": ((RUN_IDS[1], "speed.json"), {"benchmarks": {"numpy vjp": {
        "norm": 3.0, "norm_q25": 2.9, "norm_q75": 3.1}}}, "is not 'impl op shape dtype device'"),
    "agreement-points-object": ((RUN_IDS[1], "agreement.json"), {"points": {"a": 1}},
                                "field 'points' must be a list of points, not object"),
}


_ASV_CHANGES = ("results-as-strings", "values-as-strings", "params-not-literals", "shape-not-BxN", "unknown-op",
                "stats-as-strings", "surrogate-device")


def _explicit_text(rid: str, name: str, change) -> str | bytes:
    if isinstance(change, bytes) or (isinstance(change, str) and change not in _ASV_CHANGES):
        return change
    if name == "meta.json":
        return json.dumps({**VALID[(rid, name)], **change})
    if name == "checks.json":
        return json.dumps(change)
    if name in ("speed.json", "agreement.json"):
        return json.dumps({**VALID[(rid, name)], **change})
    doc = copy.deepcopy(VALID[(rid, name)])
    time_op = doc["results"][f"bench_ops.{grid.class_name('numpy')}.time_op"]
    if change == "results-as-strings":
        doc["results"] = {k: "fast" for k in doc["results"]}
    elif change == "values-as-strings":
        time_op[0] = [str(v) for v in time_op[0]]
    elif change == "params-not-literals":
        time_op[1][0] = ["softmax", "vjp"]  # not repr()'d: a name, not a literal
    elif change == "shape-not-BxN":
        time_op[1][1] = [repr(s.replace("x", "-")) for s in SHAPES]
    elif change == "unknown-op":
        time_op[1][0] = ["'softmaxx'", "'vjp'"]
    elif change == "surrogate-device":
        time_op[1][3] = ["'\\ud800'"]  # a repr whose value cannot be printed
    elif change == "stats-as-strings":
        time_op[7] = [str(v) for v in time_op[7]]
    return json.dumps(doc)


@pytest.mark.parametrize("case", list(EXPLICIT))
def test_a_hostile_file_is_named_in_one_line(tmp_path, case):
    target, change, says = EXPLICIT[case]
    rid, name = target
    _write_store(tmp_path, {target: _explicit_text(rid, name, change)})
    path = tmp_path / "results" / "runs" / rid / name
    for command, argv in (("choose", CHOOSE), ("compare", ["compare"])):
        rc, out, err = _softgrad(tmp_path, *argv)
        assert rc == 2 and len(err.strip().splitlines()) == 1, (command, err)
        assert str(path) in err and says in err, (command, err)


def test_a_folder_in_place_of_a_file_is_named(tmp_path):
    _write_store(tmp_path, {(RUN_IDS[1], "asv.json"): None})
    path = tmp_path / "results" / "runs" / RUN_IDS[1] / "asv.json"
    path.mkdir()
    rc, _, err = _softgrad(tmp_path, *CHOOSE)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and str(path) in err


@pytest.mark.parametrize("case", ["threads-str", "gbps-str", "200000-deep", "ratio-str", "values-str",
                                  "surrogate-machine"])
def test_report_names_a_hostile_file(tmp_path, case):
    pytest.importorskip("matplotlib")
    target, change, says = EXPLICIT[case]
    rid, name = target
    _write_store(tmp_path, {target: _explicit_text(rid, name, change)})
    rc, _, err = _softgrad(tmp_path, "report", "--out", str(tmp_path / "report"))
    path = tmp_path / "results" / "runs" / rid / name
    assert rc == 2 and len(err.strip().splitlines()) == 1 and str(path) in err and says in err, err


@pytest.mark.parametrize("change, says", [
    ({"rounds": "two"}, "field 'rounds' must be a positive integer, not str"),
    ({"threads": {"requested": "4"}}, "field 'threads.requested' must be a positive integer or null, not str"),
    ({"plugins": "plugin.py"}, "field 'plugins' must be a list of str, not str"),
    ({"impls": "numpy"}, "field 'impls' must be a list of str, not str"),
    ({"grid": 1}, "field 'grid' must be one of 'full', 'quick', not int"),
    ("9" * 5000, "not valid JSON"),
], ids=["rounds", "threads", "plugins", "impls", "grid", "5000-digits"])
def test_run_resume_names_a_hostile_meta_json(tmp_path, monkeypatch, change, says):
    """``run --resume`` reads the interrupted run's meta.json before it starts anything."""
    from softgrad.history import provenance
    from softgrad import paths, runner

    def no_asv(*args, **kwargs):
        raise AssertionError("the damaged meta.json was not caught: the resumed run would start asv")

    monkeypatch.setattr(runner, "asv_config", no_asv)
    for var in ("SOFTGRAD_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS", "XLA_FLAGS"):
        monkeypatch.delenv(var, raising=False)  # restored afterwards, should a resume apply a thread count
    _write_store(tmp_path)
    rid = "20260103T000000000000Z-aaaaaaaa"
    meta = {**_meta(rid), "complete": False, "families_done": [],
            "commit": provenance.git_commit(paths.repo_root())}  # the checkout's: the commit test passes
    path = tmp_path / "results" / "runs" / rid / "meta.json"
    path.parent.mkdir()
    path.write_text(change if isinstance(change, str) else json.dumps({**meta, **change}))
    rc, _, err = _softgrad(tmp_path, "run", "--resume", "--no-check", "--no-report", "--no-progress")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and str(path) in err and says in err, err


# --- (c) a complete run without its timings is left out, not silently ---------------------------------------


def test_a_complete_run_without_asv_json_is_left_out_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    _write_store(tmp_path, {(RUN_IDS[1], "asv.json"): None})
    df = results.load()
    assert set(df["run"]) == {RUN_IDS[0]}  # choose and the report answer from the older run...
    (warning,) = df.attrs["warnings"]  # ...and say why
    assert RUN_IDS[1] in warning and "asv.json" in warning and "\n" not in warning
    assert results.latest(df).attrs["warnings"] == [warning]
    rc, out, _ = _softgrad(tmp_path, *CHOOSE)
    assert rc == 0 and f"from run {RUN_IDS[0]}" in out
    (tmp_path / "results" / "runs" / RUN_IDS[0] / "asv.json").unlink()
    empty = results.load()
    assert empty.empty and len(empty.attrs["warnings"]) == 2
