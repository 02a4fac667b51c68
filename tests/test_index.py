"""The history's index (:mod:`softgrad.history.index`): the frame it gives equals the one read from the run
folders, updated run by run it equals one rebuilt whole, and it is never trusted blindly: a run folder
changed, added or removed since, a damaged file or block, another version's index, or a crash mid-update are
each caught (rebuilt or read again, with one line where it is news), two writers at once leave it whole, and a
home that cannot be written still answers.

The store is synthetic (helpers' writers): runs on two machines, a ``--no-check`` run whose checks come from
an earlier run, an interrupted run, a run whose timings were deleted, an entry the registry does not know and
a class the run's meta.json does not name, first calls tracked at two row lengths.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import helpers  # noqa: E402
from softgrad.bench import grid  # noqa: E402
from softgrad.cli import main  # noqa: E402
from softgrad.history import blocks, index, results, store  # noqa: E402

OPS = ("softmax", "vjp")
SHAPES = ("1x8", "1x16", "256x8", "256x16")
DTYPES = ("float32", "float64")
ROOT = Path(__file__).resolve().parents[1]


def _rid(k: int) -> str:
    return f"202601{k + 1:02d}T000000000000Z-aaaaaaaa"


def _asv(k: int, impls: tuple[str, ...], shapes: tuple[str, ...] = SHAPES) -> dict:
    params = helpers.asv_params(OPS, shapes, DTYPES, ("cpu",))
    count = len(OPS) * len(shapes) * len(DTYPES)
    out = {}
    for j, impl in enumerate(impls):
        cls = grid.class_name(impl)
        times = [(1 + j) * 1e-5 * (1 + i % 7) * (1 + 0.01 * k) for i in range(count)]
        times[-1] = None  # skipped in setup
        out[f"bench_ops.{cls}.time_op"] = helpers.asv_time_op(times, params)
        out[f"bench_ops.{cls}.track_error_ratio"] = helpers.asv_track([0.01 * (1 + j)] * count, params)
        first = [t * 40 if i % len(shapes) in (1, 3) and t else None for i, t in enumerate(times)]
        out[f"bench_ops.{cls}.track_first_call_s"] = helpers.asv_track(first, params)
    return helpers.asv_file(out)


def _speed(k: int, impls: tuple[str, ...], shapes: tuple[str, ...] = SHAPES) -> dict:
    return {"format": "softgrad-speed/1", "reference": "a loop", "benchmarks": {
        f"{impl} {op} {shape} {dtype} cpu": {"norm": m, "norm_q25": 0.97 * m, "norm_q75": 1.03 * m,
                                             "speed_s": 3e-5 * (1.5 if (k, shape) == (1, "1x8") else 1)}
        for impl in impls for op in OPS for shape in shapes for dtype in DTYPES for m in [3.0 + k]}}


def _run(k: int, impls=("numpy", "fake-impl"), checks=True, asv=True, failing=(), shapes=SHAPES, **meta) -> dict:
    rid = _rid(k)
    date = f"2026-01-{k + 1:02d}T00:00:00+00:00"
    files = {(rid, "meta.json"): helpers.run_meta(rid, list(impls), ["numpy"], date=date, **meta)}
    files[(rid, "checks.json")] = helpers.check_records(impls, (*OPS, "jacobian"), DTYPES, failing) if checks else None
    files[(rid, "asv.json")] = _asv(k, impls, shapes) if asv else None
    files[(rid, "speed.json")] = _speed(k, impls, shapes) if asv else None
    return files


def _store_files() -> list[dict]:
    """The runs of the synthetic store, oldest first (see the module docstring)."""
    asv_ghost = _asv(6, ("numpy", "ghost"))
    runs = [
        _run(0),
        _run(1, machine="gpu-box", failing=("fake-impl",), build_s={"numpy": None, "fake-impl": 1.5}),
        _run(2, checks=False),  # --no-check: the checks of run 0 (the newest of its machine, commit and versions;
        # run 1 is gpu-box's)
        _run(3, complete=False),  # interrupted
        _run(4, asv=False),  # its timings deleted: left out with a warning
        _run(5, checks=False, versions={"numpy": "2.5.0"}),  # --no-check, no earlier run of its versions
        {**_run(6, impls=("numpy",)), (_rid(6), "asv.json"): asv_ghost},  # a class meta.json does not name
    ]
    return runs


def _write(home: Path, files: dict, age_s: float = 3600.0) -> None:
    """``files`` under ``home``, their modification times ``age_s`` in the past (settled: not re-read)."""
    helpers.write_run_files(home, files)
    past = time.time() - age_s
    for rid, _ in files:
        for f in (home / "results" / "runs" / rid).iterdir():
            os.utime(f, (past, past))


@pytest.fixture(autouse=True)
def small_histories_are_indexed(monkeypatch):
    """Reading commands build the index of these few runs (by default only from index.MIN_RUNS on)."""
    monkeypatch.setattr(index, "MIN_RUNS", 1)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    monkeypatch.delenv(index.ENV, raising=False)
    for files in _store_files():
        _write(tmp_path, files)
    (tmp_path / "results" / "runs" / "20260201T000000000000Z-nometa").mkdir()  # a folder with no meta.json
    return tmp_path


def _folders(monkeypatch, what=results.load, *args):
    monkeypatch.setenv(index.ENV, "off")
    try:
        return what(*args)
    finally:
        monkeypatch.delenv(index.ENV)


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs


class Notices(list):
    def __call__(self, text: str) -> None:
        self.append(text)


@pytest.fixture
def notices(monkeypatch):
    said = Notices()
    monkeypatch.setattr(index, "say", said)
    return said


def test_the_index_gives_the_frame_the_folders_give(home, monkeypatch, notices):
    expected = _folders(monkeypatch)
    assert not index.path().exists()
    first = results.load()  # builds the index
    assert index.path().exists()
    second = results.load()  # reads it
    _same(first, expected)
    _same(second, expected)
    assert notices == []  # a first build of a few runs is quiet
    # what the store holds, as the folders say it
    assert set(expected["run"]) == {_rid(k) for k in (0, 1, 2, 5, 6)}
    assert expected.attrs["warnings"] == [f"run {_rid(4)} is complete but has no "
                                          f"{home / 'results' / 'runs' / _rid(4) / 'asv.json'}: left out"]
    assert set(expected["machine"]) == {"vm", "gpu-box"}
    no_check = expected[expected["run"] == _rid(2)]
    assert set(no_check["checks_from"]) == {_rid(0)} and no_check["checked"].all()  # the newest of vm with checks
    assert set(expected[expected["run"] == _rid(5)]["checked"]) == {False}
    assert set(expected[expected["run"] == _rid(6)]["impl"]) == {"numpy"}  # the ghost class is left out
    assert not expected[(expected["run"] == _rid(1)) & (expected["impl"] == "fake-impl")]["passed"].any()
    assert expected["slow_machine"].sum() == 2 * 2 * 2  # run 1's 1x8 points: speed 1.5x the run's best
    # every explicit selection too, and the check records
    for runs in ([store.Run(home / "results" / "runs" / _rid(2))], [store.Run(home / "results" / "runs" / i)
                                                                    for i in (_rid(5), _rid(0))]):
        _same(results.load(runs), _folders(monkeypatch, results.load, runs))
        _same(results.load_checks(runs), _folders(monkeypatch, results.load_checks, runs))
    _same(results.load_checks(), _folders(monkeypatch, results.load_checks))


def test_an_entry_registered_later_is_resolved_by_the_reading_process(home, monkeypatch):
    """The index keeps rows of a class its run's meta.json does not name; the registry of the process that
    reads resolves them (as reading the folder does), so one index serves processes with other plugins."""
    results.load()
    known = {grid.class_name(i.name): i.name for i in results.registry.all_implementations()}
    ghost = type("Entry", (), {"name": "ghost", "family": "ghosts", "compiles": False})()
    monkeypatch.setattr(results.registry, "all_implementations", lambda: [*[type("E", (), {"name": n})() for n in
                                                                            known.values()], ghost])
    monkeypatch.setattr(results, "_entry", lambda name: ghost if name == "ghost" else None)
    df = results.load()
    assert set(df[df["run"] == _rid(6)]["impl"]) == {"numpy", "ghost"}
    _same(df, _folders(monkeypatch))


def _db_rows(db: Path) -> dict[str, list]:
    con = sqlite3.connect(db)
    try:
        return {"runs": sorted(con.execute("SELECT id, fingerprint, machine, date, commit_id, workload, complete, "
                                           "error, facts, points, checks FROM runs").fetchall()),
                "points": sorted(con.execute("SELECT * FROM points").fetchall(), key=repr),
                "verdicts": sorted(con.execute("SELECT * FROM verdicts").fetchall(), key=repr)}
    finally:
        con.close()


def test_run_by_run_equals_rebuilt(tmp_path, monkeypatch, notices):
    """The index updated as each run arrives (and one run is removed) holds what a rebuild from the final
    folders holds, row for row, and gives the same frame."""
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    runs = _store_files()
    for files in runs:
        _write(tmp_path, files)
        results.load()
    gone = tmp_path / "results" / "runs" / _rid(5)
    for f in gone.iterdir():
        f.unlink()
    gone.rmdir()
    incremental = results.load()
    assert notices == [f"index {index.path()}: 0 runs changed and 1 removed since it was written ({_rid(5)}): read "
                       f"again from their folders"]
    step_by_step = _db_rows(index.path())
    snap = index.sync(rebuild=True)
    assert snap.written and set(snap.fresh) == set(snap.runs)
    assert _db_rows(index.path()) == step_by_step
    _same(results.load(), incremental)
    _same(incremental, _folders(monkeypatch))
    # the plain tables hold one row per run and point, keyed by machine
    con = sqlite3.connect(index.path())
    per_run = dict(con.execute("SELECT run, count(*) FROM points WHERE unresolved = 0 GROUP BY run").fetchall())
    machines = {m for (m,) in con.execute("SELECT DISTINCT machine FROM points")}
    times = con.execute("SELECT time_s FROM points WHERE run = ? AND impl = 'numpy' AND op = 'vjp' AND "
                        "shape = '256x8' AND dtype = 'float32'", (_rid(1),)).fetchall()
    verdicts = con.execute("SELECT machine, check_passed, check_failed, failed_cases FROM verdicts WHERE run = ? "
                           "AND impl = 'fake-impl'", (_rid(1),)).fetchall()
    con.close()
    assert verdicts == [("gpu-box", 0, 6, "; ".join(f"{op} {dtype} random-normal" for op in (*OPS, "jacobian")
                                                     for dtype in DTYPES))]
    frame = incremental.groupby("run").size().to_dict()
    assert {r: per_run[r] for r in frame} == frame and machines == {"vm", "gpu-box"}
    row = incremental[(incremental["run"] == _rid(1)) & (incremental["impl"] == "numpy") & (incremental["op"] == "vjp")
                      & (incremental["shape"] == "256x8") & (incremental["dtype"] == "float32")]
    assert times == [(row["time_s"].iloc[0],)]


def test_a_run_changed_since_it_was_indexed_is_read_again_with_a_notice(home, monkeypatch, notices):
    results.load()
    meta_path = home / "results" / "runs" / _rid(0) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["machine"] = "vw"  # same size
    text = json.dumps(meta)
    assert len(text) == meta_path.stat().st_size
    meta_path.write_text(text)
    past = time.time() - 1800
    os.utime(meta_path, (past, past))
    df = results.load()
    assert notices == [f"index {index.path()}: 1 runs changed and 0 removed since it was written ({_rid(0)}): read "
                       f"again from their folders"]
    assert set(df[df["run"] == _rid(0)]["machine"]) == {"vw"}
    _same(df, _folders(monkeypatch))
    notices.clear()
    _same(results.load(), df)
    assert notices == []  # now current


def test_a_file_rewritten_within_the_timestamps_resolution_is_still_read_again(home, monkeypatch, notices):
    """A run indexed within RACY_S of its files' last write is not trusted: the same size and modification
    time can hide a rewrite (coarse timestamps). The planted rewrite keeps both; the index sees it."""
    speed_path = home / "results" / "runs" / _rid(0) / "speed.json"
    now = time.time()
    os.utime(speed_path, (now, now))
    results.load()  # indexed right after the write: racy
    stat = speed_path.stat()
    text = speed_path.read_text().replace('"norm": 3.0', '"norm": 7.0')
    assert len(text) == stat.st_size and text != speed_path.read_text()
    speed_path.write_text(text)
    os.utime(speed_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the fingerprint as before
    assert index.fingerprint(speed_path.parent) in _db_rows(index.path())["runs"][0]
    df = results.load()
    assert set(df[df["run"] == _rid(0)]["norm"]) == {7.0}
    assert notices == []  # expected, not news
    _same(df, _folders(monkeypatch))


def test_a_run_added_is_indexed_and_many_added_say_so(home, monkeypatch, notices):
    results.load()
    _write(home, _run(9))
    assert _rid(9) in set(results.load()["run"]) and notices == []
    monkeypatch.setattr(index, "NOTICE_RUNS", 2)
    _write(home, _run(10))
    _write(home, _run(11))
    results.load()
    assert notices == [f"index {index.path()} lacks 2 runs: reading 2 run folders into it (later commands read "
                       f"the index)"]


@pytest.mark.parametrize("damage", ["not-sqlite", "truncated", "blob", "facts", "checks", "format", "tables"])
def test_a_damaged_index_is_rebuilt_with_a_notice_never_trusted(home, monkeypatch, notices, damage):
    expected = _folders(monkeypatch)
    checks = _folders(monkeypatch, results.load_checks)
    results.load()
    db = index.path()
    if damage == "not-sqlite":
        db.write_bytes(b"not a database at all" * 100)
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[:3000])
    else:
        con = sqlite3.connect(db)
        sql = {"blob": ("UPDATE runs SET points = ? WHERE id = ?", (b"x\x9c" + os.urandom(40), _rid(0))),
               "facts": ("UPDATE runs SET facts = ? WHERE id = ?", ('{"format": "softgrad-block/1"', _rid(0))),
               "checks": ("UPDATE runs SET checks = ? WHERE id = ?", (b"garbage", _rid(0))),
               "format": ("UPDATE info SET value = 'softgrad-index/0' WHERE key = 'format'", ()),
               "tables": ("DROP TABLE points", ())}[damage]
        con.execute(*sql)
        con.commit()
        con.close()
    if damage == "checks":
        _same(results.load_checks(), checks)
    else:
        _same(results.load(), expected)
    assert len(notices) == 1 and notices[0].startswith(f"index {db} cannot be used ("), notices
    assert notices[0].endswith(("): rebuilding it from the run folders", "): rebuilding it from the 8 run folders"))
    notices.clear()
    _same(results.load(), expected)
    _same(results.load_checks(), checks)
    assert notices == []


def test_another_softgrad_s_reader_code_rebuilds_the_index(home, monkeypatch, notices):
    """The index records a digest of the code that reads the files: a softgrad whose readers differ (a check
    added, say) does not trust blocks the old code read."""
    results.load()
    monkeypatch.setattr(index, "index_format", lambda: "softgrad-index/1 softgrad-block/1 0123456789abcdef")
    results.load()
    assert notices == [f"index {index.path()} cannot be used (written by another version of softgrad): rebuilding "
                       f"it from the 8 run folders"]


def test_a_stored_file_softgrad_refuses_raises_from_the_index_as_from_the_folder(home, monkeypatch):
    results.load()
    bad = home / "results" / "runs" / _rid(1) / "asv.json"
    bad.write_text('{"results": 3}')
    for source in ("index", "folders"):
        if source == "folders":
            monkeypatch.setenv(index.ENV, "off")
        with pytest.raises(store.StoreError) as exc:
            results.load()
        assert str(bad) in str(exc.value)
        # a single other run still loads: the damage is raised where its run is used
        assert set(results.load([store.Run(home / "results" / "runs" / _rid(0))])["run"]) == {_rid(0)}
    monkeypatch.delenv(index.ENV)
    _write(home, {(_rid(1), "asv.json"): _asv(1, ("numpy", "fake-impl"))})
    _same(results.load(), _folders(monkeypatch))


def test_a_home_that_cannot_be_written_still_answers(home, monkeypatch, notices):
    expected = _folders(monkeypatch)
    real = index._connect

    def readonly(db, readonly):
        if not readonly:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(db, readonly)

    monkeypatch.setattr(index, "_connect", readonly)
    _same(results.load(), expected)  # no index yet: read from the folders
    assert notices == [f"index {index.path()} cannot be written (attempt to write a readonly database): 8 runs read "
                       f"from their folders"]
    monkeypatch.setattr(index, "_connect", real)
    results.load()  # written
    monkeypatch.setattr(index, "_connect", readonly)
    notices.clear()
    _same(results.load(), expected)  # a current index is read as it is
    assert notices == []
    _write(home, _run(9))
    df = results.load()  # the new run from its folder, the rest from the index
    assert _rid(9) in set(df["run"]) and len(notices) == 1 and "1 runs read from their folders" in notices[0]
    rc, out, err = _cli(home, "index")
    assert rc == 2 and out == "" and err == (f"softgrad index: error: cannot write the index {index.path()}: commands "
                                             f"read the run folders\n")
    assert notices[-1] == (f"index {index.path()} cannot be written (attempt to write a readonly database): 1 runs "
                           f"read from their folders")


def _cli(home: Path, *argv: str) -> tuple[int, str, str]:
    import contextlib

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def test_softgrad_index_rebuilds_and_says_what_it_holds(home, tmp_path_factory, monkeypatch):
    rc, out, err = _cli(home, "index", "--rebuild")
    assert rc == 0 and err == ""
    points = len(_folders(monkeypatch)) + 16 + 32  # and the ghost class's rows, and the interrupted run's
    assert out.startswith(f"index {index.path()}: 8 runs (6 complete), {points} points, ")
    assert out.endswith("; 8 runs read from their folders\n")
    rc, out, _ = _cli(home, "index")
    assert rc == 0 and out.endswith("; 0 runs read from their folders\n")
    empty = tmp_path_factory.mktemp("empty")
    monkeypatch.setenv("SOFTGRAD_HOME", str(empty))
    rc, out, err = _cli(empty, "index")  # nothing to do is no success
    assert rc == 1 and out == "" and err == f"softgrad index: no run stored in {empty / 'results' / 'runs'}: nothing to index\n"
    assert not (empty / "results").exists()


def _hammer(home: str, rounds: int) -> None:
    os.environ["SOFTGRAD_HOME"] = home
    for k in range(rounds):
        index.sync(lambda text: None, rebuild=k % 2 == 0)


def test_two_writers_at_once_leave_a_whole_index(home, monkeypatch):
    expected = _folders(monkeypatch)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(home), 6)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    _same(results.load(), expected)


CRASH = """
import os, sys
from softgrad.history import index
real = index._insert
count = [0]
def insert(*args):
    real(*args)
    count[0] += 1
    if count[0] == 2:
        os._exit(9)  # killed mid-transaction: no rollback, no cleanup
