"""`testbed release RUN HOST`: undo a quarantine of HOST, on a live run.

The action is logged to the run's actions.jsonl with cause {"manual": user} and scored exactly
like an automatic one.
"""

from __future__ import annotations

import argparse

from testbed.actions import Action
from testbed.cli.commands.quarantine import add_common, report

NAME = "release"
HELP = "Release a quarantined host of a live run"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run name (see `testbed status`)")
    parser.add_argument("host", metavar="HOST", help="host name in the run's topology")
    add_common(parser)


def run(args: argparse.Namespace) -> int:
    from testbed.runner.manual import manual_action

    record = manual_action(args.run, Action(kind="release", target=args.host),
                           backend=args.backend, user=args.user)
    return report(args, record)
