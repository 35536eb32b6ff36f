"""`testbed block RUN SRC [DST] [--port P] [--proto tcp]`: drop new flows from SRC (to DST) on a
live run; `--undo` removes a matching block.

The action is logged to the run's actions.jsonl with cause {"manual": user} and scored exactly
like an automatic one.
"""

from __future__ import annotations

import argparse

from testbed.actions import Action
from testbed.cli.commands.quarantine import add_common, report

NAME = "block"
HELP = "Block flows from a host (to a host, CIDR or any) on a live run"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run name (see `testbed status`)")
    parser.add_argument("source", metavar="SRC", help="source host name")
    parser.add_argument("destination", metavar="DST", nargs="?", default="any",
                        help="destination host, CIDR or 'any' (default)")
    parser.add_argument("--port", type=int, help="only this destination port")
    parser.add_argument("--proto", choices=("tcp", "udp", "icmp", "any"), default="any")
    parser.add_argument("--undo", action="store_true", help="remove a matching block instead")
    add_common(parser)


def run(args: argparse.Namespace) -> int:
    from testbed.runner.manual import manual_action

    if args.port is not None and not 1 <= args.port <= 65535:
        raise SystemExit("testbed block: error: --port must be 1..65535")
    action = Action(kind="unblock" if args.undo else "block", target=args.source,
                    destination=args.destination, port=args.port, proto=args.proto)
    record = manual_action(args.run, action, backend=args.backend, user=args.user)
    return report(args, record)
