"""`testbed plan TOPOLOGY`: static analysis of what a worm from each launch pad can reach.

Owns: the command line of the planner (arguments, JSON vs human output). The analysis lives in
``testbed.planner`` (pure), the tables in ``testbed.planner.render``. Exits 0 whatever the verdict
(it is an analysis); an invalid topology raises ValidationError, which the CLI maps to exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from testbed.model import load_topology
from testbed.planner import DEFAULT_SCANS_ALLOWED, plan

NAME = "plan"
HELP = "Static analysis: what a worm from each launch pad can reach, and what stands in its way"


def _scans(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    parser.add_argument("--json", action="store_true",
                        help="machine-readable output (shape: docs/planner-json.md, "
                             "schema_version 1)")
    parser.add_argument("--scans-allowed", type=_scans, default=DEFAULT_SCANS_ALLOWED,
                        metavar="N",
                        help="scans a detector lets through before it blocks a source, for the "
                             f"R0 estimates (default {DEFAULT_SCANS_ALLOWED}: where TRW decides "
                             "when every first contact fails)")


def run(args: argparse.Namespace) -> int:
    topology = load_topology(args.topology, display_name=args.topology)
    result = plan(topology, scans_allowed=args.scans_allowed)
    if args.json:
        # Compact: a campus plan is megabytes, and the C encoder only runs without indent.
        sys.stdout.write(json.dumps(result.to_json(), separators=(",", ":")) + "\n")
        return 0
    from testbed.planner.render import render_plan

    render_plan(result)
    return 0
