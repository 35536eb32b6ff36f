"""The planner's analysis: a pure function from a resolved topology to a :class:`PlanResult`.

Owns: the segment-to-segment service matrix, the attack graph (networkx ``DiGraph``), blast radii
of launch pads, shortest pivot paths to crown jewels with explanations when there is none, and the
per-segment R0 estimates. Must not: evaluate policy rules itself (every "is this flow allowed"
comes from ``testbed.policy.decide_flow``), print anything, or touch the system.

Definitions (also in docs/planner-json.md):

- A host *a* can infect host *b* (edge a -> b of the attack graph) when ``decide_flow`` allows a new
  flow from *a* to at least one service of *b* carrying a mock vulnerability *b* has not patched.
  Trust relations (``trusts``) only steer which targets a worm tries first; they do not open any
  flow, so the planner ignores them.
- Blast radius of a launch pad: every host reachable from it in the attack graph (the launch pad is
  patient zero, so it need not be vulnerable itself).
- R0 of a segment, for a worm on the worst-placed host of that segment: ``scans_allowed`` (scans a
  scan-counting detector lets through before it blocks the source; 4 is where TRW decides when
  every first contact fails) times the expected infections per scan from that host. The worm
  carries one exploit per (vulnerability, service, port, proto) of the topology (its *arsenal*)
  and picks one per probe uniformly (every profile but ``adaptive``, whose bandit starts
  uniform), so a victim counts with the share of the arsenal that infects it through an allowed
  flow. ``r0_uniform`` divides by every address of every segment CIDR the host's segment has a
  route to (a scan with no route fails at connect() without a packet: no detector counts it and it
  cannot infect, so the counted scans all fall in routable space; what a uniformly scanning worm
  sees), ``r0_local`` counts only victims in the segment's own subnet (weighted the same way) and
  divides by that subnet's usable addresses (what a local-preference worm sees). When either is
  >= 1, containment by a scan-counting detector cannot hold there (Weaver, Staniford, Paxson
  2004).
"""

from __future__ import annotations

import ipaddress
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx

from testbed.errors import TestbedError
from testbed.model.spec import Tier
from testbed.model.topology import Endpoint, Host, Service, Topology
from testbed.policy import Verdict, decide_flow

__all__ = [
    "DEFAULT_SCANS_ALLOWED",
    "SCHEMA_VERSION",
    "Blocker",
    "Exploit",
    "FlowTable",
    "Hop",
    "JewelPath",
    "JewelVerdict",
    "LaunchPadReport",
    "PlanResult",
    "SegmentPair",
    "SegmentR0",
    "ServiceReach",
    "flow_verdicts",
    "plan",
]

SCHEMA_VERSION = 1
"""Version of the JSON shape produced by :meth:`PlanResult.to_json`; bumped on breaking change."""

DEFAULT_SCANS_ALLOWED = 4
"""Scans a detector lets through before blocking: TRW (Jung et al. 2004) flags a source whose
first contacts all fail at the 4th failure."""

Status = Literal["all", "some", "none", "n/a"]
Cause = Literal["reachable", "no-launch-pad", "no-vulnerable-service", "patched", "policy"]


# ---- flow table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlowTable:
    """``decide_flow``'s verdict for every (source host, target host, service of the target).

    Sources are grouped into classes that ``decide_flow`` cannot tell apart, and each class is
    asked once through a representative (see :func:`flow_verdicts`).
    """

    class_of: dict[str, int]  # host name -> class index
    representatives: tuple[Host, ...]  # class index -> the host whose flows were decided
    verdicts: dict[tuple[int, str], tuple[Verdict, ...]]  # (class, target) -> per target service

    def verdicts_for(self, source: str, target: str) -> tuple[Verdict, ...]:
        """Verdicts of flows from ``source`` to each service of ``target``, in service order."""
        return self.verdicts[(self.class_of[source], target)]

    @property
    def decisions(self) -> int:
        """How many times ``decide_flow`` was called to fill the table."""
        return sum(len(v) for v in self.verdicts.values())


