"""What a run was measured on: machine, commit, library versions, threads. Nothing here imports a framework.

**The machine.** Every run stores a :func:`fingerprint` of the machine in ``meta.json`` (``fingerprint``): CPU
model, cores, data caches by level, memory, GPU models and drivers (from ``/proc/driver/nvidia``, else
``nvidia-smi``; never torch: importing it to name a machine would cost seconds, and an answer that depended on
whether it was imported would not be stable), OS and architecture. Its **name** (``meta.json``'s ``machine``,
the folder of its asv results, what ``--machine`` takes) is :func:`machine_name`: ``$SOFTGRAD_MACHINE`` where
set (a CI leg whose host name changes every night sets it), else ``<hostname>-<6 hex digits>``, the digits a
hash of the fingerprint's hardware (:data:`IDENTITY`: CPU model, cores, last-level cache, memory in steps of
a factor sqrt(2), architecture, OS family, GPU models), so two machines that share a host name ("vm") but not
their hardware get two names, while a kernel or driver update (stored, and named by ``softgrad history`` as
what changed) keeps the name. Runs stored before fingerprints (name: the host name, no ``fingerprint``) read
as before, under that name; ``SOFTGRAD_MACHINE=<that name>`` continues their history on this machine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from ..bench import threads
from ..bench.cpu_caches import CPU_CACHE_SYSFS, data_cache_bytes

#: the environment variable that names this machine (default: :func:`machine_name`'s own)
MACHINE_ENV = "SOFTGRAD_MACHINE"
#: the fingerprint's fields that make the name's hash: the hardware (software changes keep the name)
IDENTITY = ("cpu", "cores", "llc_bytes", "memory_gib", "arch", "system", "gpus")
#: what a machine name may hold (it names a folder of asv's results): letters, digits, ``.``, ``_``, ``-``
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
#: names that mean something else on the command line
RESERVED = ("all",)
#: where the NVIDIA kernel driver describes itself and its GPUs (no process started)
NVIDIA_PROC = Path("/proc/driver/nvidia")
#: seconds ``nvidia-smi`` may take before the GPUs count as unknown
NVIDIA_SMI_TIMEOUT_S = 10.0


class MachineNameError(ValueError):
    """``$SOFTGRAD_MACHINE`` (or a name given) cannot name a machine; the message is one line."""

#: Libraries whose versions are stored with every run (a regression can come from an upgrade).
TRACKED = ("numpy", "numba", "llvmlite", "torch", "jax", "jaxlib", "asv", "pandas", "softgrad")


def versions() -> dict[str, str]:
    """Installed versions of the tracked libraries ("" when not installed)."""
    out = {}
    for name in TRACKED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def last_level_cache_bytes(sysfs: Path = CPU_CACHE_SYSFS) -> int | None:
    """Size of the largest CPU cache (Linux sysfs), or None where it cannot be read.

    Data that fits in it stays there between repeated calls, so a timing of such a size measures the
    cache, not memory: the report and the roofline mark those points.
    """
    return max(data_cache_bytes(sysfs).values(), default=None)


def git_commit(repo: Path) -> str | None:
    """The checked-out commit of ``repo``, or None when it is not a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def git_dirty(repo: Path) -> bool:
    try:
        out = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return bool(out.stdout.strip())


def gpus(proc: Path = NVIDIA_PROC) -> list[dict[str, str]]:
    """The NVIDIA GPUs as the driver lists them, each ``{"model", "driver"}`` (``/proc/driver/nvidia``, else
    ``nvidia-smi``), in bus order; empty where there is none or neither says (never raises)."""
    try:
        version = (proc / "version").read_text()
        driver = re.search(r"Kernel Module(?: for \S+)?\s+(\d[\w.]*)", version)
        found = []
        for info in sorted((proc / "gpus").glob("*/information")):
            model = re.search(r"^Model:\s*(.+)$", info.read_text(), re.M)
            if model:
                found.append({"model": model.group(1).strip(), "driver": driver.group(1) if driver else ""})
        if found:
            return found
    except OSError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=pci.bus_id,name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    rows = sorted(line.split(",") for line in out.stdout.splitlines() if line.count(",") == 2)
    return [{"model": name.strip(), "driver": version.strip()} for _, name, version in rows]


