"""Cold build time of implementations, measured in a fresh process: ``python -m softgrad.bench.buildtime NAME...``.

Building an entry imports its framework and, for Numba, compiles its kernels for every declared dtype.
The runner measures it once per run in a process of its own, with an empty Numba cache folder, and the
asv benchmark processes then load the compiled kernels from that cache (see :mod:`softgrad.runner`).
Prints ``{"name": seconds, ...}`` as JSON; an entry that fails to build gets ``null``.
"""

from __future__ import annotations

import json
import sys
import time

from .. import registry


def measure(names: list[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in names:
        impl = registry.get(name)
        t0 = time.perf_counter()
        try:
            impl.ops_for("cpu")
        except Exception:  # noqa: BLE001 - reported as null; the check names the failure
            out[name] = None
            continue
        out[name] = time.perf_counter() - t0
    return out


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1:])))