def _rule_source_endpoints(topology: Topology) -> list[Endpoint]:
    endpoints: dict[Endpoint, None] = {}
    for router in topology.routers.values():
        for rule in router.rules:
            endpoints.update(dict.fromkeys(rule.sources))
    for host in topology.hosts.values():
        for rule in host.firewall.rules:
            endpoints.update(dict.fromkeys(rule.sources))
    return list(endpoints)


def flow_verdicts(topology: Topology, *, group_sources: bool = True) -> FlowTable:
    """Ask ``decide_flow`` about every flow from a host to a service of another host.

    With ``group_sources`` (the default), hosts on the same segment whose address falls inside
    exactly the same rule source endpoints (segments, groups, hosts, CIDRs named in any ``from``)
    form one class, and the flows of one representative stand for all: ``decide_flow`` (without
    run-time containment state) sees a source only through its segment (the router path) and its
    address as matched by rules' source endpoints, and its verdicts never name the source. So the
    cache is exact even when rules name single hosts. ``group_sources=False`` asks for every host:
    tests compare both.
    """
    endpoints = _rule_source_endpoints(topology) if group_sources else []
    class_index: dict[tuple[Any, ...], int] = {}
    class_of: dict[str, int] = {}
    representatives: list[Host] = []
    for host in topology.hosts.values():
        key: tuple[Any, ...] = (
            (host.segment, tuple(endpoint.contains(host.ip) for endpoint in endpoints))
            if group_sources else (host.name,))
        if key not in class_index:
            class_index[key] = len(representatives)
            representatives.append(host)
        class_of[host.name] = class_index[key]
    verdicts: dict[tuple[int, str], tuple[Verdict, ...]] = {}
    for index, source in enumerate(representatives):
        for target in topology.hosts.values():
            # Also decided when the representative is the target itself: other members of the
            # class need that answer. A host's flow to itself is never used.
            verdicts[(index, target.name)] = tuple(
                decide_flow(topology, source, target.ip, service.port, service.proto)
                for service in target.services)
    return FlowTable(class_of, tuple(representatives), verdicts)


# ---- result model -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceReach:
    """How one service (kind, port, proto) of hosts in a destination segment can be reached from
    hosts of a source segment."""

    service: str
    port: int
    proto: str
    status: Status  # all / some / none of the (source host, destination host) pairs are allowed
    allowed_pairs: int
    total_pairs: int
    reachable_hosts: tuple[str, ...]  # destination hosts reached from at least one source
    sources: tuple[str, ...]  # source hosts reaching at least one destination host
    denied_by: tuple[tuple[str, int], ...]  # (Verdict.reason, pairs it denies), most pairs first

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "port": self.port, "proto": self.proto,
                "status": self.status, "allowed_pairs": self.allowed_pairs,
                "total_pairs": self.total_pairs, "reachable_hosts": list(self.reachable_hosts),
                "sources": list(self.sources),
                "denied_by": [{"reason": r, "pairs": n} for r, n in self.denied_by]}


@dataclass(frozen=True)
class SegmentPair:
    """One cell of the segment matrix: services of ``destination`` hosts seen from ``source``."""

    source: str
    destination: str
    status: Status
    routers: tuple[str, ...] | None  # routers crossed (shortest segment path); None: no route
    services: tuple[ServiceReach, ...]

    def to_json(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.destination, "status": self.status,
                "routers": None if self.routers is None else list(self.routers),
                "services": [s.to_json() for s in self.services]}


@dataclass(frozen=True)
class Exploit:
    """A vulnerable service of a target that a source may open a flow to."""

    service: str
    port: int
    proto: str
    vulns: tuple[str, ...]  # mock vulnerabilities of that service the target has not patched

    @property
    def id(self) -> str:
        """``service/port/proto``: names the target's service in the JSON attack graph."""
        return f"{self.service}/{self.port}/{self.proto}"

    def label(self) -> str:
        return f"{self.service}/{self.port} ({', '.join(self.vulns)})"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service, "port": self.port, "proto": self.proto,
                "vulns": list(self.vulns)}


