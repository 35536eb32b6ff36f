"""`testbed reach`: Measure real reachability in a deployed run and compare it with the planner. (Placeholder until its issue lands.)"""

from __future__ import annotations

import argparse

from testbed.errors import TestbedError

NAME = "reach"
HELP = "Measure real reachability in a deployed run and compare it with the planner"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    raise TestbedError(f"'testbed {NAME}' is not built yet")
