"""Roofline probe: each entry's achieved bandwidth at the workloads' shapes, beside the copy and fill
bandwidths measured in the same run.

    python benchmarks/roofline.py                    # the standard set (below), every entry but the write-up's
    python benchmarks/roofline.py --impl NAME --impl NAME2    # some entries (softgrad list names them)
    python benchmarks/roofline.py --all-shapes --workload vocab --dtype bfloat16 --dtype float32
    python benchmarks/roofline.py --all-shapes --in-cache     # every shape, also those that fit the cache
    python benchmarks/roofline.py --versus NAME --versus NAME2    # each row's speed over theirs
    python benchmarks/roofline.py --op vjp --shape 256x100000 --dtype float32   # given shapes instead
    python benchmarks/roofline.py --threads 2 --json roofline.json --markdown   # keep the rows; a README table
    python benchmarks/roofline.py --from-json roofline.json --markdown        # print a kept run again

The standard set: softmax and the VJP at the largest shape of the ``vocab`` and of the ``attention``
workload (:data:`softgrad.workloads.PRESETS`, or ``--workload``; with :data:`EXTRA_SHAPES`) whose bytes
moved exceed this machine's last-level cache, and the Jacobian at :data:`JACOBIAN_SHAPES`; ``--all-shapes``
takes every such shape. Shapes that fit in the cache are named on stderr and left out (repeated calls find
their data in the cache, so they measure the cache; ``--in-cache`` times them). The entries: every one
available but the write-up's ways to get J (registry tag ``writeup``: J element by element), unless
``--impl`` names some (``--impl all``: every one).

GB/s counts the bytes that must move (read x, and g; write the result, n^2 per row for the Jacobian) over
the median time. ``limit`` is the bandwidth that bounds the op (:data:`softgrad.bench.bandwidth.LIMIT`): the
copy (read + write, every core) for softmax and the VJP, the fill (write only) for the Jacobian, each
measured before and after each family; ``of limit`` is GB/s over the better of the two (no fraction is
overstated by a slow moment of the machine). With ``--beside`` each combination's calls are timed in rounds
between runs of its limit's kernel, in its family's process (:func:`softgrad.bench.timer.time_beside`), and
``of limit`` is the median of the rounds' fractions, each of the better run on either side of its round: a
shared machine's bandwidth moves between levels within seconds, and a fraction of a limit measured before and
after can land on the other level (a VJP read 130% of such a copy). ``goal`` is issue 24's target for that
fraction (:data:`GOALS`; "-" inside the cache; "!" marks a fraction below it), ``vs NAME`` each ``--versus``
entry's time at the same point over this one's (above 1: faster; default the registry's baseline entry),
``ceiling`` the entry's rate in cache over the same limit (contiguous rows of the same length, few enough to
stay in the cache, called over and over: :data:`IN_CACHE_BYTES`): the fraction its arithmetic allows, so a
fraction near its ceiling is held back by the arithmetic, not by the memory. Each family runs in a
process of its own, with one thread count for all (``--threads``) and the asv sweep's allocator settings; its
inputs are made once per shape and dtype. What an entry does not declare, a result over
:data:`MAX_OUTPUT_ELEMENTS`, or one call longer than :data:`MAX_CALL_SECONDS` (estimated from one row) is
left out, each with a line on stderr saying why.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

#: registry tag of the entries left out unless named: the write-up's element-by-element ways to get J
SLOW_TAG = "writeup"
#: workloads whose shapes make the standard set
DEFAULT_WORKLOADS = ("vocab", "attention")
#: attention shapes sized past a last-level cache of up to 512 MiB, beside the preset's (which fit a 260 MiB
#: one but for the VJP of 1x32x1024x1024): 32 heads of 1024 queries over 1024 keys at batch 4, 1 GiB a float32 array
EXTRA_SHAPES = {"attention": ((4, 32, 1024, 1024),)}
#: the Jacobian writes n^2 values per row: 16 rows of 4096 write 1 GiB in float32, past any cache
JACOBIAN_SHAPES = ((16, 4096),)
#: results larger than this many elements are not made (a Jacobian at a vocabulary's row length)
MAX_OUTPUT_ELEMENTS = 1 << 28
#: a combination whose one call is estimated (from one row cut to ``PROBE_N``) to take longer is left out:
#: each is called at least 5 times; the asv grid covers slow entries at small n
MAX_CALL_SECONDS = 1.0
#: the last line when no combination was timed (exit 1): before the bandwidths are measured, or after every
#: family left its combinations out
NOTHING_TIMED = "roofline: error: nothing was timed (every combination was left out: the reasons are above)"
#: samples per combination at least (after the first call and one warm-up): past the cache one call of the
#: slower entries takes about a second, and the median of three keeps the default set within minutes
MIN_REPEATS = 3
#: the bytes an op moves at the shape each combination is also timed at in cache (its row length, fewer rows; at
#: least one): small enough for any server's last-level cache, so that repeated calls find their data there
IN_CACHE_BYTES = 8 << 20
#: rounds per combination at least with ``--beside`` (each after a run of the op's limit kernel)
MIN_ROUNDS = 5
#: issue 24's goals past the cache, as fractions of the op's limit, by op and item size (16-bit: of its bytes)
GOALS = {("softmax", 8): 0.80, ("softmax", 4): 0.85, ("softmax", 2): 0.70,
         ("vjp", 8): 0.80, ("vjp", 4): 0.85, ("vjp", 2): 0.70,
         ("jacobian", 8): 0.90, ("jacobian", 4): 0.90, ("jacobian", 2): 0.90}


def goal(op: str, dtype: str) -> float | None:
    """The fraction of its limit ``op`` in ``dtype`` should reach past the cache (:data:`GOALS`), or None."""
    from softgrad.contract import DTYPE_INFO

    return GOALS.get((op, DTYPE_INFO[dtype].itemsize))


def standard_combos(specs: list[str], ops: list[str], dtypes: list[str], llc: int | None, *,
                    in_cache: bool = False, every_shape: bool = False) -> tuple[list[tuple[str, str, str]], list[str],
                                                                                  list[str]]:
    """``(op, shape, dtype)`` of the standard set; the ones left out because their bytes fit in ``llc``
    (none when ``in_cache`` or the cache's size is unknown); and the ones past the cache left out because
    a larger shape of the same workload stands for them (none with ``every_shape``)."""
    from softgrad import workloads
    from softgrad.bench.grid import bytes_moved
    from softgrad.contract import DTYPE_INFO

    groups: list[list[tuple[str, tuple[int, ...]]]] = []
    for spec in specs:
        w = workloads.load(spec)
        shapes = (*w.shapes, *EXTRA_SHAPES.get(spec, ()))
        groups += [[(op, dims) for dims in shapes] for op in ops if op in w.ops and op != "jacobian"]
    if "jacobian" in ops:
        groups.append([("jacobian", dims) for dims in JACOBIAN_SHAPES])
    combos, cached, more = [], [], []
    for group in groups:
        for dtype in dtypes:
            sized = [(bytes_moved(op, math.prod(dims[:-1]), dims[-1], DTYPE_INFO[dtype].itemsize),
                      (op, workloads.shape_token(dims), dtype)) for op, dims in dict.fromkeys(group)]
            inside = [c for moved, c in sized if llc and moved <= llc and not in_cache]
            timed = [(moved, c) for moved, c in sized if c not in inside]
            keep = [c for _, c in timed] if every_shape or not timed else [max(timed)[1]]
            combos += keep
            cached += [" ".join(c) for c in inside]
            more += [" ".join(c) for _, c in timed if c not in keep]
    return combos, cached, more


def worker(names: list[str], combos: list[tuple[str, str, str]], device: str, budget_s: float,
           beside: bool = False) -> dict:
    """Time each entry of ``names`` (one family) at each combination it runs: ``{"rows", "notes"}`` (a line
    for each combination left out as too slow, or that failed). With ``beside``, each combination is timed in
    rounds between runs of its op's limit kernel in this process (:func:`softgrad.bench.timer.time_beside`):
    ``fraction_beside`` is the median of the rounds' fractions, ``limit_beside_gbps`` of their limits."""
    from statistics import median

    from softgrad import registry
    from softgrad.bench import bandwidth, grid, timer
    from softgrad.contract import DTYPE_INFO
    from softgrad.prepared import PROBE_N, too_slow, view
    from softgrad.workloads import parse_shape_token

    impls = [registry.get(name) for name in names]
    limits: dict[str, bandwidth.Kernel] = {}
    inputs: dict[tuple[str, str], list[str]] = {}
    for op, shape, dtype in combos:
        inputs.setdefault((shape, dtype), []).append(op)
    rows, notes = [], []
    for (shape, dtype), ops in inputs.items():
        dims, x_layout, g_layout = parse_shape_token(shape)
        todo = []
        for op in ops:
            for impl in impls:
                why = _why_not(impl, op, shape, dtype, device)
                if why:
                    notes.append(f"{impl.name} {op} {shape} {dtype} left out: {why}")
                else:
                    todo.append((impl, op))
        if not todo:
            continue
        x, g = timer.inputs_at(shape, dtype)  # once for every entry and op at this shape
        for impl, op in todo:
            # estimated on what the call sees (x and g through their layouts), not on their base arrays
            slow = too_slow(impl, op, dtype, device, view(x, x_layout), view(g, g_layout, dims),
                            budget_s=MAX_CALL_SECONDS, row_n=PROBE_N)
            if slow:
                notes.append(f"{impl.name} {op} {shape} {dtype} left out: {slow}")
                continue
            try:
                call = timer.prepare_at(impl, op, dtype, device, shape, x, g)
                moved = grid.bytes_moved(op, *grid.parse_shape(shape), DTYPE_INFO[dtype].itemsize, g_layout)
                if beside:
                    kind = bandwidth.LIMIT[op]
                    if kind not in limits:  # made once: its buffers stay for the family's combinations
                        limits[kind] = bandwidth.kernel(kind, device=device)
                    paired = timer.time_beside(call, limits[kind], moved, min_time=budget_s, min_rounds=MIN_ROUNDS)
                    t = paired.timing
                else:
                    t = timer.time_call(call, min_time=budget_s, min_repeats=MIN_REPEATS, warmup=1)
            except Exception as exc:  # noqa: BLE001 - one entry's failure is reported, the others still run
                notes.append(f"{impl.name} {op} {shape} {dtype} failed: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            finally:
                call = None  # release the entry's copies of x and g before the next entry makes its own
            cache = _in_cache(impl, op, dtype, device, dims)
            print(f"roofline:   {impl.name} {op} {shape} {dtype}: {t.median_s * 1e3:.3g} ms", file=sys.stderr,
                  flush=True)  # progress: a family's combinations take minutes
            rows.append({"impl": impl.name, "op": op, "shape": shape, "dtype": dtype, "device": device,
                         "median_s": t.median_s, "q25_s": t.q25_s, "q75_s": t.q75_s, "repeats": t.repeats,
                         "first_call_s": t.first_call_s, "bytes_moved": moved, "gbps": moved / t.median_s / 1e9,
                         **cache,
                         **({"limit_beside_gbps": median(paired.limit_gbps),
                             "fraction_beside": paired.fraction, "rounds_beside": len(paired.fractions)}
                            if beside else {})})
        del x, g
    return {"rows": rows, "notes": notes}


def _in_cache(impl, op: str, dtype: str, device: str, dims: tuple[int, ...]) -> dict:
    """``{"in_cache_shape", "in_cache_gbps"}``: ``impl``'s ``op`` timed on contiguous rows of length ``dims[-1]``,
    as many as move :data:`IN_CACHE_BYTES` (one at least), over and over, so that its data stays in the cache:
    the bytes the op must move there over its median time, the rate its arithmetic allows when memory costs
    nothing. Empty for a Jacobian (a row's n^2 values leave the cache), a shape already that small, or a
    failure (the combination's own timing stands)."""
    from softgrad.bench import grid, timer
    from softgrad.contract import DTYPE_INFO
    from softgrad.workloads import shape_token

    rows, n = math.prod(dims[:-1]), dims[-1]
    per_row = grid.bytes_moved(op, 1, n, DTYPE_INFO[dtype].itemsize)
    fewer = max(1, IN_CACHE_BYTES // per_row)
    if op == "jacobian" or fewer >= rows:
        return {}
    small = shape_token((fewer, n))
    try:
        x, g = timer.inputs_at(small, dtype)
        t = timer.time_call(timer.prepare_at(impl, op, dtype, device, small, x, g), min_time=0.2, min_repeats=5)
    except Exception:  # noqa: BLE001 - a ceiling is extra: without it the row reads as before
        return {}
    return {"in_cache_shape": small, "in_cache_gbps": fewer * per_row / t.median_s / 1e9}


def _why_not(impl, op: str, shape: str, dtype: str, device: str) -> str | None:
    """Why ``impl`` is not timed at this combination (its declarations, the output budget), or None."""
    from softgrad.applicability import applicable
    from softgrad.workloads import parse_shape_token

    return applicable(impl, op, dtype, device, parse_shape_token(shape)[0], max_output_elements=MAX_OUTPUT_ELEMENTS)


def with_limits(row: dict, copy_gbps: float, fill_gbps: float, llc: int | None) -> dict:
    """``row`` with the bandwidths around its family, its op's limit (measured beside the row where the
    worker did, else around its family) and its fraction of it (where measured beside: the median of the rounds'
    fractions, not the row's GB/s over the median limit)."""
    from softgrad.bench.bandwidth import LIMIT

    limit = LIMIT[row["op"]]
    limit_gbps = row.get("limit_beside_gbps") or (copy_gbps if limit == "copy" else fill_gbps)
    fraction = row.get("fraction_beside") or row["gbps"] / limit_gbps
    copy_gbps = limit_gbps if limit == "copy" else copy_gbps
    fits = bool(llc and row["bytes_moved"] <= llc)
    ceiling = row["in_cache_gbps"] / limit_gbps if "in_cache_gbps" in row else None
    return {**row, "ceiling": ceiling, "copy_gbps": copy_gbps, "fill_gbps": fill_gbps,
            "fraction_of_copy": fraction if limit == "copy" else row["gbps"] / copy_gbps,
            "limit": limit, "limit_gbps": limit_gbps, "fraction_of_limit": fraction,
            "goal": None if fits else goal(row["op"], row["dtype"]), "fits_in_llc": fits}


def add_versus(rows: list[dict], versus: list[str]) -> None:
    """Each row's ``vs`` (``{name: ratio}``): each ``versus`` entry's median at the same point over the row's
    (NaN where that entry was not timed there)."""
    def point(r: dict) -> tuple:
        return r["op"], r["shape"], r["dtype"], r["device"]

    for r in rows:
        r["vs"] = {}
    for name in versus:
        ref = {point(r): r["median_s"] for r in rows if r["impl"] == name}
        for r in rows:
            r["vs"][name] = ref.get(point(r), math.nan) / r["median_s"]


def table(rows: list[dict], llc: int | None, versus: list[str]) -> list[str]:
    """The printed table: one line per row, sorted by op, shape, dtype and GB/s."""
    heads = [f"{'vs ' + name:>8s}" for name in versus]
    wide = max([16, *(len(r["shape"]) for r in rows)])  # a shape token with its layouts can be longer
    header = (f"{'entry':16s} {'op':8s} {'dtype':8s} {'shape':{wide}s} {'median':>10s} {'GB/s':>6s} {'limit':>5s} "
              f"{'of limit':>8s} {'goal':>5s} {'ceiling':>7s} {' '.join(heads)} {'bytes/LLC':>9s}")
    lines = [header, "-" * len(header)]
    for r in sorted(rows, key=lambda r: (r["op"], r["shape"], r["dtype"], -r["gbps"])):
        ratio = r["bytes_moved"] / llc if llc else math.nan
        met = "-" if r["goal"] is None else f"{r['goal']:.0%}{'' if r['fraction_of_limit'] >= r['goal'] else '!'}"
        vs = " ".join(f"{'-' if math.isnan(r['vs'][name]) else format(r['vs'][name], '.2f') + 'x':>{len(head)}s}"
                      for name, head in zip(versus, heads))
        ceiling = "-" if r.get("ceiling") is None else f"{r['ceiling']:.0%}"
        lines.append(f"{r['impl']:16s} {r['op']:8s} {r['dtype']:8s} {r['shape']:{wide}s} {r['median_s'] * 1e3:8.2f}ms "
                     f"{r['gbps']:6.1f} {r['limit']:>5s} {r['fraction_of_limit']:8.0%} {met:>5s} {ceiling:>7s} {vs} "
                     f"{ratio:9.2f}")
    return lines


def markdown(rows: list[dict], llc: int | None) -> list[str]:
    """A markdown table of ``rows``: one line per op, shape and dtype (by bytes moved), with its bytes over
    the cache and its limit (the range over the families' measurements), and a column per entry (in the
    order measured): its fraction of the limit and its median time (and its ceiling, where measured), in bold
    for the fastest."""
    from softgrad.history.units import format_seconds

    entries = list(dict.fromkeys(r["impl"] for r in rows))
    points: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        points.setdefault((r["op"], r["dtype"], r["bytes_moved"], r["shape"]), {})[r["impl"]] = r
    lines = ["| op | shape | dtype | bytes / LLC | limit | " + " | ".join(f"`{e}`" for e in entries) + " |",
             "|---|---|---|---|---|" + "---|" * len(entries)]
    for (op, dtype, moved, shape), by in sorted(points.items()):
        fastest = min(by.values(), key=lambda r: r["median_s"])["impl"]
        cells = []
        for e in entries:
            r = by.get(e)
            ceiling = "" if r is None or r.get("ceiling") is None else f"; in cache {r['ceiling']:.0%}"
            text = "-" if r is None else f"{r['fraction_of_limit']:.0%} ({format_seconds(r['median_s'])}{ceiling})"
            cells.append(f"**{text}**" if e == fastest else text)
        low, high = min(r["limit_gbps"] for r in by.values()), max(r["limit_gbps"] for r in by.values())
        gbps = f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f} to {high:.1f}"
        ratio = f"{moved / llc:.2f}" if llc else "-"
        lines.append(f"| {op} | {shape} | {dtype} | {ratio} | {next(iter(by.values()))['limit']} {gbps} GB/s | "
                     + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", action="append",
                   help=f"entry (repeatable; 'all': every one; default every one not tagged {SLOW_TAG})")
    p.add_argument("--workload", action="append",
                   help=f"workload whose shapes are timed (repeatable; default {', '.join(DEFAULT_WORKLOADS)})")
    p.add_argument("--op", action="append", help="op (repeatable; default softmax, vjp and jacobian)")
    p.add_argument("--shape", action="append", help="time these shapes (repeatable, e.g. 256x1024) instead")
    p.add_argument("--dtype", action="append", help="dtype (repeatable; default float32)")
    p.add_argument("--all-shapes", action="store_true", help="every workload shape, not the largest of each")
    p.add_argument("--in-cache", action="store_true", help="also the workload shapes that fit the last-level cache")
    p.add_argument("--versus", action="append",
                   help="an entry the vs columns compare with (repeatable; default the baseline entry)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="threads for every family (SOFTGRAD_THREADS)")
    p.add_argument("--time", type=float, default=0.5, help="seconds of samples per combination (default 0.5)")
    p.add_argument("--beside", action="store_true",
                   help="time each combination in rounds between runs of its op's limit, in its process, and take "
                        "the median of the rounds' fractions (a shared machine's bandwidth moves within seconds)")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.add_argument("--markdown", action="store_true",
                   help="also print a markdown table: a row per op, shape and dtype, a column per entry")
    p.add_argument("--from-json", metavar="PATH", help="print the tables of a run --json wrote; measure nothing")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--combos", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    problem = _usage_problem(args)
    if problem:
        print(f"roofline: error: {problem}", file=sys.stderr)
        return 2
    if args.threads:
        os.environ["SOFTGRAD_THREADS"] = str(args.threads)
    from softgrad.bench import threads

    try:
        threads.apply()
    except ValueError as exc:  # SOFTGRAD_THREADS from the environment, out of range
        print(f"roofline: error: {exc}", file=sys.stderr)
        return 2
    if args.from_json:
        try:
            with open(args.from_json) as f:
                data = json.load(f)
            rows, llc = data["rows"], data["llc_bytes"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"roofline: error: {args.from_json}: not a file roofline.py --json wrote ({exc})", file=sys.stderr)
            return 2
        print("\n".join(table(rows, llc, list(rows[0]["vs"]) if rows else [])))
        if args.markdown:
            print("\n" + "\n".join(markdown(rows, llc)))
        return 0
    if args.worker:
        combos = [tuple(c) for c in json.loads(args.combos)]
        print(json.dumps(worker(args.worker, combos, args.device, args.time, args.beside)))
        return 0
    try:
        combos, cached, more, llc, impls, versus = _plan(args)
    except (KeyError, ValueError) as exc:
        print(f"roofline: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    if not any(impl.available and _why_not(impl, *combo, args.device) is None for impl in impls for combo in combos):
        for impl in impls:  # nothing would be timed: say why before minutes of bandwidth measurements
            for op, shape, dtype in combos:
                print(f"roofline: {impl.name} {op} {shape} {dtype} left out: "
                      f"{_why_not(impl, op, shape, dtype, args.device) or 'not available here'}", file=sys.stderr)
        print(NOTHING_TIMED, file=sys.stderr)
        return 1
    from softgrad.bench import bandwidth

    def measure() -> tuple:
        if args.device == "cpu":
            return bandwidth.copy_bandwidth(), bandwidth.fill_bandwidth()
        return bandwidth.gpu_copy_bandwidth(), bandwidth.gpu_fill_bandwidth()

    copy, fill = measure()
    if copy is None:
        print(f"roofline: error: no {args.device} device here", file=sys.stderr)
        return 2
    print(f"copy bandwidth: {copy.gbps:.1f} GB/s ({copy.method}); fill bandwidth: {fill.gbps:.1f} GB/s "
          f"({fill.method}); threads: {threads.in_use()}", file=sys.stderr)
    if cached:
        print(f"roofline: in the last-level cache ({llc >> 20} MiB), left out (--in-cache times them): "
              f"{', '.join(cached)}", file=sys.stderr)
    if more:
        print(f"roofline: {len(more)} more workload shapes past the cache (--all-shapes times them): "
              f"{', '.join(more)}", file=sys.stderr)
    families: dict[str, list[str]] = {}
    for impl in impls:
        if impl.available:
            families.setdefault(impl.family, []).append(impl.name)
        else:
            print(f"roofline: {impl.name} is not available here: left out", file=sys.stderr)
    from softgrad.bench.allocator import MALLOC_TUNABLES

    # A shared machine's memory bandwidth drifts (32 to 55 GB/s from one minute to the next here), so both
    # kernels are measured again after each family, and each family's fractions are of the better of the two
    # measurements around it: no fraction is overstated by a slow moment of the machine.
    measured = [(copy, fill)]
    rows: list[dict] = []
    for family, names in families.items():
        print(f"roofline: {family} ({', '.join(names)}) ...", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, __file__, "--worker", *names, "--combos", json.dumps(combos),
                              "--device", args.device, "--time", str(args.time), *(["--beside"] * args.beside)],
                             stdout=subprocess.PIPE, text=True,  # its stderr (progress, errors) shown as it goes
                             env={**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES})
        measured.append(measure())
        (c0, f0), (c1, f1) = measured[-2:]
        print(f"roofline: {family} ({', '.join(names)}); copy {c0.gbps:.1f} before, {c1.gbps:.1f} after; fill "
              f"{f0.gbps:.1f} before, {f1.gbps:.1f} GB/s after", file=sys.stderr)
        if out.returncode != 0:
            print(f"roofline: {family} failed (exit {out.returncode}; its error is above): left out", file=sys.stderr)
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        for note in result["notes"]:
            print(f"roofline: {note}", file=sys.stderr)
        rows += [with_limits(r, max(c0.gbps, c1.gbps), max(f0.gbps, f1.gbps), llc) for r in result["rows"]]
        if args.json:  # each family's rows kept as soon as they are in: an interrupted run keeps the others'
            _write_json(args.json, measured, llc, threads.in_use(), rows)
    if not rows:
        print(NOTHING_TIMED, file=sys.stderr)
        return 1
    add_versus(rows, versus)
    print("\n".join(table(rows, llc, versus)))
    if args.markdown:
        print("\n" + "\n".join(markdown(rows, llc)))
    if args.json:
        _write_json(args.json, measured, llc, threads.in_use(), rows)
    return 0


def _usage_problem(args) -> str | None:
    """What is wrong with flags no measurement can use (one line), or None; checked before anything is timed, so
    that an unwritable ``--json`` does not lose a run of minutes at its end."""
    if not (math.isfinite(args.time) and args.time > 0):
        return f"--time must be a positive number of seconds, not {args.time!r}"
    if args.threads is not None and args.threads < 1:
        return f"--threads must be a positive integer, not {args.threads}"
    if args.json and not args.from_json and not args.worker:
        try:
            with open(f"{args.json}.tmp", "w"):
                pass
            os.remove(f"{args.json}.tmp")
        except OSError as exc:
            return f"--json {args.json}: cannot write there ({exc.strerror or exc})"
    return None


def _write_json(path: str, measured: list, llc: int | None, threads_in_use: dict, rows: list[dict]) -> None:
    """The run as JSON (what ``--from-json`` reads), written whole to a temporary file and renamed over ``path``."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"copy_bandwidth": [c.to_dict() for c, _ in measured],
                   "fill_bandwidth": [f.to_dict() for _, f in measured], "llc_bytes": llc,
                   "threads": threads_in_use, "rows": rows}, f, indent=1)
    os.replace(tmp, path)


def _plan(args) -> tuple[list, list[str], list[str], int | None, list, list[str]]:
    """The combinations, those left out in the cache and those a larger shape stands for, the cache's size,
    the entries and the ``vs`` entries; KeyError or ValueError (a :class:`softgrad.workloads.WorkloadError`)
    for a name or shape that is not one."""
    from softgrad import registry
    from softgrad.contract import DTYPES, OPS
    from softgrad.history.provenance import last_level_cache_bytes
    from softgrad.workloads import parse_shape_token

    ops = args.op or (["softmax", "vjp"] if args.shape else list(OPS))
    dtypes = args.dtype or ["float32"]
    for name, known in (("op", OPS), ("dtype", DTYPES)):
        wrong = [v for v in (ops if name == "op" else dtypes) if v not in known]
        if wrong:
            raise ValueError(f"no {name} {wrong[0]!r} (known: {', '.join(known)})")
    llc = last_level_cache_bytes()
    if args.shape:
        for shape in args.shape:
            dims, _, _ = parse_shape_token(shape)
            if not math.prod(dims):
                raise ValueError(f"shape {shape!r} has no elements: nothing to time")
        combos, cached, more = [(op, shape, dtype) for shape in args.shape for op in ops for dtype in dtypes], [], []
    else:
        combos, cached, more = standard_combos(args.workload or list(DEFAULT_WORKLOADS), ops, dtypes, llc,
                                               in_cache=args.in_cache, every_shape=args.all_shapes)
    if args.impl == ["all"]:
        impls = registry.all_implementations()
    elif args.impl:
        impls = list({i.name: i for i in (registry.get(n) for n in args.impl)}.values())  # each entry once
    else:
        slow = {i.name for i in registry.with_role(SLOW_TAG)}
        impls = [i for i in registry.all_implementations() if i.name not in slow]
    versus = list(dict.fromkeys(registry.get(n).name for n in args.versus)) if args.versus else [
        i.name for i in registry.with_role(baseline=True)]
    return combos, cached, more, llc, impls, versus


if __name__ == "__main__":
    sys.exit(main())
