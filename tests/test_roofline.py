"""benchmarks/roofline.py end to end on the NumPy family: its table, its JSON and its usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from softgrad.history import provenance

ROOFLINE = Path(__file__).resolve().parents[1] / "benchmarks" / "roofline.py"


def roofline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOFLINE), *args], capture_output=True, text=True, timeout=300)


def test_roofline_table_and_json(tmp_path):
    out_json = tmp_path / "roofline.json"
    out = roofline("--impl", "numpy", "--op", "vjp", "--shape", "16x64", "--dtype", "float64", "--time", "0.05",
                   "--threads", "1", "--json", str(out_json))
    assert out.returncode == 0, out.stderr
    assert "copy bandwidth:" in out.stderr
    header, rule, row = out.stdout.strip().splitlines()
    assert header.split()[:3] == ["implementation", "op", "shape"] and set(rule) == {"-"}
    data = json.loads(out_json.read_text())
    assert data["threads"]["requested"] == 1
    copies = [c["gbps"] for c in data["copy_bandwidth"]]
    assert len(copies) == 2 and min(copies) > 0  # before and after the one family
    (r,) = data["rows"]
    assert (r["impl"], r["op"], r["shape"], r["dtype"]) == ("numpy", "vjp", "16x64", "float64")
    assert r["median_s"] > 0 and r["gbps"] == pytest.approx(3 * 16 * 64 * 8 / r["median_s"] / 1e9)
    assert r["copy_gbps"] == max(copies) and r["fraction_of_copy"] == pytest.approx(r["gbps"] / max(copies))
    # 24 KiB moved: in any last-level cache, and the table gives the bytes moved over its size
    assert r["fits_in_llc"] is (provenance.last_level_cache_bytes() is not None)
    assert r["bytes_moved"] == 3 * 16 * 64 * 8 and row.split()[0] == "numpy"
    if r["fits_in_llc"]:
        assert float(row.split()[-1]) == pytest.approx(r["bytes_moved"] / provenance.last_level_cache_bytes(), abs=0.01)


def test_roofline_usage_errors_are_one_line():
    out = roofline("--impl", "no-such-impl")
    assert out.returncode == 2 and "no-such-impl" in out.stderr and "Traceback" not in out.stderr
