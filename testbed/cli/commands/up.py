"""`testbed up TOPOLOGY`: deploy a topology as an emulated network that stays up.

Owns: the ``up`` subcommand and the small helpers the run-management commands share (a rich
progress display fed by backends' ``progress(stage, done, total)`` callbacks, attaching to a run
by name). The network stays up after the command exits; ``testbed down RUN`` removes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from testbed.backends import BACKENDS, get_backend
from testbed.backends.base import Deployment, Progress
from testbed.backends.ledger import backend_of_run, check_run_name, run_directory

NAME = "up"
HELP = "Deploy a topology as an emulated network (it stays up until `testbed down RUN`)"

STAGE_LABELS = {"namespaces": "namespaces", "containers": "containers",
                "fabric": "bridges and veths", "nodes": "addresses, routes, nftables",
                "policy": "fabric policy", "processes": "stopping processes",
                "containers-down": "removing containers", "counters": "reading counters"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    parser.add_argument("--backend", default="netns", choices=BACKENDS.names(),
                        help="how to emulate the network (default: netns)")
    parser.add_argument("--name", metavar="RUN",
                        help="run name (default: the topology's name, made unique)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")


@contextmanager
def stage_progress(enabled: bool = True) -> Iterator[Progress | None]:
    """A rich progress display on stderr; yields the callback backends call (or None)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    display = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                       console=Console(stderr=True), transient=True)
    tasks: dict[str, Any] = {}

    def callback(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = display.add_task(STAGE_LABELS.get(stage, stage), total=total or 1)
        display.update(tasks[stage], completed=done, total=total or 1)

    with display:
        yield callback


def default_run_name(topology_name: str) -> str:
    base = check_run_name(topology_name[:56] or "run")
    if not run_directory(base).joinpath("ledger.json").exists():
        return base
    for number in range(2, 1000):
        candidate = f"{base}-{number}"
        if not run_directory(candidate).joinpath("ledger.json").exists():
            return candidate
    return f"{base}-{int(time.time())}"


def attach(run_name: str) -> Deployment:
    """A handle on a run deployed by any backend on this machine."""
    deployment: Deployment = get_backend(backend_of_run(run_name)).attach(run_name)
    return deployment


def run(args: argparse.Namespace) -> int:
    from testbed.model import load_topology

    topology = load_topology(args.topology)  # invalid input: InputError, nothing deployed
    name = args.name or default_run_name(topology.name)
    backend = get_backend(args.backend)
    started = time.perf_counter()
    with stage_progress(not args.quiet and not args.json) as progress:
        deployment = backend.deploy(topology, name, progress=progress, agents=False)
    seconds = time.perf_counter() - started
    summary = {"run": name, "backend": args.backend, "topology": topology.name,
               "hosts": len(topology.hosts), "routers": len(topology.routers),
               "segments": len(topology.segments), "seconds": round(seconds, 3),
               "state_dir": str(deployment.state_dir)}
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"run {name!r} is up: {len(topology.hosts)} hosts, {len(topology.routers)} routers, "
              f"{len(topology.segments)} segments ({args.backend}, {seconds:.2f} s)")
        print(f"  try: testbed exec {name} {next(iter(topology.hosts))} -- ip addr")
        print(f"       testbed reach {name}")
        print(f"       testbed down {name}")
    return 0
