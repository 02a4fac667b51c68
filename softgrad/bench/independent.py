"""The timers people already trust, around softgrad's own prepared call: ``python -m softgrad.bench.independent SPEC``.

For an entry of the torch backend, ``torch.utils.benchmark.Timer(..., num_threads=torch.get_num_threads())``
and its ``blocked_autorange`` (the thread count torch runs with, not the Timer's default of one); for every
other entry ``timeit.Timer``: the number of calls that lasts :data:`MIN_RUN_S` (doubling, as ``autorange``
does with its 1-2-5 steps) and :data:`REPEATS` repeats of it. Each point is timed :data:`PAIRS` times, each
time right after softgrad's own block sampler read it in the same process for :data:`BESIDE_S` (same
call, same machine state: the method alone differs), with the machine's speed read around each pair
(:func:`softgrad.bench.sampling.machine_speed`). The call is
:func:`softgrad.bench.asv_suite.setup_benchmark`'s: the same inputs, the device wait inside. One JSON line
per point on the spec's ``out`` file; this process times one family and nothing else.
"""

from __future__ import annotations

import json
import sys
import timeit
from pathlib import Path
from typing import Any

from .. import registry
from ..children import die_with_parent
from . import sampling, threads
from .asv_suite import setup_benchmark
from .family_worker import MAX_ROUND_S

#: repeats of ``timeit``'s ranged number of calls (the median per call is taken), as ``python -m timeit``
REPEATS = 5
#: readings of each timer per point, alternating (softgrad's sampler first, as in the sweep): three, so one
#: reading in a slow (or fast) second of the shared machine cannot move the median of the pairs' ratios
PAIRS = 3
#: ``blocked_autorange``'s ``min_run_time``, and the least duration of one ``timeit`` repeat
MIN_RUN_S = 0.05
#: how long softgrad's block sampler reads a point beside the trusted timer (which reads it for 0.3 s or
#: more): short readings are noisy on these machines (jax-jacfwd's VJP at 256x16, quiet machine, 7 ms
#: readings: 73 to 113 us; 45 ms readings beside timeit in a run: 1.12x, which timeit's own 0.3 s readings
#: in a quiet process put at 78-80 us against softgrad's 78-81)
BESIDE_S = 0.15


def time_call(call: Any, backend: str) -> float:
    """Median seconds per call of ``call`` by the trusted timer for ``backend``."""
    if backend == "torch":
        import torch
        from torch.utils import benchmark

        timer = benchmark.Timer(stmt="call()", globals={"call": call}, num_threads=torch.get_num_threads())
        return float(timer.blocked_autorange(min_run_time=MIN_RUN_S).median)
    timer = timeit.Timer(call)
    number = 1
    while timer.timeit(number) < MIN_RUN_S:
        number *= 2
    return sampling.median([t / number for t in timer.repeat(repeat=REPEATS, number=number)])


def run(spec: dict[str, Any]) -> int:
    threads.apply()
    registry.load_env_plugins()
    with open(spec["out"], "a", encoding="utf-8") as out:
        for key in spec["keys"]:
            impl_name, op, shape, dtype, device = key
            impl = registry.get(impl_name)
            try:
                bench = setup_benchmark(impl, op, shape, dtype, device, spec["grid"])
                number = sampling.calibrate(bench.call, warmup_s=sampling.WARMUP_S if impl.compiles else 0.0)
                speeds, mine, theirs = [sampling.machine_speed()], [], []
                for _ in range(PAIRS):
                    blocks = sampling.sample(bench.call, number, round_s=BESIDE_S, max_s=max(BESIDE_S, MAX_ROUND_S))
                    mine.append(sampling.median(blocks))
                    theirs.append(time_call(bench.call, impl.backend))
                    speeds.append(sampling.machine_speed())
                rec = {"key": key, "independent_s": theirs, "softgrad_here_s": mine, "speed_s": sum(speeds) / len(speeds)}
            except Exception as exc:  # NotImplementedError included: the point is reported, not timed
                rec = {"key": key, "error": f"{type(exc).__name__}: {exc}"[:300]}
            out.write(json.dumps(rec) + "\n")
            out.flush()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m softgrad.bench.independent SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    die_with_parent(int(spec["parent"]))
    return run(spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
