"""How softgrad's sweep times one prepared call: blocks of calls long enough to read, many of them, spread out.

The method of ``torch.utils.benchmark.Timer.blocked_autorange`` and of ``timeit`` (the garbage collector paused
during a block, as both do): :func:`calibrate` picks the
number of calls per block so that one block takes at least :data:`BLOCK_S` (a clock read and the loop cost
nothing beside it); :func:`sample` times blocks until :data:`MIN_BLOCKS` are in and :data:`ROUND_S` has
passed, and returns the per-call time of each block. The sweep calls :func:`sample` once per round, rounds
being passes over a whole family (:mod:`softgrad.bench.family_worker`), so a benchmark's samples span the
family's run and one noisy second of a shared machine cannot make its median.

:func:`machine_speed` times a fixed pure-Python kernel; the sweep takes it before each benchmark's round.
On the shared 2-core machines the whole machine runs up to 1.6x slower for seconds at a time (a loop of 1000
float additions read 23 us, then 37 us, for seconds, with no steal time or load shown by the kernel), and the
kernel tracks it: the pure-Python VJP over it stayed within 15.0-17.2 while its own time went from 347 to
637 us, NumPy's softmax at 256x1024 within 12.1-14.5. The gate compares times divided by it.

:func:`peak_rss_during` measures the peak resident memory of this process during one call (Linux: the
high-water mark is reset through ``/proc/self/clear_refs`` first).
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

#: least duration of one timed block of calls. 5 ms, not 1: a call whose time is bimodal (JAX's short CPU calls:
#: jax-jit's softmax at 256x2 reads 14 us at p50 and 70 us at p90, the slow ones in bursts) reads low by the
#: median of 1 ms blocks against ``timeit``'s 50 ms repeats (jax-jacfwd's, six alternating readings each
#: in four fresh processes: 0.86-0.98x), and 0.94-1.06x with 5 ms blocks (its VJP at 256x16: 1.04-1.06x,
#: then 0.99-1.01x); the clock's resolution and the loop's overhead are far below 0.1% either way
BLOCK_S = 5e-3
#: blocks per round, at least
MIN_BLOCKS = 3
#: time spent sampling one benchmark per round, at least (a call longer than this is one block a sample);
#: with three rounds a benchmark gets 45 ms of timed calls (nine blocks) in 3 windows spread over its
#: family's run
ROUND_S = 0.015
#: calls before calibrating, at least this long: JAX's first calls after a compile ran up to 2x slower
#: (jax-jit softmax at 1x1024: 21 us, then 11.5 us a pass later)
WARMUP_S = 0.03
#: calls per block, at most
MAX_NUMBER = 1_000_000


def median(values: list[float]) -> float:
    """The median of ``values`` (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for one timed block, as ``timeit`` and
    ``torch.utils.benchmark.Timer`` time (it runs between blocks), so both methods time the same thing: a
    collection that falls in a block is the interpreter's cost, not the call's."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def calibrate(call: Callable[[], Any], block_s: float = BLOCK_S, warmup_s: float = 0.0) -> int:
    """Calls per block: doubled from 1 until a block takes at least ``block_s``, then scaled to last about
    ``block_s``, after calls for ``warmup_s`` (at least one; :data:`WARMUP_S` for code that compiles)."""
    warm(call, warmup_s)
    number = 1
    while True:
        with gc_paused():
            t0 = time.perf_counter()
            for _ in range(number):
                call()
            t1 = time.perf_counter()
        if t1 - t0 >= block_s or number >= MAX_NUMBER:
            # scaled down to about block_s: doubling overshoots by up to 2x, and a round is three blocks
            return max(1, min(number, math.ceil(block_s * number / (t1 - t0))))
        number *= 2


def warm(call: Callable[[], Any], seconds: float) -> None:
    """Untimed calls for ``seconds`` (at least one): the machine back at speed for this call."""
    end = time.perf_counter() + seconds
    call()
    while time.perf_counter() < end:
        call()


def sample(call: Callable[[], Any], number: int, min_blocks: int = MIN_BLOCKS, round_s: float = ROUND_S,
           max_s: float | None = None) -> list[float]:
    """Per-call seconds of blocks of ``number`` calls: at least ``min_blocks`` blocks and ``round_s`` seconds,
    and no more blocks once ``max_s`` has passed (a call of seconds gets ``min_blocks`` calls or what fits)."""
    out: list[float] = []
    start = time.perf_counter()
    while True:
        with gc_paused():
            t0 = time.perf_counter()
            for _ in range(number):
                call()
            t1 = time.perf_counter()
        out.append((t1 - t0) / number)
        elapsed = t1 - start
        if (len(out) >= min_blocks and elapsed >= round_s) or (max_s is not None and elapsed >= max_s):
            return out


_REFERENCE_DATA = [float(i) for i in range(1000)]


def _reference_kernel() -> float:
    total = 0.0
    for v in _REFERENCE_DATA:
        total += v * 1.0001
    return total


#: calls of the reference kernel per block, and blocks per reading (about 0.5 ms on the 2-core machines)
REFERENCE_NUMBER = 5
REFERENCE_BLOCKS = 5


def machine_speed() -> float:
    """Seconds of one call of a fixed pure-Python kernel now (median of :data:`REFERENCE_BLOCKS` blocks):
    how fast this machine runs at this moment, as a benchmark's time divided by it compares across runs."""
    blocks = []
    for _ in range(REFERENCE_BLOCKS):
        t0 = time.perf_counter()
        for _ in range(REFERENCE_NUMBER):
            _reference_kernel()
        blocks.append((time.perf_counter() - t0) / REFERENCE_NUMBER)
    return median(blocks)


def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss_during(call: Callable[[], Any]) -> float:
    """Peak resident bytes of this process during one ``call`` (its inputs and everything the process
    holds included, as asv's ``peakmem`` counts the whole process); NaN where the peak cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak resident set size to the current one
    except OSError:
        return math.nan
    result = call()
    peak = _vm_hwm()
    del result
    return math.nan if peak is None else float(peak)
