"""`testbed schema KIND`: print the JSON Schema of a file format (for editors and CI)."""

from __future__ import annotations

import argparse
import sys

from testbed.schema import SCHEMA_KINDS, schema_text

NAME = "schema"
HELP = "Print the JSON Schema of the topology, scenario or profile format"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=SCHEMA_KINDS)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text(args.kind))
    return 0
