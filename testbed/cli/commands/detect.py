"""`testbed detect FILE.pcap`: run detectors over any capture (offline mode).

Owns: the command line of offline detection: which detectors, parameter overrides, an optional
topology that gives the operator's inventory (host names, unused addresses for ``darknet``), and
the output (a table, or Suricata EVE JSON lines with ``--json``), and ``-`` for a capture on
standard input. The work is
``testbed.detection.run_offline``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from detectors.base import SensorContext
from detectors.registry import detector_names
from testbed.detection import DEFAULT_DETECTORS, run_offline
from testbed.errors import Diagnostic, InputError
from testbed.model.scenario_spec import DetectorSpec

NAME = "detect"
HELP = "Run detectors over a pcap/pcapng file, or standard input with '-' (offline mode)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pcap", metavar="FILE.pcap",
                        help="capture file (pcap or pcapng); '-' reads it from standard input "
                             "(tcpdump -w - | testbed detect -)")
    parser.add_argument("--detector", "-d", action="append", metavar="NAME", default=[],
                        help="detector to run (repeatable; 'all' for every registered one); "
                             f"default: {', '.join(DEFAULT_DETECTORS)}")
    parser.add_argument("--param", "-p", action="append", metavar="NAME.KEY=VALUE", default=[],
                        help="override a detector parameter, e.g. trw.theta1=0.1")
    parser.add_argument("--topology", "-t", metavar="FILE",
                        help="topology YAML: names hosts and tells darknet which addresses "
                             "are unused")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true",
                        help="EVE-style JSON lines, one alert a line")


def _parse_params(items: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    params: dict[str, dict[str, Any]] = {name: {} for name in names}
    for item in items:
        target, sep, raw_value = item.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not key:
            raise InputError(Diagnostic("--param", 0, 0, f"{item!r} is not NAME.KEY=VALUE",
                                        hint="e.g. --param trw.theta1=0.1"))
        if name not in params:
            raise InputError(Diagnostic("--param", 0, 0,
                                        f"detector {name!r} is not among those run "
                                        f"({', '.join(names)})",
                                        hint=f"add --detector {name}"))
        params[name][key] = yaml.safe_load(raw_value)
    return params


@contextmanager
def _capture(argument: str) -> Iterator[Path]:
    """The capture's path; ``-`` spools standard input to a temporary file first (the pcap
    reader and Suricata need a file they can open)."""
    if argument != "-":
        yield Path(argument)
        return
    with tempfile.TemporaryDirectory(prefix="testbed-detect-") as directory:
        spooled = Path(directory) / "stdin.pcap"
        with spooled.open("wb") as stream:
            shutil.copyfileobj(sys.stdin.buffer, stream, 1 << 20)
        if not spooled.stat().st_size:
            raise InputError(Diagnostic("-", 0, 0, "standard input held no capture",
                                        hint="pipe a pcap in: tcpdump -w - | testbed detect -"))
        yield spooled


def run(args: argparse.Namespace) -> int:
    names: list[str] = []
    for name in args.detector or DEFAULT_DETECTORS:
        for expanded in (detector_names() if name == "all" else [name]):
            if expanded not in names:
                names.append(expanded)
    params = _parse_params(args.param, names)
    specs = [DetectorSpec(name=name, params=params[name]) for name in names]
    context = SensorContext()
    if args.topology:
        from testbed.model.load_topology import load_topology

        context = SensorContext.from_topology(load_topology(args.topology))
    progress = None
    if not args.json and sys.stderr.isatty():
        def progress(count: int) -> None:
            sys.stderr.write(f"\r{count:,} events...")
            sys.stderr.flush()
    with _capture(args.pcap) as pcap:
        alerts = run_offline(pcap, specs=specs, context=context, seed=args.seed,
                             progress=progress)
    if progress is not None:
        sys.stderr.write("\r" + " " * 30 + "\r")
    sensor = "stdin" if args.pcap == "-" else Path(args.pcap).name  # EVE ``host``
    if args.json:
        for alert in alerts:
            sys.stdout.write(json.dumps(alert.to_record(clock_offset=0.0, sensor=sensor),
                                        sort_keys=True) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Alerts in {args.pcap}")
    for column in ("time (UTC)", "detector", "source", "sev", "reason"):
        table.add_column(column)
    for alert in alerts:
        record = alert.to_record(clock_offset=0.0)
        source = alert.src_ip + (f" ({alert.host})" if alert.host else "")
        table.add_row(record["timestamp"][11:26], alert.detector, source, str(alert.severity),
                      alert.reason)
    if alerts:
        console.print(table)
    counts = Counter(a.detector for a in alerts)
    summary = ", ".join(f"{name}: {counts.get(name, 0)}" for name in names)
    console.print(f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''} ({summary})")
    return 0
