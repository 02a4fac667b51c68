"""This machine's memory bandwidths, the limits that softmax, its VJP and its Jacobian are measured against.

Two kernels, each on a buffer past any cache and with every core: the **copy** (read one buffer, write
another), counted as bytes read plus bytes written per second like :func:`softgrad.bench.grid.bytes_moved`,
is the limit of softmax and the VJP (each reads its inputs and writes its result once); the **fill** (write
one value over a buffer, nothing read), counted as bytes written per second, is the limit of the Jacobian,
whose n^2 written values per row dwarf the n it reads (:data:`LIMIT`). Both use torch where it is installed,
else a Numba ``prange`` loop; NumPy's copy and fill run on one thread and are not the limit (on the project's
2-core machines the copy reaches about half), so a NumPy figure is labelled as a single-thread lower bound.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .cpu_caches import data_cache_bytes

#: 256 MiB per buffer at least: far past most caches (:func:`buffer_bytes` takes more past a larger one).
DEFAULT_BYTES = 256 << 20
#: the bandwidth that bounds each op: the copy for an op that reads as much as it writes, the fill for the
#: Jacobian (it writes n^2 values per row of n it reads: its x is read from memory once, 1/n of its bytes)
LIMIT = {"softmax": "copy", "vjp": "copy", "jacobian": "fill"}
#: the kernels :func:`measure` knows
KINDS = ("copy", "fill")


@dataclass(frozen=True)
class Bandwidth:
    """One measured bandwidth (GB/s, 1e9 bytes a second) and how it was measured."""

    gbps: float
    method: str
    buffer_bytes: int
    repeats: int

    def to_dict(self) -> dict:
        return asdict(self)


#: the name this class had when only the copy was measured
CopyBandwidth = Bandwidth


def buffer_bytes(llc: int | None = None) -> int:
    """Bytes per buffer: :data:`DEFAULT_BYTES`, or twice the last-level cache (``llc``, default this CPU's)
    where that is more, so that even the fill, which touches one buffer, leaves the cache (a 256 MiB fill
    repeated in a 260 MiB cache would measure the cache)."""
    llc = max(data_cache_bytes().values(), default=0) if llc is None else llc
    return max(DEFAULT_BYTES, 2 * llc)


@dataclass(frozen=True)
class Kernel:
    """One bandwidth kernel with its buffers made, ready to run: each ``run()`` moves :attr:`counted` bytes (read
    plus written for the copy, written for the fill) and returns when they have moved (on a GPU, synchronised)."""

    kind: str
    run: Callable[[], object]
    counted: int
    method: str
    buffer_bytes: int

    def gbps(self, seconds: float) -> float:
        """GB/s of one run that took ``seconds``."""
        return self.counted / seconds / 1e9

    def time(self) -> float:
        """Seconds one run takes now."""
        t0 = time.perf_counter()
        self.run()
        return time.perf_counter() - t0


def kernel(kind: str, nbytes: int | None = None, device: str = "cpu") -> Kernel:
    """``kind``'s kernel (:data:`KINDS`) on buffers of ``nbytes`` (default :func:`buffer_bytes` on the CPU,
    :data:`DEFAULT_BYTES` on a GPU): torch where it is installed, else a Numba ``prange`` loop, else NumPy (one
    thread: a lower bound); ``device`` ``"cuda"``: torch on the first GPU."""
    if kind not in KINDS:
        raise ValueError(f"no bandwidth kernel {kind!r} (known: {', '.join(KINDS)})")
    if device != "cpu":
        return _torch(kind, DEFAULT_BYTES if nbytes is None else nbytes, device)
    nbytes = buffer_bytes() if nbytes is None else nbytes
    if importlib.util.find_spec("torch"):
        return _torch(kind, nbytes)
    if importlib.util.find_spec("numba"):
        return _numba(kind, nbytes)
    return _numpy(kind, nbytes)


def _measured(k: Kernel, repeats: int) -> Bandwidth:
    """The median over ``repeats`` runs of ``k`` (after one untimed)."""
    k.run()
    return Bandwidth(k.gbps(float(np.median([k.time() for _ in range(repeats)]))), k.method, k.buffer_bytes, repeats)


def _counted(kind: str, nbytes: int) -> int:
    """Bytes one run of ``kind`` on buffers of ``nbytes`` counts: read + write for the copy, write for the fill."""
    return (2 if kind == "copy" else 1) * nbytes


def _torch(kind: str, nbytes: int, device: str = "cpu") -> Kernel:
    import torch

    b = torch.empty(nbytes // 4, dtype=torch.float32, device=device)
    a = torch.ones_like(b) if kind == "copy" else None
    op = (lambda: b.copy_(a)) if kind == "copy" else (lambda: b.fill_(1.5))
    if device == "cpu":
        fn, where = op, f"{torch.get_num_threads()} threads"
    else:
        def fn():
            op()
            torch.cuda.synchronize()
        where = torch.cuda.get_device_name()
    call = "copy_" if kind == "copy" else "fill_"
    prefix = "torch" if device == "cpu" else "torch cuda"
    return Kernel(kind, fn, _counted(kind, nbytes), f"{prefix} {call} ({where})", nbytes)


def _numba(kind: str, nbytes: int) -> Kernel:
    import numba

    @numba.njit(parallel=True)
    def copy(src, dst):  # pragma: no cover - compiled
        for i in numba.prange(src.shape[0]):
            dst[i] = src[i]

    @numba.njit(parallel=True)
    def fill(dst, value):  # pragma: no cover - compiled
        for i in numba.prange(dst.shape[0]):
            dst[i] = value

    b = np.empty(nbytes // 4, dtype=np.float32)
    a = np.ones_like(b) if kind == "copy" else None
    fn = (lambda: copy(a, b)) if kind == "copy" else (lambda: fill(b, np.float32(1.5)))
    return Kernel(kind, fn, _counted(kind, nbytes), f"numba prange {kind} ({numba.get_num_threads()} threads)", nbytes)


def _numpy(kind: str, nbytes: int) -> Kernel:
    b = np.empty(nbytes // 4, dtype=np.float32)
    a = np.ones_like(b) if kind == "copy" else None
    fn = (lambda: np.copyto(b, a)) if kind == "copy" else (lambda: b.fill(1.5))
    call = "copyto" if kind == "copy" else "fill"
    return Kernel(kind, fn, _counted(kind, nbytes), f"numpy {call} (one thread: a lower bound)", nbytes)


def measure(kind: str, nbytes: int | None = None, repeats: int = 10) -> Bandwidth:
    """Measure ``kind`` (:data:`KINDS`) on the CPU with the best multi-threaded kernel installed, on buffers
    of ``nbytes`` (default :func:`buffer_bytes`): the median of ``repeats`` runs of :func:`kernel`."""
    return _measured(kernel(kind, nbytes), repeats)


def copy_bandwidth(nbytes: int | None = None, repeats: int = 10) -> Bandwidth:
    """Measure the copy bandwidth (read + write) with the best multi-threaded copy installed."""
    return measure("copy", nbytes, repeats)


def fill_bandwidth(nbytes: int | None = None, repeats: int = 10) -> Bandwidth:
    """Measure the fill bandwidth (write only) with the best multi-threaded fill installed."""
    return measure("fill", nbytes, repeats)


def gpu_bandwidth(kind: str, nbytes: int = DEFAULT_BYTES, repeats: int = 20) -> Bandwidth | None:
    """``kind`` (:data:`KINDS`) in the memory of the first CUDA GPU, or None without one."""
    if not importlib.util.find_spec("torch"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return _measured(kernel(kind, nbytes, "cuda"), repeats)


def gpu_copy_bandwidth(nbytes: int = DEFAULT_BYTES, repeats: int = 20) -> Bandwidth | None:
    """Device-to-device copy bandwidth of the first CUDA GPU, or None without one."""
    return gpu_bandwidth("copy", nbytes, repeats)


def gpu_fill_bandwidth(nbytes: int = DEFAULT_BYTES, repeats: int = 20) -> Bandwidth | None:
    """Fill (write-only) bandwidth of the first CUDA GPU's memory, or None without one."""
    return gpu_bandwidth("fill", nbytes, repeats)
