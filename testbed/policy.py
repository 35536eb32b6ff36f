"""What the policy allows: the single reference semantics of segmentation in the testbed.

Owns: deciding whether a new flow (source host, destination address, port, protocol) is allowed
by the topology's routers and host firewalls, plus the run-time containment state (quarantined
hosts, blocks). The planner, ``testbed reach``, backends' policy compilers (which must agree with
it: tests compare them) and the scorer all use this module.

Semantics, in order, for a new flow from host S to address D:
1. S or the host at D is quarantined: dropped.
2. A block matching (S, D, port, proto) exists: dropped.
3. D on S's segment: no router is crossed. Otherwise the routers on the shortest segment path are
   crossed in order; each applies its rules (first match wins, else its default). No path: dropped.
4. If D is a host with a firewall, its inbound rules apply (first match, else its default).
A router's own interface addresses accept no new connections.
Return traffic of an allowed flow is always allowed (the firewalls are stateful).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from testbed.model.topology import Host, Topology

__all__ = ["Block", "ContainmentState", "Verdict", "decide_flow", "host_can_reach_service"]


@dataclass(frozen=True)
class Block:
    """Drop new flows from ``source`` to ``destination`` (host names, addresses, CIDRs or 'any')."""

    source: str = "any"
    destination: str = "any"
    port: int | None = None
    proto: str = "any"

    def matches(self, topology: Topology, source: Host, destination: ipaddress.IPv4Address,
                port: int | None, proto: str) -> bool:
        if self.proto != "any" and self.proto != proto:
            return False
        if self.port is not None and port != self.port:
            return False
        return (_endpoint_matches(topology, self.source, source.ip)
                and _endpoint_matches(topology, self.destination, destination))


def _endpoint_matches(topology: Topology, endpoint: str, address: ipaddress.IPv4Address) -> bool:
    if endpoint == "any":
        return True
    if endpoint in topology.hosts:
        return topology.hosts[endpoint].ip == address
    return address in ipaddress.IPv4Network(endpoint, strict=False)


@dataclass
class ContainmentState:
    """Containment applied at run time on top of the topology's policy."""

    quarantined: set[str] = field(default_factory=set)
    blocks: list[Block] = field(default_factory=list)
    rate_limited: dict[str, float] = field(default_factory=dict)  # host -> new flows per second

    def copy(self) -> ContainmentState:
        return ContainmentState(set(self.quarantined), list(self.blocks), dict(self.rate_limited))


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str  # human explanation: which rule or state decided
    routers: tuple[str, ...] = ()  # routers on the path, in crossing order (even if one denies)

    def __bool__(self) -> bool:
        return self.allowed


def decide_flow(topology: Topology, source: Host, destination: ipaddress.IPv4Address | str,
                port: int | None, proto: str,
                state: ContainmentState | None = None) -> Verdict:
    """Whether a new flow from ``source`` to ``destination`` is allowed, and why."""
    if not isinstance(destination, ipaddress.IPv4Address):  # the sim passes parsed addresses
        destination = ipaddress.IPv4Address(destination)
    target = topology.host_by_ip.get(destination)
    if state is not None:
        if source.name in state.quarantined:
            return Verdict(False, f"{source.name} is quarantined")
        if target is not None and target.name in state.quarantined:
            return Verdict(False, f"{target.name} is quarantined")
        for block in state.blocks:
            if block.matches(topology, source, destination, port, proto):
                return Verdict(False, f"blocked: {block.source} -> {block.destination}"
                                      f" {block.proto}/{block.port or 'any'}")
    for router in topology.routers.values():
        if destination in router.interfaces.values():
            return Verdict(False, f"{destination} is router {router.name}'s own address; "
                                  "routers accept no new connections")
    destination_segment = next((s.name for s in topology.segments.values()
                                if destination in s.cidr), None)
    if destination_segment is None:
        return Verdict(False, f"{destination} is outside the topology")
    path = topology.router_paths[(source.segment, destination_segment)]
    if path is None:
        return Verdict(False, f"no route from {source.segment} to {destination_segment}")
    for router_name in path:
        action, rule = topology.routers[router_name].decide(source.ip, destination, port, proto)
        if action == "deny":
            why = rule.describe() if rule else "default deny"
            return Verdict(False, f"{router_name} denies ({why})", path)
    if target is not None and not target.firewall.is_open:
        action = target.firewall.default
        decided = "default " + action
        for rule in target.firewall.rules:
            if rule.matches(source.ip, destination, port, proto):
                action, decided = rule.action, rule.describe()
                break
        if action == "deny":
            return Verdict(False, f"{target.name}'s host firewall denies ({decided})", path)
    via = f" via {', '.join(path)}" if path else " on the same segment"
    return Verdict(True, f"allowed{via}", path)


def host_can_reach_service(topology: Topology, source: Host, target: Host,
                           ports: Iterable[tuple[int, str]],
                           state: ContainmentState | None = None) -> bool:
    return any(decide_flow(topology, source, target.ip, port, proto, state)
               for port, proto in ports)
