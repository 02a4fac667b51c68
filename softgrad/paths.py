"""Where generated artifacts go: one config, never mixed with source.

Everything lives under the project root's ``results/`` (git-ignored) except the report, which goes
to ``reports/`` (one example report is kept in git; ``reports/latest/`` is ignored). The root is the
current directory unless ``SOFTGRAD_HOME`` names another.
"""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    """The project root that holds ``results/`` and ``reports/``."""
    return Path(os.environ.get("SOFTGRAD_HOME", ".")).resolve()


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
