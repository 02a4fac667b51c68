"""Workloads: the shapes, dtypes, ops and layouts a user chooses a softmax for, as data.

A workload names shapes (any leading dims, the last one is the softmax axis), dtypes, ops, the layouts
of ``x`` and of the VJP's ``g`` (each on its own: :data:`softgrad.prepared.LAYOUTS`,
:data:`softgrad.prepared.G_LAYOUTS`) and what the logits look like (:data:`softgrad.check.cases.VALUES`).
Built-in presets (:data:`PRESETS`) cover vocabulary rows, attention scores and classifier heads; a user's
own comes from a TOML file or from ``[tool.softgrad.workloads.<name>]`` in ``pyproject.toml``. A name means
one workload everywhere (:func:`load`, :func:`known`, :func:`named` in a run's child processes): a user's
workload may not take a preset's name, and is refused in one line if it does.

Every shape of a workload is also a correctness case (:func:`check_cases`): the same row length and the
same number of leading dims, with the rows cut (leading dims from the left) to at most
:data:`CHECK_ELEMENTS` elements, so every boundary along the row that a kernel has (block sizes, vector
tails, a 16-bit running sum) is crossed exactly as at the real shape, at an oracle cost of seconds. At every
row length the value families of a training run are checked too, a few rows each, in every declared dtype:
logits at initialisation (near-uniform: a 16-bit sum of about n overflows past 65504), one dominant logit,
large logits (+-1e4) and masked rows (all -inf, left- and right-padded, causal).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import reprlib
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .check.cases import FAMILIES, VALUES, family_shape, shape_case_name
from .contract import DTYPE_INFO, DTYPES, OPS
from .prepared import G_LAYOUTS, LAYOUTS

#: the largest correctness case made from a workload's shape (elements of x): 2 to 3.5 s and 0.35 to 0.6 GB for
#: the oracle and the checks of one VJP on this project's 2-core machines
CHECK_ELEMENTS = 1 << 21
#: rows a correctness case keeps at least (one row alone hides row-stride bugs)
CHECK_MIN_ROWS = 2
#: a workload whose VJP (x, g and the result) in its widest dtype needs more than this share of the
#: machine's memory is refused: frameworks add temporaries of the same size
MEMORY_SHARE = 0.25
#: elements of one shape at most: past any machine's memory (the memory share refuses less where it can read the
#: memory), and low enough that every count and byte count (x 3 arrays x 8 bytes < 2**53) is an exact float and
#: an int64 for numpy
MAX_ELEMENTS = 1 << 48
#: shapes of one workload at most: each is a correctness case (2 to 3.5 s of oracle per op and dtype at the
#: largest) and a timed point per implementation, dtype, op and layout. The presets have 5 to 24; 256 is ten
#: times the largest, hours of a sweep at sizes like the presets', and a list a reader can still check
MAX_SHAPES = 256
#: correctness cases (shapes x values x layouts of x and g) and timed shapes (shapes x layouts) of one workload at
#: most: four per shape of :data:`MAX_SHAPES` (the presets plan 24 at most); the value families' cases (at most
#: four per shape, of a few rows each) come on top
MAX_CASES = 1024
#: the origin of a preset (:attr:`Workload.origin`); a user's workload's is the file or table it came from
PRESET_ORIGIN = "preset"
KEYS = ("name", "description", "shapes", "dtypes", "ops", "x_layouts", "g_layouts", "values", "sources")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


class WorkloadError(ValueError):
    """A workload that cannot be used: the message is one line naming the file, the key and what is allowed."""


@dataclass(frozen=True)
class Workload:
    """Shapes, dtypes, ops and layouts to check and time; ``sources`` says where the numbers come from."""

    name: str
    description: str
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    ops: tuple[str, ...] = ("softmax", "vjp")
    x_layouts: tuple[str, ...] = ("contiguous",)
    g_layouts: tuple[str, ...] = ("contiguous",)
    values: tuple[str, ...] = ("normal",)
    sources: str = ""
    origin: str = PRESET_ORIGIN

    def largest_bytes(self) -> int:
        """Bytes of x, g and the result of the VJP at the largest shape in the widest dtype."""
        widest = max(DTYPE_INFO[d].itemsize for d in self.dtypes)
        return 3 * widest * max(math.prod(s) for s in self.shapes)


def check_shape(shape: tuple[int, ...], budget: int = CHECK_ELEMENTS) -> tuple[int, ...]:
    """The correctness case's shape for a workload shape: the same row length and number of dims, leading
    dims cut from the left until at most ``budget`` elements, keeping :data:`CHECK_MIN_ROWS` rows where the
    shape has them."""
    *original, n = shape
    lead = list(original)
    for i in range(len(lead)):
        if math.prod(lead) * n <= budget:
            break
        lead[i] = max(1, min(lead[i], budget // (math.prod(lead[i + 1:]) * n)))
    if math.prod(lead) < CHECK_MIN_ROWS <= math.prod(original):
        i = max(k for k, d in enumerate(original) if d >= 2)  # a dim that has rows to give
        lead[i] = max(lead[i], min(original[i], CHECK_MIN_ROWS))
    return (*lead, n)


def shape_token(dims: tuple[int, ...], x_layout: str = "contiguous", g_layout: str = "contiguous") -> str:
    """A timed shape as a benchmark parameter: ``"512x262144"``, with ``:x=<layout>`` and ``:g=<layout>``
    where a layout is not contiguous (``"8x12x128x128:g=transposed"``)."""
    token = "x".join(str(int(d)) for d in dims)
    if x_layout != "contiguous":
        token += f":x={x_layout}"
    if g_layout != "contiguous":
        token += f":g={g_layout}"
    return token


_TOKEN = re.compile(r"(\d+(?:x\d+)*)(?::x=(\w+))?(?::g=(\w+))?")


def parse_shape_token(token: str) -> tuple[tuple[int, ...], str, str]:
    """``(dims, x_layout, g_layout)`` of a :func:`shape_token`; ``ValueError`` for anything else."""
    m = _TOKEN.fullmatch(token)
    if not m or (m.group(2) or "contiguous") not in LAYOUTS or (m.group(3) or "contiguous") not in G_LAYOUTS:
        raise ValueError(f"not a shape: {token!r} (write AxBx...xN, optionally :x=<layout> and :g=<layout>)")
    return tuple(int(d) for d in m.group(1).split("x")), m.group(2) or "contiguous", m.group(3) or "contiguous"


def timing_shapes(w: Workload, quick: bool = False) -> list[str]:
    """The shapes ``w`` is timed at: each shape with each layout of x, and of g where the VJP is timed
    (``quick``: the first shape, contiguous, only)."""
    if quick:
        return [shape_token(w.shapes[0])]
    g_layouts = w.g_layouts if "vjp" in w.ops else ("contiguous",)
    tokens = [shape_token(s, xl, gl) for s in w.shapes for xl in w.x_layouts for gl in g_layouts
              if not (xl == "transposed" and len(s) < 2)]
    return list(dict.fromkeys(tokens))


def check_cases(w: Workload, *, families: bool = True) -> list[str]:
    """Names of the correctness cases of ``w``: every checked shape with each kind of values and each layout
    of x (and of g, which only the VJP reads), without repeats; then (``families``) the value families of a
    training run (:data:`softgrad.check.cases.FAMILIES`) the workload does not declare, at each row length and
    number of dims (:func:`softgrad.check.cases.family_shape`: a few rows each), x in its first layout, g
    contiguous (so that every op reads them)."""
    names: dict[str, None] = {}
    for shape in w.shapes:
        small = check_shape(shape)
        for values in w.values:
            for layout in w.x_layouts:
                if layout == "transposed" and len(small) < 2:
                    continue
                g_layouts = w.g_layouts if "vjp" in w.ops else ("contiguous",)
                for g_layout in g_layouts:
                    names[shape_case_name(small, values, layout, g_layout)] = None
    if families:
        for shape in w.shapes:
            for family in FAMILIES:
                if family not in w.values:
                    names[shape_case_name(family_shape(shape, family), family, w.x_layouts[0])] = None
    return list(names)


# --- the presets -----------------------------------------------------------------------------------------

#: vocabulary sizes of public model configs: Llama 2 (32000), GPT-2 (50257), Llama 3 (128256),
#: Qwen 2 (151936), Gemma 3 (262144)
VOCAB_SIZES = (32000, 50257, 128256, 151936, 262144)

#: the default grid (the nightly trend line): rows of 2 to 4096, alone and in a batch of 256
DEFAULT_N_VALUES: tuple[int, ...] = tuple(2**k for k in range(1, 13))
DEFAULT_BATCHES: tuple[int, ...] = (1, 256)

PRESETS: dict[str, Workload] = {w.name: w for w in (
    Workload("default", "the default grid: the nightly trend line (every shape fits this machine's cache)",
             tuple((b, n) for b in DEFAULT_BATCHES for n in DEFAULT_N_VALUES), ("float32", "float64"), OPS,
             sources="powers of two from 2 to 4096; one row and a batch of 256"),
    Workload("vocab", "LM head and loss: one row per token over the vocabulary",
             tuple((tokens, v) for tokens in (512, 2048) for v in VOCAB_SIZES if tokens * v <= 1 << 27),
             ("bfloat16", "float16", "float32"), g_layouts=("contiguous", "broadcast"),
             sources="vocab_size of Llama 2, GPT-2, Llama 3, Qwen 2, Gemma 3 configs; 512 and 2048 tokens per step "
                     "(16384 in training, cut to fit 24 GiB: 128M elements at most, 512 MiB a float32 array)"),
    Workload("attention", "attention scores: batch x heads x queries over the keys, masked and not",
             ((8, 12, 128, 128), (1, 32, 512, 512), (1, 32, 1024, 1024), (1, 8, 256, 4096), (1, 8, 64, 16384)),
             ("bfloat16", "float16", "float32"), values=("normal", "masked"), g_layouts=("contiguous", "transposed"),
             sources="32 heads (Llama 2 7B, Llama 3 8B), 12 (GPT-2 small), 8 key-value groups; keys 128 to 16384: "
                     "sequence lengths of the same models (4096 Llama 2, 8192 Llama 3), queries cut to fit 24 GiB"),
    Workload("classifier", "classifier heads: a batch of rows over 2 to 1000 classes",
             ((1, 2), (1, 10), (256, 10), (65536, 10), (4096, 2), (256, 1000), (65536, 1000)),
             ("float32", "float64"), values=("normal", "dominant"), x_layouts=("contiguous", "sliced"),
             sources="binary, CIFAR-10 and ImageNet-1k class counts; batches of 1 to 65536 rows"),
)}


class _Short(reprlib.Repr):
    """A value as a message shows it: short, one line, any depth, any integer (``repr`` of an int of more than
    4300 digits raises)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 3, 32, 32, 32

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() <= 100:
            return repr(x)
        digits = len(str(abs(x))) if x.bit_length() < 14000 else f"about {int(x.bit_length() * math.log10(2))}"
        return f"<an integer of {digits} digits>"  # str() of more than 4300 digits raises: 14000 bits is 4214


