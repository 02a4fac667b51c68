"""This machine's memory-copy bandwidth, the limit that softmax and its VJP are measured against.

Counted as bytes read plus bytes written per second, like :func:`softgrad.bench.grid.bytes_moved`. The copy
must use every core: NumPy's copy runs on one thread and is not the limit (on the project's 2-core
machines it reaches about half), so torch's ``copy_`` or a Numba ``prange`` copy is preferred, and a
NumPy figure is labelled as a single-thread lower bound.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import asdict, dataclass

import numpy as np

#: 256 MiB per buffer: far past any cache.
DEFAULT_BYTES = 256 << 20


@dataclass(frozen=True)
class CopyBandwidth:
    gbps: float
    method: str
    buffer_bytes: int
    repeats: int

    def to_dict(self) -> dict:
        return asdict(self)


def _median_time(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return float(np.median(samples))


def _torch(nbytes: int, repeats: int) -> CopyBandwidth:
    import torch

    a = torch.ones(nbytes // 4, dtype=torch.float32)
    b = torch.empty_like(a)
    t = _median_time(lambda: b.copy_(a), repeats)
    return CopyBandwidth(2 * nbytes / t / 1e9, f"torch copy_ ({torch.get_num_threads()} threads)", nbytes, repeats)


def _numba(nbytes: int, repeats: int) -> CopyBandwidth:
    import numba

    @numba.njit(parallel=True)
    def copy(src, dst):  # pragma: no cover - compiled
        for i in numba.prange(src.shape[0]):
            dst[i] = src[i]

    a = np.ones(nbytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    t = _median_time(lambda: copy(a, b), repeats)
    return CopyBandwidth(2 * nbytes / t / 1e9, f"numba prange copy ({numba.get_num_threads()} threads)", nbytes, repeats)


def _numpy(nbytes: int, repeats: int) -> CopyBandwidth:
    a = np.ones(nbytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    t = _median_time(lambda: np.copyto(b, a), repeats)
    return CopyBandwidth(2 * nbytes / t / 1e9, "numpy copyto (one thread: a lower bound)", nbytes, repeats)


def copy_bandwidth(nbytes: int = DEFAULT_BYTES, repeats: int = 10) -> CopyBandwidth:
    """Measure the copy bandwidth with the best multi-threaded copy installed."""
    if importlib.util.find_spec("torch"):
        return _torch(nbytes, repeats)
    if importlib.util.find_spec("numba"):
        return _numba(nbytes, repeats)
    return _numpy(nbytes, repeats)


def gpu_copy_bandwidth(nbytes: int = DEFAULT_BYTES, repeats: int = 20) -> CopyBandwidth | None:
    """Device-to-device copy bandwidth of the first CUDA GPU, or None without one."""
    if not importlib.util.find_spec("torch"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    a = torch.ones(nbytes // 4, dtype=torch.float32, device="cuda")
    b = torch.empty_like(a)

    def copy():
        b.copy_(a)
        torch.cuda.synchronize()

    t = _median_time(copy, repeats)
    return CopyBandwidth(2 * nbytes / t / 1e9, f"torch cuda copy_ ({torch.cuda.get_device_name()})", nbytes, repeats)
