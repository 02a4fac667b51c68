"""A small, honest timer for scripts that are not asv (the roofline probe, quick comparisons).

Methodology: inputs are moved to the device before timing; the first call (JIT compile) is timed on
its own and reported as ``first_call_s``; then warm-up calls; then repeats until ``min_time`` has
passed (at least ``min_repeats``), each timed with the backend's ``wait`` inside the timed region.
Median and quartiles are reported, never the mean or the minimum alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..backends import get_backend
from ..contract import round_to_dtype
from ..registry import Implementation


@dataclass(frozen=True)
class Timing:
    median_s: float
    q25_s: float
    q75_s: float
    repeats: int
    first_call_s: float

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return (self.q75_s - self.q25_s) / self.median_s if self.median_s else float("nan")


def make_inputs(shape: tuple[int, ...], dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random normal logits and cotangent, rounded to ``dtype`` (float64 arrays)."""
    rng = np.random.default_rng(seed)
    return round_to_dtype(rng.standard_normal(shape) * 2, dtype), round_to_dtype(rng.standard_normal(shape), dtype)


def time_op(impl: Implementation, op: str, shape: tuple[int, ...], dtype: str, device: str = "cpu",
            *, min_time: float = 0.5, min_repeats: int = 5, warmup: int = 2) -> Timing:
    """Time ``impl``'s ``op`` on a random input of ``shape`` and ``dtype`` on ``device``."""
    backend = get_backend(impl.backend)
    fn = impl.ops_for(device)[op]
    x, g = make_inputs(shape, dtype)
    args = (backend.from_numpy(x, dtype, device),)
    if op == "vjp":
        args += (backend.from_numpy(g, dtype, device),)
    t0 = time.perf_counter()
    backend.wait(fn(*args), device)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        backend.wait(fn(*args), device)
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        result = fn(*args)
        backend.wait(result, device)
        samples.append(time.perf_counter() - t0)
        del result
    q25, med, q75 = np.percentile(samples, [25, 50, 75])
    return Timing(float(med), float(q25), float(q75), len(samples), first)
