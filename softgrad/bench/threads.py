"""One option for the thread count of every family, and a record of what each family actually uses.

``SOFTGRAD_THREADS=N`` (or ``softgrad run --threads N``) sets, before any framework is imported, the
variables each library reads at start-up: OpenMP/BLAS (NumPy's BLAS, torch's intra-op pool),
``NUMBA_NUM_THREADS``, and for XLA the Eigen thread pool. torch is also told directly
(``torch.set_num_threads``) when an implementation builds. Unset, every library picks its own default
(all cores). :func:`in_use` reports the counts in effect, stored with every run.
"""

from __future__ import annotations

import os
import sys

from ..backends import THREADS_ENV, requested_threads

ENV = THREADS_ENV
_LIBRARY_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
requested = requested_threads


def apply(n: int | None = None) -> int | None:
    """Set the libraries' thread variables for ``n`` (default: ``SOFTGRAD_THREADS``) in this process's
    environment, so that frameworks imported later, and child processes, honour it."""
    if n is not None:
        os.environ[ENV] = str(n)
    n = requested()
    if n is None:
        return None
    for var in _LIBRARY_VARS:
        os.environ[var] = str(n)
    if n == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    if "torch" in sys.modules:
        from ..backends import get_backend

        get_backend("torch").setup_process()
    return n


def in_use() -> dict[str, int | str | None]:
    """Thread counts in effect for each family, without importing a framework that is not loaded yet."""
    cores = os.cpu_count()
    n = requested()
    info: dict[str, int | str | None] = {"cores": cores, "requested": n}
    info["numpy_blas"] = int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or 0) or cores
    if "numba" in sys.modules:
        import numba

        info["numba"] = numba.get_num_threads()
    else:
        info["numba"] = int(os.environ.get("NUMBA_NUM_THREADS") or 0) or cores
    if "torch" in sys.modules:
        import torch

        info["torch_intra_op"] = torch.get_num_threads()
    else:
        info["torch_intra_op"] = n or cores
    info["xla"] = "1 (eigen off)" if "xla_cpu_multi_thread_eigen=false" in os.environ.get("XLA_FLAGS", "") else "default (all cores)"
    return info
