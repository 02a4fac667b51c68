"""softgrad: a benchmarking and regression harness for softmax, its Jacobian and its VJP.

Public API (what built-in and third-party implementations use alike)::

    import softgrad

    @softgrad.implementation("mine", family="mine", dtypes=("float64", "float32"))
    def build(device):
        return {"softmax": ..., "jacobian": ..., "vjp": ...}

Importing softgrad imports NumPy only; frameworks load when an entry is built.
"""

from .backends import Backend, get_backend, register_backend
from .contract import DTYPES, OPS
from .registry import (
    Implementation,
    PluginError,
    all_implementations,
    get,
    implementation,
    load_plugin,
    register,
    unregister,
)

__version__ = "0.1.0"

__all__ = [
    "DTYPES",
    "OPS",
    "Backend",
    "Implementation",
    "PluginError",
    "all_implementations",
    "get",
    "get_backend",
    "implementation",
    "load_plugin",
    "register",
    "register_backend",
    "unregister",
    "__version__",
]
