"""`testbed dataset BENCH.yaml --out DIR`: run a bench matrix with pcaps and package it as a
labelled data set (pcaps, labels.csv/.parquet, datasheet). The work is ``testbed.dataset``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "dataset"
HELP = "Run a bench matrix with pcaps and write a labelled data set (pcaps, labels, datasheet)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bench", metavar="BENCH.yaml",
                        help="bench file: scenarios x detector sets x profiles x seeds")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the data-set folder (an interrupted build resumes in it)")


def run(args: argparse.Namespace) -> int:
    from testbed.bench import BenchCell, BenchRow, load_bench
    from testbed.dataset import build_dataset

    bench = load_bench(args.bench)

    def progress(done: int, total: int, cell: BenchCell, row: BenchRow | None) -> None:
        if row is None:
            sys.stderr.write(f"[{done + 1}/{total}] {cell.scenario} {cell.detector_set} "
                             f"{cell.profile} seed {cell.seed}\n")

    sheet = build_dataset(bench, args.out, progress=progress)
    counts = ", ".join(f"{k} {v}" for k, v in sheet["labels"].items() if v)
    sys.stdout.write(f"{args.out}: {len(sheet['runs'])} runs, {sheet['flows']} flows "
                     f"({counts}); see {args.out / 'datasheet.md'}\n")
    return 0