index._insert = insert
index.sync(lambda text: None, rebuild=True)
"""


def test_a_crash_mid_update_leaves_the_old_index(home, monkeypatch, notices):
    results.load()
    before = _db_rows(index.path())
    _write(home, _run(9))
    out = subprocess.run([sys.executable, "-c", CRASH], env={**os.environ, "SOFTGRAD_HOME": str(home)},
                         capture_output=True, text=True, cwd=str(ROOT))
    assert out.returncode == 9, out.stderr
    assert _db_rows(index.path()) == before  # the hot journal rolled back: the old index, whole
    df = results.load()
    assert notices == [] and _rid(9) in set(df["run"])
    _same(df, _folders(monkeypatch))


def test_blocks_pack_and_unpack_bit_for_bit(home):
    for run in store.all_runs():
        block = blocks.from_folder(run)
        back = blocks.with_columns(blocks.from_facts(run.id, blocks.facts_json(block)),
                                   blocks.columns_bytes(block) if block.columns else None)
        assert back.columns.keys() == block.columns.keys()
        for name, arr in block.columns.items():
            assert arr.dtype == back.columns[name].dtype, name
            np.testing.assert_array_equal(arr, back.columns[name])
        assert blocks.facts_json(back) == blocks.facts_json(block)
    with pytest.raises(blocks.BlockError):  # another run's facts under this id
        blocks.from_facts(_rid(1), blocks.facts_json(blocks.from_folder(store.Run(store.runs_dir() / _rid(0)))))


def test_a_reading_command_builds_no_index_for_a_few_runs(home, monkeypatch, notices):
    """Below index.MIN_RUNS a missing index is not made by a command that reads (the folders are as fast, and
    a command that then fails leaves the home as it was); softgrad index makes it at any size."""
    monkeypatch.setattr(index, "MIN_RUNS", 9)  # the store holds 8 run folders
    expected = _folders(monkeypatch)
    _same(results.load(), expected)
    assert not index.path().exists() and notices == []
    _write(home, _run(9))
    results.load()
    assert index.path().exists()


def test_the_runner_updates_the_index_once_the_run_is_complete(home, monkeypatch):
    """softgrad run stores the run, marks it complete, then updates the index; a failure to is one line, and
    the run stays stored (the next command that reads rebuilds the index)."""
    import inspect

    from softgrad import runner

    source = inspect.getsource(runner._run_locked)
    assert source.index("update_meta(complete=True") < source.index("_update_index(") < source.index("write_report")
    monkeypatch.setattr(index, "MIN_RUNS", 20)  # a reading command would not make it: the runner does
    stream = io.StringIO()
    runner._update_index(stream)
    assert index.path().exists() and stream.getvalue() == ""
    assert len(_db_rows(index.path())["runs"]) == 8

    def broken(**kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(index, "sync", broken)
    runner._update_index(stream)
    assert stream.getvalue() == ("softgrad run: the index was not updated (OperationalError: disk I/O error); the run "
                                 "is stored\n")


def _newest_by_sorting(df, machine=None):
    """newest_per_entry as it was written first: sort the frame on (timed, run), keep each point's last row."""
    if df.empty:
        return df
    machine = machine if machine is not None else df.sort_values("run")["machine"].iloc[-1]
    df = df[df["machine"] == machine]
    ordered = df.assign(_timed=df["time_s"].notna()).sort_values(["_timed", "run"], kind="stable")
    return ordered.drop_duplicates(list(results.ENTRY_POINT), keep="last").drop(columns="_timed").sort_index()