def _show(value: Any, limit: int = 120) -> str:
    """:class:`_Short`'s repr of ``value``, cut to ``limit`` characters in all (a list of long items stays one
    short clause of the message)."""
    text = _Short().repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _table_of(data: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise WorkloadError(f"{where}: a workload is a TOML table, not {_show(data)}")
    return data


def parse(table: Mapping[str, Any], where: str, default_name: str, *, named_after: str = "file") -> Workload:
    """A user's :class:`Workload` from a TOML table (named ``default_name``, after its ``named_after``, unless it
    has a key ``name``); :class:`WorkloadError` naming ``where``, the key and what is allowed for anything else,
    a preset's name included."""
    w = _parse(table, where, default_name)
    if w.name in PRESETS:
        how = (f"key 'name': {w.name!r} is" if "name" in table else
               f"with no key 'name' it is named {w.name!r} after its {named_after}, which is")
        raise WorkloadError(f"{where}: {how} a preset's name ({', '.join(PRESETS)}); give it another name with "
                            f"name = \"...\"")
    return w


def _parse(table: Mapping[str, Any], where: str, default_name: str) -> Workload:
    """:func:`parse` less the rule on a preset's name (a preset as a stored run wrote it passes here)."""
    table = _table_of(table, where)
    unknown = [k for k in table if k not in KEYS]
    if unknown:
        raise WorkloadError(f"{where}: unknown key {_show(unknown[0])}; allowed: {', '.join(KEYS)}")
    name = table.get("name", default_name)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise WorkloadError(f"{where}: key 'name': {_show(name)} is not allowed; use 1 to 64 letters, digits and _.+-")
    if "shapes" not in table:
        raise WorkloadError(f"{where}: key 'shapes' is missing; give a list such as [\"4096x50257\", [8, 16, 1024, 1024]]")
    listed = _list(table["shapes"], "shapes", where)
    if len(listed) > MAX_SHAPES:
        raise WorkloadError(f"{where}: key 'shapes': {len(listed)} shapes; at most {MAX_SHAPES} (split them into "
                            f"several workloads)")
    shapes = tuple(_shape(s, where) for s in listed)
    dtypes = _choices(table.get("dtypes", ["float32"]), "dtypes", DTYPES, where)
    ops = _choices(table.get("ops", ["softmax", "vjp"]), "ops", OPS, where)
    x_layouts = _choices(table.get("x_layouts", ["contiguous"]), "x_layouts", LAYOUTS, where)
    g_layouts = _choices(table.get("g_layouts", ["contiguous"]), "g_layouts", G_LAYOUTS, where)
    values = _choices(table.get("values", ["normal"]), "values", tuple(VALUES), where)
    texts = {}
    for key in ("description", "sources"):
        value = table.get(key, "")
        if not isinstance(value, str):
            raise WorkloadError(f"{where}: key {key!r}: give a string, not {type(value).__name__}")
        texts[key] = value
    w = Workload(name, texts["description"], shapes, dtypes, ops, x_layouts, g_layouts, values, texts["sources"],
                 origin=where)
    if "transposed" in x_layouts and all(len(s) < 2 for s in shapes):
        raise WorkloadError(f"{where}: key 'x_layouts': transposed needs shapes of two dims or more")
    cases = max(len(check_cases(w, families=False)), len(timing_shapes(w)))  # families: a few rows each
    if cases > MAX_CASES:
        raise WorkloadError(f"{where}: keys 'shapes', 'values', 'x_layouts' and 'g_layouts' make {cases} correctness "
                            f"cases or timed shapes; at most {MAX_CASES} (split them into several workloads)")
    memory = _memory_bytes()
    if memory and w.largest_bytes() > MEMORY_SHARE * memory:
        big = max(shapes, key=math.prod)
        raise WorkloadError(f"{where}: key 'shapes': {'x'.join(map(str, big))} needs {w.largest_bytes() / 2**30:.1f} "
                            f"GiB for x, g and the VJP's result, over {MEMORY_SHARE:.0%} of this machine's "
                            f"{memory / 2**30:.0f} GiB")
    return w


def _list(value: Any, key: str, where: str) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise WorkloadError(f"{where}: key {key!r}: give a non-empty list")
    return value


def _choices(value: Any, key: str, allowed: Iterable[str], where: str) -> tuple[str, ...]:
    allowed = tuple(allowed)
    items = _list(value, key, where)
    for item in items:
        if item not in allowed:
            raise WorkloadError(f"{where}: key {key!r}: {_show(item)} is not allowed; choose from {', '.join(allowed)}")
    return tuple(dict.fromkeys(items))


def _shape(value: Any, where: str) -> tuple[int, ...]:
    """A shape of 1 to 8 dims of at least 1 and at most :data:`MAX_ELEMENTS` elements."""
    over = f"{where}: key 'shapes': {_show(value)}: over 2**48 elements; a shape has at most {MAX_ELEMENTS}"
    if isinstance(value, str) and re.fullmatch(r"[0-9]+(x[0-9]+)*", value):
        pieces = value.split("x")
        if any(len(d.lstrip("0")) > len(str(MAX_ELEMENTS)) for d in pieces):
            raise WorkloadError(over)  # never int() a string of thousands of digits
        dims = [int(d) for d in pieces]
    elif isinstance(value, list) and value and all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        dims = list(value)
    else:
        raise WorkloadError(f"{where}: key 'shapes': {_show(value)} is not a shape; write \"4096x50257\" or "
                            f"[4096, 50257]")
    if any(d < 1 for d in dims) or len(dims) > 8:
        raise WorkloadError(f"{where}: key 'shapes': {_show(value)}: give 1 to 8 dims of at least 1")
    if math.prod(dims) > MAX_ELEMENTS:
        raise WorkloadError(over)
    return tuple(dims)


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _read_toml(path: Path, what: str = "workload file ") -> dict[str, Any]:
    where = f"{what}{path}"
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise WorkloadError(f"{what}{str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{where}: cannot be read ({exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError(f"{where}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib reads nested arrays and inline tables recursively
        deep = re.search(r"[\[{]([^\]}\[{\"']*[\[{]){63}", text)
        raise WorkloadError(f"{where}{_at(text, deep)}: nested too deep to read (a workload nests two deep)") from None
    except ValueError as exc:  # tomllib's int() of more digits than Python converts (4300)
        long = re.search(r"[0-9][0-9_]{%d,}" % max(sys.get_int_max_str_digits(), 1), text)
        if long is None:
            raise WorkloadError(f"{where}: cannot be read ({exc})") from None
        raise WorkloadError(f"{where}{_at(text, long)}: an integer of {len(long.group().replace('_', ''))} digits; "
                            f"a shape has at most {MAX_ELEMENTS} elements") from None


def _at(text: str, found: re.Match[str] | None) -> str:
    """``", line N, key 'K'"``: where in TOML ``text`` a match is, with the last key assigned on or before it."""
    if found is None:
        return ""
    before = text[:found.start()]
    keys = re.findall(r"^[ \t]*([A-Za-z0-9_.-]+|\"[^\"\n]*\"|'[^'\n]*')[ \t]*=", before, re.MULTILINE)
    return f", line {before.count(chr(10)) + 1}" + (f", key {_show(keys[-1].strip(chr(34) + chr(39)))}" if keys else "")


#: the tables from the top of ``pyproject.toml`` to its workloads
PYPROJECT_TABLES = ("tool", "softgrad", "workloads")


def from_pyproject(folder: Path) -> dict[str, Workload]:
    """The workloads of ``[tool.softgrad.workloads.<table>]`` in ``folder/pyproject.toml`` (none if absent), by
    name: a table's, unless it has a key ``name``. A preset's name, or one name twice, is refused."""
    path = folder / "pyproject.toml"
    if not path.is_file():
        return {}
    tables: Any = _read_toml(path, "")
    for depth, key in enumerate(PYPROJECT_TABLES):
        tables = tables.get(key, {})
        if not isinstance(tables, Mapping):
            header = ".".join(PYPROJECT_TABLES[:depth + 1])
            raise WorkloadError(f"{path}: [{header}] must be a table" + (" holding one table per workload"
                                                                         if key == "workloads" else ""))
    found: dict[str, Workload] = {}
    where: dict[str, str] = {}
    for table, body in tables.items():
        here = f"{path} [tool.softgrad.workloads.{_toml_key(table)}]"
        w = parse(body, here, table, named_after="table")
        if w.name in found:
            raise WorkloadError(f"{here}: the name {w.name!r} is also the name of {where[w.name]}; give it another "
                                f"name")
        found[w.name], where[w.name] = w, here
    return found


def _toml_key(key: str) -> str:
    """``key`` as TOML writes it in a table's header: bare, else quoted (escaped: one line, at most 40 characters)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)[:40]


#: how a process hands the workload it times to its children (the sweep's workers, asv's discovery): JSON
EXPORT_ENV = "SOFTGRAD_WORKLOAD_JSON"


def to_json(w: Workload) -> str:
    """``w`` as the table :func:`parse` reads, with where it came from."""
    table = {k: getattr(w, k) for k in KEYS}
    return json.dumps({"table": table, "origin": w.origin})


def name_in_json(text: str) -> str:
    """The name of the workload :func:`to_json` wrote, without checking the rest (``?`` if unreadable)."""
    try:
        return str(json.loads(text)["table"]["name"])
    except (ValueError, TypeError, KeyError):
        return "?"


def from_json(text: str) -> Workload:
    """The workload :func:`to_json` wrote, checked again; :class:`WorkloadError` for anything else."""
    try:
        data = json.loads(text)
        table, origin = dict(data["table"]), str(data["origin"])
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise WorkloadError(f"{EXPORT_ENV} does not hold a workload ({exc})") from None
    default = str(table.get("name", ""))
    # a preset as a run stored it keeps its name (a run may outlive a change to the preset); nothing else may
    w = _parse(table, origin, default) if origin == PRESET_ORIGIN else parse(table, origin, default)
    return dataclasses.replace(w, origin=origin)


def _refuse_preset_name(w: Workload) -> None:
    if w.name in PRESETS and w.origin != PRESET_ORIGIN:
        raise WorkloadError(f"{w.origin}: {w.name!r} is a preset's name ({', '.join(PRESETS)}); give it another name "
                            f"with name = \"...\"")


def export(w: Workload) -> None:
    """Name ``w`` in the environment, so that child processes resolve ``named(w.name)`` to it (a preset needs
    nothing: its name resolves to it everywhere)."""
    _refuse_preset_name(w)
    if w.name not in PRESETS:
        os.environ[EXPORT_ENV] = to_json(w)


def exported() -> Workload | None:
    """The workload a parent process exported; never a preset, or one named like a preset (refused)."""
    raw = os.environ.get(EXPORT_ENV)
    if not raw:
        return None
    w = from_json(raw)
    if w.name in PRESETS:
        raise WorkloadError(f"{EXPORT_ENV}: {w.name!r} is a preset's name ({', '.join(PRESETS)}): a preset is never "
                            f"exported, and no other workload may take its name")
    return w


def named(name: str) -> Workload:
    """A preset, or the workload a parent process exported under ``name``; ``WorkloadError`` otherwise. No
    exported workload has a preset's name (:func:`exported`), so a preset can never stand in for one."""
    if name in PRESETS:
        return PRESETS[name]
    own = exported()
    if own is not None and own.name == name:
        return own
    raise WorkloadError(f"unknown workload {name!r} in this process; presets: {', '.join(PRESETS)}")


def known(folder: Path | None = None) -> dict[str, Workload]:
    """Every workload a name resolves to: the presets, then ``folder``'s (default: the working directory's)
    ``pyproject.toml`` workloads, none of which has a preset's name (:func:`from_pyproject` refuses it)."""
    return {**PRESETS, **from_pyproject(folder or Path.cwd())}


def load(spec: str, folder: Path | None = None) -> Workload:
    """The workload ``spec`` names: a ``.toml`` file (named by its key ``name``, else by the file's name), or a
    preset or workload of ``folder``'s ``pyproject.toml`` (:func:`known`). Each command resolves a workload here,
    so ``pyproject.toml`` is read whenever a name is given: a bad one is refused for a preset's name too."""
    if spec.endswith(".toml") or os.sep in spec:
        path = Path(spec).expanduser()
        return parse(_read_toml(path), f"workload file {path}", path.stem)
    found = known(folder)
    if spec in found:
        return found[spec]
    raise WorkloadError(f"unknown workload {_show(spec)}; presets and pyproject.toml workloads: {', '.join(found)}, "
                        f"or a .toml file")


__all__ = ["CHECK_ELEMENTS", "DEFAULT_BATCHES", "DEFAULT_N_VALUES", "EXPORT_ENV", "export", "exported", "named", "KEYS",
           "MAX_CASES", "MAX_ELEMENTS", "MAX_SHAPES", "PRESETS", "PRESET_ORIGIN", "VOCAB_SIZES", "Workload",
           "WorkloadError", "check_cases", "check_shape", "from_pyproject", "known", "load", "parse",
           "parse_shape_token", "shape_token", "timing_shapes"]
