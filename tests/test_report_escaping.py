"""Stored text cannot rewrite the report: whatever a stored run holds as an entry's name, an error message,
a workload's name and description, a library version, a commit or a machine's name, ``report.md`` keeps
every table's shape and softgrad's own headings, and neither ``report.md`` nor ``index.html`` gets a raw
``<script``. A report that cannot be written (nothing stored) leaves the home as it was, and ``--out ~``
means the user's home folder, not a folder named ``~``.

The store is synthetic (one complete run of numpy and an entry named after the text, in asv's format), so
nothing here runs asv or a framework.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

import helpers  # noqa: E402
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from softgrad.bench import grid  # noqa: E402
from softgrad.cli import main  # noqa: E402
from softgrad.history import report  # noqa: E402

RUN = "20260101T000000000000Z-aaaaaaaa"
OPS = ("softmax", "vjp")
SHAPES = ("1x64", "1x128", "1x256", "1x1024")
DTYPES = ("float32",)
HARMLESS = "plain"
#: what a plugin's error message (or a hand-edited file) may hold
HOSTILE = ("cell|break\n\n## INJECTED\n<script>alert(1)</script>", "a\\|b", "`x|y`", "# head", "- item",
           "[link](javascript:alert(1))", "&lt;script&gt;", "<SCRIPT src=x>", "$x^$", "a\r\n# b\x0b# c\u2028# d",
           "|", "\\", "line\n---\n", "1. one", "> quote", "```\n# fenced\n```",
           "\x00", "\x00# b\x00")  # NUL alone: pandas' str dtype compares it unequal to itself (CI, 12-05)


def _write_store(home: Path, text: str) -> None:
    """One complete run under ``home`` with ``text`` in every stored string the report shows: an entry named
    after it (which runs 2x numpy's speed, while the machine ran slow), its check message, an agreement point's
    key and error, the workload's name and description, the machine, cpu, commit, a library version and the
    copy method."""
    impl = "x" + text.replace(" ", "_")  # speed.json's keys are "impl op shape dtype device"
    params = helpers.asv_params(OPS, SHAPES, DTYPES, ("cpu",))
    count = len(OPS) * len(SHAPES) * len(DTYPES)
    asv, speed = {}, {}
    for name, factor in (("numpy", 1.0), (impl, 0.5)):
        cls = grid.class_name(name)
        asv[f"bench_ops.{cls}.time_op"] = helpers.asv_time_op([factor * 1e-5 * (1 + k) for k in range(count)],
                                                              params)
        asv[f"bench_ops.{cls}.track_error_ratio"] = helpers.asv_track([0.01] * count, params)
        for op in OPS:
            for shape in SHAPES:
                speed[f"{name} {op} {shape} float32 cpu"] = {"norm": 1.0, "norm_q25": 0.9, "norm_q75": 1.1,
                                                             "speed_s": 9e-5 if name == impl else 3e-5}
    workload = json.dumps({"table": {"name": "w" + text, "description": text}, "origin": text})
    meta = helpers.run_meta(RUN, ["numpy", impl], ["numpy", "x"], machine=text, cpu=text, commit=text,
                            workload=workload, versions={"numpy": "2.4.6", "torch": text, text: "1.0"},
                            copy_bandwidth={"gbps": 25.0, "method": text, "buffer_bytes": 1 << 28, "repeats": 5})
    checks = helpers.check_records(["numpy", impl], OPS, DTYPES)
    checks[-1] = {**checks[-1], "message": text}
    point = {"softgrad_s": 2e-5, "independent_s": [2e-5], "softgrad_here_s": [2e-5], "ratio": 1.0,
             "stored_ratio": 1.0, "spread": 0.05, "bound": 0.1, "held": True, "agrees": True}
    agreement = {"format": "softgrad-agreement/1", "bound": 0.1,
                 "points": [{**point, "key": f"{impl} vjp 1x64 float32 cpu", "error": text}, {**point, "key": text}]}
    speed_file = {"format": "softgrad-speed/1", "reference": text, "benchmarks": speed}
    helpers.write_run_files(home, {(RUN, "meta.json"): meta, (RUN, "checks.json"): checks,
                                   (RUN, "asv.json"): helpers.asv_file(asv), (RUN, "speed.json"): speed_file,
                                   (RUN, "agreement.json"): agreement})


@contextlib.contextmanager
def _at(home: Path, cwd: Path | None = None):
    """SOFTGRAD_HOME=home (and the working folder ``cwd``) for the block; a module-scoped fixture uses it too."""
    before = os.environ.get("SOFTGRAD_HOME"), Path.cwd()
    os.environ["SOFTGRAD_HOME"] = str(home)
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before[1])
        if before[0] is None:
            del os.environ["SOFTGRAD_HOME"]
        else:
            os.environ["SOFTGRAD_HOME"] = before[0]


def _report(home: Path, text: str) -> tuple[str, str]:
    """The store of ``text`` under ``home``, reported: (report.md, index.html)."""
    _write_store(home, text)
    with _at(home):
        index = report.write_report(home / "report")
    return (home / "report" / "report.md").read_text(), index.read_text()


def _cells(line: str) -> list[str]:
    """A markdown table row's cells as GFM splits them: at every pipe not escaped by a backslash."""
    cells, cell, escaped = [], "", False
    for ch in line.strip():
        if escaped:
            cell, escaped = cell + ch, False
        elif ch == "\\":
            cell, escaped = cell + ch, True
        elif ch == "|":
            cells.append(cell)
            cell = ""
        else:
            cell += ch
    cells.append(cell)
    return cells[1:-1]  # the row's leading and trailing pipes


def _tables(md: str) -> list[list[str]]:
    """Each markdown table's lines (a run of lines starting with a pipe)."""
    tables: list[list[str]] = []
    previous = False
    for line in md.split("\n"):
        row = line.startswith("|")
        if row and not previous:
            tables.append([])
        if row:
            tables[-1].append(line)
        previous = row
    return tables


def _headings(md: str) -> list[str]:
    return [line for line in md.split("\n") if line.lstrip().startswith("#")]


@pytest.fixture(scope="module")
def harmless(tmp_path_factory) -> tuple[str, str]:
    return _report(tmp_path_factory.mktemp("harmless"), HARMLESS)


def _assert_inert(md: str, page: str, harmless: tuple[str, str]) -> None:
    tables = _tables(md)
    assert len(tables) == len(_tables(harmless[0])), md
    for table in tables:
        width = len(_cells(table[0]))
        assert set(table[1].replace("|", "")) == {"-"}, table  # the header's delimiter row follows it
        for line in table:
            assert len(_cells(line)) == width, (line, table[0])
    assert _headings(md) == _headings(harmless[0])
    for line in md.splitlines():  # every character Python splits lines at is gone from stored text
        assert not line.lstrip().startswith("#") or line in _headings(harmless[0]), line
    assert "<script" not in md.lower()
    assert page.lower().count("<script") == harmless[1].lower().count("<script") == 1  # the report's own


@pytest.fixture
def unsaved_figures(monkeypatch):
    """Figures laid out and saved as nothing (the drawing is most of a report's time;
    :func:`test_stored_text_is_drawn_as_written` draws them): the report still lists each figure with its
    caption."""
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "tight_layout", lambda self, *a, **k: None)
    monkeypatch.setattr(Figure, "savefig", lambda self, path, *a, **k: Path(path).write_bytes(b""))


