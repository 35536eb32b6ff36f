"""What ``testbed bench`` and ``testbed sweep`` share: the engine options (``--engine``,
``--ray-address``), the default resumable output directory, the progress bar, Ctrl-C, and the
closing list of failed cells.

Owns: ``add_engine_options`` and ``run_matrix``. Must not: know a bench from a sweep (both are a
``testbed.experiments.Matrix``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from testbed.experiments import Matrix, make_engine, run_experiment
from testbed.experiments.progress import ProgressBar

__all__ = ["add_engine_options", "default_out", "run_matrix"]


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: cells one after another in this process (default); ray: "
                             "one Ray task per cell, on an embedded Ray using every core, or "
                             "on a cluster with --ray-address / RAY_ADDRESS")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="join this Ray cluster (e.g. 10.0.0.5:6379 or auto) instead of "
                             "starting an embedded one; default $RAY_ADDRESS")


def default_out(kind: str, matrix: Matrix) -> Path:
    """``runs/<kind>-<name>-<fingerprint>/``: the same command with the same inputs finds the
    same directory (and resumes there); changed inputs get a new one."""
    return Path("runs") / f"{kind}-{matrix.name}-{matrix.fingerprint[:8]}"


def run_matrix(matrix: Matrix, out: Path, args: argparse.Namespace) -> int:
    """Run ``matrix`` into ``out`` on the chosen engine; print the leaderboard (or its JSON),
    the files, and every failed cell with its error. Exit 1 when a cell failed, 130 on Ctrl-C
    (finished cells are kept: rerun the same command to continue)."""
    engine = make_engine(args.engine, address=args.ray_address)
    progress = ProgressBar(len(matrix.jobs), stream=sys.stderr)
    try:
        with engine:
            sys.stderr.write(f"{matrix.title}: {len(matrix.jobs)} cells -> {out} on "
                             f"{engine.describe()}\n")
            outcome = run_experiment(matrix, out, engine, progress=progress)
    except KeyboardInterrupt:
        sys.stderr.write(f"\ninterrupted: {progress.done} of {len(matrix.jobs)} cells are "
                         f"kept in {out}; run the same command again to continue\n")
        return 130
    if args.json:
        data = json.loads(outcome.paths["json"].read_text(encoding="utf-8"))
        json.dump({"leaderboard": data["leaderboard"], "failed": outcome.failed},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(outcome.paths["markdown"].read_text(encoding="utf-8"))
        for kind in ("csv", "markdown", "html", "runs", "failed"):
            print(f"{kind:9s} {outcome.paths[kind]}")
    sys.stderr.write(f"{outcome.total - len(outcome.failed)} of {outcome.total} cells finished "
                     f"({outcome.ran} run now, the rest kept from before)\n")
    if outcome.failed:
        sys.stderr.write(f"{len(outcome.failed)} cell(s) FAILED (rerun the same command to "
                         "retry them):\n")
        for key, error in outcome.failed.items():
            sys.stderr.write(f"  {key}: {error}\n")
        return 1
    return 0
