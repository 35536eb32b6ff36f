"""`testbed sweep SWEEP.yaml`: a parameter grid over one scenario (worm and detector parameters,
reaction delays, generated topology sizes) x seeds, on the local or the Ray engine, with the
bench's leaderboard and statistics. Resumable: rerun the same command to continue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "sweep"
HELP = "Run a parameter sweep (see `testbed schema sweep`) and write a leaderboard"


def configure(parser: argparse.ArgumentParser) -> None:
    from testbed.cli.experiment_runner import add_engine_options

    parser.add_argument("sweep", metavar="SWEEP.yaml", help="sweep file (see `testbed schema "
                                                            "sweep`)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output directory (default runs/sweep-<name>-<fingerprint>/, so "
                             "the same command resumes)")
    parser.add_argument("--backend", help="run every cell on this backend (netns, docker, sim)")
    add_engine_options(parser)
    parser.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    parser.add_argument("--json", action="store_true", help="print the leaderboard as JSON")


def run(args: argparse.Namespace) -> int:
    from testbed.cli.experiment_runner import default_out, run_matrix
    from testbed.experiments import load_sweep, sweep_matrix

    spec, scenario = load_sweep(args.sweep)
    matrix = sweep_matrix(spec, scenario, args.backend)
    if args.dry_run:
        for job in matrix.jobs:
            cell = job.cell
            print(f"{cell.scenario}\t{cell.detector_set}\t{cell.profile}\tseed {cell.seed}"
                  f"\t{job.backend}")
        print(f"{len(matrix.jobs)} runs", file=sys.stderr)
        return 0
    return run_matrix(matrix, args.out or default_out("sweep", matrix), args)