@pytest.mark.parametrize("text", HOSTILE)
def test_stored_text_cannot_rewrite_the_report(tmp_path, harmless, unsaved_figures, text):
    md, page = _report(tmp_path, text)
    _assert_inert(md, page, harmless)


def test_stored_text_is_drawn_as_written(tmp_path, harmless):
    """In the plots' labels and legends too: ``$x^$`` is a name, not a formula matplotlib fails to parse."""
    md, page = _report(tmp_path, "$x^$ cell|break\n## INJECTED\n<script>alert(1)</script>")
    _assert_inert(md, page, harmless)
    assert all((tmp_path / "report" / png).stat().st_size > 1000 for png in ("errors.png", "history.png"))


#: any text a run could store where a name goes: markdown and HTML syntax, line and paragraph separators, any
#: character; or bits of a script tag and a heading repeated
ANY_TEXT = (st.text(alphabet=st.sampled_from("ab #-|\\`*_[]()<>&!$^~=.1\n\r\t\x0b\x0c\x1c\x85\u2028\u2029")
                    | st.characters(codec="utf-8"), max_size=40)
            | st.sampled_from(["<script>", "</script><script>", "# ", "\n# ", "|", "\\", "`"]).flatmap(
                lambda bit: st.lists(st.sampled_from([bit, "a", " ", "\n", "<", "script"]), max_size=8).map("".join)))
