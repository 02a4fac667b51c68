"""The main job end to end, as a user runs it: `softgrad run --quick` into a fresh results folder, twice,
then a run with one implementation slowed 2x; the history, the regression gate, `choose`, the report,
interruption and resume, corrupt files. Real asv runs over a small selection (numpy and two plugins).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("asv")
pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

PLUGINS = Path(__file__).parent / "plugins"
pytestmark = pytest.mark.slow


def softgrad(home: Path, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full = {**os.environ, "SOFTGRAD_HOME": str(home), **(env or {})}
    full.pop("SOFTGRAD_PLUGINS", None)
    full.pop("SOFTGRAD_PLUGIN_FILES", None)
    return subprocess.run([sys.executable, "-m", "softgrad.cli", *args], capture_output=True, text=True,
                          env=full, timeout=timeout, cwd=str(home))


def quick_run(home: Path, *extra: str, slowdown: str = "1") -> subprocess.CompletedProcess:
    out = softgrad(home, "run", "--quick", "--rounds", "2", "--no-progress", "--impl", "numpy", "--impl", "slowable",
                   "--impl", "fast-wrong", "--plugin", str(PLUGINS / "slowable.py"),
                   "--plugin", str(PLUGINS / "fast_wrong.py"), *extra,
                   env={"SOFTGRAD_TEST_SLOWDOWN": slowdown})
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Three quick runs: two identical, then one with `slowable` slowed 2x."""
    home = tmp_path_factory.mktemp("softgrad-home")
    runs = [quick_run(home), quick_run(home), quick_run(home, "--no-check", slowdown="2")]
    for out, status in zip(runs, (1, 1, 0)):
        # fast-wrong fails its check, so a checked run exits 1; the unchecked third exits 0
        assert out.returncode == status, out.stdout + out.stderr
        assert "Traceback" not in out.stderr, out.stderr
    return home


@pytest.fixture
def at_home(home, monkeypatch):
    """The module's results folder, made this process's SOFTGRAD_HOME for the test."""
    monkeypatch.setenv("SOFTGRAD_HOME", str(home))
    return home


def test_each_run_is_stored_with_machine_commit_and_versions(at_home):
    home = at_home
    from softgrad.history import provenance, results, store

    runs = store.complete_runs()
    assert len(runs) == 3
    meta = runs[0].meta()
    assert meta["commit"] and meta["machine"] and meta["versions"]["numpy"]
    assert meta["copy_bandwidth"]["gbps"] > 0 and meta["fill_bandwidth"]["gbps"] > 0
    df = results.load()
    assert df["run"].nunique() == 3, "two identical runs must leave two points in the history"
    assert set(df["impl"]) == {"numpy", "slowable", "fast-wrong"}
    assert (df["numpy"] != "").all()
    # the last-level cache is recorded, and the rows whose bytes fit in it are marked
    llc = provenance.last_level_cache_bytes()
    assert meta["llc_bytes"] == llc
    if llc:
        assert df["in_cache"].equals(df["bytes_moved"] <= llc) and df["in_cache"].any()
    # asv's own results file carries the library versions too
    asv_files = [p for p in (home / "results" / "asv").rglob("*.json") if p.name not in ("machine.json", "benchmarks.json")]
    assert asv_files and all(json.loads(p.read_text())["params"].get("numpy") for p in asv_files)


def test_the_dashboard_is_published(home):
    index = home / "results" / "html" / "index.html"
    assert index.is_file()
    assert (home / "results" / "html" / "graphs").is_dir()


def _gate(home, *args, slowdown="1"):
    plugins = ("--plugin", str(PLUGINS / "slowable.py"), "--plugin", str(PLUGINS / "fast_wrong.py"))
    out = softgrad(home, "compare", *args, "--no-progress", *plugins, env={"SOFTGRAD_TEST_SLOWDOWN": slowdown})
    assert out.returncode in (0, 1), out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert not [line for line in out.stdout.splitlines() if line.startswith("ERROR")], "a correctness false alarm"
    flagged = [line for line in out.stdout.splitlines() if line.startswith("SLOWER")]
    assert (out.returncode == 0) == (not flagged), out.stdout
    return out, flagged


