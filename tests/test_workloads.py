"""Workloads as data: presets, a user's TOML file or pyproject table, clear errors for bad ones, and the
correctness cases made at a workload's own shapes."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softgrad import workloads
from softgrad.bench import grid
from softgrad.check.cases import VALUES, get_case
from softgrad.prepared import G_LAYOUTS, LAYOUTS
from softgrad.workloads import CHECK_ELEMENTS, WorkloadError, check_cases, check_shape

PLUGINS = Path(__file__).parent / "plugins"
ROOT = Path(__file__).resolve().parent.parent


def softgrad(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    for key in ("SOFTGRAD_PLUGINS", "SOFTGRAD_PLUGIN_FILES"):
        if not env or key not in env:
            full.pop(key, None)
    return subprocess.run([sys.executable, "-m", "softgrad.cli", *args], capture_output=True, text=True, env=full,
                          cwd=cwd, timeout=600)


def test_the_presets_are_sized_to_fit_and_their_cases_rebuild_from_their_names():
    assert set(workloads.PRESETS) == {"default", "vocab", "attention", "classifier"}
    for w in workloads.PRESETS.values():
        assert w.sources and w.description
        assert w.largest_bytes() <= 2 * 2**30, f"{w.name}: x, g and the VJP's result fit 24 GiB with room to spare"
        for name in check_cases(w):
            case = get_case(name)
            assert case.name == name and case.rows * case.n <= max(CHECK_ELEMENTS, 2 * case.n)
            assert case.n in {s[-1] for s in w.shapes}
    vocab = workloads.PRESETS["vocab"]
    assert {s[-1] for s in vocab.shapes} == set(workloads.VOCAB_SIZES) and "bfloat16" in vocab.dtypes
    default = workloads.PRESETS["default"]
    assert [grid.shape_name(*s) for s in default.shapes] == grid.shapes("full"), "the default grid is the asv grid"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=0, max_size=3), st.integers(1, 300000))
def test_a_checked_shape_keeps_the_row_and_the_dims_and_fits_the_budget(lead, n):
    shape = (*lead, n)
    small = check_shape(shape)
    assert len(small) == len(shape) and small[-1] == n
    assert all(1 <= s <= d for s, d in zip(small[:-1], shape[:-1]))
    rows, original_rows = math.prod(small[:-1]), math.prod(shape[:-1])
    assert rows >= min(2, original_rows)
    assert rows * n <= CHECK_ELEMENTS or rows == min(2, original_rows), (shape, small)
    if original_rows * n <= CHECK_ELEMENTS:
        assert small == shape, "a shape that fits is checked as it is"


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_a_workload_file_and_a_pyproject_table_parse(tmp_path):
    path = _write(tmp_path / "lm.toml", """
        description = "my LM head"
        shapes = ["64x50257", [2, 4, 300]]
        dtypes = ["bfloat16", "float32"]
        ops = ["vjp"]
        x_layouts = ["contiguous", "sliced"]
        g_layouts = ["broadcast"]
        values = ["dominant"]
        sources = "GPT-2's vocabulary"
    """)
    w = workloads.load(str(path))
    assert (w.name, w.shapes, w.dtypes, w.ops) == ("lm", ((64, 50257), (2, 4, 300)), ("bfloat16", "float32"), ("vjp",))
    assert w.origin == f"workload file {path}"
    assert check_cases(w) == ["shape-41x50257-dominant-x-contiguous-g-broadcast",
                              "shape-41x50257-dominant-x-sliced-g-broadcast",
                              "shape-2x4x300-dominant-x-contiguous-g-broadcast",
                              "shape-2x4x300-dominant-x-sliced-g-broadcast",
                              # the value families of training it does not declare: a few rows, x's first layout
                              "shape-2x50257-near-uniform-x-contiguous-g-contiguous",
                              "shape-3x50257-large-x-contiguous-g-contiguous",
                              "shape-4x50257-masked-rows-x-contiguous-g-contiguous",
                              "shape-1x2x300-near-uniform-x-contiguous-g-contiguous",
                              "shape-1x3x300-large-x-contiguous-g-contiguous",
                              "shape-1x4x300-masked-rows-x-contiguous-g-contiguous"]
    _write(tmp_path / "pyproject.toml", """
        [project]
        name = "mylib"
        [tool.softgrad.workloads.heads]
        shapes = ["256x10"]
    """)
    heads = workloads.load("heads", tmp_path)
    assert heads.name == "heads" and heads.dtypes == ("float32",) and heads.ops == ("softmax", "vjp")


@pytest.mark.parametrize("text,message", [
    ('shapes = ["4x10"]\nshape = 1', "key 'shape'... unknown key 'shape'; allowed: name, description, shapes"),
    ('dtypes = ["float32"]', "key 'shapes' is missing"),
    ('shapes = ["4x10"]\ndtypes = ["bf16"]', "key 'dtypes': 'bf16' is not allowed; choose from float64, float32"),
    ('shapes = ["4 by 10"]', "key 'shapes': '4 by 10' is not a shape"),
    ('shapes = [[4, 0]]', "give 1 to 8 dims of at least 1"),
    ('shapes = "4x10"', "key 'shapes': give a non-empty list"),
    ('shapes = ["4x10"]\ng_layouts = ["diagonal"]', "key 'g_layouts': 'diagonal' is not allowed; choose from"),
    ('shapes = ["4x10"]\nx_layouts = ["broadcast"]', "key 'x_layouts': 'broadcast' is not allowed"),
    ('shapes = ["4x10"]\nname = "has space"', "key 'name': 'has space' is not allowed"),
    ('shapes = ["100000x1000000"]', "key 'shapes': 100000x1000000 needs"),
    ('shapes = ["4x10"\n', "not valid TOML"),
])
def test_a_bad_workload_file_is_one_line_naming_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(WorkloadError) as exc:
        workloads.load(str(path))
    line = str(exc.value)
    assert "\n" not in line and str(path) in line
    for part in message.split("..."):
        assert part.strip() in line, line
    proc = softgrad("check", "--workload", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and str(path) in proc.stderr, proc.stderr


def test_an_unknown_workload_names_the_presets_and_the_pyproject_ones(tmp_path):
    _write(tmp_path / "pyproject.toml", '[tool.softgrad.workloads.heads]\nshapes = ["256x10"]\n')
    with pytest.raises(WorkloadError, match="unknown workload 'vocabulary'; .*vocab, attention, classifier, heads"):
        workloads.load("vocabulary", tmp_path)
    with pytest.raises(WorkloadError, match="workload file 'missing.toml' not found"):
        workloads.load("missing.toml", tmp_path)
    proc = softgrad("workloads", cwd=tmp_path)
    assert proc.returncode == 0 and "heads " in proc.stdout and "vocab " in proc.stdout, proc.stderr


def test_check_at_a_workloads_shapes_catches_a_bug_the_catalogue_cannot(tmp_path):
    """Right for every quick catalogue row (n <= 4096), wrong past n = 20000: the workload's rows show it (of the
    catalogue, only the row of 65537 past 2**16, in the full set and softgrad.testing's default)."""
    env = {"SOFTGRAD_PLUGINS": str(PLUGINS / "wrong_past_20000.py"), "SOFTGRAD_HOME": str(tmp_path)}
    proc = softgrad("check", "--impl", "wrong-past-20000", "--quick", "--no-progress", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _write(tmp_path / "lm.toml", 'shapes = ["3x4096", "64x32000"]\ndtypes = ["float32", "bfloat16"]\n'
                                 'ops = ["softmax"]\nx_layouts = ["contiguous", "sliced"]\n')
    out = tmp_path / "records.json"
    proc = softgrad("check", "--impl", "wrong-past-20000", "--workload", "lm.toml", "--json", str(out),
                    "--no-progress", cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    records = json.loads(out.read_text())
    verdicts = {(r["case"], r["dtype"]): r["verdict"] for r in records}
    families = {  # a training run's values at each row length (one dominant logit before entry 20000 passes)
        "shape-2x4096-near-uniform-x-contiguous-g-contiguous": "pass",
        "shape-2x4096-dominant-x-contiguous-g-contiguous": "pass",
        "shape-3x4096-large-x-contiguous-g-contiguous": "pass",
        "shape-4x4096-masked-rows-x-contiguous-g-contiguous": "pass",
        "shape-2x32000-near-uniform-x-contiguous-g-contiguous": "fail",
        "shape-2x32000-dominant-x-contiguous-g-contiguous": "pass",
        "shape-3x32000-large-x-contiguous-g-contiguous": "fail",
        "shape-4x32000-masked-rows-x-contiguous-g-contiguous": "fail",
    }
    assert verdicts == {
        ("shape-3x4096-normal-x-contiguous-g-contiguous", "float32"): "pass",
        ("shape-3x4096-normal-x-sliced-g-contiguous", "float32"): "pass",
        ("shape-64x32000-normal-x-contiguous-g-contiguous", "float32"): "fail",
        ("shape-64x32000-normal-x-sliced-g-contiguous", "float32"): "fail",
        **{(case, "float32"): verdict for case, verdict in families.items()},
        **{(case, "bfloat16"): "skip" for case in ("shape-3x4096-normal-x-contiguous-g-contiguous",
                                                   "shape-3x4096-normal-x-sliced-g-contiguous",
                                                   "shape-64x32000-normal-x-contiguous-g-contiguous",
                                                   "shape-64x32000-normal-x-sliced-g-contiguous", *families)},
    }
    assert "workload lm: 12 cases at its shapes" in proc.stderr
    assert "wrong-past-20000 softmax float32 cpu case shape-64x32000-normal-x-contiguous-g-contiguous" in proc.stdout


def test_the_expected_time_grows_with_the_bytes_and_passes_and_skips_what_is_skipped_at_once():
    from softgrad import registry
    from softgrad.bench import plan

    numpy = registry.get("numpy")
    small = plan.Combo("numpy", "vjp", "4x1000", "float32", "cpu", ("time_op",))
    large = plan.Combo("numpy", "vjp", "512x262144", "float32", "cpu", ("time_op",))
    assert 0 < plan.expected_seconds([small], 3) < plan.expected_seconds([large], 3)
    assert plan.expected_seconds([large], 1) < plan.expected_seconds([large], 3)
    no_g = plan.Combo("numpy", "softmax", "512x262144:g=broadcast", "float32", "cpu", ("time_op",))
    no_dtype = plan.Combo("numpy", "vjp", "512x262144", "bfloat16", "cpu", ("time_op",))
    assert plan.expected_seconds([no_g, no_dtype], 3) == 0, "softmax does not read g; numpy has no bfloat16"
    assert numpy.compiles is False


def test_the_gates_default_baseline_is_the_previous_run_of_the_same_workload(tmp_path, monkeypatch):
    from softgrad.history import gate, store

    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    vocab = workloads.to_json(workloads.PRESETS["vocab"])
    ids = []
    for k, wl in enumerate([None, vocab, None, vocab]):
        run = store.Run(store.runs_dir() / f"2026010{k + 1}T000000000000Z-aaaaaaaa")
        run.folder.mkdir(parents=True)
        run.update_meta(complete=True, grid="full", machine="vm", impls=["numpy"], **({"workload": wl} if wl else {}))
        ids.append(run.id)
    runs = store.complete_runs()
    by_id = {r.id: r for r in runs}
    assert gate.previous_run(runs, by_id[ids[3]]).id == ids[1], "vocab after vocab"
    assert gate.previous_run(runs, by_id[ids[2]]).id == ids[0], "the default grid after the default grid"
    with pytest.raises(store.StoreError, match="on the vocab workload"):
        gate.previous_run(runs, by_id[ids[1]])


# --- a user's workload never takes a preset's name; what any TOML holds is a Workload or one line -------------

def _main(*args: str) -> tuple[int, str]:
    """``softgrad ARGS`` in this process (its exit status and stderr), with every command's work replaced by a
    failure: a test that reaches it has let a workload through that should have been refused."""
    import contextlib
    import io

    from softgrad import cli, runner
    from softgrad.check import isolated

    def work(*_args, **_kwargs):
        raise AssertionError("reached work: the workload was not refused")

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        mp.setattr(isolated, "run_checks", work)
        mp.setattr(runner, "run", work)
        code = cli.main(list(args))
    return code, err.getvalue()


def _refused_in_one_line(code: int, err: str, *parts: str) -> None:
    assert code == 2 and err.count("\n") == 1 and "internal error" not in err, err
    for part in parts:
        assert part in err, (part, err)


@settings(max_examples=40, deadline=None)
@given(preset=st.sampled_from(sorted(workloads.PRESETS)),
       entry=st.sampled_from(["file named after it", "file with key name", "pyproject table", "pyproject key name"]),
       command=st.sampled_from(["workloads", "check", "run"]))
def test_a_users_workload_named_like_a_preset_is_refused_through_every_entry(tmp_path_factory, preset, entry, command):
    """A file ``vocab.toml``, a file with ``name = "vocab"``, ``[tool.softgrad.workloads.vocab]`` or a table with
    ``name = "vocab"``: ``softgrad workloads``, ``check --workload`` and ``run --workload`` each exit 2 in one line
    naming where, before any work (the preset was listed, checked or timed in its place)."""
    folder = tmp_path_factory.mktemp("clash")
    if entry.startswith("file"):
        if command == "workloads":
            command = "check"  # `softgrad workloads` lists no file
        stem = preset if entry == "file named after it" else "mine"
        path = folder / f"{stem}.toml"
        path.write_text('shapes = ["2x8"]\n' + (f'name = "{preset}"\n' if entry == "file with key name" else ""))
        spec, where = str(path), str(path)
        hint = "name = " if entry == "file named after it" else "key 'name'"
    else:
        table = preset if entry == "pyproject table" else "mine"
        body = 'shapes = ["2x8"]\n' + (f'name = "{preset}"\n' if entry == "pyproject key name" else "")
        _write(folder / "pyproject.toml", f"[tool.softgrad.workloads.{table}]\n{body}")
        spec, where = preset, f"[tool.softgrad.workloads.{table}]"
        hint = "name = " if entry == "pyproject table" else "key 'name'"
        with pytest.raises(WorkloadError, match="a preset's name"):
            workloads.from_pyproject(folder)
    with pytest.raises(WorkloadError, match="a preset's name") as exc:
        workloads.load(spec, folder)
    assert "\n" not in str(exc.value) and where in str(exc.value) and hint in str(exc.value)
    args = {"workloads": ["workloads"], "check": ["check", "--workload", spec, "--no-progress"],
            "run": ["run", "--workload", spec, "--no-progress"]}[command]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTGRAD_HOME", str(folder / "home"))
        mp.delenv(workloads.EXPORT_ENV, raising=False)
        mp.chdir(folder)
        code, err = _main(*args)
    _refused_in_one_line(code, err, where, f"'{preset}'", "preset")


def test_a_workload_named_like_a_preset_never_travels_between_processes(monkeypatch):
    """Inside a run the workload travels by name (``workload:NAME`` grids, ``$SOFTGRAD_WORKLOAD_JSON``): only a
    preset may carry a preset's name, so ``named`` can never hand a preset out in a user's workload's place."""
    monkeypatch.delenv(workloads.EXPORT_ENV, raising=False)
    vocab = workloads.PRESETS["vocab"]
    impostor = workloads.Workload("vocab", "mine", ((2, 8),), ("float32",), origin="workload file ./vocab.toml")
    with pytest.raises(WorkloadError, match="a preset's name"):
        workloads.export(impostor)
    assert workloads.EXPORT_ENV not in os.environ
    workloads.export(vocab)  # a preset is resolved by its name: nothing to hand over
    assert workloads.EXPORT_ENV not in os.environ and grid.workload_of("workload:vocab") == (vocab, False)
    stored = workloads.to_json(vocab)
    assert workloads.from_json(stored) == vocab, "a run that timed a preset stores it and reads it back"
    forged = json.dumps({**json.loads(stored), "origin": "workload file ./vocab.toml"})
    with pytest.raises(WorkloadError, match="a preset's name"):
        workloads.from_json(forged)
    monkeypatch.setenv(workloads.EXPORT_ENV, stored)
    with pytest.raises(WorkloadError, match="a preset's name"):
        workloads.exported()
    own = workloads.parse({"shapes": ["2x8"]}, "workload file ./mine.toml", "mine")
    workloads.export(own)
    assert workloads.named("mine") == own and grid.workload_of("workload:mine:quick") == (own, True)


def test_a_pyproject_workload_is_known_by_its_name_and_two_of_one_name_are_refused(tmp_path):
    def tables(name_of_a: str) -> None:
        body = f'name = "{name_of_a}"\nshapes = ["256x10"]\n'
        _write(tmp_path / "pyproject.toml", f'[tool.softgrad.workloads.a]\n{body}[tool.softgrad.workloads.b]\n'
                                            f'shapes = ["2x8"]\n')

    tables("heads")
    assert list(workloads.from_pyproject(tmp_path)) == ["heads", "b"]
    assert workloads.load("heads", tmp_path).shapes == ((256, 10),)
    assert list(workloads.known(tmp_path)) == [*workloads.PRESETS, "heads", "b"]
    tables("b")
    with pytest.raises(WorkloadError, match=r"\[tool.softgrad.workloads.b\]: the name 'b' is also the name of "
                                            r".*\[tool.softgrad.workloads.a\]"):
        workloads.from_pyproject(tmp_path)


@pytest.mark.parametrize("text", [
    "tool = 5", "[tool]\nsoftgrad = 5", "[tool.softgrad]\nworkloads = 5", "[tool.softgrad.workloads]\nheads = 5",
    "[tool.softgrad.workloads]\nheads = [1, 2]", 'tool = "softgrad"',
])
def test_a_pyproject_whose_tables_are_not_tables_is_one_line(tmp_path, monkeypatch, text):
    _write(tmp_path / "pyproject.toml", text + "\n")
    with pytest.raises(WorkloadError) as exc:
        workloads.from_pyproject(tmp_path)
    assert "\n" not in str(exc.value) and "pyproject.toml" in str(exc.value) and "table" in str(exc.value)
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    _refused_in_one_line(*_main("workloads"), "pyproject.toml", "table")
    _refused_in_one_line(*_main("check", "--workload", "heads", "--no-progress"), "pyproject.toml", "table")


DIGITS_5000 = "9" * 5000


@pytest.mark.parametrize("text,message", [
    ("shapes = " + "[" * 5000 + "]" * 5000, "line 1, key 'shapes': nested too deep"),
    ('shapes = ["2x8"]\ndescription = ' + "{a = " * 5000 + "1" + "}" * 5000, "line 2, key 'description': nested"),
    ("shapes = [[2, " + "9" * 400 + "]]", "key 'shapes': [2, <an integer of 400 digits>]: over 2**48 elements"),
    ('shapes = ["2x' + "9" * 400 + '"]', "key 'shapes': '2x99999999999...99999999999999': over 2**48 elements"),
    (f"shapes = [[2, {DIGITS_5000}]]", "line 1, key 'shapes': an integer of 5000 digits"),
    (f'shapes = ["2x{DIGITS_5000}"]', "key 'shapes': '2x99999999999...99999999999999': over 2**48 elements"),
    ('shapes = ["2x8"]\nname = ' + DIGITS_5000, "line 2, key 'name': an integer of 5000 digits"),
    ('shapes = ["2x8"]\nname = [' + ", ".join(["1" * 300] * 20) + "]", "key 'name': [<an integer of 300 digits>, "),
    ("shapes = [[65536, 65536, 65537]]", "key 'shapes': [65536, 65536, 65537]: over 2**48 elements"),
    ('shapes = ["2x٣"]', "key 'shapes': '2x٣' is not a shape"),
])
def test_a_workload_file_past_what_python_or_numpy_can_hold_is_one_line_naming_the_key(tmp_path, monkeypatch, text,
                                                                                       message):
    """Nesting past Python's recursion limit, integers past its int-string limit or past float's range, and element
    counts past int64 and the float exactness of a byte count: each the file, the key and the limit, exit 2."""
    path = tmp_path / "big.toml"
    path.write_text(text + "\n")
    with pytest.raises(WorkloadError) as exc:
        workloads.load(str(path))
    line = str(exc.value)
    assert "\n" not in line and str(path) in line and message in line and len(line) < 400, line
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    _refused_in_one_line(*_main("check", "--workload", str(path), "--no-progress"), str(path), message)


def test_a_workload_of_a_million_shapes_is_refused_naming_the_key_and_the_limit(tmp_path):
    path = tmp_path / "many.toml"
    path.write_text("shapes = [" + ", ".join(['"2x8"'] * 10**6) + "]\n")
    with pytest.raises(WorkloadError, match=f"{path}: key 'shapes': 1000000 shapes; at most {workloads.MAX_SHAPES}"):
        workloads.load(str(path))
    shapes = [[2, n] for n in range(1, workloads.MAX_SHAPES + 2)]
    assert len(workloads.parse({"shapes": shapes[:-1]}, "here", "w").shapes) == workloads.MAX_SHAPES
    with pytest.raises(WorkloadError, match=f"here: key 'shapes': {workloads.MAX_SHAPES + 1} shapes; at most"):
        workloads.parse({"shapes": shapes}, "here", "w")
    every = {"values": list(VALUES), "x_layouts": list(LAYOUTS), "g_layouts": list(G_LAYOUTS)}
    wide = {"shapes": shapes[:workloads.MAX_SHAPES], **every}
    with pytest.raises(WorkloadError, match=r"here: keys 'shapes', 'values', 'x_layouts' and 'g_layouts' make "
                                            rf"\d+ correctness cases or timed shapes; at most {workloads.MAX_CASES}"):
        workloads.parse(wide, "here", "w")
    w = workloads.parse({"shapes": shapes[:workloads.MAX_CASES // (len(VALUES) * len(LAYOUTS) * len(G_LAYOUTS))], **every}, "here", "w")
    assert len(check_cases(w)) <= workloads.MAX_CASES and len(workloads.timing_shapes(w)) <= workloads.MAX_CASES


def _toml_values() -> st.SearchStrategy:
    """What ``tomllib`` can hand over: ints of any size, floats (nan, inf), strings, booleans, dates and times,
    lists and tables, nested."""
    import datetime as dt

    scalars = st.one_of(st.integers(), st.integers(-10, 10**30), st.integers(0, 6000).map(lambda k: 10**k),
                        st.floats(), st.text(max_size=12), st.sampled_from(["2x8", "float32", "vjp", "sliced",
                                                                            "masked", "vocab", "0x3", "3x"]),
                        st.booleans(), st.dates(), st.datetimes(), st.times(),
                        st.datetimes(timezones=st.just(dt.timezone.utc)))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                        max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(key=st.sampled_from([*workloads.KEYS, "shape", ""]), value=_toml_values(),
       where=st.sampled_from(["at the key", "as a shape", "as a dim", "as the table"]))
def test_any_toml_value_at_any_key_is_a_workload_or_one_line(key, value, where):
    table: object = {"shapes": ["2x8"]}
    if where == "at the key":
        table = {"shapes": ["2x8"], key: value}
    elif where == "as a shape":
        table = {"shapes": ["2x8", value]}
    elif where == "as a dim":
        table = {"shapes": [[2, value]]}
    else:
        table = value
    try:
        w = workloads.parse(table, "workload file t.toml", "t")
    except WorkloadError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("workload file t.toml") and len(str(exc)) < 500, str(exc)
        return
    assert w.name not in workloads.PRESETS
    assert math.prod(max(w.shapes, key=math.prod)) <= workloads.MAX_ELEMENTS
    assert w.largest_bytes() / 2**30 < 2**30 and workloads.from_json(workloads.to_json(w)) == dataclasses.replace(
        w, origin="workload file t.toml")
    check_cases(w), workloads.timing_shapes(w)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 10**30), min_size=1, max_size=8))
def test_a_shape_is_taken_below_two_to_the_48_elements_and_refused_in_one_line_above(dims):
    try:
        w = workloads.parse({"shapes": [dims], "ops": ["softmax"]}, "here", "w")
    except WorkloadError as exc:
        assert "\n" not in str(exc) and ("2**48" in str(exc) or "of this machine's" in str(exc)), str(exc)
        assert math.prod(dims) > workloads.MAX_ELEMENTS or "of this machine's" in str(exc)
        return
    assert math.prod(dims) <= workloads.MAX_ELEMENTS and w.shapes == (tuple(dims),)
    assert float(w.largest_bytes()) == w.largest_bytes(), "a byte count is exact as a float"