@dataclass(frozen=True)
class Hop:
    """One infection step of a pivot path; ``exploits[0]`` is the one a path is drawn with."""

    source: str
    target: str
    exploits: tuple[Exploit, ...]
    routers: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.target, "routers": list(self.routers),
                "exploits": [e.to_json() for e in self.exploits]}


@dataclass(frozen=True)
class Blocker:
    """A flow the last hop to a jewel would need, and what stops it: one entry per distinct
    (reason, service, routers), with every occupied host closest to the jewel it stops."""

    reason: str  # Verdict.reason from decide_flow
    service: str
    port: int
    proto: str
    routers: tuple[str, ...]
    sources: tuple[str, ...]  # the closest occupied hosts whose flow this denies

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "service": self.service, "port": self.port,
                "proto": self.proto, "routers": list(self.routers), "from": list(self.sources)}


@dataclass(frozen=True)
class JewelPath:
    """Whether the worm from one launch pad reaches one crown jewel, how, or why not."""

    launch_pad: str
    jewel: str
    reachable: bool
    hops: tuple[Hop, ...]
    cause: Cause
    explanation: str  # empty when reachable
    blockers: tuple[Blocker, ...] = ()
    # When blocked by policy: the shortest infection path to the occupied host closest to the
    # jewel (empty when that host is the launch pad itself).
    approach: tuple[Hop, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"jewel": self.jewel, "reachable": self.reachable,
                "hop_count": len(self.hops) if self.reachable else None,
                "path": ([self.launch_pad] + [h.target for h in self.hops]) if self.reachable
                else None,
                "hops": [h.to_json() for h in self.hops], "cause": self.cause,
                "explanation": self.explanation, "blockers": [b.to_json() for b in self.blockers],
                "approach": [h.to_json() for h in self.approach]}


@dataclass(frozen=True)
class LaunchPadReport:
    """What a worm starting on one launch pad can eventually infect."""

    host: str
    segment: str
    blast_radius: tuple[str, ...]  # hosts it can eventually infect (itself excluded)
    blast_value: float  # sum of their ``value``
    jewels: tuple[JewelPath, ...]

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "segment": self.segment,
                "blast_radius": list(self.blast_radius),
                "blast_radius_size": len(self.blast_radius), "blast_value": self.blast_value,
                "jewels": [j.to_json() for j in self.jewels]}


@dataclass(frozen=True)
class JewelVerdict:
    """The answer for one crown jewel over every launch pad."""

    jewel: str
    segment: str
    reachable: bool
    launch_pad: str | None  # the launch pad with the shortest path (None if unreachable)
    hops: tuple[Hop, ...]  # that shortest path
    reachable_from: tuple[str, ...]  # every launch pad that reaches it
    cause: Cause
    explanation: str
    blockers: tuple[Blocker, ...] = ()
    approach: tuple[Hop, ...] = ()  # as in JewelPath, from the nearest launch pad

    @property
    def line(self) -> str:
        if self.reachable:
            count = len(self.hops)
            others = len(self.reachable_from) - 1
            more = f" (and from {others} other launch pad{'s' if others != 1 else ''})" \
                if others else ""
            return (f"crown jewel {self.jewel}: REACHABLE from launch pad {self.launch_pad} in "
                    f"{count} hop{'s' if count != 1 else ''}{more}")
        return f"crown jewel {self.jewel}: UNREACHABLE from every launch pad: {self.explanation}"

    def to_json(self) -> dict[str, Any]:
        path = ([self.launch_pad] + [h.target for h in self.hops]) if self.launch_pad else None
        return {"host": self.jewel, "segment": self.segment, "reachable": self.reachable,
                "launch_pad": self.launch_pad,
                "hop_count": len(self.hops) if self.reachable else None,
                "path": path, "hops": [h.to_json() for h in self.hops],
                "reachable_from": list(self.reachable_from), "cause": self.cause,
                "explanation": self.explanation,
                "blockers": [b.to_json() for b in self.blockers],
                "approach": [h.to_json() for h in self.approach], "verdict": self.line}


