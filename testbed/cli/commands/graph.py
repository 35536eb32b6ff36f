"""`testbed graph TOPOLOGY --format dot|graphml|mermaid|json`: the topology and its attack graph
for other tools (Graphviz, Gephi/yEd/Cytoscape, Markdown, scripts). The work is
``testbed.graph_export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from testbed.graph_export import FORMATS, export, topology_graph

NAME = "graph"
HELP = "Export a topology and its attack graph as DOT, GraphML, Mermaid or JSON"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", metavar="TOPOLOGY",
                        help="topology YAML (or a scenario YAML: its topology)")
    parser.add_argument("--format", "-f", choices=FORMATS, default="dot")
    parser.add_argument("--no-attack", action="store_true",
                        help="the topology only, without the attack edges host -> host")
    parser.add_argument("--out", "-o", metavar="FILE", help="write here instead of stdout")


def run(args: argparse.Namespace) -> int:
    from testbed.model.load_topology import load_topology
    from testbed.yamlsource import load_yaml

    path = Path(args.topology)
    document = load_yaml(path)
    if isinstance(document.data, dict) and "worm" in document.data:  # a scenario
        from testbed.detection import load_scenario

        topology = load_scenario(path).topology
    else:
        topology = load_topology(path)
    text = export(topology_graph(topology, attack=not args.no_attack), args.format)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
