"""Several machines in one history (issue 23, item 3): each run keyed by a machine fingerprint and a name made
from it, asv's layout for several machines, and ``choose``, ``compare``, ``history`` and ``report`` answering
for this machine by default, for another with ``--machine NAME``, for each with ``--machine all``, the other
machines' answers shown beside; the gate never judges one machine's runs against another's.

The stores are synthetic (test_history_gate's nightly runs of numpy and ``fake-impl``): machine ``vm`` (this
machine: ``SOFTGRAD_MACHINE=vm``), where numpy runs at half its usual time, and ``gpu-box``, where it runs 3x
slower (so ``fake-impl`` wins there), interleaved night by night.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pandas")

from softgrad.bench import asv_machine  # noqa: E402
from softgrad.history import machines, provenance  # noqa: E402
from test_history_changes import _run_id  # noqa: E402
from test_history_gate import COUNT, _lines, _store  # noqa: E402
from test_stored_files import _errors, _softgrad  # noqa: E402

CHOOSE = ["choose", "--op", "vjp", "--n", "16", "--batch", "256", "--dtype", "float32"]
NIGHTS = 6


@pytest.fixture
def here(monkeypatch):
    """This machine is ``vm``."""
    monkeypatch.setenv(provenance.MACHINE_ENV, "vm")


def _two(home, vm=None, gpu=None, nights: int = NIGHTS) -> None:
    """``nights`` nights on vm (numpy at 1x, or ``vm``'s factors) and on gpu-box (numpy 3x slower, or ``gpu``'s),
    gpu-box's run of each night stored after vm's (ids: the same date, commit bbbbbbbb after aaaaaaaa)."""
    _store(home, vm or [0.5] * nights, machine="vm")
    _store(home, gpu or [3.0] * nights, machine="gpu-box")


# --- the fingerprint and the name -----------------------------------------------------------------------------


def _fake_machine(monkeypatch, **fields):
    """provenance's readers of the hardware replaced: a 2-core Xeon with 23.5 GiB and no GPU, or ``fields``."""
    value = {"cpu": "Intel(R) Xeon(R) Processor", "caches": {1: 48 << 10, 2: 2 << 20, 3: 260 << 20},
             "memory": 23.5, "gpus": [], "release": "6.1.0", "node": "vm", **fields}
    monkeypatch.setattr(provenance, "cpu_model", lambda: value["cpu"])
    monkeypatch.setattr(provenance, "data_cache_bytes", lambda *a: dict(value["caches"]))
    monkeypatch.setattr(provenance, "memory_gib", lambda: value["memory"])
    monkeypatch.setattr(provenance, "gpus", lambda *a: [dict(g) for g in value["gpus"]])
    monkeypatch.setattr(provenance.platform, "release", lambda: value["release"])
    monkeypatch.setattr(provenance.platform, "node", lambda: value["node"])
    monkeypatch.setattr(provenance.os, "cpu_count", lambda: 2)
    monkeypatch.delenv(provenance.MACHINE_ENV, raising=False)
    return provenance.machine_name()


H100 = {"model": "NVIDIA H100 80GB HBM3", "driver": "550.54.15"}


def test_the_name_is_the_host_and_a_hash_of_the_hardware_stable_across_calls(monkeypatch):
    name = _fake_machine(monkeypatch)
    assert name == provenance.machine_name() == provenance.machine()["machine"]
    assert name.startswith("vm-") and len(name) == len("vm-") + 6
    assert provenance.fingerprint() == provenance.fingerprint()
    meta = provenance.machine()
    assert meta["hostname"] == "vm"
    assert meta["fingerprint"]["caches"] == {"L1": 48 << 10, "L2": 2 << 20, "L3": 260 << 20}


@pytest.mark.parametrize("field", [{"cpu": "AMD EPYC 7763 64-Core Processor"}, {"caches": {1: 32 << 10, 2: 1 << 20}},
                                   {"memory": 7.8}, {"gpus": [H100]}, {"node": "gpu-box"}])
def test_another_cpu_cache_memory_gpu_or_host_is_another_machine(monkeypatch, field):
    assert _fake_machine(monkeypatch, **field) != _fake_machine(monkeypatch)


