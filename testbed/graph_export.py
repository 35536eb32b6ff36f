"""Graph export: a topology and its attack graph as DOT, GraphML, Mermaid or JSON.

Owns: ``topology_graph(topology, attack=True)`` (one networkx ``MultiDiGraph``: segment, host
and router nodes; ``attached`` edges from each host to its segment, ``interface`` edges from each
router to its segments; with ``attack``, the planner's attack edges host -> host, each with the
exploits the source may reach on the target and the routers crossed) and ``export(graph,
fmt)`` for the formats other tools read: Graphviz ``dot``, ``graphml`` (Gephi, yEd, Cytoscape),
``mermaid`` (Markdown), ``json`` (``{"nodes": [...], "edges": [...]}``). The attack graph is
``testbed.planner.plan``'s, so ``testbed plan`` and the export agree.

Must not touch: the system (pure functions of a resolved topology).
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import networkx as nx

from testbed.model.topology import Topology

__all__ = ["FORMATS", "export", "topology_graph"]

FORMATS = ("dot", "graphml", "mermaid", "json")


def topology_graph(topology: Topology, *, attack: bool = True) -> nx.MultiDiGraph:
    """The topology (and, with ``attack``, its attack edges) as one graph."""
    graph = nx.MultiDiGraph(name=topology.name)
    for segment in topology.segments.values():
        graph.add_node(f"segment:{segment.name}", kind="segment", label=segment.name,
                       cidr=str(segment.cidr), zone=segment.zone or "")
    for host in topology.hosts.values():
        graph.add_node(host.name, kind="host", label=host.name, segment=host.segment,
                       ip=str(host.ip), tier=str(getattr(host.tier, "value", host.tier)),
                       value=float(host.value),
                       services=",".join(f"{s.name}/{s.port}" for s in host.services))
        graph.add_edge(host.name, f"segment:{host.segment}", kind="attached")
    for router in topology.routers.values():
        graph.add_node(f"router:{router.name}", kind="router", label=router.name,
                       default=router.default)
        for segment_name, address in router.interfaces.items():
            graph.add_edge(f"router:{router.name}", f"segment:{segment_name}",
                           kind="interface", ip=str(address))
    if attack:
        from testbed.planner import plan

        attack_graph = plan(topology).attack_graph
        for source, target, data in attack_graph.edges(data=True):
            graph.add_edge(source, target, kind="attack",
                           exploits=",".join(e.id for e in data["exploits"]),
                           routers=",".join(data["routers"]))
    return graph


def _json(graph: nx.MultiDiGraph) -> str:
    document = {
        "topology": graph.graph.get("name", ""),
        "nodes": [{"id": node, **data} for node, data in graph.nodes(data=True)],
        "edges": [{"from": a, "to": b, **data} for a, b, data in graph.edges(data=True)],
    }
    return json.dumps(document, indent=2) + "\n"


def _graphml(graph: nx.MultiDiGraph) -> str:
    stream = io.BytesIO()
    nx.write_graphml(graph, stream, encoding="utf-8")
    return stream.getvalue().decode("utf-8")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_DOT_SHAPES = {"segment": "box", "host": "ellipse", "router": "diamond"}


def _dot(graph: nx.MultiDiGraph) -> str:
    lines = [f"digraph {_quote(str(graph.graph.get('name', 'topology')))} {{",
             "  rankdir=LR;"]
    for node, data in graph.nodes(data=True):
        detail = data.get("cidr") or data.get("ip") or ""
        label = data["label"] + (f"\n{detail}" if detail else "")
        lines.append(f"  {_quote(node)} [shape={_DOT_SHAPES[data['kind']]}, "
                     f"label={_quote(label)}, kind={_quote(data['kind'])}];")
    for a, b, data in graph.edges(data=True):
        if data["kind"] == "attack":
            lines.append(f"  {_quote(a)} -> {_quote(b)} [kind=attack, color=red, "
                         f"style=dashed, label={_quote(data['exploits'])}];")
        else:
            lines.append(f"  {_quote(a)} -> {_quote(b)} [kind={data['kind']}, dir=none];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_id(node: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", node)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "'")


def _mermaid(graph: nx.MultiDiGraph) -> str:
    lines = ["flowchart LR"]
    by_segment: dict[str, list[str]] = {}
    for node, data in graph.nodes(data=True):
        if data["kind"] == "host":
            by_segment.setdefault(data["segment"], []).append(node)
    for node, data in graph.nodes(data=True):
        if data["kind"] == "segment":
            name = data["label"]
            lines.append(f'  subgraph {_mermaid_id(node)}["{_mermaid_text(name)} '
                         f'{data["cidr"]}"]')
            for host in by_segment.get(name, []):
                host_data = graph.nodes[host]
                lines.append(f'    {_mermaid_id(host)}["{_mermaid_text(host)}<br/>'
                             f'{host_data["ip"]}"]')
            lines.append("  end")
        elif data["kind"] == "router":
            lines.append(f'  {_mermaid_id(node)}{{"{_mermaid_text(data["label"])}"}}')
    for a, b, data in graph.edges(data=True):
        if data["kind"] == "interface":
            lines.append(f"  {_mermaid_id(a)} --- {_mermaid_id(b)}")
        elif data["kind"] == "attack":
            label = _mermaid_text(data["exploits"]) or "attack"
            lines.append(f'  {_mermaid_id(a)} -. "{label}" .-> {_mermaid_id(b)}')
    return "\n".join(lines) + "\n"


def export(graph: nx.MultiDiGraph, fmt: str) -> str:
    """``graph`` in one of ``FORMATS``."""
    writers: dict[str, Any] = {"dot": _dot, "graphml": _graphml, "mermaid": _mermaid,
                               "json": _json}
    return str(writers[fmt](graph))
