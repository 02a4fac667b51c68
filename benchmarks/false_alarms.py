"""How often the gate flags identical code, and whether it catches a slowdown:
``python benchmarks/false_alarms.py [--runs 11] [--impl NAME ...] [--slowdown F]``.

Runs ``softgrad run --quick`` of this checkout ``--runs`` times in a row in a scratch ``SOFTGRAD_HOME``
(nothing is added to your history) and compares each run with the one before, as the nightly job compares
each night with the last: ``softgrad compare`` (the raw verdict) and ``softgrad compare --confirm`` (what
the nightly gate keeps). Prints one line per pair and the totals: benchmark comparisons, flagged,
confirmed. Identical code should be confirmed slower at most once in 100 comparisons. The check and the
agreement step are skipped (the gate judges times; the correctness side of the gate is tested apart).

``--slowdown F`` measures the other side: the test plugin ``slowable`` (the pure-Python loops plus a busy
wait of ``F - 1`` times each call) is timed as it is, then slowed by ``F``, in each pair, and each slowed
run is compared with the one before it (``compare --confirm``, its rerun slowed too): a pair is caught when
the gate fails.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLOWABLE = ROOT / "tests" / "plugins" / "slowable.py"
#: the entries of the measurement in the README: every family, C code and Python, short and long calls
DEFAULT_IMPLS = ("numpy", "numba-parallel", "torch-native", "torch-formula", "jax-jit", "loops")


def softgrad(home: Path, *args: str, slowdown: float | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOFTGRAD_HOME": str(home)}
    if slowdown is not None:
        env.update(SOFTGRAD_PLUGINS=str(SLOWABLE), SOFTGRAD_TEST_SLOWDOWN=str(slowdown))
    return subprocess.run([sys.executable, "-m", "softgrad.cli", *args], capture_output=True, text=True, env=env,
                          cwd=str(ROOT))


def counts(out: str) -> tuple[int, int]:
    """(benchmarks compared, slower) from ``softgrad compare``'s output."""
    compared = re.search(r"compared (\d+) benchmarks", out)
    slower = re.search(r"softgrad compare: (\d+) slower", out)
    if not compared or not slower:
        raise RuntimeError(f"unexpected compare output: {out.strip()[-300:]}")
    return int(compared.group(1)), int(slower.group(1))


def planted(home: Path, pairs: int, factor: float) -> int:
    """Pairs of runs of ``slowable``, as it is then slowed by ``factor``: how many the gate catches."""
    run_args = ["run", "--quick", "--no-check", "--no-agreement", "--no-report", "--no-progress", "--impl", "slowable"]
    caught = 0
    t0 = time.perf_counter()
    for k in range(1, pairs + 1):
        for factor_now in (1.0, factor):
            out = softgrad(home, *run_args, slowdown=factor_now)
            if out.returncode != 0:
                raise RuntimeError(f"run failed: {(out.stdout + out.stderr).strip()[-400:]}")
        confirmed = softgrad(home, "compare", "--confirm", "--no-progress", slowdown=factor)
        n, held = counts(confirmed.stdout)
        caught += confirmed.returncode != 0
        print(f"pair {k}: slowed {factor:g}x, {held} of {n} benchmarks confirmed slower, gate "
              f"{'failed (caught)' if confirmed.returncode else 'passed (missed)'}", flush=True)
    print(f"{pairs} pairs in {time.perf_counter() - t0:.0f} s: {caught} of {pairs} slowdowns of {factor:g}x caught; "
          f"scratch home {home}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11, help="quick runs in a row (runs - 1 pairs; default 11)")
    ap.add_argument("--impl", action="append", help=f"entries (repeatable; default {' '.join(DEFAULT_IMPLS)})")
    ap.add_argument("--home", type=Path, help="the scratch SOFTGRAD_HOME (default: a new temporary folder)")
    ap.add_argument("--slowdown", type=float, metavar="F",
                    help="plant a slowdown of F (> 1) in the slowable test plugin instead: runs - 1 pairs")
    args = ap.parse_args(argv)
    if args.runs < 2:
        print("false_alarms: --runs must be at least 2 (one pair)", file=sys.stderr)
        return 2
    if args.slowdown is not None and not (args.slowdown > 1 and args.impl is None):
        print("false_alarms: --slowdown must be above 1, and times the slowable plugin alone (no --impl)",
              file=sys.stderr)
        return 2
    impls = args.impl or list(DEFAULT_IMPLS)
    home = args.home or Path(tempfile.mkdtemp(prefix="softgrad-false-alarms-"))
    if args.slowdown is not None:
        try:
            return planted(home, args.runs - 1, args.slowdown)
        except RuntimeError as exc:
            print(f"false_alarms: {exc}", file=sys.stderr)
            return 1
    run_args = ["run", "--quick", "--no-check", "--no-agreement", "--no-report", "--no-progress"]
    for name in impls:
        run_args += ["--impl", name]
    total = flagged = kept = 0
    t0 = time.perf_counter()
    for k in range(args.runs):
        out = softgrad(home, *run_args)
        if out.returncode != 0:
            print(f"false_alarms: run {k + 1} failed: {(out.stdout + out.stderr).strip()[-400:]}", file=sys.stderr)
            return 1
        if k == 0:
            continue
        n, plain = counts(softgrad(home, "compare").stdout)
        confirmed = softgrad(home, "compare", "--confirm", "--no-progress")
        _, held = counts(confirmed.stdout)
        total, flagged, kept = total + n, flagged + plain, kept + held
        lines = [line for line in confirmed.stdout.splitlines() if line.startswith(("SLOWER", "cleared"))]
        print(f"pair {k}: {n} benchmarks, {plain} flagged, {held} confirmed"
              + "".join(f"\n    {line}" for line in lines), flush=True)
    print(f"{args.runs - 1} pairs in {time.perf_counter() - t0:.0f} s: {total} comparisons, {flagged} flagged "
          f"({flagged / max(total, 1):.1%}), {kept} confirmed ({kept / max(total, 1):.1%}); scratch home {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
