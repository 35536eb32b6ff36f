"""`testbed bench BENCH.yaml`: run a matrix of scenarios x detector sets x worm profiles x
seeds, one run after another, and write a leaderboard (CSV, Markdown, HTML) with medians and IQR.

An interrupted bench resumes: cells whose run already has results.json are not run again.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

NAME = "bench"
HELP = "Run a benchmark matrix and write a leaderboard"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bench", metavar="BENCH.yaml", help="bench file (see `testbed schema "
                                                            "bench`)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output directory (default runs/bench-<name>-<timestamp>/); "
                             "give an existing one to resume")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    parser.add_argument("--json", action="store_true", help="print the leaderboard as JSON")


def run(args: argparse.Namespace) -> int:
    from testbed.bench import BenchCell, BenchRow, leaderboard, load_bench, run_bench

    bench = load_bench(args.bench)
    cells = bench.cells()
    if args.dry_run:
        for cell in cells:
            print(f"{cell.scenario}\t{cell.detector_set}\t{cell.profile}\tseed {cell.seed}")
        print(f"{len(cells)} runs", file=sys.stderr)
        return 0
    out = args.out or Path("runs") / (f"bench-{bench.spec.name}-"
                                      f"{datetime.now().strftime('%Y%m%d-%H%M%S')}")

    def progress(done: int, total: int, cell: BenchCell, row: BenchRow | None) -> None:
        label = f"[{done if row else done + 1}/{total}] {cell.scenario} / {cell.detector_set} / " \
                f"{cell.profile} / seed {cell.seed}"
        if row is None:
            sys.stderr.write(f"{label} ...\n")
        else:
            sys.stderr.write(f"{label}: grade {row.grade}, infected {row.infected_total}, "
                             f"detect {row.time_to_first_detection_s}, contain "
                             f"{row.time_to_containment_s}\n")
        sys.stderr.flush()

    rows, paths = run_bench(bench, out, progress=progress)
    if args.json:
        json.dump(leaderboard(rows), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(paths["markdown"].read_text(encoding="utf-8"))
    for kind in ("csv", "markdown", "html", "runs"):
        print(f"{kind:9s} {paths[kind]}")
    return 0
