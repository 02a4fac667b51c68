"""The pieces under the main job: the run store, thread control, the grid, the generated asv classes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from softgrad.bench import asv_suite, grid, threads
from softgrad import registry
from softgrad.history import store


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    return tmp_path


def test_write_json_is_atomic_an_interrupted_write_keeps_the_old_file(home, monkeypatch):
    path = home / "x.json"
    store.write_json(path, {"a": 1})

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in home.iterdir()] == ["x.json"], "a temporary file was left behind"


def test_corrupt_and_foreign_files_are_named(home):
    bad = home / "bad.json"
    bad.write_text("{ nope")
    with pytest.raises(store.StoreError, match=str(bad)):
        store.read_json(bad)
    run = store.create_run("abc123")
    run.meta_path.write_text(json.dumps({"something": "else"}))
    with pytest.raises(store.StoreError, match="meta.json: not a softgrad run"):
        run.meta()
    with pytest.raises(store.StoreError, match="meta.json"):
        store.complete_runs()
    with pytest.raises(store.StoreError, match="meta.json"):  # --resume names the file, not a fresh run
        store.latest_incomplete()


def test_runs_are_listed_oldest_first_and_only_complete_ones_count(home):
    a = store.create_run("aaaa")
    a.update_meta(complete=True, machine="vm", impls=["numpy"])  # a complete run names its machine and entries
    b = store.create_run("bbbb")
    b.update_meta(complete=False)
    assert [r.id for r in store.all_runs()] == [a.id, b.id]
    assert [r.id for r in store.complete_runs()] == [a.id]
    assert store.latest_incomplete().id == b.id


def test_thread_option_sets_every_library(monkeypatch):
    for var in ("SOFTGRAD_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS", "XLA_FLAGS"):
        monkeypatch.delenv(var, raising=False)
    assert threads.requested() is None
    threads.apply(1)
    assert os.environ["OMP_NUM_THREADS"] == os.environ["NUMBA_NUM_THREADS"] == "1"
    assert "xla_cpu_multi_thread_eigen=false" in os.environ["XLA_FLAGS"]
    assert threads.in_use()["requested"] == 1
    monkeypatch.setenv("SOFTGRAD_THREADS", "two")
    with pytest.raises(ValueError, match="positive integer"):
        threads.requested()


def test_grid_quick_and_full(monkeypatch):
    monkeypatch.delenv(grid.GRID_ENV, raising=False)
    full = grid.shapes()
    assert "1x2" in full and "256x4096" in full and len(full) == len(grid.N_VALUES) * len(grid.BATCHES)
    assert grid.shapes("quick") == list(grid.QUICK_SHAPES)
    assert grid.dtypes("quick") == ["float32"]
    monkeypatch.setenv(grid.GRID_ENV, "huge")
    with pytest.raises(ValueError, match="full' or 'quick"):
        grid.shapes()
    assert grid.bytes_moved("vjp", 2, 8, 4) == 3 * 2 * 8 * 4
    assert grid.bytes_moved("jacobian", 2, 8, 4) == 2 * 8 * 4 + 2 * 8 * 8 * 4
    # a stride-0 cotangent is read once: one row (broadcast) or one value (scalar), not batch rows
    assert grid.bytes_moved("vjp", 2, 8, 4, "broadcast") == 2 * 2 * 8 * 4 + 8 * 4
    assert grid.bytes_moved("vjp", 2, 8, 4, "scalar") == 2 * 2 * 8 * 4 + 4
    assert grid.bytes_moved("vjp", 2, 8, 4, "transposed") == 3 * 2 * 8 * 4
    assert grid.bytes_moved("softmax", 2, 8, 4, "broadcast") == 2 * 2 * 8 * 4  # softmax reads no g


def test_generated_asv_class_times_numpy_and_skips_what_is_not_supported(monkeypatch):
    monkeypatch.delenv(grid.GRID_ENV, raising=False)
    namespace: dict = {}
    asv_suite.install(namespace)
    cls = namespace[grid.class_name("numpy")]
    assert cls.param_names == ["op", "shape", "dtype", "device"]
    assert cls.params[0] == ["softmax", "jacobian", "vjp"]
    bench = cls()
    bench.setup("vjp", "256x64", "float32", "cpu")
    bench.time_op("vjp", "256x64", "float32", "cpu")
    assert 0 <= bench.track_error_ratio("vjp", "256x64", "float32", "cpu") < 1
    assert bench.first_call_s > 0
    assert cls.track_first_call_s is None, "numpy compiles nothing: no first-call benchmark"
    assert cls.time_op.__dict__.get("params") is None and cls.params[1] == grid.shapes()
    assert cls.track_error_ratio.params[1] == grid.track_shapes() != grid.shapes()
    with pytest.raises(NotImplementedError, match="memory budget"):
        cls().setup("jacobian", "256x4096", "float64", "cpu")
    with pytest.raises(NotImplementedError, match="bfloat16"):
        cls().setup("vjp", "1x16", "bfloat16", "cpu")
    with pytest.raises(NotImplementedError, match="over the 1 s budget"):
        namespace[grid.class_name("loops")]().setup("jacobian", "256x512", "float32", "cpu")


def test_error_track_sees_a_wrong_result():
    namespace: dict = {}
    asv_suite.install(namespace)
    bench = namespace[grid.class_name("numpy")]()
    bench.setup("softmax", "256x64", "float64", "cpu")
    bench.out = bench.out * (1 + 1e-9)
    assert bench.track_error_ratio("softmax", "256x64", "float64", "cpu") > 1
    bench.out = np.full_like(bench.out, np.nan)
    assert bench.track_error_ratio("softmax", "256x64", "float64", "cpu") == float("inf")


def test_every_registered_implementation_gets_a_class():
    namespace: dict = {}
    asv_suite.install(namespace)
    assert {grid.class_name(i.name) for i in registry.all_implementations()} <= set(namespace)


def _same_call(mine, theirs) -> None:
    """Two prepared calls are one call: the same op callable, inputs equal in value, dtype, shape and strides,
    and results equal."""
    assert (mine.impl.name, mine.op, mine.dtype, mine.device) == (theirs.impl.name, theirs.op, theirs.dtype,
                                                                   theirs.device)
    assert mine.fn is theirs.fn
    assert len(mine.args) == len(theirs.args)
    for a, b in zip(mine.args, theirs.args):
        assert (a.dtype, a.shape, a.strides) == (b.dtype, b.shape, b.strides)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mine(), theirs())


def test_an_asv_class_sets_up_and_times_the_same_call_as_the_sweep(tmp_path, monkeypatch):
    from softgrad.bench import family_worker, sampling

    key = ("numpy", "vjp", "256x16", "float32", "cpu")
    timed = []  # the calls the sweep's worker times, first pass and second (prepared again)
    monkeypatch.setattr(sampling, "calibrate", lambda call, **kw: 1)
    monkeypatch.setattr(sampling, "sample", lambda call, number, **kw: timed.append(call) or [1e-3])
    monkeypatch.setattr(sampling, "machine_speed", lambda: 1e-5)
    monkeypatch.delenv("SOFTGRAD_THREADS", raising=False)
    spec = {"impls": ["numpy"], "grid": "quick", "rounds": 2, "records": str(tmp_path / "r.jsonl"), "select": [key]}
    assert family_worker.run(spec) == 0
    assert len(timed) == 2
    namespace: dict = {}
    asv_suite.install(namespace)
    bench = namespace[grid.class_name("numpy")]()
    bench.setup(*key[1:])
    for call in timed:
        _same_call(bench.call, call)
    bench.time_op(*key[1:])
    assert bench.track_error_ratio(*key[1:]) < 1
    assert bench.track_first_call_s is None, "numpy does not compile: no first-call benchmark"
    with pytest.raises(NotImplementedError, match="budget"):  # a Jacobian past the output budget is skipped
        bench.setup("jacobian", "256x4096", "float64", "cpu")


def test_asv_discovery_imports_only_the_named_family_and_starts_no_threads():
    """asv imports every module in benchmarks/ in the server it forks benchmark processes from: an
    import that pulls in another framework or starts a thread pool there (a JAX device probe did) breaks
    every child (XLA deadlocked in its first compilation)."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("asv_runner")
    root = Path(__file__).resolve().parents[1]
    probe = (
        "import os, sys\n"
        "from asv_runner.discovery import disc_benchmarks\n"
        "found = {b.name: b for b in disc_benchmarks(sys.argv[1], ignore_import_errors=False)}\n"
        "shapes = {k: found['bench_ops.Impl_numpy.' + k].params[1] for k in ('time_op', 'track_error_ratio')}\n"
        "assert len(shapes['time_op']) > len(shapes['track_error_ratio']) > 1, shapes\n"
        "assert 'bench_ops.Impl_numpy.track_first_call_s' not in found\n"
        "frameworks = [m for m in ('torch', 'numba', 'jax', 'jaxlib') if m in sys.modules]\n"
        "print(len(os.listdir('/proc/self/task')), ','.join(frameworks))\n"
    )
    env = {**os.environ, asv_suite.FAMILY_ENV: "numpy"}
    out = subprocess.run([sys.executable, "-c", probe, str(root / "benchmarks")], env=env, cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    threads_alive, frameworks = (out.stdout.strip().split(" ") + [""])[:2]
    assert frameworks == "", f"discovery imported {frameworks} into the numpy family's fork server"
    # NumPy's BLAS may keep its own pool (it is the family being timed); XLA's would be a dozen threads.
    assert int(threads_alive) <= (os.cpu_count() or 1) + 1, f"{threads_alive} threads alive after discovery"


def test_last_level_cache_is_the_largest_data_cache(tmp_path):
    from softgrad.history import provenance

    for index, kind, size in (("index0", "Data", "48K"), ("index1", "Instruction", "64M"),
                              ("index2", "Unified", "2048K"), ("index3", "Unified", "32M")):
        (tmp_path / index).mkdir()
        (tmp_path / index / "type").write_text(kind + "\n")
        (tmp_path / index / "size").write_text(size + "\n")
    assert provenance.last_level_cache_bytes(tmp_path) == 32 << 20
    assert provenance.last_level_cache_bytes(tmp_path / "absent") is None


def test_timed_blocks_pause_the_garbage_collector_as_timeit_does():
    import gc

    from softgrad.bench import sampling

    seen = []
    sampling.calibrate(lambda: seen.append(gc.isenabled()), block_s=1e-4)
    sampling.sample(lambda: seen.append(gc.isenabled()), 4, min_blocks=2, round_s=0.0)
    assert seen[0] is True, "the first (warm-up) call runs as the caller's code would"
    assert not any(seen[1:]), "every timed call runs with the collector paused"
    assert gc.isenabled(), "and it is on again afterwards"
    gc.disable()
    try:
        sampling.sample(lambda: None, 1, min_blocks=1, round_s=0.0)
        assert not gc.isenabled(), "a caller that had it off keeps it off"
    finally:
        gc.enable()


FAULTS_CHILD = """
import resource, sys, numpy as np
def call():
    a = np.empty(int(sys.argv[1]) << 20, dtype=np.uint8)
    a.fill(1)  # touch every page of the result (over glibc's 32 MiB mmap ceiling)
    return a
for _ in range(2):
    call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    call()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 4)
"""


@pytest.mark.parametrize("mib", [48, 1536])
def test_the_timing_allocator_settings_reuse_a_large_result_without_page_faults(mib):
    """A large result per call: glibc maps it afresh (and the call pays a fault per page) on every call by
    default; under the timing processes' settings the heap keeps it and warm calls fault nothing, whatever
    the process did before. 1.5 GiB: past the 1 GiB trim threshold the settings had, under which such a
    result went back to the OS when freed (991 faults a call at 1 GiB)."""
    import subprocess
    import sys

    from softgrad.bench.allocator import MALLOC_TUNABLES

    def faults(tunables):
        env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        if tunables:
            env["GLIBC_TUNABLES"] = tunables
        out = subprocess.run([sys.executable, "-c", FAULTS_CHILD, str(mib)], capture_output=True, text=True,
                             env=env, check=True)
        return int(out.stdout)

    assert faults(None) > 20, "default glibc: a fresh mapping every call (48 MiB in 4 KiB or 2 MiB pages)"
    assert faults(MALLOC_TUNABLES) < 10


TRIM_CHILD = """
import numpy as np
from softgrad.bench.allocator import release_free_memory
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
keep = np.ones(1 << 20)  # a live block above the freed one: the heap's top cannot shrink past it
big = np.ones(200 << 17)  # 200 MiB, freed below
keep2 = np.ones(1 << 20)
del big
held = rss()
print(release_free_memory(), (held - rss()) >> 20)
"""


def test_a_worker_hands_a_large_shapes_freed_memory_back_between_shapes():
    """Under the timing settings freed memory stays mapped (so warm calls fault nothing); between shapes
    the worker gives it back, even from the middle of the heap."""
    import subprocess
    import sys

    from softgrad.bench.allocator import MALLOC_TUNABLES

    env = {**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES}
    out = subprocess.run([sys.executable, "-c", TRIM_CHILD], capture_output=True, text=True, env=env, check=True)
    released, mib = out.stdout.split()
    assert released == "True" and int(mib) >= 190, out.stdout
