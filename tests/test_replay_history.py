"""benchmarks/replay_history.py: the planted kinds have the shapes they are named for, the noise comes from the
store's identical runs where there are some (else the stated model, with the spread it states), and a small
replay counts what each gate does: a 2x step is caught, a one-night blip fails the pairwise gate but not the
history gate, steady benchmarks raise (almost) nothing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import helpers  # noqa: E402
from softgrad.history import results  # noqa: E402
from test_history_changes import _asv, _date, _run_id  # noqa: E402
from test_stored_files import DTYPES, IMPLS, OPS, SHAPES, _softgrad  # noqa: E402, F401

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "replay_history.py"
_spec = importlib.util.spec_from_file_location("replay_history", SCRIPT)
replay_history = sys.modules.setdefault("replay_history", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(replay_history)  # registered first: its dataclasses look their module up
COUNT = len(IMPLS) * len(OPS) * len(SHAPES) * len(DTYPES)


def _plant(name: str):
    return next(p for p in replay_history.PLANTS if p.name == name)


def test_the_planted_kinds_have_their_shapes():
    at = 5
    assert list(_plant("sudden +25%").levels(8, at)) == [1.0] * 5 + [1.25] * 3
    creep = _plant("creep 4 x 7%").levels(12, at)
    assert np.allclose(creep, [1.0] * 5 + [1.07, 1.07**2, 1.07**3, 1.07**4] + [1.07**4] * 3)
    assert _plant("creep 4 x 7%").full_at(at) == at + 3 and _plant("sudden 2x").full_at(at) == at
    assert list(_plant("recover 2x").levels(13, at)) == [1.0] * 5 + [2.0] * 5 + [1.5] * 3
    blip = _plant("blip +50%, one night")
    assert list(blip.levels(8, at)) == [1.0] * 8, "a blip is no change of the true level (a rerun reads 1)"
    assert list(blip.measured(8, at)) == [1.0] * 5 + [1.5] + [1.0] * 2
    assert {p.name for p in replay_history.PLANTS} >= {"sudden +10%", "sudden +25%", "sudden 2x", "creep +25%",
                                                       "recover +25%", "creep 4 x 7%"}


def test_the_model_noise_has_the_spread_it_states():
    rng = np.random.default_rng(0)
    noise = replay_history.model_noise(rng)
    assert "sigma 1% to 5%" in noise.source and "1 night in 100" in noise.source
    sigmas = [p.sigma for p in noise.profiles]
    assert 0.01 <= min(sigmas) and max(sigmas) <= 0.05
    p = replay_history.Profile(base_s=1e-3, iqr=0.04, repeats=15, sigma=0.03)
    draws = noise.draw(rng, p, 100_000)
    slow = draws > np.log(1.25) - 0.1  # the outliers (a normal draw past 0.12 is 4 sigmas)
    assert 0.008 < slow.mean() < 0.012
    assert 0.029 < draws[~slow].std() < 0.031


def _identical_runs(home, runs: int, commits: list[str] | None = None) -> None:
    """``runs`` nightly runs of the stored-files benchmarks, ±2% apart (test_history_changes' pattern)."""
    files = {}
    for k in range(runs):
        commit = (commits or ["aaaaaaaa"] * runs)[k]
        rid = _run_id(k, commit)
        files[(rid, "meta.json")] = helpers.run_meta(rid, list(IMPLS), ["numpy", "fake"], date=_date(k),
                                                     commit=commit + "0" * 32)
        files[(rid, "asv.json")] = _asv(k, 1.0)
    helpers.write_run_files(home, files)


def test_the_noise_comes_from_the_stored_identical_runs(tmp_path, monkeypatch):
    _identical_runs(tmp_path, 6)
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    noise, why = replay_history.stored_noise(results.load())
    assert why == "" and noise is not None
    assert noise.source.startswith(f"{6 * COUNT} residuals of {COUNT} benchmarks from 6 stored runs on machine vm "
                                   f"(1 sets of identical runs)"), noise.source
    # the stored pattern: each run 1 +- 0.01 * (0, 1, 2) of the benchmark's level
    assert max(abs(r) for r in noise.pool) < 0.03 and np.std(noise.pool) > 0.01
    assert {round(p.base_s * 1e4) for p in noise.profiles} == set(range(1, 8))  # 100 to 700 us, as stored
    assert all(abs(p.iqr - np.log(1.02 / 0.98)) < 1e-9 for p in noise.profiles)  # helpers' quartiles
    rng = np.random.default_rng(1)
    # 6 residuals of its own are too few: a benchmark draws from the machine's pool; 8 or more, from its own
    assert set(noise.draw(rng, noise.profiles[0], 50)) <= set(noise.pool)
    own = replay_history.Profile(1e-3, 0.04, 15, residuals=tuple(noise.pool[:8]))
    assert set(noise.draw(rng, own, 50)) <= set(noise.pool[:8])


def test_runs_of_other_commits_are_not_identical_and_leave_the_model(tmp_path, monkeypatch):
    _identical_runs(tmp_path, 4, commits=["aaaaaaaa", "bbbbbbbb", "cccccccc", "dddddddd"])
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    noise, why = replay_history.stored_noise(results.load())
    assert noise is None and why == "0 residuals from 0 sets of identical stored runs (fewer than 30)"
    assert replay_history.stored_noise(pd.DataFrame()) == (None, "no stored runs")


def test_a_small_replay_counts_what_each_gate_does():
    rng = np.random.default_rng(3)
    plants = [_plant("sudden 2x"), _plant("blip +50%, one night"), _plant("creep 2x")]
    tally = replay_history.replay(replay_history.model_noise(rng), nights=20, series=6, seed=3, plants=plants)
    assert tally.benchmark_nights == 6 * 19
    assert tally.false_alarms["gate+rerun"] <= 1 and tally.false_alarms["compare+rerun"] <= 1
    for g in replay_history.GATES:
        assert tally.found("sudden 2x", g, within=2) == 1.0, g
    assert tally.found("creep 2x", "gate", within=2) == 1.0
    # a one-night blip fails compare (1.5x > 1.2x) until its rerun reads the true level; the history gate
    # only warns on it, then the next night clears it (here once not: a slow outlier of the model fell on
    # the next night, two slow nights in a row, which the rerun then cleared)
    assert tally.found("blip +50%, one night", "compare") == 1.0
    assert tally.found("blip +50%, one night", "gate") <= 1 / 6
    assert tally.found("blip +50%, one night", "gate+rerun") == 0
    lines = replay_history.lines(tally, plants)
    assert lines[0].split() == list(replay_history.GATES)
    assert lines[1].startswith("false alarms / 100 b-n") and lines[4].startswith("sudden 2x")
    assert lines[2].startswith("outlier warnings") and lines[5].startswith("blip +50%, one night (failed)")
    assert 0 <= tally.warned <= tally.benchmark_nights


def test_the_script_replays_a_stored_history_and_writes_json(tmp_path):
    _identical_runs(tmp_path, 6)
    out = subprocess.run([sys.executable, str(SCRIPT), "--home", str(tmp_path), "--nights", "20", "--series", "2",
                          "--json", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"replay_history: noise: {6 * COUNT} residuals of {COUNT} benchmarks"), out.stdout
    assert "20 nights; 2 steady benchmarks (38 benchmark-nights)" in out.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["benchmark_nights"] == 38 and set(doc["first"]) == {p.name for p in replay_history.PLANTS}
    assert doc["min_delta_s"] == 50e-6 and doc["noise"].startswith(f"{6 * COUNT} residuals")
    for args in (["--nights", "3"], ["--min-delta", "-1"], ["--threshold", "0"]):
        bad = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and bad.stderr.strip().startswith("replay_history: --nights must be at least 16")
    bad = subprocess.run([sys.executable, str(SCRIPT), "--json", str(tmp_path / "no-such-dir" / "r.json")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip() == (f"replay_history: --json {tmp_path / 'no-such-dir' / 'r.json'}: "
                                                          f"no folder {tmp_path / 'no-such-dir'} to write it in")
