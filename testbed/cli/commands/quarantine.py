"""`testbed quarantine`: Quarantine a host of a live run (rehearse as the defender). (Placeholder until its issue lands.)"""

from __future__ import annotations

import argparse

from testbed.errors import TestbedError

NAME = "quarantine"
HELP = "Quarantine a host of a live run (rehearse as the defender)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    raise TestbedError(f"'testbed {NAME}' is not built yet")
