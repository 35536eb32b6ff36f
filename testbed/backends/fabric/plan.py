"""The wiring plan: every kernel object name, index, address and route of a deployment, as data.

Owns: the short per-run naming scheme and its mapping to topology names (stored in the ledger),
computed once from a Topology and a run prefix. Pure: nothing here touches the system. Every node
runtime uses the same plan (a docker node's container is named like its namespace).

Naming (interface names have at most 15 characters)::

    prefix           "t" + 4 random base-36 characters, e.g. "tk3q9"
    fabric netns     <prefix>_fabric          (holds every bridge and every fabric-side veth end)
    node netns       <prefix>-<host or router name>   (also the container name, docker)
    bridge           <prefix>s<segment index>             e.g. tk3q9s2
    host port        <prefix>h<host index>                e.g. tk3q9h199  (fabric side)
    router port      <prefix>r<router index>x<interface>  e.g. tk3q9r1x0  (fabric side)
    node interface   <prefix>-eth<interface>              e.g. tk3q9-eth0 (inside the node)
    nft tables       testbed_<prefix>                     (in every node and in the fabric)
"""

from __future__ import annotations

import ipaddress
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from testbed.model.topology import Topology

__all__ = ["BridgePlan", "LinkPlan", "NodePlan", "WiringPlan", "neighbour_entries", "new_prefix",
           "segment_nodes"]

PREFIX_ALPHABET = string.ascii_lowercase + string.digits
IFNAMSIZ = 15
NODE_IFINDEX_BASE = 10  # interfaces inside a node get fixed indexes: no lookups when configuring


def new_prefix() -> str:
    return "t" + "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(4))


@dataclass(frozen=True)
class LinkPlan:
    """One veth pair: a node's interface on a segment, and its port on the segment's bridge."""

    segment: str
    interface: str  # name inside the node
    index: int  # ifindex inside the node
    port: str  # name of the fabric end (a bridge port)
    port_index: int  # ifindex of the fabric end
    address: str  # "10.0.1.5/24"


@dataclass(frozen=True)
class NodePlan:
    name: str
    kind: Literal["host", "router"]
    netns: str  # the node's namespace name under /run/netns (docker: also its container)
    links: tuple[LinkPlan, ...]
    routes: tuple[tuple[str, str], ...]  # (destination CIDR, gateway address)

    @property
    def forwarding(self) -> bool:
        return self.kind == "router"


@dataclass(frozen=True)
class BridgePlan:
    segment: str
    name: str
    index: int


