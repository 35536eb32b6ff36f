"""`testbed bench BENCH.yaml`: run a matrix of scenarios x detector sets x worm profiles x
seeds on the local engine (one after another) or on Ray (``--engine ray``), and write a
leaderboard (CSV, Markdown, HTML) with the statistics of ``testbed.bench.leaderboard``.

An interrupted bench resumes: rerun the same command; finished cells are not run again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "bench"
HELP = "Run a benchmark matrix and write a leaderboard"


def configure(parser: argparse.ArgumentParser) -> None:
    from testbed.cli.experiment_runner import add_engine_options

    parser.add_argument("bench", metavar="BENCH.yaml", help="bench file (see `testbed schema "
                                                            "bench`)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output directory (default runs/bench-<name>-<fingerprint>/, so the "
                             "same command resumes); give an existing one to resume")
    parser.add_argument("--backend", help="run every cell on this backend (netns, docker, sim; "
                                          "overrides the bench file's and the scenarios')")
    add_engine_options(parser)
    parser.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    parser.add_argument("--json", action="store_true", help="print the leaderboard as JSON")


def run(args: argparse.Namespace) -> int:
    from testbed.bench import load_bench, with_backend

    bench = load_bench(args.bench)
    if args.backend is not None:
        bench = with_backend(bench, args.backend)
    cells = bench.cells()
    if args.dry_run:
        for cell in cells:
            print(f"{cell.scenario}\t{cell.detector_set}\t{cell.profile}\tseed {cell.seed}")
        print(f"{len(cells)} runs", file=sys.stderr)
        return 0
    from testbed.cli.experiment_runner import default_out, run_matrix
    from testbed.experiments import bench_matrix

    matrix = bench_matrix(bench)
    return run_matrix(matrix, args.out or default_out("bench", matrix), args)