@pytest.mark.parametrize("field", [{"release": "6.8.0-45"}, {"gpus": [{**H100, "driver": "555.42.02"}]},
                                   {"memory": 23.1}])
def test_a_kernel_or_driver_update_or_a_few_reserved_pages_keep_the_name(monkeypatch, field):
    base = {"gpus": [H100]} if "gpus" in field else {}
    before, fp_before = _fake_machine(monkeypatch, **base), provenance.fingerprint()
    assert _fake_machine(monkeypatch, **field) == before
    assert provenance.fingerprint() != fp_before, "the fingerprint stored with the run still records it"


def test_softgrad_machine_names_the_machine_and_a_bad_name_is_one_line(monkeypatch, tmp_path):
    _fake_machine(monkeypatch)
    monkeypatch.setenv(provenance.MACHINE_ENV, "ci-ubuntu")
    assert provenance.machine_name() == provenance.machine()["machine"] == "ci-ubuntu"
    for bad in ("all", "../x", "a b", "", "x" * 65):
        monkeypatch.setenv(provenance.MACHINE_ENV, bad)
        if bad:
            with pytest.raises(provenance.MachineNameError, match="cannot name a machine"):
                provenance.machine_name()
    monkeypatch.setenv(provenance.MACHINE_ENV, "../x")
    _two(tmp_path)
    rc, out, err = _softgrad(tmp_path, *CHOOSE)
    assert rc == 2 and not out and len(err.splitlines()) == 1 and "SOFTGRAD_MACHINE='../x' cannot name" in err


def test_gpus_are_read_from_the_nvidia_driver_and_none_is_an_empty_list(tmp_path, monkeypatch):
    proc = tmp_path / "nvidia"
    for bus, model in (("0000:41:00.0", "NVIDIA H100 80GB HBM3"), ("0000:01:00.0", "NVIDIA A100-SXM4-40GB")):
        (proc / "gpus" / bus).mkdir(parents=True)
        (proc / "gpus" / bus / "information").write_text(f"Model: \t\t {model}\nIRQ:   42\n")
    (proc / "version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:00 "
                                  "UTC 2024\nGCC version:  gcc version 12.2.0\n")
    assert provenance.gpus(proc) == [{"model": "NVIDIA A100-SXM4-40GB", "driver": "550.54.15"},
                                     {"model": "NVIDIA H100 80GB HBM3", "driver": "550.54.15"}]
    monkeypatch.setattr(provenance.shutil, "which", lambda name: None)
    assert provenance.gpus(tmp_path / "absent") == []


# --- asv's layout for several machines -------------------------------------------------------------------------


def test_two_machines_runs_write_two_asv_machine_folders_asv_reads(tmp_path, monkeypatch):
    from asv.machine import MachineCollection, iter_machine_files
    from asv.util import load_json

    results = tmp_path / "asv"
    for name, gpus in (("vm-1a2b3c", []), ("gpu-box", [H100])):
        meta = {"machine": name, "cpu": "Xeon", "cores": 2, "memory_gib": 23.5, "os": "Linux 6.1", "arch": "x86_64",
                "fingerprint": {"gpus": gpus}}
        asv_machine.write_machine(results, asv_machine.describe(meta))
    found = {load_json(p, api_version=1)["machine"]: load_json(p, api_version=1) for p in iter_machine_files(results)}
    assert sorted(found) == ["gpu-box", "vm-1a2b3c"]
    assert found["gpu-box"]["cpu"] == "Xeon + NVIDIA H100 80GB HBM3" and found["vm-1a2b3c"]["ram"] == str(47 << 29)
    assert (results / "gpu-box" / "machine.json").is_file() and (results / "vm-1a2b3c" / "machine.json").is_file()
    # asv's discovery reads its machine from a file of softgrad's, never from ~/.asv-machine.json
    machine = asv_machine.describe({"machine": "gpu-box", "cores": 2})
    path = asv_machine.write_collection(tmp_path / "asv-machine.json", machine)
    assert MachineCollection.load("gpu-box", _path=str(path)) == machine
    cmd = asv_machine.command(path, "run", "--machine", "gpu-box")
    assert cmd[-5:] == ["softgrad.bench.asv_machine", str(path), "run", "--machine", "gpu-box"]