def test_gate_passes_identical_reruns_and_flags_a_2x_slowdown(at_home):
    """Two identical runs: the gate says no regression once each flag is rerun (``--confirm``); without
    the rerun, the raw false alarms are counted (on the CI machines even the compute-bound loops once ran
    1.5x slower in one of two runs 20 s apart). The implementation slowed 2x is flagged, and the rerun (of the
    same slowed code) confirms it. 2x, not 30%: in one CI run the machine-speed kernel read 1.37x slower for
    the slowed family alone while its C-code entry did not slow, and the normalized times hid a 30% slowdown
    (judging such points raw instead made identical runs fail when a slow phase covered the rerun too)."""
    home = at_home
    from softgrad.history import store

    first, second, slowed = (r.id for r in store.complete_runs())
    raw, raw_flags = _gate(home, first, second)
    compared = int(raw.stdout.split("compared ")[1].split()[0])
    assert compared >= 15
    confirmed, confirmed_flags = _gate(home, first, second, "--confirm")
    print(f"identical reruns: {len(raw_flags)} of {compared} benchmarks flagged, {len(confirmed_flags)} after "
          f"the confirming rerun")
    assert len(confirmed_flags) <= len(raw_flags)
    assert confirmed.returncode == 0, f"identical reruns flagged after a confirming rerun:\n{confirmed.stdout}"
    mine, said = [], []
    for baseline in (first, second):
        slow, flags = _gate(home, baseline, slowed, "--confirm", slowdown="2")
        mine += [line for line in flags if " slowable " in line]
        said.append(slow.stdout)
    assert mine, "the 2x slowdown was not flagged (and confirmed) against either baseline:\n" + "\n".join(said)
    # a flag the rerun did not measure (or could not put over the machine's speed) is kept unconfirmed: say which
    assert all("rerun" in line for line in mine), "\n".join(mine) + "\n\n" + "\n".join(said)


def _stored_point(asv: dict, impl: str, kind: str, point: tuple) -> float | None:
    """The value asv's results file holds for ``impl``'s benchmark ``kind`` at ``point`` (op, shape, dtype,
    device), read as asv writes it: one value per combination of the params, in their product's order (None
    where the kind does not cover the point: the error is tracked on coarser shapes)."""
    import ast
    import itertools

    from softgrad.bench import grid

    entry = dict(zip(asv["result_columns"], asv["results"][f"bench_ops.{grid.class_name(impl)}.{kind}"]))
    combos = list(itertools.product(*([ast.literal_eval(v) for v in values] for values in entry["params"])))
    return entry["result"][combos.index(point)] if point in combos else None


def test_choose_matches_the_stored_timings_and_skips_the_failing_fastest(home):
    """The expected answer from the stored files themselves, not from the loader ``choose`` uses: the newest
    run's asv.json for the times and the error track, the newest checks.json (the third run ran --no-check) for
    which entries passed every case."""
    out = softgrad(home, "choose", "--op", "vjp", "--n", "1024", "--batch", "256", "--dtype", "float32", "--json",
                   "--plugin", str(PLUGINS / "slowable.py"), "--plugin", str(PLUGINS / "fast_wrong.py"))
    assert out.returncode == 0, out.stderr
    choice = json.loads(out.stdout)
    runs = sorted((home / "results" / "runs").iterdir())
    asv = json.loads((runs[-1] / "asv.json").read_text())
    checks = json.loads(next(r / "checks.json" for r in reversed(runs) if (r / "checks.json").exists()).read_text())
    point = ("vjp", "256x1024", "float32", "cpu")
    times = {impl: _stored_point(asv, impl, "time_op", point) for impl in ("numpy", "slowable", "fast-wrong")}
    errors = {impl: _stored_point(asv, impl, "track_error_ratio", point) for impl in times}
    passed = {impl for impl in times if any(r["impl"] == impl for r in checks)
              and not any(r["impl"] == impl and r["verdict"] == "fail" for r in checks) and not (errors[impl] or 0) > 1}
    assert min(times, key=times.get) == "fast-wrong" and "fast-wrong" not in passed, (times, passed)
    ranked = sorted(passed, key=times.get)
    assert (choice["impl"], choice["runner_up"]) == (ranked[0], ranked[1]), (choice, times, passed)
    assert choice["time_s"] == pytest.approx(times[ranked[0]])
    assert choice["run"] == runs[-1].name
    assert any(e["impl"] == "fast-wrong" for e in choice["excluded"])


