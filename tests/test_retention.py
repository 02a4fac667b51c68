"""What the history keeps per night (:mod:`softgrad.history.retention`): a pruned run answers every reader as
it did (the frames choose, compare, the report and history read, the commands' output, the index); the newest
runs, other machines' runs and incomplete runs are left byte for byte; summaries are compressed only when
asked; a crash between writing ``NAME.gz`` and
removing ``NAME`` leaves readable data that the next prune finishes; pruning again does nothing.

The store is test_index's synthetic one (vm's complete runs 0, 2, 4, 5, 6; gpu-box's run 1; run 3 interrupted)
with the raw per-pass files a real run leaves beside its summaries.
"""

from __future__ import annotations

import gzip
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

from softgrad.cli import main  # noqa: E402
from softgrad.history import index, results, retention, store  # noqa: E402
from softgrad.stored import StoreError, read_json  # noqa: E402
from test_index import _folders, _rid, _same, _store_files, _write  # noqa: E402

RAW = {"sweep-numpy.jsonl": '{"impl": "numpy", "pass": 0}\n{"impl": "numpy", "pass": 1}\n',
       "sweep-numpy.spec.json": '{"impls": ["numpy"]}', "sweep-numpy.log": "",
       "independent-numpy.jsonl": '{"impl": "numpy"}\n', "independent-numpy.log": "a warning\n"}
PRUNED = (0, 2, 4)  # vm's complete runs older than its newest two
KEPT = (1, 3, 5, 6)  # gpu-box's only run, the interrupted one, vm's newest two


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    monkeypatch.delenv(index.ENV, raising=False)
    monkeypatch.setattr(index, "MIN_RUNS", 1)
    for files in _store_files():
        rid = next(iter(files))[0]
        _write(tmp_path, {**files, **{(rid, name): text for name, text in RAW.items()}})
    return tmp_path


def _folder(home: Path, k: int) -> Path:
    return home / "results" / "runs" / _rid(k)


def _snapshot(home: Path, ks) -> dict:
    return {(k, p.name): (p.read_bytes(), p.stat().st_mtime_ns) for k in ks for p in _folder(home, k).iterdir()}


def _cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue()


ANSWERS = (("choose", "--op", "vjp", "--n", "8", "--batch", "256", "--dtype", "float32"),
           ("choose", "--op", "softmax", "--n", "16", "--dtype", "float64"),
           ("compare",), ("history",))


def _answers(monkeypatch) -> dict:
    """What the readers give: the frames (from the folders, and through the index) and the commands' output."""
    out = {"load": _folders(monkeypatch), "checks": _folders(monkeypatch, results.load_checks),
           "indexed": results.load(), "indexed checks": results.load_checks()}
    for argv in ANSWERS:
        out[argv] = _cli(*argv)
    return out


def _same_answers(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], pd.DataFrame):
            _same(a[key], b[key])
        else:
            assert a[key] == b[key], key


def test_a_pruned_history_answers_as_before_and_the_index_equals_the_folders(home, monkeypatch):
    before = _answers(monkeypatch)
    kept = _snapshot(home, KEPT)
    done = retention.prune("vm", keep_raw=2, summaries=True)
    assert (done.runs, done.complete) == (3, 5) and done.after < done.before
    assert done.line().startswith("prune: compressed 19 files of 3 runs of vm older than the newest 2")
    for k in PRUNED:  # raw files and the summaries compressed, what else is read kept plain
        names = {p.name for p in _folder(home, k).iterdir()}
        assert {f"{n}.gz" for n in RAW} <= names and not set(RAW) & names, names
        assert "meta.json" in names and "checks.json" not in names and "asv.json" not in names
        for name, text in RAW.items():
            assert gzip.decompress((_folder(home, k) / f"{name}.gz").read_bytes()).decode() == text
    assert _snapshot(home, KEPT) == kept  # the newest, the other machine's and the interrupted run, untouched
    after = _answers(monkeypatch)
    _same_answers(before, after)
    _same(after["indexed"], after["load"])  # the index re-read the pruned runs: it equals the folders