@pytest.mark.parametrize("seed", range(4))
def test_newest_per_entry_picks_the_rows_sorting_picks(home, monkeypatch, seed):
    """The newest measurement of each point (choose's answer) without sorting the whole frame: the same rows,
    in the same order, as sorting it, on frames shuffled, with repeated labels, untimed rows, NaN keys and two
    machines."""
    df = _folders(monkeypatch)
    rng = np.random.default_rng(seed)
    mixed = df.sample(frac=1, random_state=seed)
    mixed = pd.concat([mixed, mixed.iloc[:40].assign(time_s=np.nan), mixed.iloc[40:90]])
    mixed.iloc[rng.integers(0, len(mixed), 30), mixed.columns.get_loc("x_layout")] = np.nan
    for frame in (df, mixed):
        for machine in (None, "vm", "gpu-box", "nowhere"):
            pd.testing.assert_frame_equal(results.newest_per_entry(frame, machine), _newest_by_sorting(frame, machine))


def test_choose_reads_the_newest_runs_alone_and_answers_as_from_every_run(home, monkeypatch):
    """``results.load(newest=True)`` (what ``choose`` reads: per machine and set of points measured, the newest
    run) gives each entry's newest measurement of every point as the whole history does, and ``choose`` the
    same answers, on a store where a machine's newest runs measured fewer shapes than older ones, a newer run
    timed fewer points, a class is unresolved and a run took its checks from an earlier one."""
    _write(home, _run(7, shapes=("1x8", "256x8")))  # vm: the older runs hold the newest of 1x16 and 256x16
    _write(home, _run(8, shapes=("1x8",)))
    untimed = _run(10, shapes=("1x8",))  # run 8's points, numpy's timed in none: run 8 holds its newest timing
    timing = untimed[(_rid(10), "asv.json")]["results"]
    timing["bench_ops.Impl_numpy.time_op"] = helpers.asv_time_op([None] * 4, timing["bench_ops.Impl_numpy.time_op"][1])
    _write(home, untimed)
    _write(home, _run(9, machine="gpu-box", impls=("numpy",), shapes=("256x16",)))
    full, newest = results.load(), results.load(newest=True)
    assert set(newest["run"]) == {_rid(k) for k in (1, 5, 6, 7, 8, 9, 10)} < set(full["run"])
    assert newest.attrs == full.attrs
    for machine in ("vm", "gpu-box"):
        _same(results.newest_per_entry(newest, machine).reset_index(drop=True),
              results.newest_per_entry(full, machine).reset_index(drop=True))
    # the store catches a read of each machine's newest run alone: it answers otherwise
    last = full[full["run"].isin([_rid(10), _rid(9)])]
    assert len(results.newest_per_entry(last, "vm")) < len(results.newest_per_entry(full, "vm"))
    requests = [(op, shape.split("x")[1], shape.split("x")[0], dtype) for op in OPS for shape in SHAPES
                for dtype in DTYPES]
    for op, n, batch, dtype in [*requests, ("vjp", "8", "1", "bfloat16"), ("jacobian", "8", "1", "float32")]:
        argv = ["choose", "--op", op, "--n", n, "--batch", batch, "--dtype", dtype, "--json"]
        got = _answer(*_cli(home, *argv))
        monkeypatch.setattr(results, "load", lambda newest=False, load=results.load: load())  # every run
        assert got == _answer(*_cli(home, *argv)), argv
        monkeypatch.undo()
        monkeypatch.setenv("SOFTGRAD_HOME", str(home))


