"""One family's benchmarks in one process: ``python -m softgrad.bench.family_worker SPEC.json``.

The process imports its framework once, builds each entry once, and times every combination of
:func:`softgrad.bench.plan.combos` in ``rounds`` passes over the whole list, so a benchmark's samples are
spread over the family's run. The first pass sets each combination up as the asv classes do
(:func:`~softgrad.bench.asv_suite.setup_benchmark`: applicability, cost probe, the first call timed, a warm
call) and records the first call (JIT compile included), the error against the tolerance and the peak
memory where the combination tracks them; later passes prepare the same call again from the same seeded
inputs and make one untimed call; one that streams past a core's own cache is warmed for
:data:`VISIT_WARMUP_S` before the samples (the shared cache runs slowly for milliseconds after other work).
Each pass takes :func:`softgrad.bench.sampling.sample`'s blocks, with the machine's speed read before and
after them.

Every event is one JSON line (with its wall-clock time ``t``) appended and flushed to the spec's ``records``
file: ``start`` before a
combination is set up, then ``setup`` (first pass), ``samples``, ``skip`` (with asv's meaning: does not
apply) or ``failed``. A worker started on a records file that has lines already goes on after them, so the
parent (:mod:`softgrad.bench.sweep`) restarts a crashed or hung worker without losing what it measured.
"""

from __future__ import annotations

import collections
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .. import registry
from ..children import die_with_parent
from ..contract import DTYPE_INFO
from . import grid, plan, sampling, threads
from .allocator import release_free_memory
from .asv_suite import error_ratio, setup_benchmark
from .cpu_caches import core_cache_bytes
from .timer import inputs_at, prepare_at

#: the most one pass spends sampling one combination (a call of a second gets one block a pass)
MAX_ROUND_S = 0.25
#: later passes make one untimed call after preparing the call again, unless a call takes this long
WARMUP_BELOW_S = 0.05


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records a worker wrote to ``path`` (a last line cut short by a crash is left out)."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("key"), list) and len(rec["key"]) == 5:
            rec["key"] = tuple(str(k) for k in rec["key"])
            out.append(rec)
    return out


class _Writer:
    def __init__(self, path: Path):
        self.f = open(path, "a", encoding="utf-8")

    def __call__(self, kind: str, key: tuple, **fields: Any) -> None:
        self.f.write(json.dumps({"kind": kind, "key": list(key), "t": round(time.time(), 3), **fields}) + "\n")
        self.f.flush()


#: the inputs a worker keeps made (bytes): the default grid's all (about 64 MiB), a workload's one shape
#: at a time (its combinations come shape by shape, and one vocabulary shape's x and g are 2 GiB)
INPUT_CACHE_BYTES = 1 << 30
_made: collections.OrderedDict[tuple[str, str], tuple[Any, Any]] = collections.OrderedDict()


def inputs(shape: str, dtype: str) -> tuple[Any, Any]:
    """The benchmark inputs of a shape, made once while they fit :data:`INPUT_CACHE_BYTES` (every entry and
    op of the family reads the same ones; backends copy them into native arrays); read-only."""
    key = (shape, dtype)
    if key not in _made:
        x, g = inputs_at(shape, dtype)
        x.flags.writeable = g.flags.writeable = False
        _made[key] = (x, g)
    _made.move_to_end(key)
    while len(_made) > 1 and sum(x.nbytes + g.nbytes for x, g in _made.values()) > INPUT_CACHE_BYTES:
        _made.popitem(last=False)
    return _made[key]


#: a worker hands its free heap pages back to the OS after a shape whose inputs are this large
TRIM_ABOVE_BYTES = 64 << 20
#: a call that moves more bytes than a core's own cache holds (its L2; 1 MiB where unknown) is warmed for
#: VISIT_WARMUP_S before the samples of every pass after the first (the first has just calibrated it): on
#: the 2-core VMs a stream through the shared cache runs slowly for 10-20 ms after the machine idled or ran
#: cache-sized work (the uncore clocks down). NumPy multiplying 32 MiB in place: 2.58 ms a call in a loop;
#: after 80 ms idle and one warm call 4.46 ms, after 5 ms of calls 3.53, 10 ms 3.00, 20 ms 2.62; 8 MiB:
#: 0.60 ms in a loop, 0.75 after one warm call; 128 MiB (past the cache): no difference. jax-jacfwd's
#: Jacobian at 1x2048 float64 (32 MiB) had stored 6.8 ms against 2.8 ms in a continuous reading; the
#: warm-ups cost the full sweep at most 10 s
VISIT_WARMUP_S = 0.02


def _input_bytes(shape: str, dtype: str) -> int:
    rows, n = grid.parse_shape(shape)
    return 2 * rows * n * DTYPE_INFO[dtype].itemsize


