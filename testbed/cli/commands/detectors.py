"""`testbed detectors`: list the registered detectors, their defaults and references."""

from __future__ import annotations

import argparse
import json
import sys

from detectors.registry import describe_detector, detector_names

NAME = "detectors"
HELP = "List the registered detectors, their default parameters and references"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these detectors")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    described = [describe_detector(name) for name in (args.names or detector_names())]
    if args.json:
        json.dump(described, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Detectors", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("what it does")
    table.add_column("defaults")
    table.add_column("references")
    for item in described:
        defaults = "\n".join(f"{k} = {v!r}" for k, v in item["parameters"].items())
        table.add_row(item["name"], item["summary"], defaults, "\n".join(item["references"]))
    Console().print(table)
    return 0