def _answer(rc: int, out: str, err: str) -> tuple:
    """``choose --json``'s exit status, answer (less the ages, which grow between two calls) and stderr."""
    def ageless(value):
        if isinstance(value, dict):
            return {k: ageless(v) for k, v in value.items() if not k.endswith("age_s")}
        return [ageless(v) for v in value] if isinstance(value, list) else value

    return rc, ageless(json.loads(out)), err


def test_the_report_shows_the_verdicts_a_no_check_run_took_from_its_machine(home, tmp_path_factory):
    """The report's correctness verdicts for a ``--no-check`` latest run are those of the run the loaded frame
    took them from (``checks_from``: the newest earlier run of its machine, commit and versions), not a newer
    run of another machine with checks, nor none."""
    pytest.importorskip("matplotlib")
    _write(home, _run(7, machine="gpu-box", failing=("fake-impl",)))  # newer, with checks, another machine
    _write(home, _run(8, checks=False))  # vm, --no-check: run 6's verdicts (numpy alone)
    out = tmp_path_factory.mktemp("report")
    rc, stdout, err = _cli(home, "report", "--out", str(out))
    assert rc == 0, err
    md = (out / "report.md").read_text()
    assert f"run {_rid(8)}" in md.splitlines()[0]
    verdicts = md.split("## Correctness verdicts\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in verdicts.splitlines() if line.startswith("|") and "---" not in line][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["numpy"], verdicts