@dataclass(frozen=True)
class SegmentR0:
    """Expected new infections before a scan-counting detector blocks a worm in this segment."""

    segment: str
    hosts: int
    scans_allowed: int
    vulnerable_reachable: int  # most hosts one host of the segment can infect directly
    addresses_total: int  # every address of every segment CIDR
    r0_uniform: float | None  # None when the segment has no host
    vulnerable_reachable_local: int  # same, counting only victims in this segment
    usable_addresses: int  # of this segment's CIDR (network and broadcast excluded)
    r0_local: float | None
    arsenal_size: int = 0  # exploits the worm carries: every (vuln, service, port, proto)
    # The worst-placed host (None without hosts) and its victims, each weighted by the share of
    # the arsenal that infects it through an allowed flow (what r0_uniform multiplies).
    victims_weighted: float = 0.0
    worst_placed: str | None = None
    addresses_routable: int = 0  # every address of every segment CIDR this segment routes to
    victims_weighted_local: float = 0.0  # same, counting only victims in this segment
    worst_placed_local: str | None = None

    @property
    def containment_can_fail(self) -> bool:
        return any(r is not None and r >= 1 for r in (self.r0_uniform, self.r0_local))

    def to_json(self) -> dict[str, Any]:
        return {"segment": self.segment, "hosts": self.hosts,
                "scans_allowed": self.scans_allowed, "arsenal_size": self.arsenal_size,
                "vulnerable_reachable": self.vulnerable_reachable,
                "victims_weighted": self.victims_weighted, "worst_placed": self.worst_placed,
                "addresses_total": self.addresses_total,
                "addresses_routable": self.addresses_routable, "r0_uniform": self.r0_uniform,
                "vulnerable_reachable_local": self.vulnerable_reachable_local,
                "victims_weighted_local": self.victims_weighted_local,
                "worst_placed_local": self.worst_placed_local,
                "usable_addresses": self.usable_addresses, "r0_local": self.r0_local,
                "containment_can_fail": self.containment_can_fail}


CONTAINMENT_WARNING = ("containment by a scan-counting detector cannot hold here: a worm infects "
                       ">= 1 new host before it is stopped (Weaver et al. 2004)")


@dataclass
class PlanResult:
    """Everything ``plan`` found. ``attack_graph`` nodes are host names with attributes
    ``segment, ip, tier, value, susceptible, vulnerable_services`` (tuple of :class:`Exploit`);
    edges carry ``exploits`` (tuple of :class:`Exploit`, those the source may open a flow to)
    and ``routers`` (crossed, in order)."""

    topology: Topology
    scans_allowed: int
    matrix: tuple[SegmentPair, ...]
    attack_graph: nx.DiGraph
    launch_pads: tuple[LaunchPadReport, ...]
    crown_jewels: tuple[JewelVerdict, ...]
    r0: tuple[SegmentR0, ...]
    decisions: int = 0  # decide_flow calls made
    notes: list[str] = field(default_factory=list)

    def blast_radius(self, launch_pad: str) -> tuple[str, ...]:
        return next(r.blast_radius for r in self.launch_pads if r.host == launch_pad)

    def to_json(self) -> dict[str, Any]:
        topology = self.topology
        graph = self.attack_graph
        # Edges of one source class share their exploit tuples: convert each tuple once.
        converted: dict[int, list[str]] = {}

        def exploit_ids(exploits: tuple[Exploit, ...]) -> list[str]:
            found = converted.get(id(exploits))
            if found is None:
                found = converted[id(exploits)] = [e.id for e in exploits]
            return found

        return {
            "schema_version": SCHEMA_VERSION,
            "topology": {"name": topology.name, "source": topology.source,
                         "segments": len(topology.segments), "hosts": len(topology.hosts),
                         "routers": len(topology.routers)},
            "parameters": {"scans_allowed": self.scans_allowed},
            "matrix": [cell.to_json() for cell in self.matrix],
            "attack_graph": {
                "nodes": [{"host": name, **{k: graph.nodes[name][k] for k in
                                            ("segment", "ip", "tier", "value", "susceptible")},
                           "vulnerable_services": [
                               e.to_json() for e in graph.nodes[name]["vulnerable_services"]]}
                          for name in graph.nodes],
                # Compact on purpose (tens of thousands of edges on a campus): "exploits" holds
                # ids of the target node's "vulnerable_services".
                "edges": [{"from": a, "to": b, "routers": list(data["routers"]),
                           "exploits": exploit_ids(data["exploits"])}
                          for a, b, data in graph.edges(data=True)],
            },
            "launch_pads": [r.to_json() for r in self.launch_pads],
            "crown_jewels": [v.to_json() for v in self.crown_jewels],
            "r0": [r.to_json() for r in self.r0],
            "notes": list(self.notes),
        }


