"""softgrad's run history on disk: one folder per run, written atomically, never rewritten.

``results/runs/<run id>/`` holds ``meta.json`` (machine, commit, versions, threads, copy bandwidth, grid,
whether the run completed), ``checks.json`` (the correctness records) and ``asv.json`` (a copy of asv's
results for the run's commit, taken when the run ends). asv itself keeps one results file per machine x
commit x environment, so two runs of one commit would leave one point there; this history keeps both.

Every file is written to a temporary name and renamed into place, so an interrupted run never leaves a
half-written file; a file that is not valid JSON or not softgrad's gets :class:`StoreError` naming it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from . import paths

FORMAT = "softgrad-run/1"


class StoreError(Exception):
    """A stored file is corrupt or foreign; the message names it."""


def runs_dir() -> Path:
    return paths.results_dir() / "runs"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """Parse a JSON file; :class:`StoreError` with the file's name when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot be read ({exc.strerror})") from None


def new_run_id(commit: str | None) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{(commit or 'nocommit')[:8]}"


class Run:
    """One stored run (a folder under :func:`runs_dir`)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def meta_path(self) -> Path:
        return self.folder / "meta.json"

    def meta(self) -> dict[str, Any]:
        meta = read_json(self.meta_path)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise StoreError(f"{self.meta_path}: not a softgrad run (expected format {FORMAT!r})")
        return meta

    def update_meta(self, **fields: Any) -> dict[str, Any]:
        meta = self.meta() if self.meta_path.exists() else {"format": FORMAT, "id": self.id}
        meta.update(fields)
        write_json(self.meta_path, meta)
        return meta

    @property
    def complete(self) -> bool:
        """Whether the run finished; a corrupt or foreign ``meta.json`` raises :class:`StoreError`."""
        return bool(self.meta().get("complete"))

    def checks(self) -> list[dict[str, Any]]:
        path = self.folder / "checks.json"
        if not path.exists():
            return []
        data = read_json(path)
        if not isinstance(data, list) or any(not isinstance(r, dict) or "impl" not in r for r in data):
            raise StoreError(f"{path}: not a list of softgrad check records")
        return data

    def asv(self) -> dict[str, Any] | None:
        path = self.folder / "asv.json"
        if not path.exists():
            return None
        data = read_json(path)
        if not isinstance(data, dict) or "results" not in data or "params" not in data:
            raise StoreError(f"{path}: not an asv results file")
        return data


def create_run(commit: str | None) -> Run:
    run = Run(runs_dir() / new_run_id(commit))
    run.folder.mkdir(parents=True, exist_ok=False)
    return run


def all_runs() -> list[Run]:
    """Every stored run, oldest first (run ids sort by time)."""
    if not runs_dir().is_dir():
        return []
    return [Run(p) for p in sorted(runs_dir().iterdir()) if p.is_dir() and not p.name.startswith(".")]


def complete_runs() -> list[Run]:
    """Runs that finished, oldest first; a corrupt or foreign ``meta.json`` raises :class:`StoreError`."""
    return [r for r in all_runs() if r.meta_path.exists() and r.meta().get("complete")]


def latest_incomplete() -> Run | None:
    runs = [r for r in all_runs() if r.meta_path.exists() and not r.complete]
    return runs[-1] if runs else None