def test_choose_far_from_every_measurement_says_how_far_and_how_to_measure(home):
    out = softgrad(home, "choose", "--op", "vjp", "--n", "20000", "--batch", "256")  # 1/19.5 of the row length
    assert out.returncode == 0, out.stderr
    assert "this is the nearest measured point" in out.stdout and "softgrad run --workload FILE" in out.stdout
    out = softgrad(home, "choose", "--op", "vjp", "--n", "100000", "--batch", "256")  # past 64x: no answer
    assert out.returncode == 1 and not out.stdout, out.stdout
    assert "no measurement within 64x" in out.stderr and "1/97.7 of the row length" in out.stderr
    assert "softgrad run --workload FILE" in out.stderr and 'shapes = ["256x100000"]' in out.stderr
    out = softgrad(home, "choose", "--op", "vjp", "--n", "1024", "--batch", "256", "--dtype", "bfloat16")
    assert out.returncode == 1 and "no stored timing for vjp bfloat16 on cpu (timed here: float32)" in out.stderr


def test_report_has_every_plot(home):
    out = softgrad(home, "report", "--out", str(home / "report"))
    assert out.returncode == 0, out.stderr
    page = (home / "report" / "index.html").read_text()
    for png in ("time_vs_n_batch256.png", "speedup_vs_numpy.png", "bandwidth.png", "errors.png", "history.png"):
        assert (home / "report" / png).stat().st_size > 1000
        assert png in page
    assert "Choice table" in page and "fast-wrong" not in page.split("id='choice'")[1].split("</table>")[0]
    agreement = page.split("id='agreement'")[1].split("</table>")[0]
    assert "numpy" in agreement and "slowable" in agreement, "every family's sampled points are shown"
    assert "id='load'" in page


def test_each_run_stores_the_machine_speed_its_load_and_its_agreement(at_home):
    from softgrad.history import results, store

    for run in store.complete_runs():
        speed = run.speed()
        df = results.load([run])
        timed = df[df["time_s"].notna()]
        assert set(map(tuple, timed[["impl", "op", "shape", "dtype", "device"]].to_numpy())) <= set(speed)
        assert (timed["norm"] > 0).all() and (timed["speed_s"] > 0).all()
        assert set(run.meta()["load"]) == {"numpy", "plugin"}
        points = run.agreement()
        assert {p["key"].split()[0] for p in points} == {"numpy", "slowable", "fast-wrong"}
        timed = [p for p in points if "error" not in p]
        from softgrad.bench.independent import SLICES

        assert timed and all(len(p["independent_s"]) == len(p["softgrad_here_s"]) == SLICES and p["ratio"] > 0
                             and p["bound"] >= 0.1 for p in timed)
        # (whether they agree is the machine's business on a shared 2-core VM: tests/test_sweep.py holds the
        # rule with a known sleep and a planted missing device wait)


