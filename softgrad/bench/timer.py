"""A small, honest timer for scripts that are not asv (the roofline probe, quick comparisons).

Methodology: inputs are moved to the device before timing; the first call (JIT compile) is timed on
its own and reported as ``first_call_s``; then warm-up calls; then repeats until ``min_time`` has
passed (at least ``min_repeats``), each timed with the backend's ``wait`` inside the timed region.
Median and quartiles are reported, never the mean or the minimum alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..contract import round_to_dtype
from ..prepared import Prepared, base_shape, prepare
from ..registry import Implementation
from ..workloads import parse_shape_token


@dataclass(frozen=True)
class Timing:
    median_s: float
    q25_s: float
    q75_s: float
    repeats: int
    first_call_s: float

    @classmethod
    def of(cls, samples: list[float], first_call_s: float) -> Timing:
        """The median and quartiles of ``samples`` (seconds a call)."""
        q25, med, q75 = np.percentile(samples, [25, 50, 75])
        return cls(float(med), float(q25), float(q75), len(samples), first_call_s)

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return (self.q75_s - self.q25_s) / self.median_s if self.median_s else float("nan")


def shape_seed(shape: tuple[int, ...]) -> int:
    """The seed fixed by a shape: ``rows * 100_003 + n`` (rows: the leading dims' product)."""
    return math.prod(shape[:-1]) * 100_003 + shape[-1]


def make_inputs(shape: tuple[int, ...], dtype: str, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The benchmarks' logits (normal, scale 2) and cotangent for ``shape``, rounded to ``dtype`` (float64
    arrays): the timer, the asv and the pytest-benchmark suites all use these, seeded by the shape."""
    rng = np.random.default_rng(shape_seed(shape) if seed is None else seed)
    return round_to_dtype(rng.standard_normal(shape) * 2, dtype), round_to_dtype(rng.standard_normal(shape), dtype)


def inputs_at(shape: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The base arrays of x and g for a benchmark shape (:func:`softgrad.workloads.shape_token`): each made in
    its layout's base shape, seeded by the dims (contiguous: exactly :func:`make_inputs`)."""
    dims, x_layout, g_layout = parse_shape_token(shape)
    rng = np.random.default_rng(shape_seed(dims))
    x = round_to_dtype(rng.standard_normal(base_shape(dims, x_layout)) * 2, dtype)
    return x, round_to_dtype(rng.standard_normal(base_shape(dims, g_layout)), dtype)


def prepare_at(impl: Implementation, op: str, dtype: str, device: str, shape: str, x: np.ndarray,
               g: np.ndarray) -> Prepared:
    """The prepared call on :func:`inputs_at`'s base arrays, each seen through the shape's layout."""
    _, x_layout, g_layout = parse_shape_token(shape)
    return prepare(impl, op, dtype, device, x, g, layout=x_layout, g_layout=g_layout)


def time_op(impl: Implementation, op: str, shape: tuple[int, ...], dtype: str, device: str = "cpu",
            *, min_time: float = 0.5, min_repeats: int = 5, warmup: int = 2) -> Timing:
    """Time ``impl``'s ``op`` on the inputs of ``shape`` and ``dtype`` (:func:`make_inputs`) on ``device``."""
    call = prepare(impl, op, dtype, device, *make_inputs(shape, dtype))
    return time_call(call, min_time=min_time, min_repeats=min_repeats, warmup=warmup)


def _seconds(call: Prepared) -> float:
    """Seconds one call takes, its result released before the next call makes its own."""
    t0 = time.perf_counter()
    result = call()
    took = time.perf_counter() - t0
    del result
    return took


def _first_and_warm(call: Prepared, warmup: int) -> float:
    """The first call's seconds (a compile, where the entry compiles), then ``warmup`` untimed calls."""
    first = _seconds(call)
    for _ in range(warmup):
        call()
    return first


def time_call(call: Prepared, *, min_time: float = 0.5, min_repeats: int = 5, warmup: int = 2) -> Timing:
    """Time a prepared call (:func:`prepare`, :func:`prepare_at`) as the module docstring says."""
    first = _first_and_warm(call, warmup)
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_repeats or time.perf_counter() - start < min_time:
        samples.append(_seconds(call))
    return Timing.of(samples, first)


@dataclass(frozen=True)
class Beside:
    """A call timed in rounds between runs of a bandwidth kernel (:func:`time_beside`): the call's timing over
    every call, and per round the kernel's GB/s (the better of its runs on either side of the round) and the
    round's fraction of it."""

    timing: Timing
    limit_gbps: list[float]
    fractions: list[float]

    @property
    def fraction(self) -> float:
        """The median of the rounds' fractions."""
        return float(np.median(self.fractions))


def time_beside(call: Prepared, limit, bytes_moved: int, *, min_time: float = 0.5, min_rounds: int = 5,
                warmup: int = 1) -> Beside:
    """Time ``call`` as :func:`time_call` does, in rounds between runs of ``limit`` (a
    :class:`softgrad.bench.bandwidth.Kernel`): each round is calls for at least as long as one run of it (one
    call at least), and its fraction is ``bytes_moved`` over the round's median call over the better of the
    runs before and after it. A shared machine's memory bandwidth moves between levels within seconds (on the
    2-core VMs a copy reads about 33 or about 55 GB/s, from one minute to the next): a fraction of a limit
    measured seconds away, before and after, can land on the other level (a VJP read 130% of such a copy)."""
    first = _first_and_warm(call, warmup)
    limit.run()
    before = limit.time()
    samples: list[float] = []
    limits: list[float] = []
    fractions: list[float] = []
    spent = 0.0
    while len(fractions) < min_rounds or spent < min_time:
        round_: list[float] = []
        while not round_ or sum(round_) < before:
            round_.append(_seconds(call))
        after = limit.time()
        limits.append(limit.gbps(min(before, after)))
        fractions.append(bytes_moved / float(np.median(round_)) / 1e9 / limits[-1])
        samples += round_
        spent += sum(round_)
        before = after
    return Beside(Timing.of(samples, first), limits, fractions)
