"""The resolved topology: every host stamped, every address assigned, every name checked.

Owns: the frozen runtime model that planners, backends, agents and the scorer share, and the one
place where values resolve ``defaults < group < host``. Pure data: nothing here touches the system.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from testbed.model.spec import DEFAULT_PORTS, Tier

__all__ = [
    "Endpoint",
    "Host",
    "HostFirewall",
    "Router",
    "Rule",
    "Segment",
    "Service",
    "Topology",
]

Proto = Literal["tcp", "udp", "icmp", "any"]
Action = Literal["allow", "deny"]


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    proto: Literal["tcp", "udp"]
    banner: str
    vulns: tuple[str, ...] = ()

    @classmethod
    def make(cls, name: str, port: int | None = None, proto: str | None = None,
             banner: str | None = None, vulns: Iterable[str] = ()) -> Service:
        default_port, default_proto = DEFAULT_PORTS[name]
        return cls(name, port or default_port, proto or default_proto,  # type: ignore[arg-type]
                   banner or "", tuple(vulns))


@dataclass(frozen=True)
class Endpoint:
    """A resolved rule endpoint: the set of networks it matches, and how the user named it."""

    label: str
    networks: tuple[ipaddress.IPv4Network, ...]

    def contains(self, address: ipaddress.IPv4Address) -> bool:
        return any(address in network for network in self.networks)

    @property
    def is_any(self) -> bool:
        return self.label == "any"


@dataclass(frozen=True)
class Rule:
    """A resolved policy rule. ``ports`` is None for all ports; ranges are inclusive."""

    action: Action
    sources: tuple[Endpoint, ...]
    destinations: tuple[Endpoint, ...]
    ports: tuple[tuple[int, int], ...] | None
    proto: Proto
    index: int  # position in the rule list, for explanations
    description: str = ""

    def matches(self, source: ipaddress.IPv4Address, destination: ipaddress.IPv4Address,
                port: int | None, proto: str) -> bool:
        if self.proto != "any" and self.proto != proto:
            return False
        if self.ports is not None and proto != "icmp":
            if port is None or not any(low <= port <= high for low, high in self.ports):
                return False
        return (any(e.contains(source) for e in self.sources)
                and any(e.contains(destination) for e in self.destinations))

    def describe(self) -> str:
        ports = "any port" if self.ports is None else ",".join(
            str(a) if a == b else f"{a}-{b}" for a, b in self.ports)
        src = ",".join(e.label for e in self.sources)
        dst = ",".join(e.label for e in self.destinations)
        return f"rule {self.index + 1}: {self.action} {src} -> {dst} {self.proto}/{ports}"


@dataclass(frozen=True)
class HostFirewall:
    default: Action = "allow"
    rules: tuple[Rule, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.default == "allow" and not self.rules


@dataclass(frozen=True)
class Segment:
    name: str
    cidr: ipaddress.IPv4Network
    zone: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Host:
    name: str
    segment: str
    ip: ipaddress.IPv4Address
    tier: Tier
    value: float
    os: str = "linux"
    device: str = ""
    services: tuple[Service, ...] = ()
    trusts: tuple[str, ...] = ()
    patched: frozenset[str] | Literal[True] = frozenset()
    firewall: HostFirewall = field(default_factory=HostFirewall)
    group: str | None = None
    cpus: float | None = None
    memory_mb: int | None = None
    image: str | None = None
    description: str = ""

    def is_vulnerable_to(self, vuln: str) -> bool:
        return self.patched is not True and vuln not in self.patched

    def vulnerable_services(self) -> tuple[Service, ...]:
        """Services carrying at least one mock vulnerability this host has not patched."""
        return tuple(s for s in self.services if any(self.is_vulnerable_to(v) for v in s.vulns))

    @property
    def susceptible(self) -> bool:
        return bool(self.vulnerable_services())


@dataclass(frozen=True)
class Router:
    name: str
    interfaces: Mapping[str, ipaddress.IPv4Address]  # segment name -> address on it
    default: Action = "deny"
    rules: tuple[Rule, ...] = ()
    description: str = ""

    def decide(self, source: ipaddress.IPv4Address, destination: ipaddress.IPv4Address,
               port: int | None, proto: str) -> tuple[Action, Rule | None]:
        """First matching rule's action, or the default; with the rule that decided."""
        for rule in self.rules:
            if rule.matches(source, destination, port, proto):
                return rule.action, rule
        return self.default, None