def test_the_runner_names_the_asv_machine_from_the_run_not_from_the_users_file(tmp_path, monkeypatch):
    """discover and write_asv take the run's machine: discovery runs with --machine and softgrad's machine file."""
    from softgrad.bench import sweep

    seen = []

    class Done:
        returncode, stdout, stderr = 0, "", ""

    monkeypatch.setattr(sweep.subprocess, "run", lambda cmd, **kw: seen.append(cmd) or Done())
    machine = asv_machine.describe({"machine": "gpu-box", "cores": 8, "memory_gib": 64})
    sweep.discover(tmp_path / "asv.conf.json", "a" * 40, machine)
    (cmd,) = seen
    assert "softgrad.bench.asv_machine" in cmd and cmd[cmd.index("--machine") + 1] == "gpu-box"
    assert json.loads((tmp_path / "asv-machine.json").read_text())["gpu-box"]["num_cpu"] == "8"


# --- one rule for every command ------------------------------------------------------------------------------------


def test_select_this_machine_another_all_and_an_unknown_one():
    known = ["gpu-box", "vm"]  # the newest run's first
    assert machines.select(known, None, "vm") == machines.Selection(("vm",), ("gpu-box",))
    assert machines.select(known, "gpu-box", "vm") == machines.Selection(("gpu-box",), ("vm",))
    assert machines.select(known, "all", "vm").machines == ("vm", "gpu-box")
    with pytest.raises(machines.UnknownMachine, match=r"no stored run of machine 'laptop': the history holds "
                                                      r"'gpu-box', 'vm' \(--machine NAME\|all\)"):
        machines.select(known, "laptop", "vm")
    fallback = machines.select(known, None, "laptop")  # a history copied from elsewhere: the newest run's, said so
    assert fallback.machines == ("gpu-box",) and "no stored run of this machine (laptop)" in fallback.note
    assert machines.select(["vm"], None, "laptop") == machines.Selection(("vm",)), "the only machine there is"


@pytest.mark.parametrize("command", [["compare"], ["gate"], ["history"], ["report"], CHOOSE])
def test_every_machine_of_an_empty_history_fails_with_the_reason(tmp_path, here, command):
    """--machine all over no run is nothing to answer: one line and a non-zero exit, never an empty pass."""
    rc, out, err = _softgrad(tmp_path, *command, "--machine", "all")
    (line,) = _errors(err)
    assert rc == 2 and not out and line.endswith("error: --machine all: the history holds no run of any machine")


def test_choose_answers_for_this_machine_and_shows_the_other_beside(tmp_path, here):
    _two(tmp_path)
    rc, out, err = _softgrad(tmp_path, *CHOOSE)
    assert rc == 0 and not _errors(err), err
    assert out.startswith("numpy: ") and "faster than fake-impl" in out
    (beside,) = [line.strip() for line in out.splitlines() if line.strip().startswith("on ")]
    assert beside.startswith(f"on gpu-box: fake-impl, ") and f"(run {_run_id(NIGHTS - 1, 'bbbbbbbb')})" in beside
    rc, out, _ = _softgrad(tmp_path, *CHOOSE, "--machine", "gpu-box")
    assert rc == 0 and out.startswith("fake-impl: ") and "  on vm: numpy, " in out
    rc, out, _ = _softgrad(tmp_path, *CHOOSE, "--machine", "all")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 2 and lines[0].startswith("on vm: numpy, ") and lines[1].startswith(
        "on gpu-box: fake-impl, "), out
    rc, out, _ = _softgrad(tmp_path, *CHOOSE, "--json")
    data = json.loads(out)
    assert data["machine"] == "vm" and data["impl"] == "numpy"
    assert [(o["machine"], o["impl"]) for o in data["other_machines"]] == [("gpu-box", "fake-impl")]


@pytest.mark.parametrize("command", [CHOOSE, ["compare"], ["history"], ["gate"], ["report"]])
def test_an_unknown_machine_is_one_line_naming_the_known_ones(tmp_path, here, command):
    _two(tmp_path, nights=2)
    rc, out, err = _softgrad(tmp_path, *command, "--machine", "laptop")
    (line,) = _errors(err)
    assert rc == 2 and not out and "no stored run of machine 'laptop': the history holds 'gpu-box', 'vm'" in line


