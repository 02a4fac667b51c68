"""Driving asv: its configuration, the results files' checks and library versions (the machine:
:mod:`softgrad.bench.asv_machine`),
publish, and the progress lines and cold build timing the sweep shares. Child Pythons run with a safe
``sys.path`` from an empty folder (:mod:`softgrad.children`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .. import children, paths, registry
from ..stored import StoreError, read_json, write_json


class RunError(Exception):
    """A run cannot start or continue; the message is one line for the user."""


def _branch(repo: Path) -> str | None:
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True)
    name = out.stdout.strip()
    return name if out.returncode == 0 and name and name != "HEAD" else None


def asv_config(repo: Path, folder: Path | None = None) -> Path:
    """Write the asv configuration for runs in the current environment (absolute paths) and return it;
    ``folder`` puts the configuration, results and HTML there instead (a scratch run)."""
    conf = {
        "version": 1,
        "project": "softgrad",
        "project_url": "",
        "repo": str(repo),
        "dvcs": "git",
        "environment_type": "virtualenv",
        "benchmark_dir": str(repo / "benchmarks"),
        "results_dir": str(folder / "asv" if folder else paths.asv_results_dir()),
        "html_dir": str(folder / "html" if folder else paths.asv_html_dir()),
        "env_dir": str(paths.results_dir() / "asv-env"),
        "show_commit_url": "",
    }
    branch = _branch(repo)
    if branch:
        conf["branches"] = [branch]
    path = (folder or paths.results_dir()) / "asv.conf.json"
    write_json(path, conf)
    return path


def validate_asv_results() -> None:
    """Every JSON file under asv's results folder must parse; a corrupt one is named in a :class:`RunError`."""
    root = paths.asv_results_dir()
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*.json")):
        try:
            data = read_json(path)
        except StoreError as exc:
            raise RunError(str(exc)) from None
        if not isinstance(data, dict) or "version" not in data:
            raise RunError(f"{path}: not an asv results file (no 'version' field)")
        for key in ("params", "requirements", "results", "durations"):  # what softgrad reads or stamps
            if path.name not in ("machine.json", "benchmarks.json") and not isinstance(data.get(key, {}), dict):
                raise RunError(f"{path}: not an asv results file ('{key}' is not an object)")


def _asv(*args: str) -> list[str]:
    return children.python("-m", "asv", *args)


def _run_python(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A short child Python, from a neutral folder with a safe ``sys.path`` (see :mod:`softgrad.children`)."""
    return subprocess.run(cmd, capture_output=True, text=True, check=False, env=children.python_env(env),
                          cwd=children.neutral_cwd())


def families(impls: list[registry.Implementation]) -> dict[str, list[registry.Implementation]]:
    """Available implementations grouped by family, in registry order."""
    out: dict[str, list[registry.Implementation]] = {}
    for impl in impls:
        if impl.available:
            out.setdefault(impl.family, []).append(impl)
    return out


def stamp_versions(path: Path, versions: dict[str, str], threads_info: dict) -> None:
    """Record library versions and thread counts in asv's results file (params show on the dashboard)."""
    data = read_json(path)
    for name, version in versions.items():
        if version and name != "softgrad":
            data.setdefault("params", {})[name] = version
            data.setdefault("requirements", {})[name] = version
    data.setdefault("params", {})["threads"] = str(threads_info.get("requested") or "default")
    write_json(path, data)


def measure_build(names: list[str]) -> dict[str, float | None]:
    """Cold build time of each entry (import and JIT compile), in a fresh process."""
    out = _run_python(children.python("-m", "softgrad.bench.buildtime", *names))
    try:
        times = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        times = None
    if not isinstance(times, dict):
        return {n: None for n in names}
    return {n: times[n] if isinstance(times.get(n), (int, float)) else None for n in names}




def publish(cfg: Path) -> Path:
    """``asv publish``: the dashboard's HTML under :func:`softgrad.paths.asv_html_dir`; its index.html."""
    out = _run_python(_asv("publish", "--config", str(cfg)))
    if out.returncode != 0:
        last = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RunError(f"asv publish failed: {last[0]}")
    return paths.asv_html_dir() / "index.html"