def fingerprint() -> dict[str, Any]:
    """What this machine is (see the module docstring): CPU model, cores, data caches by level (bytes),
    last-level cache, memory (GiB), GPUs (model, driver), OS (system and release) and architecture."""
    caches = data_cache_bytes()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "caches": {f"L{level}": size for level, size in sorted(caches.items())},
        "llc_bytes": max(caches.values(), default=None),
        "memory_gib": memory_gib(),
        "gpus": gpus(),
        "system": platform.system(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
    }


def fingerprint_key(fp: dict[str, Any]) -> str:
    """Six hex digits of a hash of ``fp``'s hardware (:data:`IDENTITY`; GPU models without their drivers;
    memory as the nearest half step of log2 GiB, so what a kernel reserves (a percent or two) moves no
    machine of 2^k or 1.5 x 2^k GiB across a step): the same for the same hardware, whatever the software."""
    ident = {k: fp.get(k) for k in IDENTITY}
    memory = ident["memory_gib"]
    ident["memory_gib"] = (round(2 * math.log2(memory)) / 2 if isinstance(memory, (int, float)) and memory > 0
                           and math.isfinite(memory) else None)
    ident["gpus"] = [g.get("model") for g in fp.get("gpus") or [] if isinstance(g, dict)]
    text = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def check_name(name: str, what: str = MACHINE_ENV) -> str:
    """``name`` if it can name a machine (:data:`NAME`, not one of :data:`RESERVED`), else
    :class:`MachineNameError`."""
    if not NAME.fullmatch(name) or name.lower() in RESERVED:
        shown = repr(name) if len(name) <= 40 else f"{name[:12]!r}... ({len(name)} characters)"
        raise MachineNameError(f"{what}={shown} cannot name a machine: 1 to 64 letters, digits, '.', '_' or '-', "
                               f"not starting with '.' or '-', and not {', '.join(RESERVED)}")
    return name


def host_name() -> str:
    """This machine's host name as a name part: characters outside :data:`NAME` as ``-``, at most 40."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", platform.node()).strip(".-")[:40]
    return host or "machine"


def machine_name(fp: dict[str, Any] | None = None) -> str:
    """This machine's name: ``$SOFTGRAD_MACHINE`` where set, else ``<hostname>-<fingerprint_key>``;
    :class:`MachineNameError` for a ``$SOFTGRAD_MACHINE`` that cannot name one."""
    given = os.environ.get(MACHINE_ENV, "").strip()
    if given:
        return check_name(given)
    return f"{host_name()}-{fingerprint_key(fp if fp is not None else fingerprint())}"


def machine() -> dict[str, object]:
    """What a run stores about its machine: its name, host name, fingerprint, and (as before fingerprints,
    which the readers and ``softgrad history``'s differences use) cpu, cores, memory, cache, os, arch."""
    fp = fingerprint()
    return {
        "machine": machine_name(fp),
        "hostname": platform.node(),
        "fingerprint": fp,
        "cpu": fp["cpu"],
        "cores": fp["cores"],
        "memory_gib": fp["memory_gib"],
        "llc_bytes": fp["llc_bytes"],
        "os": fp["os"],
        "arch": fp["arch"],
        "python": platform.python_version(),
    }


def snapshot(repo: Path) -> dict[str, object]:
    """Everything stored with a run about where and on what it ran."""
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(repo),
        "dirty": git_dirty(repo),
        "versions": versions(),
        "threads": threads.in_use(),
        **machine(),
    }


def machine_load() -> dict[str, float]:
    """The machine's load now: the 1-minute load average and the processes running (``/proc/stat``, this
    one included); empty where neither is readable."""
    out: dict[str, float] = {}
    try:
        out["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("procs_running"):
                    out["procs_running"] = int(line.split()[1])
    except OSError:
        pass
    return out
