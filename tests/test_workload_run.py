"""A workload file end to end: run (checked at its shapes, timed in 16-bit and with its layouts), the report,
choose answering from it at its own shapes and layouts, resume, and the asv results it stored."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PLUGINS = Path(__file__).parent / "plugins"
WORKLOAD = """
    description = "a small LM head for the tests"
    shapes = ["16x3000", [2, 3, 5, 40]]
    dtypes = ["bfloat16", "float32"]
    ops = ["softmax", "vjp"]
    g_layouts = ["contiguous", "broadcast"]
"""


def softgrad(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "SOFTGRAD_HOME": str(home), **(env or {})}
    for key in ("SOFTGRAD_PLUGINS", "SOFTGRAD_PLUGIN_FILES", "SOFTGRAD_WORKLOAD_JSON"):
        if key not in (env or {}):
            full.pop(key, None)
    return subprocess.run([sys.executable, "-m", "softgrad.cli", *args], capture_output=True, text=True, env=full,
                          timeout=900, cwd=str(home))


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("workload-home")
    (home / "lm.toml").write_text(textwrap.dedent(WORKLOAD))
    out = softgrad(home, "run", "--workload", "lm.toml", "--rounds", "1", "--no-progress", "--no-agreement",
                   "--impl", "numpy", "--impl", "torch-native", "--impl", "wrong-past-20000",
                   "--plugin", str(PLUGINS / "wrong_past_20000.py"))
    assert out.returncode == 0, out.stdout + out.stderr
    return home


def test_the_run_stores_its_workload_and_times_16_bit_and_the_layouts_of_g(home, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(home))
    from softgrad.history import results, store

    (run,) = store.complete_runs()
    assert json.loads(run.meta()["workload"])["table"]["name"] == "lm"
    df = results.load()
    assert set(df["workload"]) == {"lm"}
    torch_bf16 = df[(df["impl"] == "torch-native") & (df["dtype"] == "bfloat16") & df["time_s"].notna()]
    assert set(torch_bf16["shape"]) == {"16x3000", "16x3000:g=broadcast", "2x3x5x40", "2x3x5x40:g=broadcast"}
    assert set(torch_bf16[torch_bf16["g_layout"] == "broadcast"]["op"]) == {"vjp"}, "softmax does not read g"
    numpy = df[df["impl"] == "numpy"]
    assert set(numpy["dtype"]) == {"float32"}, "numpy declares no bfloat16: no timing is stored for it"
    row = df[(df["shape"] == "2x3x5x40") & (df["impl"] == "numpy") & (df["op"] == "vjp")].iloc[0]
    assert (row["batch"], row["n"]) == (30, 40)
    asv = run.asv()
    assert any(k.startswith("bench_workloads.lm__Impl_torch_native.") for k in asv["results"])
    assert not any(k.startswith("bench_ops.") for k in asv["results"]), "a workload run holds its grid only"
    checks = {(r["impl"], r["case"]) for r in run.checks()}
    assert ("numpy", "shape-16x3000-normal-x-contiguous-g-broadcast") in checks, "checked at its own shapes"


def test_choose_answers_at_the_workloads_shapes_and_layouts(home):
    out = softgrad(home, "choose", "--op", "vjp", "--n", "3000", "--batch", "16", "--dtype", "bfloat16", "--json")
    assert out.returncode == 0, out.stderr
    choice = json.loads(out.stdout)
    assert choice["impl"] == "torch-native" and not choice["far"], "the one entry with a bfloat16 VJP"
    out = softgrad(home, "choose", "--op", "vjp", "--n", "3000", "--batch", "16", "--dtype", "float32",
                   "--g-layout", "broadcast", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["impl"] in ("numpy", "torch-native"), out.stderr


@pytest.fixture(scope="module")
def with_long_run(home):
    """``home`` after a second run, of a workload with longer rows (4x30000), where wrong-past-20000 fails its
    check (exit 1): made once, for every test that reads it, whichever of them runs."""
    (home / "long.toml").write_text('shapes = ["4x30000"]\nops = ["softmax"]\n')
    out = softgrad(home, "run", "--workload", "long.toml", "--rounds", "1", "--no-progress", "--no-agreement",
                   "--no-report", "--impl", "numpy", "--impl", "wrong-past-20000",
                   "--plugin", str(PLUGINS / "wrong_past_20000.py"))
    assert out.returncode == 1, out.stdout + out.stderr  # its check failed
    return home


def test_an_entry_wrong_at_the_workloads_rows_is_never_recommended(with_long_run):
    """wrong-past-20000 passes the whole catalogue; at this workload it is right too (n <= 3000) and timed; a
    workload with longer rows fails it there, and choose leaves it out."""
    home = with_long_run
    out = softgrad(home, "choose", "--op", "softmax", "--n", "30000", "--batch", "4", "--json")
    choice = json.loads(out.stdout)
    assert choice["impl"] == "numpy", choice
    assert [e["impl"] for e in choice["excluded"]] == ["wrong-past-20000"], choice["excluded"]


def test_the_report_has_the_workload(with_long_run):
    home = with_long_run
    out = softgrad(home, "report", "--out", str(home / "report"))
    assert out.returncode == 0, out.stderr
    page = (home / "report" / "index.html").read_text()
    table = page.split("id='workloads'")[1].split("</table>")[0]
    assert "<td>lm</td>" in table and "<td>long</td>" in table and "2x3x5x40:g=broadcast" in table, table[:2000]
    assert "wrong-past-20000" in table.split("<td>long</td>")[1], "shown as not passed where it failed"


def test_the_reports_roofline_and_bandwidth_plot_read_the_points_past_the_cache(with_long_run, tmp_path):
    """The same runs as stored by a machine with a 64 KiB last-level cache: the workload's 16x3000 and
    4x30000 points now move more than that, so the roofline table has them (numpy, which passed; never
    wrong-past-20000, which failed its run's check), while on this machine's real cache it says that no
    point is memory-bound."""
    import shutil

    home = with_long_run
    out = softgrad(home, "report", "--out", str(tmp_path / "real"))
    assert out.returncode == 0, out.stderr
    section = (tmp_path / "real" / "index.html").read_text().split("id='roofline'")[1].split("<h2")[0]
    # the largest call here moves under 1 MB (4x30000 float32 softmax): inside any LLC of 8 MiB or more
    real_llc = [json.loads(m.read_text()).get("llc_bytes") for m in (home / "results" / "runs").glob("*/meta.json")]
    if all(llc and llc >= 8 << 20 for llc in real_llc):
        assert "No stored run timed a shape past" in section and "<table>" not in section, section
    small = tmp_path / "small-cache"
    shutil.copytree(home / "results", small / "results")
    for meta_path in (small / "results" / "runs").glob("*/meta.json"):
        meta = json.loads(meta_path.read_text())
        meta["llc_bytes"] = 64 << 10
        meta_path.write_text(json.dumps(meta))
    out = softgrad(small, "report", "--out", str(small / "report"))
    assert out.returncode == 0, out.stderr
    md = (small / "report" / "report.md").read_text()
    roof = md.split("## Roofline: memory-bound points")[1].split("\n## ")[0]
    (softmax,) = [line for line in roof.splitlines() if line.startswith("| softmax | float32 | cpu |")]
    points = dict(re.findall(r"([\w-]+) [\d.]+ \((\d+)\)", softmax.split("|")[-2]))
    # past 64 KiB: lm's 16x3000 and long's 4x30000 (lm's 2x3x5x40 moves 9.6 KB); wrong-past-20000 failed
    # the long run's check, so only its lm point counts
    assert points == {"numpy": "2", "torch-native": "1", "wrong-past-20000": "1"}, softmax
    assert "the 64 KiB last-level cache" in roof, "names the cache the figures are past"
    assert (small / "report" / "bandwidth.png").stat().st_size > 1000


def test_choose_measure_checks_and_times_that_shape_once_then_answers_from_the_store(home):
    args = ("choose", "--op", "vjp", "--n", "700", "--batch", "3", "--dtype", "float32", "--impl", "numpy",
            "--impl", "loops", "--measure", "--json")
    from softgrad.history import store

    before = len(list((home / "results" / "runs").iterdir()))
    out = softgrad(home, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    choice = json.loads(out.stdout)
    assert (choice["measured_batch"], choice["measured_n"], choice["far"]) == (3, 700, False)
    assert choice["impl"] in ("numpy", "loops") and choice["runner_up"] in ("numpy", "loops")
    assert "measuring vjp 3x700 float32 on cpu: checking and timing 2 candidates (numpy, loops)" in out.stderr
    runs = sorted((home / "results" / "runs").iterdir())
    assert len(runs) == before + 1
    meta = json.loads((runs[-1] / "meta.json").read_text())
    assert json.loads(meta["workload"])["table"]["name"] == "choose-vjp-3x700-float32-loops-numpy"
    assert {r["case"] for r in json.loads((runs[-1] / "checks.json").read_text())} >= {
        "shape-3x700-normal-x-contiguous-g-contiguous", "normal-1"}, "checked at exactly that shape, and the catalogue"
    again = softgrad(home, *args)
    ageless = lambda answer: {k: v for k, v in answer.items() if not k.endswith("age_s")}  # noqa: E731
    assert again.returncode == 0 and ageless(json.loads(again.stdout)) == ageless(choice), again.stderr
    assert "was measured before: answering from the store" in again.stderr
    assert len(list((home / "results" / "runs").iterdir())) == before + 1, "nothing measured twice"
