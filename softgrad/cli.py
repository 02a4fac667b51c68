"""The ``softgrad`` command: a thin face over the registry, checker, runner and report.

Exit codes: 0 success, 1 a check or gate failed, 2 a usage error (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from . import registry
from .contract import DTYPES, OPS


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


def _add_plugins(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="Python file registering extra implementations (repeatable); "
                        f"${registry.PLUGINS_ENV} does the same for every command")


def _load_plugins(paths: Sequence[str]) -> None:
    try:
        registry.load_env_plugins()
        for path in paths:
            registry.load_plugin(path)
    except registry.PluginError as exc:
        raise UsageError(str(exc)) from None


def cmd_list(args: argparse.Namespace) -> int:
    _load_plugins(args.plugin)
    entries = []
    for impl in registry.all_implementations():
        d = impl.describe()
        if d["available"]:
            try:
                d["devices_present"] = list(impl.available_devices())
            except Exception as exc:  # a broken framework install is a status, not a crash
                d["available"], d["reason"] = False, f"import failed: {type(exc).__name__}: {exc}"
                d["devices_present"] = []
        else:
            d["devices_present"] = []
        entries.append(d)
    if args.json:
        json.dump(entries, sys.stdout, indent=2)
        print()
        return 0
    rows = [("name", "family", "ops", "dtypes", "devices", "status")]
    for d in entries:
        status = "available" if d["available"] else f"unavailable ({d['reason']})"
        devices = ",".join(d["devices_present"] or d["devices"])
        dtypes = ",".join(x.replace("float", "f").replace("bf16", "bf16") for x in d["dtypes"])
        rows.append((d["name"], d["family"], ",".join(d["ops"]), dtypes, devices, status))
    _print_table(rows)
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def cmd_check(args: argparse.Namespace) -> int:
    from .check_run import CheckSelection, run_checks, summarize

    _load_plugins(args.plugin)
    sel = CheckSelection(impls=args.impl, ops=args.op, dtypes=args.dtype, cases=args.case,
                         devices=args.device, quick=args.quick, timeout_s=args.timeout)
    try:
        sel.validate()
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    records = run_checks(sel, progress=not args.no_progress)
    ok = summarize(records, sys.stdout)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([r.to_dict() for r in records], fh, indent=1)
        print(f"wrote {len(records)} records to {args.json}")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softgrad", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="every implementation with its ops, dtypes, devices and availability")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_plugins(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("check", help="check implementations against the oracle, properties and policies")
    p.add_argument("--impl", action="append", metavar="NAME", help="implementation (repeatable; default all available)")
    p.add_argument("--op", action="append", choices=OPS, help="op (repeatable; default all)")
    p.add_argument("--dtype", action="append", choices=DTYPES, help="dtype (repeatable; default all supported)")
    p.add_argument("--case", action="append", metavar="CASE", help="case from the catalogue (repeatable)")
    p.add_argument("--device", action="append", metavar="DEV", help="device (repeatable; default every present one)")
    p.add_argument("--quick", action="store_true", help="only the quick cases")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per-case time limit in seconds")
    p.add_argument("--json", metavar="PATH", help="write one record per (impl, op, dtype, case) as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    _add_plugins(p)
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"softgrad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"softgrad {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
