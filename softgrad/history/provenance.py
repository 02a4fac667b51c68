"""What a run was measured on: machine, commit, library versions, threads. Nothing here imports a framework."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from ..bench import threads
from ..bench.cpu_caches import CPU_CACHE_SYSFS, data_cache_bytes

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


def machine() -> dict[str, object]:
    return {
        "machine": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "llc_bytes": last_level_cache_bytes(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
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