def test_a_killed_run_keeps_what_it_stored_and_resume_completes_it(at_home):
    home = at_home
    from softgrad.history import store

    before = {r.id for r in store.all_runs()}
    env = {**os.environ, "SOFTGRAD_HOME": str(home)}
    env.pop("SOFTGRAD_PLUGINS", None)
    env.pop("SOFTGRAD_PLUGIN_FILES", None)
    cmd = [sys.executable, "-m", "softgrad.cli", "run", "--quick", "--no-check", "--no-progress", "--impl", "numpy",
           "--impl", "slowable", "--plugin", str(PLUGINS / "slowable.py")]
    proc = subprocess.Popen(cmd, env=env, cwd=str(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        new = None
        while time.monotonic() < deadline:
            new = [r for r in store.all_runs() if r.id not in before and r.meta_path.exists()]
            if new and new[0].meta().get("families_done"):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run stored no family in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run = new[0]
    assert not run.complete
    assert run.meta()["families_done"] == ["numpy"]
    assert "bench_ops.Impl_numpy.time_op" in run.asv()["results"]
    out = softgrad(home, "run", "--resume", "--impl", "numpy", "--no-check", "--no-progress")
    assert out.returncode == 2 and "drop --impl" in out.stderr and "Traceback" not in out.stderr
    # the run's own implementations, grid and plugin come back from its meta.json: no flags needed
    out = softgrad(home, "run", "--no-check", "--no-progress", "--resume")
    assert out.returncode == 0, out.stdout + out.stderr
    assert run.complete and run.meta()["grid"] == "quick"
    assert run.meta()["families_done"] == ["numpy", "plugin"]
    assert "bench_ops.Impl_slowable.time_op" in run.asv()["results"]


def test_a_second_run_on_the_same_results_is_refused_while_one_is_running(tmp_path):
    import fcntl

    (tmp_path / "results").mkdir()
    with open(tmp_path / "results" / ".run.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("4242")
        lock.flush()
        out = softgrad(tmp_path, "run", "--quick", "--no-check", "--impl", "numpy")
    assert out.returncode == 2, out.stderr
    assert "another softgrad run (pid 4242)" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results" / "runs").exists()  # nothing started


def test_a_corrupt_results_file_is_named_in_one_line(home, tmp_path):
    import shutil

    copy = tmp_path / "home"
    shutil.copytree(home / "results", copy / "results")
    bad = next(p for p in (copy / "results" / "asv").rglob("*.json") if p.name != "machine.json")
    bad.write_text("{ not json")
    out = softgrad(copy, "run", "--quick", "--no-check", "--impl", "numpy")
    assert out.returncode == 2
    assert str(bad) in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    meta = next((copy / "results" / "runs").glob("*/meta.json"))
    meta.write_text(json.dumps({"hello": "world"}))
    out = softgrad(copy, "compare")
    assert out.returncode == 2
    assert "meta.json" in out.stderr and "Traceback" not in out.stderr


# --- in a real browser (Debian's chromium; .ci/run installs it) -----------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "reports" / "screenshots"


def _chromium() -> str:
    import shutil

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    return exe


def _browse(url: str, tmp_path: Path, screenshot: Path | None = None) -> str:
    """The DOM after scripts ran (and a screenshot), from headless Chromium."""
    exe = _chromium()
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
            "--window-size=1400,1000"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=120)
        assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    return dom.stdout


@pytest.fixture
def served(home):
    """results/html served on localhost (asv's dashboard loads its data over HTTP)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(home / "results" / "html"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.browser
def test_dashboard_renders_the_benchmark_list_and_a_graph(served, tmp_path):
    listing = _browse(f"{served}/index.html", tmp_path, SCREENSHOTS / "dashboard.png")
    assert "bench_ops.Impl_numpy.time_op" in listing or "Impl_numpy" in listing
    graph = _browse(f"{served}/index.html#bench_ops.Impl_numpy.time_op", tmp_path,
                    SCREENSHOTS / "dashboard-graph.png")
    assert "flot-base" in graph, "no graph canvas rendered"


@pytest.mark.browser
def test_report_opens_with_every_plot_loaded(home, tmp_path):
    out = softgrad(home, "report", "--out", str(home / "report-browser"))
    assert out.returncode == 0, out.stderr
    dom = _browse((home / "report-browser" / "index.html").as_uri(), tmp_path, SCREENSHOTS / "report.png")
    images = dom.count("<img")
    assert images >= 5
    assert dom.count('data-loaded="true"') == images, "a plot did not load"