@dataclass(frozen=True)
class Topology:
    """A fully resolved topology. Build it with ``testbed.model.load_topology``."""

    name: str
    description: str
    segments: Mapping[str, Segment]
    hosts: Mapping[str, Host]
    routers: Mapping[str, Router]
    groups: Mapping[str, tuple[str, ...]]  # group name -> member host names
    decoys: tuple[ipaddress.IPv4Address, ...] = ()
    source: str = ""  # the file it came from, for messages

    # ---- lookups -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str = "<dict>") -> Topology:
        """A topology from a mapping shaped like a topology YAML file, validated exactly as a
        file is (``ValidationError`` listing every problem; ``name`` labels the messages)."""
        import yaml

        from testbed.model.load_topology import topology_from_document
        from testbed.yamlsource import parse_yaml_text

        text = yaml.safe_dump(dict(data), sort_keys=False)
        return topology_from_document(parse_yaml_text(text, name))
    @cached_property
    def host_by_ip(self) -> dict[ipaddress.IPv4Address, Host]:
        return {host.ip: host for host in self.hosts.values()}

    @cached_property
    def cidrs(self) -> tuple[ipaddress.IPv4Network, ...]:
        """Every segment network: the whole address space of the topology."""
        return tuple(segment.cidr for segment in self.segments.values())

    def contains_address(self, address: ipaddress.IPv4Address | str) -> bool:
        address = ipaddress.IPv4Address(address)
        return any(address in network for network in self.cidrs)

    def hosts_in(self, segment: str) -> Iterator[Host]:
        return (h for h in self.hosts.values() if h.segment == segment)

    def hosts_of_tier(self, tier: Tier) -> list[Host]:
        return [h for h in self.hosts.values() if h.tier == tier]

    def routers_on(self, segment: str) -> list[Router]:
        return [r for r in self.routers.values() if segment in r.interfaces]

    @cached_property
    def used_addresses(self) -> frozenset[ipaddress.IPv4Address]:
        used = {h.ip for h in self.hosts.values()}
        for router in self.routers.values():
            used.update(router.interfaces.values())
        return frozenset(used)

    # ---- routing -------------------------------------------------------------------------
    @cached_property
    def segment_graph(self):  # type: ignore[no-untyped-def]
        """Bipartite networkx graph of segments ('s:NAME') and routers ('r:NAME')."""
        import networkx as nx

        graph = nx.Graph()
        for name in self.segments:
            graph.add_node(f"s:{name}", kind="segment")
        for router in self.routers.values():
            graph.add_node(f"r:{router.name}", kind="router")
            for segment in router.interfaces:
                graph.add_edge(f"r:{router.name}", f"s:{segment}")
        return graph

    @cached_property
    def router_paths(self) -> dict[tuple[str, str], tuple[str, ...] | None]:
        """Routers crossed from segment a to segment b (shortest path), None if no route.

        Deterministic: networkx's BFS with nodes added in file order.
        """
        import networkx as nx

        paths: dict[tuple[str, str], tuple[str, ...] | None] = {}
        graph = self.segment_graph
        for a in self.segments:
            lengths = nx.single_source_shortest_path(graph, f"s:{a}")
            for b in self.segments:
                if a == b:
                    paths[(a, b)] = ()
                    continue
                path = lengths.get(f"s:{b}")
                paths[(a, b)] = (None if path is None else
                                 tuple(node[2:] for node in path if node.startswith("r:")))
        return paths

    def next_hop(self, segment: str,
                 destination_segment: str) -> tuple[str, ipaddress.IPv4Address] | None:
        """The router (name, address on ``segment``) a host on ``segment`` sends to reach
        ``destination_segment``; None when on the same segment or unreachable."""
        path = self.router_paths.get((segment, destination_segment))
        if not path:
            return None
        router = self.routers[path[0]]
        return router.name, router.interfaces[segment]

    def routes_for_router(self, router_name: str) -> dict[str, tuple[str, ipaddress.IPv4Address]]:
        """For a router: destination segment -> (egress segment, next-hop address) for every
        segment it is not attached to and can reach."""
        router = self.routers[router_name]
        routes: dict[str, tuple[str, ipaddress.IPv4Address]] = {}
        import networkx as nx

        lengths = nx.single_source_shortest_path(self.segment_graph, f"r:{router_name}")
        for destination in self.segments:
            if destination in router.interfaces:
                continue
            path = lengths.get(f"s:{destination}")
            if path is None or len(path) < 4:
                continue
            # path: r:self, s:egress, r:next, s:... ; next hop = next router's address on egress
            egress, next_router = path[1][2:], path[2][2:]
            routes[destination] = (egress, self.routers[next_router].interfaces[egress])
        return routes