# ---- analysis -----------------------------------------------------------------------------------
def plan(topology: Topology, *, scans_allowed: int = DEFAULT_SCANS_ALLOWED) -> PlanResult:
    """Analyse ``topology`` statically: what a worm from each launch pad could reach."""
    if scans_allowed < 1:
        raise TestbedError(f"scans_allowed must be at least 1, not {scans_allowed}")
    table = flow_verdicts(topology)
    matrix = _segment_matrix(topology, table)
    graph = _attack_graph(topology, table)
    launch_pads = topology.hosts_of_tier(Tier.LAUNCH_PAD)
    jewels = topology.hosts_of_tier(Tier.CROWN_JEWEL)
    shortest: dict[str, dict[str, list[str]]] = {
        pad.name: nx.single_source_shortest_path(graph, pad.name) for pad in launch_pads}
    order = {name: i for i, name in enumerate(topology.hosts)}
    reports = []
    for pad in launch_pads:
        paths = shortest[pad.name]
        radius = tuple(sorted((n for n in paths if n != pad.name), key=order.__getitem__))
        reports.append(LaunchPadReport(
            pad.name, pad.segment, radius, sum(topology.hosts[n].value for n in radius),
            tuple(_jewel_path(topology, table, graph, pad, jewel, paths) for jewel in jewels)))
    verdicts = tuple(_jewel_verdict(topology, table, graph, jewel, launch_pads, shortest)
                     for jewel in jewels)
    notes = []
    if not launch_pads:
        notes.append("the topology has no launch-pad host: nothing to start a worm from")
    if not jewels:
        notes.append("the topology has no crown-jewel host")
    return PlanResult(topology, scans_allowed, matrix, graph, tuple(reports), verdicts,
                      _r0(topology, graph, scans_allowed), table.decisions, notes)


def _status(allowed: int, total: int) -> Status:
    if total == 0:
        return "n/a"
    return "all" if allowed == total else "none" if allowed == 0 else "some"