def _moved_bytes(combo: plan.Combo) -> int:
    """Bytes one call moves, its cotangent counted in full (an upper bound for a broadcast one)."""
    rows, n = grid.parse_shape(combo.shape)
    return grid.bytes_moved(combo.op, rows, n, DTYPE_INFO[combo.dtype].itemsize)


def run(spec: dict[str, Any]) -> int:
    threads.apply()
    registry.load_env_plugins()
    impls = [registry.get(name) for name in spec["impls"]]
    select = {tuple(k) for k in spec["select"]} if spec.get("select") is not None else None
    sweep_grid = grid.resolve(spec["grid"])  # once: its workload is looked up by name
    todo = plan.combos(impls, sweep_grid, select)
    records_path = Path(spec["records"])
    previous = read_records(records_path)
    ended = {r["key"] for r in previous if r["kind"] in ("skip", "failed")} | {tuple(k) for k in spec.get("skip", [])}
    passes: dict[tuple, set[int]] = {}
    numbers: dict[tuple, int] = {}
    warm_s: dict[tuple, float] = {}  # a warm call's time, from the first pass
    for r in previous:
        if r["kind"] == "samples":
            passes.setdefault(r["key"], set()).add(int(r["round"]))
        elif r["kind"] == "setup":
            numbers[r["key"]] = int(r["number"])
        if r["kind"] == "samples" and r.get("samples"):
            warm_s[r["key"]] = min(float(v) for v in r["samples"])
    emit = _Writer(records_path)
    last_shape, trimmed = None, False
    core_cache = core_cache_bytes()
    for rnd in range(int(spec["rounds"])):
        for combo in todo:
            key = combo.key
            if key in ended or rnd in passes.get(key, ()):
                continue
            if rnd > 0 and "time_op" not in combo.kinds:
                continue
            if (combo.shape, combo.dtype) != last_shape:
                # between shapes only: the previous shape's freed memory goes back to the OS when it was
                # large (the default grid's shapes are not), and the next call maps what it needs afresh
                trimmed = last_shape is not None and _input_bytes(*last_shape) >= TRIM_ABOVE_BYTES \
                    and release_free_memory()
                if trimmed:
                    emit("released", ("", "", *last_shape, ""))
                last_shape = (combo.shape, combo.dtype)
            emit("start", key, round=rnd)
            try:
                if rnd == 0:
                    bench = setup_benchmark(registry.get(combo.impl), combo.op, combo.shape, combo.dtype,
                                            combo.device, sweep_grid, inputs(combo.shape, combo.dtype))
                    call = bench.call
                else:  # the checks and the first call were the first pass's; prepare the same call again
                    call = prepare_at(registry.get(combo.impl), combo.op, combo.dtype, combo.device, combo.shape,
                                      *inputs(combo.shape, combo.dtype))
                    if warm_s.get(key, 0.0) < WARMUP_BELOW_S or trimmed:
                        call()  # untimed: a short call's caches, or the pages a trim gave back
                trimmed = False
            except NotImplementedError as exc:
                emit("skip", key, reason=str(exc))
                ended.add(key)
                continue
            except Exception as exc:  # the entry's failure fails its combination only
                emit("failed", key, error=f"{type(exc).__name__}: {exc}"[:500])
                ended.add(key)
                continue
            try:
                if key not in numbers:
                    warmup = sampling.WARMUP_S if registry.get(combo.impl).compiles else 0.0
                    numbers[key] = sampling.calibrate(call, warmup_s=warmup) if "time_op" in combo.kinds else 1
                    emit("setup", key, number=numbers[key],
                         first_call_s=bench.first_call_s if "track_first_call_s" in combo.kinds else None,
                         error_ratio=(error_ratio(combo.op, combo.dtype, bench.x, bench.g, bench.out)
                                      if "track_error_ratio" in combo.kinds else None),
                         peakmem_bytes=sampling.peak_rss_during(call) if "peakmem_op" in combo.kinds else None)
                before = sampling.machine_speed()
                if rnd > 0 and "time_op" in combo.kinds and warm_s.get(key, 0.0) < VISIT_WARMUP_S \
                        and _moved_bytes(combo) > core_cache:
                    sampling.warm(call, VISIT_WARMUP_S)  # right before the samples
                samples = (sampling.sample(call, numbers[key], max_s=MAX_ROUND_S)
                           if "time_op" in combo.kinds else [])
                speed = (before + sampling.machine_speed()) / 2  # the machine's speed around the samples
                if samples:
                    warm_s[key] = min(samples)
                emit("samples", key, round=rnd, number=numbers[key], samples=samples, speed_s=speed)
            except Exception as exc:
                emit("failed", key, error=f"{type(exc).__name__}: {exc}"[:500])
                ended.add(key)
            finally:
                bench = call = None  # freed here by reference counting (a gc.collect() per combination
                # cost about 0.1 s in a process holding JAX or Numba: most of a family's time)
    emit("done", ("", "", "", "", ""))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m softgrad.bench.family_worker SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    die_with_parent(int(spec["parent"]))
    try:
        return run(spec)
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
