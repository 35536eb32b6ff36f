"""`testbed profiles`: list the worm profiles and their parameters."""

from __future__ import annotations

import argparse
import json
import sys

from testbed.model.profiles import profile_catalog

NAME = "profiles"
HELP = "List the worm profiles and their parameters"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    catalog = profile_catalog()
    if args.json:
        json.dump({name: p.model_dump() for name, p in catalog.items()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for name, profile in catalog.items():
        table = Table(title=f"{name}: {profile.description}", title_justify="left")
        for column in ("parameter", "default", "range / choices", "meaning"):
            table.add_column(column)
        for key, spec in profile.params.items():
            bounds = ", ".join(spec.choices) if spec.choices else (
                f"{spec.min:g} .. {spec.max:g}" if spec.min is not None and spec.max is not None
                else "")
            table.add_row(key, str(spec.default), bounds, spec.help)
        console.print(table)
    return 0
