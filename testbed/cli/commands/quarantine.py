"""`testbed quarantine RUN HOST`: cut HOST off (it reaches nobody, nobody reaches it) on a
live run. Also holds the output helpers of the other manual commands (release, block).

The action is logged to the run's actions.jsonl with cause {"manual": user} and scored exactly
like an automatic one.
"""

from __future__ import annotations

import argparse
import sys

from testbed.actions import Action, ActionRecord

NAME = "quarantine"
HELP = "Quarantine a host of a live run (rehearse as the defender)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run name (see `testbed status`)")
    parser.add_argument("host", metavar="HOST", help="host name in the run's topology")
    add_common(parser)


def run(args: argparse.Namespace) -> int:
    from testbed.runner.manual import manual_action

    record = manual_action(args.run, Action(kind="quarantine", target=args.host),
                           backend=args.backend, user=args.user)
    return report(args, record)


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", help="backend of the run (default: from the run's state)")
    parser.add_argument("--user", help="who acts (default: the login name); logged as the cause")
    parser.add_argument("--json", action="store_true", help="print the logged action as JSON")


def report(args: argparse.Namespace, record: ActionRecord) -> int:
    if args.json:
        sys.stdout.write(record.to_json_line())
    else:
        print(f"{record.action} {record.target}: enforced in {1000 * record.enforced_s:.1f} ms "
              f"(logged to the run's actions.jsonl, cause manual: {record.cause['manual']})")
    return 0
