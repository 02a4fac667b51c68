"""Array backends: how data moves into a framework's native form and back, and how its device syncs.

One small class per framework, in the manner of einops' backends: each names the module it serves and
imports it only when first used, so importing softgrad never imports torch or jax. Third parties add a
backend with :func:`register_backend`.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from . import aligned
from .contract import check_dtype

#: the thread count every framework is asked to use (``softgrad run --threads``); unset: each its default
THREADS_ENV = "SOFTGRAD_THREADS"


#: threads per core at most: past it a run measures oversubscription, not the code (``--threads``, ``--jobs``)
MAX_PER_CORE = 4


def max_threads() -> int:
    """The most threads (or worker processes) softgrad takes on this machine: :data:`MAX_PER_CORE` per core."""
    return MAX_PER_CORE * (os.cpu_count() or 1)


def requested_threads() -> int | None:
    """The thread count asked for through ``SOFTGRAD_THREADS``, or None; ValueError if malformed or past
    :func:`max_threads`."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    allowed = f"a positive integer up to {max_threads()} ({MAX_PER_CORE}x the cores)"
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= max_threads():
        raise ValueError(f"{THREADS_ENV} must be {allowed}, not {raw[:40]!r}")
    return int(raw)


class Backend:
    """Moves NumPy data to a framework's arrays on a device and back; knows how to wait for that device.

    Subclasses set ``name`` and ``requires`` (importable module names) and override the methods.
    """

    name: str = ""
    requires: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ("float64", "float32", "float16")

    def setup_process(self) -> None:
        """Per-process framework settings (the requested thread count), applied by the registry before an
        entry of this backend is built, so built-in and third-party entries of a framework run alike.
        Environment variables a framework reads at import are set by :mod:`softgrad.bench.threads`."""

    def missing(self) -> list[str]:
        """Required modules that cannot be imported here (without importing them)."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def devices(self) -> tuple[str, ...]:
        """Devices present on this machine (may import the framework)."""
        return ("cpu",)

    def from_numpy(self, x: np.ndarray, dtype: str, device: str) -> Any:
        """A native array of ``dtype`` on ``device`` holding the (exactly representable) values of ``x``."""
        raise NotImplementedError

    def to_numpy(self, a: Any) -> np.ndarray:
        """A NumPy copy of a native array; 16-bit formats NumPy lacks come back widened exactly."""
        raise NotImplementedError

    def broadcast_to(self, a: Any, shape: tuple[int, ...]) -> Any:
        """A read-only view of ``a`` repeated to ``shape`` (stride 0 along the repeated axes), no copy."""
        return np.broadcast_to(a, shape)

    def pad_columns(self, a: Any, width: int) -> Any:
        """A new array of ``a``'s leading shape and ``width`` columns: ``a`` in the first ones, NaN after them
        (what a read past a row's end meets, so that it shows in the result)."""
        buf = aligned.empty((*a.shape[:-1], width), a.dtype)
        buf[...] = np.nan
        buf[..., : a.shape[-1]] = a
        return buf

    def dtype_name(self, a: Any) -> str | None:
        """The softgrad dtype name of a native array, or None if it is not one of ours."""
        raise NotImplementedError

    def wait(self, result: Any, device: str) -> None:
        """Block until ``result`` (and all work queued on ``device``) is computed; no-op for synchronous code.

        The timer calls this inside the timed region, so asynchronous frameworks are timed honestly.
        """


class NumpyBackend(Backend):
    """NumPy arrays; bfloat16 is ml_dtypes' NumPy dtype (as JAX hands it over) where ml_dtypes is installed."""

    name = "numpy"
    requires = ("numpy",)
    dtypes = ("float64", "float32", "float16", "bfloat16")

    def from_numpy(self, x: np.ndarray, dtype: str, device: str) -> np.ndarray:
        check_dtype(dtype)
        if dtype == "bfloat16":
            try:
                import ml_dtypes
            except ImportError:
                raise NotImplementedError("NumPy has no bfloat16 without ml_dtypes") from None
            return aligned.placed(np.asarray(x, dtype=np.float64), ml_dtypes.bfloat16)
        return aligned.placed(np.asarray(x), dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        if str(a.dtype) == "bfloat16":
            return np.asarray(a).astype(np.float32)  # widened exactly, as the other backends do
        return np.array(a, copy=True)

    def dtype_name(self, a: Any) -> str | None:
        dt = getattr(a, "dtype", None)
        return str(dt) if dt is not None else None


class TorchBackend(Backend):
    name = "torch"
    requires = ("torch",)
    dtypes = ("float64", "float32", "float16", "bfloat16")

    def setup_process(self) -> None:
        n = requested_threads()
        if n is not None:
            torch = self._torch()
            if torch.get_num_threads() != n:
                torch.set_num_threads(n)

    def _torch(self):
        import torch

        return torch

    def devices(self) -> tuple[str, ...]:
        torch = self._torch()
        return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)

    def from_numpy(self, x: np.ndarray, dtype: str, device: str) -> Any:
        torch = self._torch()
        check_dtype(dtype)
        return torch.from_numpy(np.array(x, dtype=np.float64, order="C")).to(device=device, dtype=getattr(torch, dtype))

    def broadcast_to(self, a: Any, shape: tuple[int, ...]) -> Any:
        return a.expand(shape)

    def pad_columns(self, a: Any, width: int) -> Any:
        buf = self._torch().full((*a.shape[:-1], width), float("nan"), dtype=a.dtype, device=a.device)
        buf[..., : a.shape[-1]] = a
        return buf

    def to_numpy(self, a: Any) -> np.ndarray:
        torch = self._torch()
        a = a.detach().to("cpu")
        if a.dtype == torch.bfloat16:
            a = a.to(torch.float32)
        return a.numpy().copy()

    def dtype_name(self, a: Any) -> str | None:
        dt = getattr(a, "dtype", None)
        return str(dt).removeprefix("torch.") if dt is not None else None

    def wait(self, result: Any, device: str) -> None:
        if device.startswith("cuda"):
            self._torch().cuda.synchronize(device)


class JaxBackend(Backend):
    name = "jax"
    requires = ("jax",)
    dtypes = ("float64", "float32", "float16", "bfloat16")

    def _jax(self):
        import jax

        # float64 must mean float64: without x64, jax silently computes "float64" in float32.
        jax.config.update("jax_enable_x64", True)
        return jax

    def devices(self) -> tuple[str, ...]:
        jax = self._jax()
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:
            gpus = []
        return ("cpu", "cuda") if gpus else ("cpu",)

    def _device(self, device: str):
        jax = self._jax()
        return jax.devices("gpu" if device.startswith("cuda") else "cpu")[0]

    def from_numpy(self, x: np.ndarray, dtype: str, device: str) -> Any:
        jax = self._jax()
        import jax.numpy as jnp

        check_dtype(dtype)
        # Convert on the host (ml_dtypes gives NumPy a bfloat16): a device-side astype would compile per shape.
        host = np.asarray(x, dtype=np.float64).astype(jnp.dtype(dtype))
        return jax.device_put(host, self._device(device)).block_until_ready()

    def broadcast_to(self, a: Any, shape: tuple[int, ...]) -> Any:
        import jax.numpy as jnp

        return jnp.broadcast_to(a, shape)

    def pad_columns(self, a: Any, width: int) -> Any:
        import jax.numpy as jnp

        # A jax array has no strides: the padded buffer's leading columns are a new array of the same values
        # (as a sliced view is); the padding is made all the same, so every backend runs one layout.
        return jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, width - a.shape[-1])], constant_values=jnp.nan)

    def to_numpy(self, a: Any) -> np.ndarray:
        import jax.numpy as jnp

        if a.dtype == jnp.bfloat16:
            a = a.astype(jnp.float32)
        return np.array(a, copy=True)

    def dtype_name(self, a: Any) -> str | None:
        dt = getattr(a, "dtype", None)
        return str(dt) if dt is not None else None

    def wait(self, result: Any, device: str) -> None:
        self._jax().block_until_ready(result)


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Make ``backend`` available by its name to implementations that declare it."""
    if not backend.name:
        raise ValueError("a backend needs a name")
    _BACKENDS[backend.name] = backend
    return backend


def get_backend(name: str) -> Backend:
    """The backend registered under ``name``; ``KeyError`` with the known names otherwise."""
    try:
        return _BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(sorted(_BACKENDS))}") from None


for _b in (NumpyBackend(), TorchBackend(), JaxBackend()):
    register_backend(_b)