def test_compare_compares_this_machines_newest_two_and_the_other_beside(tmp_path, here):
    _two(tmp_path, vm=[1.0] * 5 + [1.5], gpu=[3.0] * 6)
    rc, out, err = _softgrad(tmp_path, "compare", "--min-delta", "0")
    assert rc == 1, out + err
    assert out.startswith(f"compared {COUNT * 2} benchmarks: {_run_id(4)} -> {_run_id(5)}")
    assert len(_lines(out, "SLOWER")) == COUNT  # vm's numpy, 1.5x
    beside = out.splitlines()[-1]
    assert beside.startswith(f"on gpu-box: {_run_id(4, 'bbbbbbbb')} -> {_run_id(5, 'bbbbbbbb')}: ")
    assert ", 0 slower, 0 correctness regressions" in beside
    rc, out, _ = _softgrad(tmp_path, "compare", "--min-delta", "0", "--machine", "gpu-box")
    assert rc == 0 and f"{_run_id(4, 'bbbbbbbb')} -> {_run_id(5, 'bbbbbbbb')}" in out.splitlines()[0]
    assert f"on vm: {_run_id(4)} -> {_run_id(5)}: {COUNT * 2} benchmarks compared, {COUNT} slower" in out
    rc, out, _ = _softgrad(tmp_path, "compare", "--min-delta", "0", "--machine", "all")
    assert rc == 1 and _lines(out, "machine ") == ["machine vm:", "machine gpu-box:"], out


def test_history_lists_this_machines_changes_and_counts_the_others(tmp_path, here):
    _two(tmp_path, vm=[1.0] * 8, gpu=[3.0] * 4 + [4.5] * 4, nights=8)
    rc, out, err = _softgrad(tmp_path, "history")
    assert rc == 0 and not _errors(err), err
    head, beside = out.splitlines()
    assert head == "softgrad history: 8 runs on machine vm, threshold 10%: no change points"
    assert beside == (f"on gpu-box: 8 runs, the newest {_run_id(7, 'bbbbbbbb')} (`softgrad history --machine "
                      f"gpu-box` lists its change points)")
    rc, out, _ = _softgrad(tmp_path, "history", "--machine", "gpu-box")
    assert rc == 0 and out.startswith(f"softgrad history: 8 runs on machine gpu-box, threshold 10%: {COUNT} change")
    assert f"{_run_id(4, 'bbbbbbbb')}  numpy " in out and out.splitlines()[-1].startswith("on vm: 8 runs, the newest")
    rc, out, _ = _softgrad(tmp_path, "history", "--machine", "all", "--json")
    assert [(h["machine"], len(h["changes"])) for h in json.loads(out)["machines"]] == [("vm", 0), ("gpu-box", COUNT)]


def test_the_gate_judges_one_machine_a_slower_one_neither_triggers_nor_hides_a_step(tmp_path, here):
    # gpu-box ran numpy 1.3x slower every night: read with vm's runs it would be a step at every other run
    _two(tmp_path, vm=[1.0] * 10, gpu=[1.3] * 10, nights=10)
    _store(tmp_path, [1.0], machine="vm", first=10)  # the newest run is vm's
    rc, out, err = _softgrad(tmp_path, "gate", "--min-delta", "0")
    assert rc == 0 and "against 10 earlier runs on machine vm" in out and not _lines(out, "SLOWER"), out + err
    # vm's own step to gpu-box's level: mixed with gpu-box's runs it would be no step at all
    _store(tmp_path, [1.3, 1.3], machine="vm", first=11)
    rc, out, err = _softgrad(tmp_path, "gate", "--min-delta", "0")
    assert rc == 1 and len(_lines(out, "SLOWER")) == COUNT and "against 12 earlier runs on machine vm" in out, out


