"""The CPU's data caches as Linux reports them (sysfs): the sizes a call's working set is measured against."""

from __future__ import annotations

import re
from pathlib import Path

CPU_CACHE_SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")


def data_cache_bytes(sysfs: Path = CPU_CACHE_SYSFS) -> dict[int, int]:
    """The size of each data (or unified) cache of the first CPU by level (1, 2, 3, ...; an entry without
    a level counts as the next one); empty where sysfs cannot be read."""
    sizes: dict[int, int] = {}
    for entry in sorted(sysfs.glob("index*")):
        try:
            if (entry / "type").read_text().strip() == "Instruction":
                continue
            text = (entry / "size").read_text().strip().upper()
            level_file = entry / "level"
            level = int(level_file.read_text()) if level_file.exists() else max(sizes, default=0) + 1
        except (OSError, ValueError):
            continue
        m = re.fullmatch(r"(\d+)([KMG]?)", text)
        if m:
            sizes[level] = max(sizes.get(level, 0), int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)])
    return sizes


def core_cache_bytes(sysfs: Path = CPU_CACHE_SYSFS, default: int = 1 << 20) -> int:
    """The largest cache a core has to itself: level 2 where there is a level above it, else ``default``."""
    sizes = data_cache_bytes(sysfs)
    return sizes[2] if 2 in sizes and max(sizes) > 2 else default
