"""benchmarks/roofline.py: end to end on the NumPy family (its table, its JSON, the copy and the fill measured
around the family, each op against its own limit, its usage errors), and its standard set, limits and table
from planted rows (no timing)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from softgrad.history import provenance

ROOFLINE = Path(__file__).resolve().parents[1] / "benchmarks" / "roofline.py"


def roofline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOFLINE), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def probe():
    """The script as a module (its functions, without running it)."""
    spec = importlib.util.spec_from_file_location("roofline_probe", ROOFLINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_roofline_table_and_json(tmp_path):
    out_json = tmp_path / "roofline.json"
    out = roofline("--impl", "numpy", "--impl", "numpy", "--op", "vjp", "--op", "jacobian", "--shape", "16x64", "--dtype", "float64",
                   "--dtype", "bfloat16", "--time", "0.05", "--threads", "1", "--json", str(out_json))
    assert out.returncode == 0, out.stderr
    assert "copy bandwidth:" in out.stderr and "fill bandwidth:" in out.stderr
    assert "roofline: numpy vjp 16x64 bfloat16 left out: " in out.stderr, "what is not timed is said, with why"
    assert "roofline:   numpy vjp 16x64 float64: " in out.stderr, "each combination's line as it is timed"
    header, rule, *lines = out.stdout.strip().splitlines()
    assert header.split()[:5] == ["entry", "op", "dtype", "shape", "median"] and set(rule) == {"-"}
    assert [line.split()[:2] for line in lines] == [["numpy", "jacobian"], ["numpy", "vjp"]]  # --impl twice: timed once
    data = json.loads(out_json.read_text())
    assert data["threads"]["requested"] == 1
    copies = [c["gbps"] for c in data["copy_bandwidth"]]
    fills = [f["gbps"] for f in data["fill_bandwidth"]]
    assert len(copies) == len(fills) == 2 and min(copies + fills) > 0  # before and after the one family
    rows = {r["op"]: r for r in data["rows"]}
    r = rows["vjp"]
    assert (r["impl"], r["shape"], r["dtype"]) == ("numpy", "16x64", "float64")
    assert r["median_s"] > 0 and r["gbps"] == pytest.approx(3 * 16 * 64 * 8 / r["median_s"] / 1e9)
    assert r["copy_gbps"] == max(copies) and r["fraction_of_copy"] == pytest.approx(r["gbps"] / max(copies))
    assert r["limit"] == "copy" and r["fraction_of_limit"] == pytest.approx(r["fraction_of_copy"])
    # the Jacobian writes 16 x 64 x 64 float64 and reads x: measured against the fill, not the copy
    jac = rows["jacobian"]
    assert jac["bytes_moved"] == 16 * 64 * 8 + 16 * 64 * 64 * 8
    assert jac["limit"] == "fill" and jac["fill_gbps"] == max(fills)
    assert jac["fraction_of_limit"] == pytest.approx(jac["gbps"] / max(fills))
    # 24 KiB moved: in any last-level cache, so no goal applies, and the table gives bytes over its size
    assert r["fits_in_llc"] is (provenance.last_level_cache_bytes() is not None)
    assert r["bytes_moved"] == 3 * 16 * 64 * 8
    vjp_line = lines[1].split()
    assert header.split()[-3:-1] == ["vs", "numpy"] and vjp_line[-2] == "1.00x", "the baseline entry by default"
    if r["fits_in_llc"]:
        assert r["goal"] is None and vjp_line[-3] == "-"
        llc = provenance.last_level_cache_bytes()
        assert float(vjp_line[-1]) == pytest.approx(r["bytes_moved"] / llc, abs=0.01)
    # the stored run prints again, with its markdown table, measuring nothing
    again = roofline("--from-json", str(out_json), "--markdown")
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert again.stdout.startswith("\n".join([header, rule, *lines]))
    md = again.stdout.split("\n\n")[1].splitlines()
    assert md[0] == "| op | shape | dtype | bytes / LLC | limit | `numpy` |" and len(md) == 4
    assert md[2].startswith("| jacobian | 16x64 | float64 |") and f"| fill {max(fills):.1f} GB/s |" in md[2]
    assert md[3].startswith("| vjp | 16x64 | float64 |") and md[3].endswith(f" ({rows['vjp']['median_s'] * 1e6:.3g} us)** |")


@pytest.mark.slow  # a copy and a fill on 545 MB buffers beside each combination (25 s of make test's time)
def test_beside_measures_the_limit_next_to_each_combination(tmp_path):
    out_json = tmp_path / "beside.json"
    out = roofline("--impl", "numpy", "--op", "softmax", "--op", "jacobian", "--shape", "4x64", "--dtype", "float64",
                   "--time", "0.02", "--threads", "1", "--beside", "--json", str(out_json))
    assert out.returncode == 0, out.stderr
    data = json.loads(out_json.read_text())
    rows = {r["op"]: r for r in data["rows"]}
    for op, kind in (("softmax", "copy"), ("jacobian", "fill")):
        r = rows[op]
        assert r["limit"] == kind and r["limit_beside_gbps"] > 0 and r["limit_gbps"] == r["limit_beside_gbps"]
        assert r["rounds_beside"] >= 5 and r["repeats"] >= r["rounds_beside"], "calls in rounds between the limit's"
        assert r["fraction_of_limit"] == r["fraction_beside"] > 0, "the median of the rounds' fractions"
    assert rows["softmax"]["copy_gbps"] == rows["softmax"]["limit_beside_gbps"]
    assert rows["jacobian"]["fill_gbps"] == max(f["gbps"] for f in data["fill_bandwidth"]), "the family's, kept"


def test_nothing_to_time_fails_with_the_reason(tmp_path):
    """Every combination left out (numpy has no bfloat16): exit 1 saying so, never an empty table and exit 0."""
    out = roofline("--impl", "numpy", "--op", "vjp", "--shape", "4x64", "--dtype", "bfloat16", "--threads", "1",
                   "--json", str(tmp_path / "none.json"))
    assert out.returncode == 1 and out.stdout == ""
    assert "numpy vjp 4x64 bfloat16 left out: " in out.stderr
    assert out.stderr.strip().splitlines()[-1] == ("roofline: error: nothing was timed (every combination was "
                                                   "left out: the reasons are above)")


@pytest.mark.parametrize("args, words", [
    (("--impl", "no-such-impl"), "no-such-impl"), (("--versus", "no-such-impl"), "no-such-impl"),
    (("--from-json", "no-such-file.json"), "no-such-file.json"), (("--dtype", "float8"), "float8"), (("--op", "sum"), "sum"),
    (("--shape", "12xx"), "12xx"), (("--workload", "no-such-workload"), "no-such-workload"),
    (("--shape", "0x5"), "no elements"), (("--time", "-1"), "--time"), (("--time", "nan"), "--time"),
    (("--threads", "0"), "--threads"), (("--threads", "99"), "SOFTGRAD_THREADS"),
    (("--json", "/proc/no-such-dir/r.json"), "cannot write"),
])
def test_roofline_usage_errors_are_one_line(args, words):
    out = roofline(*args)
    assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_the_standard_set_is_the_workload_shapes_past_the_cache(probe):
    from softgrad.bench.grid import bytes_moved, parse_shape

    llc = 260 << 20  # this VM's: 272629760 bytes
    ops = ["softmax", "jacobian", "vjp"]
    combos, cached, more = probe.standard_combos(["vocab", "attention"], ops, ["float32"], llc, every_shape=True)
    assert more == [], "every shape past the cache is timed"
    # 512x50257 float32: softmax moves 206 MB (in the cache), the VJP 309 MB (past it)
    assert ("vjp", "512x50257", "float32") in combos and "softmax 512x50257 float32" in cached
    assert ("softmax", "512x262144", "float32") in combos and ("vjp", "2048x50257", "float32") in combos
    assert ("softmax", "4x32x1024x1024", "float32") in combos, "the attention shape sized past the cache"
    assert ("jacobian", "16x4096", "float32") in combos
    assert not any(op == "jacobian" and shape != "16x4096" for op, shape, _ in combos), "no n^2 output at vocab rows"
    for op, shape, dtype in combos:
        assert bytes_moved(op, *parse_shape(shape), 4) > llc, (op, shape)
    for text in cached:
        op, shape, _ = text.split()
        assert bytes_moved(op, *parse_shape(shape), 4) <= llc, text
    # by default the largest shape past the cache of each workload and op stands for the others
    default, cached_too, more = probe.standard_combos(["vocab", "attention"], ops, ["float32"], llc)
    assert default == [("softmax", "512x262144", "float32"), ("vjp", "512x262144", "float32"),
                       ("softmax", "4x32x1024x1024", "float32"), ("vjp", "4x32x1024x1024", "float32"),
                       ("jacobian", "16x4096", "float32")]
    assert cached_too == cached and sorted(more) == sorted(" ".join(c) for c in combos if c not in default)
    everything, none, _ = probe.standard_combos(["vocab"], ["softmax"], ["float32", "bfloat16"], llc,
                                                in_cache=True, every_shape=True)
    assert none == [] and ("softmax", "512x32000", "bfloat16") in everything
    assert probe.standard_combos(["vocab"], ["vjp"], ["float32"], None)[1] == [], "cache unknown: none left out"


def _row(op, dtype="float32", moved=10**9, median_s=0.1, impl="a"):
    return {"impl": impl, "op": op, "shape": "16x4096", "dtype": dtype, "device": "cpu", "median_s": median_s,
            "bytes_moved": moved, "gbps": moved / median_s / 1e9}


def test_each_op_is_held_to_its_own_limit_and_goal(probe):
    # 10 GB/s against a 20 GB/s copy and an 8 GB/s fill, past a 0.5 GB cache
    softmax = probe.with_limits(_row("softmax"), 20.0, 8.0, 5 * 10**8)
    assert (softmax["limit"], softmax["fraction_of_limit"], softmax["goal"]) == ("copy", 0.5, 0.85)
    jac = probe.with_limits(_row("jacobian", "float64"), 20.0, 8.0, 5 * 10**8)
    assert (jac["limit"], jac["fraction_of_limit"], jac["goal"]) == ("fill", 1.25, 0.90)
    assert jac["fraction_of_copy"] == 0.5
    half = probe.with_limits(_row("vjp", "bfloat16"), 20.0, 8.0, 5 * 10**8)
    assert half["goal"] == 0.70
    inside = probe.with_limits(_row("vjp", moved=10**8, median_s=0.01), 20.0, 8.0, 5 * 10**8)
    assert inside["fits_in_llc"] and inside["goal"] is None, "no goal inside the cache"
    rows = [softmax, jac, probe.with_limits(_row("softmax", median_s=0.05, impl="torch-native"), 20.0, 8.0, 5 * 10**8)]
    probe.add_versus(rows, ["torch-native", "jax-jit"])
    assert rows[0]["vs"]["torch-native"] == pytest.approx(0.5) and math.isnan(rows[1]["vs"]["torch-native"])
    assert rows[2]["vs"]["torch-native"] == 1.0 and math.isnan(rows[0]["vs"]["jax-jit"]), "no jax-jit row"
    lines = probe.table(rows, 5 * 10**8, ["torch-native", "jax-jit"])
    assert lines[0].split()[-6:] == ["ceiling", "vs", "torch-native", "vs", "jax-jit", "bytes/LLC"]
    by_impl = {(line.split()[0], line.split()[1]): line.split() for line in lines[2:]}
    assert by_impl[("a", "softmax")][-7:] == ["copy", "50%", "85%!", "-", "0.50x", "-", "2.00"], "below its goal"
    assert by_impl[("a", "jacobian")][-7:] == ["fill", "125%", "90%", "-", "-", "-", "2.00"]
    md = probe.markdown(rows, 5 * 10**8)
    assert md[0] == "| op | shape | dtype | bytes / LLC | limit | `a` | `torch-native` |"
    # each row's fastest in bold; the limit's range over the families' measurements (one here)
    assert md[2] == "| jacobian | 16x4096 | float64 | 2.00 | fill 8.0 GB/s | **125% (100 ms)** | - |"
    assert md[3] == "| softmax | 16x4096 | float32 | 2.00 | copy 20.0 GB/s | 50% (100 ms) | **100% (50 ms)** |"


def test_the_bandwidth_buffers_leave_the_cache_and_the_fill_counts_bytes_written():
    from softgrad.bench import bandwidth

    # a 256 MiB fill repeated in a 260 MiB cache would measure the cache: buffers take twice the cache
    assert bandwidth.buffer_bytes(260 << 20) == 520 << 20 and bandwidth.buffer_bytes(32 << 20) == 256 << 20
    assert bandwidth.LIMIT == {"softmax": "copy", "vjp": "copy", "jacobian": "fill"}
    copy, fill = bandwidth._numpy("copy", 1 << 20), bandwidth._numpy("fill", 1 << 20)
    assert (copy.counted, fill.counted) == (2 << 20, 1 << 20), "the copy counts bytes read and written"
    assert copy.gbps(0.001) == pytest.approx(2.097152) and "copyto" in copy.method and "fill" in fill.method
    measured = bandwidth._measured(fill, 3)
    assert measured.gbps > 0 and measured.repeats == 3 and measured.buffer_bytes == 1 << 20
    with pytest.raises(ValueError, match="no bandwidth kernel 'scan'"):
        bandwidth.measure("scan")


def test_the_ceiling_is_the_entrys_rate_in_cache_over_the_limit(probe):
    """Each combination past :data:`IN_CACHE_BYTES` is also timed on as many rows of its length as move that many
    bytes: its rate there over the op's limit is the fraction its arithmetic allows."""
    from softgrad import registry

    numpy = registry.get("numpy")
    cache = probe._in_cache(numpy, "softmax", "float64", "cpu", (4096, 1024))
    assert cache["in_cache_shape"] == f"{probe.IN_CACHE_BYTES // (2 * 1024 * 8)}x1024" and cache["in_cache_gbps"] > 0
    assert probe._in_cache(numpy, "softmax", "float64", "cpu", (16, 64)) == {}, "already in cache"
    assert probe._in_cache(numpy, "jacobian", "float64", "cpu", (4096, 1024)) == {}, "n^2 a row"
    row = probe.with_limits({**_row("softmax"), "in_cache_gbps": 30.0}, 20.0, 8.0, 5 * 10**8)
    assert row["ceiling"] == 1.5 and probe.with_limits(_row("softmax"), 20.0, 8.0, 5 * 10**8)["ceiling"] is None
    assert probe.table([{**row, "vs": {}}], 5 * 10**8, [])[2].split()[-2] == "150%"
    assert probe.markdown([row], 5 * 10**8)[2].endswith("| **50% (100 ms; in cache 150%)** |")


def test_shapes_with_layouts_are_estimated_and_timed_through_their_views(tmp_path):
    """A shape token's layouts (g broadcast along rows or one scalar, x transposed): the too-slow estimate reads
    the views the call sees, not their base arrays (a broadcast g's base is one row: reshaping it to the rows
    had raised), and bytes count g's distinct elements."""
    out_json = tmp_path / "layouts.json"
    shapes = ("4x7000:g=broadcast", "6x40:x=transposed", "3x50:g=scalar")
    out = roofline("--impl", "numpy", "--op", "vjp", *[a for s in shapes for a in ("--shape", s)], "--dtype", "float32",
                   "--time", "0.02", "--threads", "1", "--json", str(out_json))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    rows = {r["shape"]: r for r in json.loads(out_json.read_text())["rows"]}
    assert set(rows) == set(shapes)
    assert rows["4x7000:g=broadcast"]["bytes_moved"] == (2 * 4 * 7000 + 7000) * 4
    assert rows["3x50:g=scalar"]["bytes_moved"] == (2 * 3 * 50 + 1) * 4
    assert all(line.split()[3] in shapes for line in out.stdout.splitlines()[2:5]), "each shape in its column"
