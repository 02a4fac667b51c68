"""Workloads as data: presets, a user's TOML file or pyproject table, clear errors for bad ones, and the
correctness cases made at a workload's own shapes."""

from __future__ import annotations

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
from softgrad.check.cases import get_case
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
                              "shape-2x4x300-dominant-x-sliced-g-broadcast"]
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
    """Right for every catalogue row (n <= 16384), wrong past n = 20000: only the workload's rows show it."""
    env = {"SOFTGRAD_PLUGINS": str(PLUGINS / "wrong_past_20000.py"), "SOFTGRAD_HOME": str(tmp_path)}
    proc = softgrad("check", "--impl", "wrong-past-20000", "--no-progress", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _write(tmp_path / "lm.toml", 'shapes = ["3x4096", "64x32000"]\ndtypes = ["float32", "bfloat16"]\n'
                                 'ops = ["softmax"]\nx_layouts = ["contiguous", "sliced"]\n')
    out = tmp_path / "records.json"
    proc = softgrad("check", "--impl", "wrong-past-20000", "--workload", "lm.toml", "--json", str(out),
                    "--no-progress", cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    records = json.loads(out.read_text())
    verdicts = {(r["case"], r["dtype"]): r["verdict"] for r in records}
    assert verdicts == {
        ("shape-3x4096-normal-x-contiguous-g-contiguous", "float32"): "pass",
        ("shape-3x4096-normal-x-sliced-g-contiguous", "float32"): "pass",
        ("shape-64x32000-normal-x-contiguous-g-contiguous", "float32"): "fail",
        ("shape-64x32000-normal-x-sliced-g-contiguous", "float32"): "fail",
        **{(case, "bfloat16"): "skip" for case in ("shape-3x4096-normal-x-contiguous-g-contiguous",
                                                   "shape-3x4096-normal-x-sliced-g-contiguous",
                                                   "shape-64x32000-normal-x-contiguous-g-contiguous",
                                                   "shape-64x32000-normal-x-sliced-g-contiguous")},
    }
    assert "workload lm: 4 cases at its shapes" in proc.stderr
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
        run.update_meta(complete=True, grid="full", **({"workload": wl} if wl else {}))
        ids.append(run.id)
    runs = store.complete_runs()
    by_id = {r.id: r for r in runs}
    assert gate.previous_run(runs, by_id[ids[3]]).id == ids[1], "vocab after vocab"
    assert gate.previous_run(runs, by_id[ids[2]]).id == ids[0], "the default grid after the default grid"
    with pytest.raises(store.StoreError, match="on the vocab workload"):
        gate.previous_run(runs, by_id[ids[1]])