@dataclass(frozen=True)
class WiringPlan:
    prefix: str
    fabric_netns: str
    table: str
    bridges: dict[str, BridgePlan]  # segment -> bridge
    nodes: dict[str, NodePlan]  # host or router name -> node (routers first, then hosts)

    # ---- building ---------------------------------------------------------------------------
    @classmethod
    def from_topology(cls, topology: Topology, prefix: str) -> WiringPlan:
        if not (prefix[:1].isalpha() and prefix.isalnum() and len(prefix) <= 6):
            raise ValueError(f"bad prefix {prefix!r}")
        next_index = iter(range(NODE_IFINDEX_BASE, 1 << 30))
        bridges = {name: BridgePlan(name, f"{prefix}s{i}", next(next_index))
                   for i, name in enumerate(topology.segments)}
        nodes: dict[str, NodePlan] = {}
        for r, router in enumerate(topology.routers.values()):
            links = tuple(
                LinkPlan(segment, f"{prefix}-eth{j}", NODE_IFINDEX_BASE + j, f"{prefix}r{r}x{j}",
                         next(next_index), _with_prefix(address, topology, segment))
                for j, (segment, address) in enumerate(router.interfaces.items()))
            routes = tuple((str(topology.segments[destination].cidr), str(gateway))
                           for destination, (_egress, gateway)
                           in topology.routes_for_router(router.name).items())
            nodes[router.name] = NodePlan(router.name, "router", f"{prefix}-{router.name}",
                                          links, routes)
        for h, host in enumerate(topology.hosts.values()):
            link = LinkPlan(host.segment, f"{prefix}-eth0", NODE_IFINDEX_BASE, f"{prefix}h{h}",
                            next(next_index), _with_prefix(host.ip, topology, host.segment))
            routes_list: list[tuple[str, str]] = []
            for destination, segment in topology.segments.items():
                hop = topology.next_hop(host.segment, destination)
                if hop is not None:
                    routes_list.append((str(segment.cidr), str(hop[1])))
            nodes[host.name] = NodePlan(host.name, "host", f"{prefix}-{host.name}", (link,),
                                        tuple(routes_list))
        plan = cls(prefix, f"{prefix}_fabric", f"testbed_{prefix}", bridges, nodes)
        plan.check_names()
        return plan

    def check_names(self) -> None:
        names = [b.name for b in self.bridges.values()]
        for node in self.nodes.values():
            for link in node.links:
                names += [link.interface, link.port]
        too_long = [n for n in names if len(n) > IFNAMSIZ]
        if too_long:
            raise ValueError(f"interface names longer than {IFNAMSIZ}: {too_long[:3]}")

    # ---- lookups -------------------------------------------------------------------------------
    @property
    def namespaces(self) -> list[str]:
        """Every namespace name of the run, fabric first."""
        return [self.fabric_netns, *(node.netns for node in self.nodes.values())]

    def neighbour_entries_needed(self, scan_margin: int = 64) -> int:
        """ARP entries the run may hold: every node knowing every other node on its segment,
        plus ``scan_margin`` unanswered look-ups per node (a worm probing unused addresses)."""
        per_segment: dict[str, int] = {}
        for node in self.nodes.values():
            for link in node.links:
                per_segment[link.segment] = per_segment.get(link.segment, 0) + 1
        return neighbour_entries(per_segment.values(), scan_margin)

    def bridge_of_segment(self) -> dict[str, str]:
        return {segment: bridge.name for segment, bridge in self.bridges.items()}

    def host_port(self, host: str) -> str:
        node = self.nodes[host]
        return node.links[0].port

    # ---- ledger form -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix, "fabric_netns": self.fabric_netns, "table": self.table,
            "bridges": {s: [b.name, b.index] for s, b in self.bridges.items()},
            "nodes": {name: {"kind": n.kind, "netns": n.netns,
                             "links": [[link.segment, link.interface, link.index, link.port,
                                        link.port_index, link.address] for link in n.links],
                             "routes": [list(route) for route in n.routes]}
                      for name, n in self.nodes.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WiringPlan:
        bridges = {segment: BridgePlan(segment, name, int(index))
                   for segment, (name, index) in data["bridges"].items()}
        nodes = {name: NodePlan(name, node["kind"], node["netns"],
                                tuple(LinkPlan(s, i, int(x), p, int(px), a)
                                      for s, i, x, p, px, a in node["links"]),
                                tuple((dst, gw) for dst, gw in node["routes"]))
                 for name, node in data["nodes"].items()}
        return cls(data["prefix"], data["fabric_netns"], data["table"], bridges, nodes)


def segment_nodes(topology: Topology) -> dict[str, int]:
    """Nodes (hosts and router interfaces) on each segment: what the plan links to each bridge."""
    counts = dict.fromkeys(topology.segments, 0)
    for host in topology.hosts.values():
        counts[host.segment] += 1
    for router in topology.routers.values():
        for segment in router.interfaces:
            counts[segment] += 1
    return counts


def neighbour_entries(segment_sizes: Iterable[int], scan_margin: int = 64) -> int:
    """The worst case of ARP entries for segments of these sizes (see
    ``WiringPlan.neighbour_entries_needed``)."""
    return sum(n * (n - 1) + n * scan_margin for n in segment_sizes)


def _with_prefix(address: ipaddress.IPv4Address, topology: Topology, segment: str) -> str:
    return f"{address}/{topology.segments[segment].cidr.prefixlen}"