REPORT_PER_EXAMPLE = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])


@pytest.mark.slow  # a report a draw, about a second each: the fast suite has the hostile texts above
@settings(max_examples=100, **REPORT_PER_EXAMPLE)
@given(text=ANY_TEXT)
@example(text="cell|break\n\n## INJECTED\n<script>alert(1)</script>")
def test_any_stored_text_leaves_the_reports_structure(tmp_path_factory, harmless, unsaved_figures, text):
    """A hundred draws, with the slow tests (the fast suite took ten, 13 s of make test's time: each of
    :data:`HOSTILE` is a report of its own there)."""
    md, page = _report(tmp_path_factory.mktemp("any"), text)
    _assert_inert(md, page, harmless)


def test_markdown_cells_are_escaped_in_one_place():
    df = pd.DataFrame([{"a|b": "x|y\n# z", "c": "<script>&", "d": "\\|"}])
    md = report._md_table(df)
    head, rule, row = md.strip().split("\n")
    assert len(_cells(head)) == len(_cells(row)) == 3 and rule == "|---|---|---|"
    assert "<" not in row and "&lt;script&gt;&amp;" in row


def _tree(folder: Path) -> dict[str, int | None]:
    """Every path under ``folder`` with its size (None for a folder)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.stat().st_size) for p in folder.rglob("*")}


def _softgrad(home: Path, *argv: str, cwd: Path | None = None) -> int:
    """``softgrad ARGV`` in this process, at ``home`` (and in ``cwd``): its exit status."""
    with _at(home, cwd):
        return main(list(argv))


@pytest.mark.parametrize("argv", [(), ("--out", "out"), ("--out", "~/out")])
def test_a_report_of_nothing_leaves_the_home_as_it_was(tmp_path, monkeypatch, capsys, argv):
    home = tmp_path / "home"
    home.mkdir()
    (home / "results").mkdir()  # a home that was used, but holds no complete run
    (home / "results" / "runs").mkdir()
    monkeypatch.setenv("HOME", str(home))
    before = _tree(home)
    assert _softgrad(home, "report", *argv, cwd=home) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no complete run stored yet: run `softgrad run --quick` first" in err[0], err
    assert _tree(home) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _softgrad(empty, "report", *argv, cwd=empty) == 2
    assert _tree(empty) == {}


def test_out_and_json_expand_the_users_home(tmp_path, monkeypatch, capsys):
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("HOME", str(user))
    _write_store(tmp_path, HARMLESS)
    assert _softgrad(tmp_path, "report", "--out", "~/made", cwd=tmp_path) == 0
    assert (user / "made" / "report.md").is_file() and not (tmp_path / "~").exists()
    from softgrad.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["check", "--json", "~/c.json"]).json == str(user / "c.json")
    assert parser.parse_args(["run", "--plugin", "~/p.py"]).plugin == [str(user / "p.py")]
    assert parser.parse_args(["report", "--out", "~"]).out == str(user)
    from softgrad import paths

    monkeypatch.setenv("SOFTGRAD_HOME", "~/h")
    assert paths.root() == user / "h"


def test_an_unwritable_out_is_named_once_there_is_a_run_to_report(tmp_path, capsys):
    """With nothing stored the answer is "run first" (above); with a run stored, a folder that cannot be made is
    named in one line."""
    _write_store(tmp_path, HARMLESS)
    before = _tree(tmp_path)
    assert _softgrad(tmp_path, "report", "--out", "/proc/no-such-folder", cwd=tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write the report to /proc/no-such-folder" in err[0], err
    assert _tree(tmp_path) == before