def _segment_matrix(topology: Topology, table: FlowTable) -> tuple[SegmentPair, ...]:
    members = {name: list(topology.hosts_in(name)) for name in topology.segments}
    cells = []
    for source_segment in topology.segments:
        for destination_segment in topology.segments:
            offered: dict[tuple[str, int, str], list[tuple[Host, int]]] = {}
            for target in members[destination_segment]:
                for index, service in enumerate(target.services):
                    offered.setdefault((service.name, service.port, service.proto),
                                       []).append((target, index))
            services = []
            for (name, port, proto), offers in offered.items():
                allowed = total = 0
                reached: dict[str, None] = {}
                sources: dict[str, None] = {}
                denied: Counter[str] = Counter()
                for source in members[source_segment]:
                    for target, index in offers:
                        if target.name == source.name:
                            continue
                        total += 1
                        verdict = table.verdicts_for(source.name, target.name)[index]
                        if verdict.allowed:
                            allowed += 1
                            reached[target.name] = None
                            sources[source.name] = None
                        else:
                            denied[verdict.reason] += 1
                services.append(ServiceReach(
                    name, port, proto, _status(allowed, total), allowed, total,
                    tuple(reached), tuple(sources),
                    tuple(sorted(denied.items(), key=lambda item: (-item[1], item[0])))))
            statuses = {s.status for s in services} - {"n/a"}
            status: Status = ("n/a" if not statuses else statuses.pop() if len(statuses) == 1
                              else "some")
            cells.append(SegmentPair(source_segment, destination_segment, status,
                                     topology.router_paths[(source_segment, destination_segment)],
                                     tuple(services)))
    return tuple(cells)


def _unpatched(host: Host, service: Service) -> tuple[str, ...]:
    return tuple(v for v in service.vulns if host.is_vulnerable_to(v))


def _attack_graph(topology: Topology, table: FlowTable) -> nx.DiGraph:
    graph = nx.DiGraph(topology=topology.name)
    for host in topology.hosts.values():
        graph.add_node(host.name, segment=host.segment, ip=str(host.ip), tier=str(host.tier),
                       value=host.value, susceptible=host.susceptible,
                       vulnerable_services=tuple(
                           Exploit(s.name, s.port, s.proto, _unpatched(host, s))
                           for s in host.vulnerable_services()))
    targets = [host for host in topology.hosts.values() if host.susceptible]
    # Exploits per (source class, target): computed once, shared by every member of the class.
    usable: dict[tuple[int, str], tuple[tuple[Exploit, ...], tuple[str, ...]]] = {}
    for index in range(len(table.representatives)):
        for target in targets:
            verdicts = table.verdicts_for(table.representatives[index].name, target.name)
            exploits = []
            routers: tuple[str, ...] = ()
            for service, verdict in zip(target.services, verdicts, strict=True):
                vulns = _unpatched(target, service)
                if vulns and verdict.allowed:
                    exploits.append(Exploit(service.name, service.port, service.proto, vulns))
                    routers = verdict.routers
            if exploits:
                usable[(index, target.name)] = (tuple(exploits), routers)
    edges = []
    for source in topology.hosts.values():
        index = table.class_of[source.name]
        for target in targets:
            found = usable.get((index, target.name))
            if found is not None and target.name != source.name:
                edges.append((source.name, target.name,
                              {"exploits": found[0], "routers": found[1]}))
    graph.add_edges_from(edges)
    return graph


def _hops(graph: nx.DiGraph, path: list[str]) -> tuple[Hop, ...]:
    return tuple(Hop(a, b, graph.edges[a, b]["exploits"], graph.edges[a, b]["routers"])
                 for a, b in itertools.pairwise(path))


def _not_susceptible(jewel: Host) -> tuple[Cause, str] | None:
    if jewel.susceptible:
        return None
    if not any(service.vulns for service in jewel.services):
        what = "runs no service" if not jewel.services else \
            "runs no service carrying a mock vulnerability"
        return "no-vulnerable-service", f"{jewel.name} {what}"
    if jewel.patched is True:
        return "patched", f"{jewel.name} is patched against every mock vulnerability"
    vulns = sorted({v for s in jewel.services for v in s.vulns})
    return "patched", f"{jewel.name} has patched {', '.join(vulns)}"


def _segment_distance(topology: Topology, a: str, b: str) -> float:
    path = topology.router_paths[(a, b)]
    return float("inf") if path is None else len(path)


