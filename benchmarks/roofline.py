"""Roofline probe: this machine's copy bandwidth and each implementation's achieved bandwidth, in one run.

    python benchmarks/roofline.py                       # the standard set (below), every implementation
    python benchmarks/roofline.py --impl NAME --impl NAME2   # some entries (softgrad list names them)
    python benchmarks/roofline.py --op vjp --shape 256x100000 --dtype float32   # one combination
    python benchmarks/roofline.py --threads 2 --json roofline.json

GB/s counts the bytes that must move (read x, and g; write the result, n^2 per row for the Jacobian) over
the median time, also as a fraction of the copy bandwidth measured before and after each family (the better
of the two). Each family runs in a process of its own, with one thread count for all (``--threads``) and
the asv sweep's allocator settings. What an entry does not declare, or one call would take longer than
:data:`MAX_CALL_SECONDS` (estimated from one row), is left out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

#: softmax and VJP at 4096 x 1024 (32 to 96 MiB moved: one to three times a 32 MiB last-level cache); the
#: Jacobian at 1 x 2048 float64 (its 32 MiB output can stay in a 32 MiB cache between calls), at 8 x 2048
#: (256 MiB, past any cache and glibc's 32 MiB mmap ceiling: each call maps its output afresh and pays the
#: page faults, as a caller would; softmax at 16384 x 1024 float32 took 7x the time of 4096 x 1024 for 4x the
#: data) and at 64 x 256. ``bytes/LLC`` (bytes moved over the last-level cache): at about 1 or below, repeated
#: calls find much of their data in the cache and GB/s can pass the copy bandwidth (a 32 MiB Jacobian written
#: into a 32 MiB L3 ran at 1.6x it). The copy: read + write of a 256 MiB buffer with every core (torch ``copy_``).
STANDARD = [
    ("softmax", "4096x1024", "float32"), ("softmax", "4096x1024", "float64"),
    ("vjp", "4096x1024", "float32"), ("vjp", "4096x1024", "float64"),
    ("jacobian", "1x2048", "float64"), ("jacobian", "8x2048", "float64"),
    ("jacobian", "64x256", "float32"), ("jacobian", "64x256", "float64"),
]
#: a combination whose one call is estimated (from one row cut to ``PROBE_N``) to take longer is left out:
#: each is called at least 8 times; the asv grid covers slow entries at small n
MAX_CALL_SECONDS = 1.0


def worker(names: list[str], combos: list[tuple[str, str, str]], device: str, budget_s: float) -> list[dict]:
    from softgrad.applicability import applicable
    from softgrad.bench import grid, timer
    from softgrad import registry
    from softgrad.contract import DTYPE_INFO
    from softgrad.prepared import PROBE_N, too_slow

    rows = []
    for name in names:
        impl = registry.get(name)
        for op, shape, dtype in combos:
            batch, n = grid.parse_shape(shape)
            if applicable(impl, op, dtype, device, (batch, n)):
                continue
            if too_slow(impl, op, dtype, device, *timer.make_inputs((batch, n), dtype), budget_s=MAX_CALL_SECONDS,
                        row_n=PROBE_N):
                continue
            t = timer.time_op(impl, op, (batch, n), dtype, device, min_time=budget_s)
            moved = grid.bytes_moved(op, batch, n, DTYPE_INFO[dtype].itemsize)
            rows.append({"impl": name, "op": op, "shape": shape, "dtype": dtype, "device": device,
                         "median_s": t.median_s, "q25_s": t.q25_s, "q75_s": t.q75_s, "repeats": t.repeats,
                         "first_call_s": t.first_call_s, "gbps": moved / t.median_s / 1e9})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", action="append", help="implementation (repeatable; default all available)")
    p.add_argument("--op", help="measure one op (with --shape and --dtype) instead of the standard set")
    p.add_argument("--shape", help="BxN, e.g. 256x1024")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="threads for every family (SOFTGRAD_THREADS)")
    p.add_argument("--time", type=float, default=0.5, help="seconds of samples per combination (default 0.5)")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--combos", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.threads:
        os.environ["SOFTGRAD_THREADS"] = str(args.threads)
    from softgrad.bench import threads

    threads.apply()
    if args.worker:
        combos = [tuple(c) for c in json.loads(args.combos)]
        print(json.dumps(worker(args.worker, combos, args.device, args.time)))
        return 0

    from softgrad import registry
    from softgrad.bench.bandwidth import copy_bandwidth, gpu_copy_bandwidth
    from softgrad.bench.allocator import MALLOC_TUNABLES

    if args.op:
        if not args.shape:
            p.error("--op needs --shape")
        combos = [(args.op, args.shape, args.dtype)]
    else:
        combos = STANDARD
    try:
        impls = [registry.get(n) for n in args.impl] if args.impl else registry.all_implementations()
    except KeyError as exc:
        print(f"roofline: error: {exc.args[0]}", file=sys.stderr)
        return 2
    measure_copy = copy_bandwidth if args.device == "cpu" else gpu_copy_bandwidth
    copy = measure_copy()
    if copy is None:
        print(f"roofline: error: no {args.device} device here", file=sys.stderr)
        return 2
    print(f"copy bandwidth: {copy.gbps:.1f} GB/s ({copy.method}); threads: {threads.in_use()}", file=sys.stderr)
    families: dict[str, list[str]] = {}
    for impl in impls:
        if impl.available:
            families.setdefault(impl.family, []).append(impl.name)
    from softgrad.contract import DTYPE_INFO
    from softgrad.bench.grid import bytes_moved, parse_shape
    from softgrad.history.provenance import last_level_cache_bytes

    # A shared machine's memory bandwidth drifts (32 to 55 GB/s from one minute to the next here), so the
    # copy is measured again after each family, and each family's fractions are of the better of the two
    # copies around it: no fraction is overstated by a slow moment of the copy.
    llc = last_level_cache_bytes()
    copies = [copy]
    rows: list[dict] = []
    for family, names in families.items():
        out = subprocess.run([sys.executable, __file__, "--worker", *names, "--combos", json.dumps(combos),
                              "--device", args.device, "--time", str(args.time)],
                             capture_output=True, text=True, env={**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES})
        copies.append(measure_copy())
        limit = max(copies[-2:], key=lambda c: c.gbps)
        print(f"roofline: {family} ({', '.join(names)}); copy {copies[-2].gbps:.1f} before, {copies[-1].gbps:.1f} "
              f"GB/s after", file=sys.stderr)
        if out.returncode != 0:
            print(f"roofline: {family} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        for r in json.loads(out.stdout.strip().splitlines()[-1]):
            moved = bytes_moved(r["op"], *parse_shape(r["shape"]), DTYPE_INFO[r["dtype"]].itemsize)
            rows.append({**r, "copy_gbps": limit.gbps, "fraction_of_copy": r["gbps"] / limit.gbps,
                         "bytes_moved": moved, "fits_in_llc": bool(llc and moved <= llc)})
    rows.sort(key=lambda r: (r["op"], r["shape"], r["dtype"], -r["gbps"]))
    header = (f"{'implementation':16s} {'op':9s} {'shape':10s} {'dtype':8s} {'median':>10s} {'GB/s':>7s} "
              f"{'of copy':>8s} {'bytes/LLC':>9s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['impl']:16s} {r['op']:9s} {r['shape']:10s} {r['dtype']:8s} {r['median_s'] * 1e3:8.3f}ms "
              f"{r['gbps']:7.1f} {r['fraction_of_copy']:7.0%} {r['bytes_moved'] / llc if llc else math.nan:9.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"copy_bandwidth": [c.to_dict() for c in copies], "llc_bytes": llc,
                       "threads": threads.in_use(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
