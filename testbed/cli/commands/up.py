"""`testbed up`: Deploy a topology as an emulated network. (Placeholder until its issue lands.)"""

from __future__ import annotations

import argparse

from testbed.errors import TestbedError

NAME = "up"
HELP = "Deploy a topology as an emulated network"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    raise TestbedError(f"'testbed {NAME}' is not built yet")
