"""Where generated artifacts go: one config, never mixed with source.

Everything lives under the project root's ``results/`` (git-ignored) except the report, which goes
to ``reports/`` (one example report is kept in git; ``reports/latest/`` is ignored). The root is the
current directory unless ``SOFTGRAD_HOME`` names another (a leading ``~`` is the user's home).
"""

from __future__ import annotations

import os
from pathlib import Path


HOME_ENV = "SOFTGRAD_HOME"


class PathError(Exception):
    """A folder softgrad needs is unusable; the message names it and why, in one line."""


def root() -> Path:
    """The project root that holds ``results/`` and ``reports/``; :class:`PathError` when ``SOFTGRAD_HOME``
    names something that is not a folder."""
    raw = os.environ.get(HOME_ENV, ".")
    try:
        path = Path(raw or ".").expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise PathError(f"{HOME_ENV}={raw!r} is not a usable path ({exc})") from None
    if path.exists() and not path.is_dir():
        raise PathError(f"{HOME_ENV}={raw} is not a folder")
    return path


def user_path(text: str) -> str:
    """A path the user typed, with a leading ``~`` or ``~user`` made that user's home folder (a shell leaves
    ``--out=~/x`` and a quoted ``'~'`` as they are): the argparse type of every path-taking flag."""
    return os.path.expanduser(text)


def require_writable(folder: Path) -> Path:
    """Create ``folder`` if needed and check that files can be written in it; :class:`PathError` otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathError(f"cannot create {folder}: {exc.strerror or exc}") from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise PathError(f"{folder} is not a writable folder")
    return folder


def results_dir() -> Path:
    return root() / "results"


def asv_results_dir() -> Path:
    """asv's ``results_dir``: one JSON per machine x commit x environment."""
    return results_dir() / "asv"


def asv_html_dir() -> Path:
    """asv's ``html_dir``: the published dashboard (open ``index.html``)."""
    return results_dir() / "html"


def checks_dir() -> Path:
    """Correctness records: one JSON file per ``softgrad check --save`` / ``softgrad run``."""
    return results_dir() / "checks"


def reports_dir() -> Path:
    """Where ``softgrad report`` writes by default."""
    return root() / "reports" / "latest"


def cache_dir() -> Path:
    """Caches that only save time (the checker's XLA compilation cache); safe to delete."""
    return results_dir() / "cache"


def repo_root() -> Path:
    """The checkout holding ``asv.conf.json`` and ``benchmarks/``: the project root, else softgrad's source."""
    for candidate in (root(), Path(__file__).resolve().parent.parent):
        if (candidate / "asv.conf.json").is_file() and (candidate / "benchmarks").is_dir():
            return candidate
    raise PathError("asv.conf.json and benchmarks/ not found: run from the softgrad checkout "
                    "(or set SOFTGRAD_HOME to it)")
