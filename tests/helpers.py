"""Test helpers shared by several test files: a fake clock for timing logic (the fast suite reads no wall
clock it would have to trust under load)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class FakeClock:
    """Stands in for the ``time`` module of the code under test (``monkeypatch.setattr(module, "time",
    clock)``): ``perf_counter`` and ``monotonic`` read a clock that moves only when the test says so
    (:meth:`advance`, or a call made by :meth:`taking`), in whole nanoseconds, so a timing rule gives the
    same answer on an idle machine and on one whose cores are all busy."""

    def __init__(self) -> None:
        self.ns = 0

    def perf_counter(self) -> float:
        return self.ns / 1e9

    monotonic = perf_counter

    def advance(self, seconds: float) -> None:
        self.ns += round(seconds * 1e9)

    sleep = advance

    def taking(self, *seconds: float, then: float | None = None, log: list | None = None) -> Callable[[], Any]:
        """A call whose k-th run takes ``seconds[k]`` (then ``then``, default the last of ``seconds``),
        appending each run's duration to ``log``."""
        durations = list(seconds)
        rest = durations[-1] if then is None else then

        def call() -> None:
            took = durations.pop(0) if durations else rest
            if log is not None:
                log.append(took)
            self.advance(took)

        return call


# --- a synthetic results store, in the formats softgrad and asv write -----------------------------------------

#: 2026-01-01T00:00:00Z in asv's milliseconds
ASV_DATE_MS = 1767225600000
#: the columns of an asv results entry (api version 2)
ASV_COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
               "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples", "profile"]
COMMIT = "aaaaaaaa" + "0" * 32


def run_meta(run_id: str, impls: list[str], families: list[str], **fields: Any) -> dict:
    """A complete run's ``meta.json`` as provenance.snapshot() and the runner store it; ``fields`` replace."""
    from softgrad.history import store

    return {
        "format": store.FORMAT, "id": run_id, "complete": True, "grid": "quick", "impls": list(impls), "rounds": 1,
        "plugins": [], "families_done": list(families), "date": "2026-01-01T00:00:00+00:00",
        "commit": COMMIT, "dirty": False,
        "versions": {"numpy": "2.4.6", "numba": "", "torch": "", "jax": "", "softgrad": "0.1.0"},
        "threads": {"cores": 2, "requested": None, "numpy_blas": 2, "numba": 2, "torch_intra_op": 2,
                    "xla": "default (all cores)"},
        "machine": "vm", "cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "memory_gib": 23.5,
        "llc_bytes": 32 << 20, "os": "Linux 6.1", "arch": "x86_64", "python": "3.11.7",
        "copy_bandwidth": {"gbps": 25.0, "method": "numpy copy (1 thread)", "buffer_bytes": 1 << 28, "repeats": 5},
        "build_s": {"numpy": None}, "seconds": 12.5, **fields,
    }


def check_records(impls, ops, dtypes, failing: tuple[str, ...] = ()) -> list[dict]:
    """One checker.Record per implementation, op and dtype (as Record.to_dict() writes it): a pass, or a
    failure for the implementations in ``failing``."""
    return [{"impl": impl, "family": impl.split("-")[0], "op": op, "dtype": dtype, "device": "cpu",
             "case": "random-normal", "shape": [4, 8], "verdict": "fail" if impl in failing else "pass",
             "failed": ["values"] if impl in failing else [], "max_abs_err": 1e-8, "max_rel_err": 1e-7,
             "max_ulp_err": 0.5, "ratio": 30.0 if impl in failing else 0.01, "tolerance": "u*G(n)*scale",
             "message": "values: off" if impl in failing else "", "seconds": 0.01}
            for impl in impls for op in ops for dtype in dtypes]


def asv_params(*values) -> list[list[str]]:
    """asv's params of a benchmark: each value as its repr."""
    return [[repr(v) for v in vs] for vs in values]


def asv_time_op(times: list, params: list[list[str]]) -> list:
    """A ``time_op`` results entry: the medians, their quartiles at 0.98x and 1.02x, the 99% interval at 0.9x
    and 1.1x (None where the median is None: a failure)."""
    stats = [[None if t is None else t * f for t in times] for f in (0.9, 1.1, 0.98, 1.02)]
    return [times, params, "abc", ASV_DATE_MS, 3.5, *stats, [100] * len(times), [5] * len(times)]


def asv_track(values: list, params: list[list[str]]) -> list:
    """A ``track_*`` results entry."""
    return [values, params, "def", ASV_DATE_MS, 0.5]


def asv_file(results: dict[str, list]) -> dict:
    """asv's results file (api version 2) holding ``results``."""
    return {"commit_hash": COMMIT, "env_name": "existing-py", "date": ASV_DATE_MS,
            "params": {"machine": "vm", "python": "3.11", "numpy": "2.4.6", "threads": "default"},
            "python": "3.11", "requirements": {}, "env_vars": {}, "result_columns": ASV_COLUMNS, "results": results,
            "durations": {}, "version": 2}


def write_run_files(home, files: dict) -> None:
    """``files`` maps (run id, file name) to the data to store as JSON under ``home``'s results, to the text
    or bytes to write instead, or to None to leave the file out."""
    import json
    from pathlib import Path

    for (rid, name), data in files.items():
        path = Path(home) / "results" / "runs" / rid / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            continue
        text = data if isinstance(data, (str, bytes)) else json.dumps(data)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