def _blocked(topology: Topology, table: FlowTable, jewel: Host,
             routes: dict[str, list[str]], origin: str
             ) -> tuple[str, tuple[Blocker, ...], list[str]]:
    """Explain why no host the worm can occupy reaches a vulnerable service of ``jewel``.

    ``routes`` maps every host the worm can occupy to a shortest infection path from a launch
    pad. The explanation names the occupied hosts closest to the jewel (fewest routers between
    their segment and the jewel's), the path to the most valuable of them, and each denial
    (``Verdict.reason``) of the flows the last hop would need.
    """
    candidates = [topology.hosts[name] for name in routes if name != jewel.name]
    distance = {h.name: _segment_distance(topology, h.segment, jewel.segment) for h in candidates}
    nearest = min(distance.values())
    # Most valuable first (the deepest foothold), then the fewest infections to get there.
    closest = sorted((h for h in candidates if distance[h.name] == nearest),
                     key=lambda h: (-h.value, len(routes[h.name])))
    denials: dict[tuple[str, str, int, str, tuple[str, ...]], list[str]] = {}
    for host in closest:
        verdicts = table.verdicts_for(host.name, jewel.name)
        for service, verdict in zip(jewel.services, verdicts, strict=True):
            if _unpatched(jewel, service):
                key = (verdict.reason, service.name, service.port, service.proto, verdict.routers)
                denials.setdefault(key, []).append(host.name)
    blockers = tuple(Blocker(*key, tuple(sources)) for key, sources in denials.items())
    where = ("on its segment" if nearest == 0 else "with no route to its segment"
             if nearest == float("inf") else
             f"{int(nearest)} router{'s' if nearest != 1 else ''} away")
    shown = ", ".join(h.name for h in closest[:3]) + (
        f" and {len(closest) - 3} more" if len(closest) > 3 else "")
    approach = routes[closest[0].name]
    reached = (f", reached by {' -> '.join(approach)}" if len(approach) > 1 else "")
    reasons: dict[str, list[str]] = {}
    for blocker in blockers:
        reasons.setdefault(blocker.reason, []).append(f"{blocker.service}/{blocker.port}")
    stopped = "; ".join(f"{reason} [{', '.join(dict.fromkeys(ports))}]"
                        for reason, ports in reasons.items())
    count = len(candidates)
    text = (f"{origin} the worm can occupy {count} host{'s' if count != 1 else ''}; closest to "
            f"{jewel.name} ({jewel.segment}): {shown} ({where}){reached}; the last hop is "
            f"stopped by: {stopped}")
    return text, blockers, approach


def _jewel_path(topology: Topology, table: FlowTable, graph: nx.DiGraph, pad: Host, jewel: Host,
                paths: dict[str, list[str]]) -> JewelPath:
    if jewel.name in paths:
        return JewelPath(pad.name, jewel.name, True, _hops(graph, paths[jewel.name]),
                         "reachable", "")
    immune = _not_susceptible(jewel)
    if immune is not None:
        return JewelPath(pad.name, jewel.name, False, (), immune[0], immune[1])
    text, blockers, approach = _blocked(topology, table, jewel, paths, f"from {pad.name}")
    return JewelPath(pad.name, jewel.name, False, (), "policy", text, blockers,
                     _hops(graph, approach))


def _jewel_verdict(topology: Topology, table: FlowTable, graph: nx.DiGraph, jewel: Host,
                   launch_pads: list[Host],
                   shortest: dict[str, dict[str, list[str]]]) -> JewelVerdict:
    reaching = [pad for pad in launch_pads if jewel.name in shortest[pad.name]]
    if reaching:
        best = min(reaching, key=lambda pad: len(shortest[pad.name][jewel.name]))
        return JewelVerdict(jewel.name, jewel.segment, True, best.name,
                            _hops(graph, shortest[best.name][jewel.name]),
                            tuple(pad.name for pad in reaching), "reachable", "")
    if not launch_pads:
        return JewelVerdict(jewel.name, jewel.segment, False, None, (), (), "no-launch-pad",
                            "the topology has no launch-pad host")
    immune = _not_susceptible(jewel)
    if immune is not None:
        return JewelVerdict(jewel.name, jewel.segment, False, None, (), (), *immune)
    # Every host some launch pad can occupy, with its shortest path from any launch pad.
    routes: dict[str, list[str]] = {}
    for pad in launch_pads:
        for name, path in shortest[pad.name].items():
            if name not in routes or len(path) < len(routes[name]):
                routes[name] = path
    text, blockers, approach = _blocked(topology, table, jewel, routes, "from the launch pads")
    return JewelVerdict(jewel.name, jewel.segment, False, None, (), (), "policy", text, blockers,
                        _hops(graph, approach))


