"""`testbed detectors`: List the registered detectors and their default parameters. (Placeholder until its issue lands.)"""

from __future__ import annotations

import argparse

from testbed.errors import TestbedError

NAME = "detectors"
HELP = "List the registered detectors and their default parameters"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    raise TestbedError(f"'testbed {NAME}' is not built yet")
