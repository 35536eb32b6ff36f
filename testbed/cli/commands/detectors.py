"""`testbed detectors`: list the registered detectors (built-in and installed plug-ins, with the
package each comes from), their defaults and references."""

from __future__ import annotations

import argparse
import json
import sys

from detectors.registry import describe_detector, detector_names

NAME = "detectors"
HELP = ("List the detectors (built-in and installed plug-ins, with their package), their "
        "default parameters and references")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these detectors")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--plugins", action="store_true",
                        help="list every installed plug-in instead (detectors, profiles, "
                             "responders, backends) with its package and entry point")


def _list_plugins(as_json: bool) -> int:
    from testbed.registry import PLUGIN_GROUPS, installed_plugins

    found = [info for kind in PLUGIN_GROUPS for info in installed_plugins(kind)]
    if as_json:
        json.dump([{"kind": i.kind, "group": PLUGIN_GROUPS[i.kind], "name": i.name,
                    "target": i.target, "package": i.package, "version": i.version}
                   for i in found], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for info in found:
        sys.stdout.write(f"{PLUGIN_GROUPS[info.kind]:20} {info.name:16} {info.origin:28} "
                         f"{info.target}\n")
    if not found:
        sys.stdout.write("no plug-ins installed (entry-point groups: "
                         f"{', '.join(PLUGIN_GROUPS.values())})\n")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.plugins:
        return _list_plugins(args.json)
    described = [describe_detector(name) for name in (args.names or detector_names())]
    if args.json:
        json.dump(described, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Detectors", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("package")
    table.add_column("what it does")
    table.add_column("defaults")
    table.add_column("references")
    for item in described:
        defaults = "\n".join(f"{k} = {v!r}" for k, v in item["parameters"].items())
        table.add_row(item["name"], item["package"], item["summary"], defaults,
                      "\n".join(item["references"]))
    Console().print(table)
    return 0