def _usable_addresses(network: ipaddress.IPv4Network) -> int:
    return max(network.num_addresses - 2, 1)


def _arsenal_matches(topology: Topology) -> tuple[int, Counter[tuple[str, int, str]]]:
    """The worm's arsenal: its size, and how many of its exploits each (vuln, port, proto) has.

    The arsenal is every (vulnerability, service kind, port, proto) of the topology, patched or
    not: what ``testbed.runner.agent_configs`` hands the worm (the runner is above this layer, so
    the definition is restated here; ``tests/unit/test_planner.py`` pins the two together). A
    target accepts an exploit by vulnerability, port and proto (the service kind is not checked),
    so two entries differing only by kind both infect.
    """
    arsenal = {(vuln, service.name, service.port, service.proto)
               for host in topology.hosts.values() for service in host.services
               for vuln in service.vulns}
    return len(arsenal), Counter((vuln, port, proto) for vuln, _kind, port, proto in arsenal)


def _r0(topology: Topology, graph: nx.DiGraph, scans_allowed: int) -> tuple[SegmentR0, ...]:
    addresses_total = sum(segment.cidr.num_addresses for segment in topology.segments.values())
    arsenal_size, matching = _arsenal_matches(topology)
    # Edges of one source class share their exploit tuples: weigh each tuple once.
    shares: dict[int, float] = {}

    def share(exploits: tuple[Exploit, ...]) -> float:
        found = shares.get(id(exploits))
        if found is None:
            usable = {(vuln, e.port, e.proto) for e in exploits for vuln in e.vulns}
            found = shares[id(exploits)] = sum(matching[key] for key in usable) / arsenal_size
        return found

    def weighted(source: str, local_to: str | None) -> float:
        return sum((share(data["exploits"])
                    for _source, victim, data in graph.out_edges(source, data=True)
                    if local_to is None or topology.hosts[victim].segment == local_to), 0.0)

    result = []
    for name, segment in topology.segments.items():
        hosts = [h.name for h in topology.hosts_in(name)]
        usable = _usable_addresses(segment.cidr)
        routable = sum(other.cidr.num_addresses for other_name, other in topology.segments.items()
                       if topology.router_paths[(name, other_name)] is not None)
        if not hosts:
            result.append(SegmentR0(name, 0, scans_allowed, 0, addresses_total, None, 0, usable,
                                    None, arsenal_size, addresses_routable=routable))
            continue
        anywhere = max(graph.out_degree(h) for h in hosts)
        local = max(sum(1 for victim in graph.successors(h)
                        if topology.hosts[victim].segment == name) for h in hosts)
        # The worst-placed host: most weighted victims; ties go to the first in topology order.
        uniform_weights = {h: weighted(h, None) for h in hosts}
        local_weights = {h: weighted(h, name) for h in hosts}
        worst = max(hosts, key=uniform_weights.__getitem__)
        worst_local = max(hosts, key=local_weights.__getitem__)
        result.append(SegmentR0(
            name, len(hosts), scans_allowed, anywhere, addresses_total,
            scans_allowed * uniform_weights[worst] / routable, local, usable,
            scans_allowed * local_weights[worst_local] / usable, arsenal_size,
            uniform_weights[worst], worst, routable, local_weights[worst_local], worst_local))
    return tuple(result)
