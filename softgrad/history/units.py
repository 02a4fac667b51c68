"""Quantities as people read them: durations with their unit."""

from __future__ import annotations

import math


def format_seconds(v: float | None) -> str:
    """A duration with its unit and three significant digits: ``7.88 us``, ``1.89 ms``, ``2.12 s``."""
    if v is None or not math.isfinite(v):
        return "-"
    v = float(f"{v:.3g}")  # round first, so 999.7 us reads 1 ms, not 1e+03 us
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v / 1e-9:.3g} ns" if v else "0"


def format_bytes(v: float | None) -> str:
    """A size in binary units with three significant digits: ``64 KiB``, ``480 MiB``, ``1.5 GiB``."""
    if v is None or not math.isfinite(v):
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.0f} B"
