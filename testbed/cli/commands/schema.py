"""`testbed schema KIND`: print the JSON Schema of a file format or a run record (for editors, CI
and other tools reading runs)."""

from __future__ import annotations

import argparse
import sys

from testbed.schema import SCHEMA_KINDS, schema_text

NAME = "schema"
HELP = ("Print the JSON Schema of a file format (topology, scenario, profile, bench, sweep) or "
        "of a run record (results, manifest, events, alerts, actions, labels, flows)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=SCHEMA_KINDS)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text(args.kind))
    return 0
