"""`testbed status [RUN]`: the runs deployed on this machine, or one run's hosts.

Owns: presenting ``Backend.runs()`` of every backend (and one run's nodes). Read-only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from testbed.backends import BACKENDS, get_backend
from testbed.backends.base import RunInfo
from testbed.errors import TestbedError

NAME = "status"
HELP = "List deployed runs (or, with RUN, that run's hosts and addresses)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_name", nargs="?", metavar="RUN", help="show one run's hosts")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def all_runs() -> list[RunInfo]:
    runs: list[RunInfo] = []
    for name in BACKENDS.names():
        try:
            runs.extend(get_backend(name).runs())
        except (ImportError, TestbedError):
            continue  # a backend that is not installed here has no runs to show
    return sorted(runs, key=lambda info: info.created)


def _run_rows(runs: list[RunInfo]) -> list[dict[str, Any]]:
    return [{"name": r.name, "backend": r.backend, "topology": r.topology, "hosts": r.hosts,
             "created": r.created, "pid": r.pid, "deployer_alive": r.alive} for r in runs]


def _show_run(run_name: str, as_json: bool) -> int:
    from testbed.cli.commands.up import attach

    deployment = attach(run_name)
    topology = deployment.topology
    nodes = [{"name": h.name, "kind": "host", "segment": h.segment, "address": str(h.ip),
              "netns": os.path.basename(deployment.netns_path(h.name))}
             for h in topology.hosts.values()]
    nodes += [{"name": r.name, "kind": "router", "segment": ",".join(r.interfaces),
               "address": ",".join(str(a) for a in r.interfaces.values()),
               "netns": os.path.basename(deployment.netns_path(r.name))}
              for r in topology.routers.values()]
    containment = deployment.containment()
    if as_json:
        json.dump({"run": run_name, "topology": topology.name, "nodes": nodes,
                   "quarantined": sorted(containment.quarantined),
                   "blocks": [b.__dict__ for b in containment.blocks],
                   "rate_limited": containment.rate_limited}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"run {run_name} ({topology.name})")
    for column in ("name", "kind", "segment", "address", "netns"):
        table.add_column(column)
    for node in nodes:
        table.add_row(*(str(node[c] or "") for c in ("name", "kind", "segment", "address",
                                                        "netns")))
    Console().print(table)
    if containment.quarantined or containment.blocks or containment.rate_limited:
        print(f"quarantined: {', '.join(sorted(containment.quarantined)) or '-'}; "
              f"blocks: {len(containment.blocks)}; rate limits: {len(containment.rate_limited)}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.run_name:
        return _show_run(args.run_name, args.json)
    runs = all_runs()
    if args.json:
        json.dump(_run_rows(runs), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not runs:
        print("no runs deployed on this machine")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("run", "backend", "topology", "hosts", "created", "deployer"):
        table.add_column(column)
    for info in runs:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.created))
        deployer = f"{info.pid} ({'running' if info.alive else 'exited'})" if info.pid else "-"
        table.add_row(info.name, info.backend, info.topology, str(info.hosts), created, deployer)
    Console().print(table)
    return 0