def test_pruning_again_does_nothing(home):
    retention.prune("vm", keep_raw=2, summaries=True)
    everything = _snapshot(home, range(7))
    again = retention.prune("vm", keep_raw=2, summaries=True)
    assert again.files == 0 and again.line().startswith("prune: nothing to compress (5 complete run(s) of vm")
    assert _snapshot(home, range(7)) == everything


def test_a_crash_between_the_gz_and_the_removal_leaves_readable_data(home, monkeypatch):
    expected = _folders(monkeypatch)
    real_unlink = Path.unlink

    def crash(self, *args, **kwargs):
        if self.name == "checks.json":
            raise KeyboardInterrupt("killed")
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        retention.prune("vm", keep_raw=2, summaries=True)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    folder = _folder(home, 0)
    assert (folder / "checks.json").exists() and (folder / "checks.json.gz").exists()  # both, equal
    assert read_json(folder / "checks.json") == json.loads(gzip.decompress((folder / "checks.json.gz").read_bytes()))
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    _same(_folders(monkeypatch), expected)
    retention.prune("vm", keep_raw=2, summaries=True)  # the next prune finishes the job
    assert not (folder / "checks.json").exists()
    _same(_folders(monkeypatch), expected)
    _same(results.load(), expected)


def test_a_crash_while_writing_the_gz_leaves_the_original(home, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(retention.shutil, "copyfileobj", crash)
    with pytest.raises(OSError):
        retention.prune("vm", keep_raw=2, summaries=True)
    assert sorted(p.name for p in _folder(home, 0).iterdir()) == sorted(["meta.json", "checks.json", "asv.json",
                                                                          "speed.json", *RAW])


def test_a_damaged_gz_is_a_store_error_naming_it(home):
    retention.prune("vm", keep_raw=2, summaries=True)
    path = _folder(home, 0) / "checks.json.gz"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(StoreError, match="checks.json.gz: not a readable gzip file"):
        store.Run(_folder(home, 0)).checks()


def test_softgrad_prune_says_one_line_and_refuses_keeping_none(home, monkeypatch):
    monkeypatch.setattr("softgrad.history.provenance.machine", lambda: {"machine": "vm"})
    code, out = _cli("prune", "--keep-raw", "4")
    assert code == 0 and out.count("\n") == 1 and "5 files of 1 runs of vm older than the newest 4" in out
    assert (_folder(home, 0) / "sweep-numpy.jsonl.gz").exists() and (_folder(home, 0) / "asv.json").exists()
    code, out = _cli("prune", "--keep-raw", "4", "--summaries")
    assert code == 0 and "2 files of 1 runs" in out and (_folder(home, 0) / "asv.json.gz").exists()
    assert (_folder(home, 2) / "asv.json").exists() and (_folder(home, 2) / "sweep-numpy.jsonl").exists()
    with pytest.raises(ValueError):
        retention.prune("vm", keep_raw=0)


def test_the_runner_prunes_its_machine_s_old_runs_once_complete(home, monkeypatch):
    from softgrad import runner
    from softgrad.bench.progress import Progress

    monkeypatch.setattr(retention, "KEEP_RAW", 2)
    out = io.StringIO()
    runner._prune({"machine": "vm"}, Progress(True, out))
    assert out.getvalue().count("\n") == 1 and "15 files of 3 runs of vm" in out.getvalue()
    assert (_folder(home, 0) / "sweep-numpy.jsonl.gz").exists() and (_folder(home, 0) / "checks.json").exists()
    assert (_folder(home, 6) / "sweep-numpy.jsonl").exists()
    assert "_prune(meta, progress)" in Path(runner.__file__).read_text().split("complete=True", 1)[1]  # after completion
    again = io.StringIO()
    runner._prune({"machine": "vm"}, Progress(True, again))
    assert again.getvalue() == ""  # nothing left to compress: a run says nothing of it


def test_prune_with_no_complete_run_fails_with_the_reason(tmp_path, monkeypatch):
    """Nothing to do is no success: an empty home exits 1, saying there is no complete run."""
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["prune"])
    assert rc == 1 and out.getvalue() == "" and err.getvalue().startswith("prune: nothing to compress (0 complete run(s)")