def test_the_gate_judges_this_machines_newest_run_when_another_machines_is_newer(tmp_path, here, monkeypatch):
    """gpu-box stored the newest night (a step up on it): the gate still judges vm's newest run by default, with
    gpu-box's verdict beside; --machine gpu-box judges that one; --confirm never reruns here for another machine."""
    from softgrad.bench import confirm

    _two(tmp_path, vm=[1.0] * 8, gpu=[3.0] * 5 + [4.5] * 3, nights=8)
    rc, out, err = _softgrad(tmp_path, "gate", "--min-delta", "0")
    assert rc == 0 and f"run {_run_id(7)} " in out and "against 7 earlier runs on machine vm" in out, out + err
    beside = out.splitlines()[-1]
    assert beside.startswith(f"on gpu-box: run {_run_id(7, 'bbbbbbbb')}: {COUNT} slower, 0 correctness") and \
        "`softgrad gate --machine gpu-box` lists them" in beside, out
    rc, out, _ = _softgrad(tmp_path, "gate", "--min-delta", "0", "--machine", "gpu-box")
    assert rc == 1 and len(_lines(out, "SLOWER")) == COUNT and "on machine gpu-box" in out, out
    rc, out, _ = _softgrad(tmp_path, "gate", "--min-delta", "0", "--machine", "all")
    assert rc == 1 and _lines(out, "machine ") == ["machine vm:", "machine gpu-box:"], out
    monkeypatch.setattr(confirm, "rerun", lambda *a, **k: pytest.fail("reran another machine's benchmarks here"))
    rc, out, err = _softgrad(tmp_path, "gate", "--min-delta", "0", "--machine", "gpu-box", "--confirm")
    assert rc == 1 and len(_lines(out, "SLOWER")) == COUNT, out + err
    assert "--confirm reruns on this machine (vm): run " in err and "is of machine gpu-box, its findings stand" in err


def test_report_answers_for_this_machine_with_the_others_beside_and_all_writes_each(tmp_path, here):
    _two(tmp_path, nights=2)
    rc, out, err = _softgrad(tmp_path, "report", "--out", str(tmp_path / "r"))
    assert rc == 0 and not _errors(err), err
    md = (tmp_path / "r" / "report.md").read_text()
    assert "from the latest complete run on machine vm." in md and "| other machines |" in md
    assert "gpu-box: fake-impl" in md and _run_id(1) in md and _run_id(1, "bbbbbbbb") not in md
    rc, out, err = _softgrad(tmp_path, "report", "--out", str(tmp_path / "all"), "--machine", "all")
    assert rc == 0 and len(out.splitlines()) == 2, out + err
    for m in ("vm", "gpu-box"):
        assert f"on machine {m}." in (tmp_path / "all" / m / "report.md").read_text()


def test_a_gpu_driver_update_is_named_as_what_changed_and_runs_before_fingerprints_compare_none():
    from softgrad.history import changes

    before = {"machine": "gpu-box", "fingerprint": {"gpus": [H100]}}
    after = {"machine": "gpu-box", "fingerprint": {"gpus": [{**H100, "driver": "555.42.02"}]}}
    (diff,) = changes.differences(before, after)
    assert diff.text() == ("machine gpus NVIDIA H100 80GB HBM3 (driver 550.54.15) -> NVIDIA H100 80GB HBM3 "
                           "(driver 555.42.02)")
    assert changes.differences({"machine": "gpu-box"}, after) == (), "a run stored before fingerprints: unknown"


def test_the_index_keeps_each_runs_machine_and_fingerprint_and_old_runs_still_read(tmp_path, monkeypatch):
    import sqlite3

    from softgrad.history import index, results

    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    fp = {"cpu": "Xeon", "cores": 2, "gpus": [H100]}
    _store(tmp_path, [1.0], machine="vm")  # stored before fingerprints: the host name, no fingerprint
    _store(tmp_path, [1.0], machine="gpu-box", metas={1: {"fingerprint": fp, "hostname": "gpu-box"}}, first=1)
    index.sync(create=True)
    con = sqlite3.connect(index.path())
    rows = dict(con.execute("SELECT machine, machine_fingerprint FROM runs").fetchall())
    con.close()
    assert rows == {"vm": None, "gpu-box": json.dumps(fp, sort_keys=True)}
    assert set(results.load()["machine"]) == {"vm", "gpu-box"}
