"""``torch-compile``: the ops through ``torch.compile`` (inductor), the compiled path many PyTorch users pick.

Inductor turns each op into fused C++/OpenMP kernels on the CPU (built with ``$CXX``, else ``g++``) and
Triton kernels on a GPU. torch is imported inside ``build``. Each op is the graph a user would write,
compiled in the default mode (no autotuning, no CUDA graphs: a graph replays into one output buffer, so a
later call would change an earlier result):

- softmax: ``torch.softmax`` (inductor computes 16-bit rows in float32, max and sum in one online sweep);
- VJP: ``torch._softmax_backward_data(g, torch.softmax(x))``, the graph autograd records for softmax's
  backward (torch-native's, run eagerly), forward and backward fused;
- Jacobian: ``s_i (delta_ij - s_j)`` per row, batched, one fused kernel writing the n^2 values (16-bit
  rows computed in float32 and rounded once).

Shapes: ``dynamic=False``. Each (shape, strides, dtype) gets kernels specialised to its sizes, compiled on
its first call, which the harness times apart (the registry's ``compiles`` flag: the asv
``track_first_call_s`` and the timer's warm-up). It is the fastest code for a fixed shape, as in a model
whose shapes do not change, and it is the same code whatever grid points ran before: with torch's default
(``dynamic=None``) a second shape recompiles with symbolic sizes, so what a point ran would depend on the
order of the grid. Dynamo's per-function cache (8 entries by default, then it silently runs eagerly) is
raised, and hitting it is an error, so the entry never times or checks eager code under its name.

Compile cost: what inductor does once per process (its imports, the probe of the CPU's vector
instructions, the precompiled header) happens in ``build`` on a throwaway graph, so it is part of the build
time the harness measures once per run, and each op's first call at a shape is that shape's compile alone.
Compiled kernels go to ``TORCHINDUCTOR_CACHE_DIR`` (inductor's default, ``/tmp/torchinductor_$USER``, where
unset): ``softgrad run`` gives each run an empty folder (cold compiles, as Numba's per-run cache), the check
workers a lasting one (a hit cannot change a result: the key covers the graph, the inputs' metadata, the
settings and the torch version).

What inductor makes of softmax at vocabulary rows (torch 2.13, CPU, 512x262144 float32, from its output
code): three loops over all the rows in turn, not one row at a time (the max; exp(x - max) stored to a
temporary the size of x, and summed; the temporary scaled into the output), so each element moves 20 bytes
from memory where 8 would do: 17% of copy against torch-native's 30% in the same run (machine loaded).
Small shapes pay dynamo's and the wrapper's Python per call (25 to 45 us at 1x16, torch-native 1 to 2 us).

The entry is unavailable, with the reason, where torch is not installed or inductor's C++ compiler is not
on the ``PATH`` (checked without importing torch).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys

import softgrad

#: compiled graphs a process may hold per op: every grid and catalogue shape in every dtype and layout
CACHE_ENTRIES = 4096


def compiler() -> str:
    """The C++ compiler inductor calls on the CPU: ``$CXX``, else ``g++`` (``clang++`` on macOS)."""
    return os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")


def missing_compiler() -> str | None:
    """What is missing for inductor's CPU kernels (no compiler on the PATH), or None."""
    cxx = compiler()
    if shutil.which(cxx) is None:
        via = "$CXX" if os.environ.get("CXX") else "the default, as $CXX is unset"
        return f"a C++ compiler for torch inductor ({cxx!r}, {via}, is not on the PATH)"
    return None


class CompiledEntry(softgrad.Implementation):
    """An entry that also needs inductor's C++ compiler: without it, :meth:`missing` names the compiler, so
    the entry is unavailable with that reason instead of failing every call."""

    def missing(self) -> list[str]:
        absent = super().missing()
        if not absent:
            reason = missing_compiler()
            absent += [reason] if reason else []
        return absent

    def __reduce__(self):
        fn, args = super().__reduce__()
        return (functools.partial(CompiledEntry, **fn.keywords), args)


def _configure() -> None:
    """Process-wide compile settings, applied before the first compile."""
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, CACHE_ENTRIES)
    dynamo_config.accumulated_recompile_limit = max(dynamo_config.accumulated_recompile_limit, 4 * CACHE_ENTRIES)
    dynamo_config.fail_on_recompile_limit_hit = True  # never fall back to eager silently
    # compile in this process: no pool of compile workers forked from a benchmark or check worker
    inductor_config.compile_threads = 1


def _warm_up(torch, device: str) -> None:
    """Compile and run a throwaway graph: inductor's once-per-process work (Triton's start on a GPU) is
    done in the build, not in the first call of whichever op and shape comes first."""
    torch.compile(lambda t: t.exp().sum(dim=-1), dynamic=False)(torch.zeros(1, 8, device=device))


def build(device: str):
    import importlib.util

    import torch

    if device.startswith("cuda") and importlib.util.find_spec("triton") is None:
        raise RuntimeError("torch-compile: inductor needs triton on cuda, and it is not installed")
    _configure()
    _warm_up(torch, device)

    def softmax(x):
        return torch.softmax(x, dim=-1)

    def vjp(x, g):
        return torch._softmax_backward_data(g, torch.softmax(x, dim=-1), -1, x.dtype)

    def jacobian(x):
        acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        s = torch.softmax(x.to(acc), dim=-1)
        eye = torch.eye(x.shape[-1], dtype=acc, device=x.device)
        return (s.unsqueeze(-1) * (eye - s.unsqueeze(-2))).to(x.dtype)  # 1 - s_i exact near s_i = 1

    return {op: torch.compile(fn, dynamic=False) for op, fn in
            (("softmax", softmax), ("vjp", vjp), ("jacobian", jacobian))}


ENTRY = softgrad.register(CompiledEntry(
    name="torch-compile",
    family="torch-compile",  # a process of its own: inductor's settings and compiled code stay out of torch's
    build=build,
    backend="torch",
    requires=("torch",),
    devices=("cpu", "cuda"),
    dtypes=("float64", "float32", "float16", "bfloat16"),
    compiles=True,
    description="torch.compile (inductor, dynamic=False): softmax, fused _softmax_backward_data, s(I - s^T)",
    source=__file__,
))
