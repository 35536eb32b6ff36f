"""`testbed reach RUN`: measure reachability with real connections, compare with the policy.

Owns: the ``reach`` subcommand (presentation only; the engine is :mod:`testbed.reach`). Exit
status 1 when any measured result differs from ``testbed.policy.decide_flow``.
"""

from __future__ import annotations

import argparse
import json
import sys

NAME = "reach"
HELP = ("Probe every host's declared services from every other host for real; exit 1 if the "
        "network disagrees with the policy")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_name", metavar="RUN")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--all-results", action="store_true",
                        help="with --json: every probe, not only mismatches")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds before an unanswered probe counts as blocked (default 2)")
    parser.add_argument("--from", dest="sources", action="append", metavar="HOST",
                        help="probe only from these hosts (repeatable)")


def run(args: argparse.Namespace) -> int:
    from testbed.cli.commands.up import attach
    from testbed.reach import measure_reachability

    deployment = attach(args.run_name)
    if args.sources:
        unknown = [h for h in args.sources if h not in deployment.topology.hosts]
        if unknown:
            from testbed.errors import BackendError

            raise BackendError(f"unknown host(s) {', '.join(unknown)} in run {args.run_name!r}")
    progress_display = None
    if not args.json and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        progress_display = Progress(TextColumn("probing"), BarColumn(), MofNCompleteColumn(),
                                    console=Console(stderr=True), transient=True)
    if progress_display is not None:
        task = progress_display.add_task("probing", total=None)

        def tell(done: int, total: int) -> None:
            progress_display.update(task, completed=done, total=total)

        with progress_display:
            report = measure_reachability(deployment, timeout=args.timeout,
                                          sources=args.sources, progress=tell)
    else:
        report = measure_reachability(deployment, timeout=args.timeout, sources=args.sources)
    if args.json:
        json.dump(report.to_json(include_all=args.all_results), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0 if report.ok else 1
    data = report.to_json()
    print(f"run {args.run_name}: {data['probes']} probes in {data['seconds']:.1f} s; "
          f"{data['reachable']} reachable (policy says {data['expected_reachable']}); "
          f"{len(data['mismatches'])} mismatch{'es' if len(data['mismatches']) != 1 else ''}")
    if report.preexisting_listeners:
        print(f"note: {len(report.preexisting_listeners)} service ports were already served "
              "(e.g. by agents); those were probed as they are")
    for row in data["mismatches"][:200]:
        expected = "allowed" if row["expected"] else "blocked"
        measured = "reachable" if row["measured"] else "unreachable"
        print(f"  MISMATCH {row['source']} -> {row['target']} {row['address']}:{row['port']}/"
              f"{row['proto']}: policy {expected} ({row['reason']}), measured {measured} "
              f"({row['detail']})")
    if len(data["mismatches"]) > 200:
        print(f"  ... and {len(data['mismatches']) - 200} more (use --json)")
    return 0 if report.ok else 1
