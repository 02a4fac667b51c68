"""The timers people already trust, around softgrad's own prepared call: ``python -m softgrad.bench.independent SPEC``.

For an entry of the torch backend, ``torch.utils.benchmark.Timer(..., num_threads=torch.get_num_threads())``
and its ``blocked_autorange`` (the thread count torch runs with, not the Timer's default of one); for every
other entry ``timeit.Timer``: the number of calls that lasts :data:`MIN_RUN_S` (doubling, as ``autorange``
does with its 1-2-5 steps) and repeats of it, the median per call taken (:func:`time_call`). In a run, each
point is read in :data:`SLICES` slices of about :data:`MIN_RUN_S` each, alternating: softgrad's own block
sampler, then one reading of the trusted timer (one ``timeit`` repeat, or one ``blocked_autorange``), and so
on (same call, same process, interleaved at a tenth of a second: the method alone differs, and a regime of
the machine or of the framework that lasts a second falls on both). The machine's speed is read before and
after (:func:`softgrad.bench.sampling.machine_speed`). The call is :func:`softgrad.bench.asv_suite.setup_benchmark`'s:
the same inputs, the device wait inside. One JSON line per point on the spec's ``out`` file; this process
times one family and nothing else.
"""

from __future__ import annotations

import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import registry
from ..children import die_with_parent
from . import grid, sampling, threads
from .asv_suite import setup_benchmark

#: repeats of ``timeit``'s ranged number of calls (the median per call is taken), as ``python -m timeit``
REPEATS = 5
#: ``blocked_autorange``'s ``min_run_time``, and the least duration of one ``timeit`` repeat
MIN_RUN_S = 0.05
#: readings of each timer per point, alternating (softgrad's sampler first, as in the sweep), each about
#: MIN_RUN_S long: both timers see the same seconds of the machine and of the framework (JAX's short calls
#: change regime for seconds: 1 ms blocks of jax-jit's softmax at 256x2 read 24 us, then 29 us), and a point
#: costs about 0.6 s of readings (three pairs of 0.15 s and 0.3 s readings cost 1.35 s)
SLICES = 6


class TrustedTimer:
    """The trusted timer for ``backend``, ranged once on ``call``; ``read()`` is one reading of it (seconds
    per call)."""

    read: Callable[[], float]

    def __init__(self, call: Any, backend: str) -> None:
        if backend == "torch":
            import torch
            from torch.utils import benchmark

            timer = benchmark.Timer(stmt="call()", globals={"call": call}, num_threads=torch.get_num_threads())
            self.read = lambda: float(timer.blocked_autorange(min_run_time=MIN_RUN_S).median)
            return
        plain = timeit.Timer(call)
        number = 1
        while plain.timeit(number) < MIN_RUN_S:
            number *= 2
        self.read = lambda: plain.timeit(number) / number


def time_call(call: Any, backend: str) -> float:
    """Median seconds per call of ``call`` by the trusted timer for ``backend``, used on its own: one
    ``blocked_autorange``, or the median of :data:`REPEATS` ``timeit`` repeats."""
    trusted = TrustedTimer(call, backend)
    return trusted.read() if backend == "torch" else sampling.median([trusted.read() for _ in range(REPEATS)])


def run(spec: dict[str, Any]) -> int:
    threads.apply()
    registry.load_env_plugins()
    timed_grid = grid.resolve(spec["grid"])  # once: its workload is looked up by name
    with open(spec["out"], "a", encoding="utf-8") as out:
        for key in spec["keys"]:
            impl_name, op, shape, dtype, device = key
            impl = registry.get(impl_name)
            try:
                bench = setup_benchmark(impl, op, shape, dtype, device, timed_grid)
                number = sampling.calibrate(bench.call, warmup_s=sampling.WARMUP_S if impl.compiles else 0.0)
                trusted = TrustedTimer(bench.call, impl.backend)
                speeds, mine, theirs = [sampling.machine_speed()], [], []
                for _ in range(SLICES):
                    blocks = sampling.sample(bench.call, number, min_blocks=1, round_s=MIN_RUN_S)
                    mine.append(sampling.median(blocks))
                    theirs.append(trusted.read())
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
