"""`testbed plan`: Static analysis: what a worm from each launch pad can reach, and what stands in its way. (Placeholder until its issue lands.)"""

from __future__ import annotations

import argparse

from testbed.errors import TestbedError

NAME = "plan"
HELP = "Static analysis: what a worm from each launch pad can reach, and what stands in its way"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    raise TestbedError(f"'testbed {NAME}' is not built yet")
