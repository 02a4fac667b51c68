"""asv's machine for a run, described from the run's own ``meta.json``, never from ``~/.asv-machine.json``.

asv keeps each machine's results in ``results/asv/<machine>/`` beside that machine's ``machine.json`` (its
layout for several machines: the dashboard then offers a machine selector). softgrad names the machine
(:func:`softgrad.history.provenance.machine_name`: a fingerprint's hash, or ``$SOFTGRAD_MACHINE``) and writes
that file itself (:func:`write_machine`) from what the run stored (:func:`describe`). asv's own commands that
need a machine (the benchmark discovery) run as ``python -m softgrad.bench.asv_machine FILE ASV-ARGS...`` with
``--machine NAME``: asv reads the machine from ``FILE`` (:func:`write_collection`, the format of
``~/.asv-machine.json``), so the user's own machine file is neither read nor written.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import children
from ..stored import write_json

#: asv's machine fields (``asv machine``), all str, as machine.json and every results file's params hold them
FIELDS = ("machine", "os", "arch", "cpu", "num_cpu", "ram")
#: the api version of asv's machine files
API_VERSION = 1


def describe(meta: Mapping[str, Any]) -> dict[str, str]:
    """asv's description of a run's machine (:data:`FIELDS`) from its ``meta.json``: its name, OS,
    architecture, CPU model (with its GPUs' models, where it has any), cores and memory in bytes."""
    gpus = [g.get("model") for g in (meta.get("fingerprint") or {}).get("gpus") or [] if isinstance(g, dict)]
    cpu = str(meta.get("cpu") or "")
    if gpus:
        cpu += f" + {', '.join(str(g) for g in gpus)}"
    memory = meta.get("memory_gib")
    return {
        "machine": str(meta["machine"]),
        "os": str(meta.get("os") or ""),
        "arch": str(meta.get("arch") or ""),
        "cpu": cpu,
        "num_cpu": str(meta.get("cores") or ""),
        "ram": str(round(memory * 2**30)) if isinstance(memory, (int, float)) else "",
    }


def write_machine(results_dir: Path, machine: Mapping[str, str]) -> Path:
    """asv's ``<results_dir>/<machine>/machine.json`` for ``machine`` (:func:`describe`); returns it."""
    path = Path(results_dir) / machine["machine"] / "machine.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**{k: machine[k] for k in FIELDS}, "version": API_VERSION})
    return path


def write_collection(path: Path, machine: Mapping[str, str]) -> Path:
    """A machine file in the format of ``~/.asv-machine.json`` holding ``machine`` alone; returns it."""
    write_json(path, {machine["machine"]: {k: machine[k] for k in FIELDS}, "version": API_VERSION})
    return path


def command(machine_file: Path, *asv_args: str) -> list[str]:
    """The command line running ``asv ASV_ARGS...`` with ``machine_file`` as its machine file."""
    return children.python("-m", __name__, str(machine_file), *asv_args)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m softgrad.bench.asv_machine FILE ASV-ARGS...``: asv's command line, reading its machines
    from ``FILE`` instead of ``~/.asv-machine.json``."""
    from asv import machine
    from asv.main import main as asv_main

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.exit("usage: python -m softgrad.bench.asv_machine MACHINE_FILE ASV-ARGS...")
    path = str(Path(args.pop(0)).resolve())
    machine.MachineCollection.get_machine_file_path = staticmethod(lambda: path)
    sys.argv = ["asv", *args]
    asv_main()


if __name__ == "__main__":
    main()
