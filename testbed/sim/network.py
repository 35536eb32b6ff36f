"""The simulated wire: what happens, and what a sensor sees, when a host opens a flow.

Owns: resolving one connection attempt (TCP connect or UDP datagram) from a host to an address
into the outcome a Linux socket would report to the agent runtime -- open, ``refused``,
``timeout``, ``unreachable``, ``prohibited`` (see ``testbed.agent.guards.classify_connect_error``)
-- with its time, and the packets that exchange puts on every segment it crosses (ARP, SYN and
its retransmission, SYN-ACK, RST, ICMP errors), handed to the sensor model. Neighbour (ARP)
caches, ephemeral ports and the containment state the policy reads live here.

Reuses, does not re-implement: ``testbed.policy.decide_flow`` says *whether* a new flow is
allowed (router rules, host firewalls, quarantine, blocks). This module only locates *where* a
denied flow dies, which decides on which segments its packets are still visible; it asks the
same model objects (``Router.decide``, ``Block.matches``) in decide_flow's documented order.

How the emulated network behaves, and so this model (``testbed/backends`` compiles the policy):
every denial is a silent drop (nftables ``drop``, never ``reject``): the prober times out. A
destination with no route fails at once (ENETUNREACH: the runtime reports ``prohibited``). An
address nobody answers ARP for fails after ``arp_failure_s`` (``unreachable`` if that is before
the caller's timeout, else ``timeout``); on a shared segment it shows only as ARP requests. A
quarantined port's frames are still seen by its segment's tap (the bridge hands frames to its
promiscuous packet sockets before its forward hook drops them).

Must not: decide what a service answers (``testbed.sim.services``) or know about worms.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from testbed.model.topology import Host, Service, Topology
from testbed.policy import ContainmentState, decide_flow
from testbed.sim.timing import Timing

__all__ = ["Flow", "NetworkModel", "PacketSink"]

PacketSink = Callable[..., None]
"""``sink(time, kind, src, dst, sport, dport, proto, segments, outcome="", payload=b"")``: one
packet on the wire crossing ``segments`` in order (the sensor model decides who saw it)."""

_EPHEMERAL_FIRST, _EPHEMERAL_LAST = 32768, 60999  # Linux ip_local_port_range
_VERDICT_CACHE_LIMIT = 1 << 20


@dataclass(slots=True)
class Flow:
    """One connection attempt and what became of it."""

    src: int  # host index of the initiator
    src_ip: str
    dst_ip: str
    sport: int
    dport: int
    proto: str  # "tcp" or "udp"
    status: str  # "open" or a failed connect outcome (refused, timeout, unreachable, prohibited)
    at: float  # when the initiator knows: connected (open) or failed
    target: int = -1  # host index at dst_ip, -1 when no host uses it
    service: Service | None = None  # the listening service (open flows)
    one_way: float = 0.0  # one-way latency between the two ends
    segments: tuple[str, ...] = ()  # segments crossed, initiator side first
    sent_at: float = 0.0  # when the first packet (SYN or datagram) left the initiator


class NetworkModel:
    """The topology's network in virtual time. ``state`` is the live containment state."""

    def __init__(self, topology: Topology, timing: Timing, *,
                 sink: PacketSink | None = None) -> None:
        self.topology = topology
        self.timing = timing
        self.sink = sink
        self.state = ContainmentState()
        self.rate_caps: dict[str, object] = {}  # host -> RateCap of new flows (rate-limit)
        self.hosts: list[Host] = list(topology.hosts.values())
        self.router_address: dict[str, tuple[str, str]] = {
            str(address): (router.name, segment)
            for router in topology.routers.values()
            for segment, address in router.interfaces.items()}
        self._segments = [(name, int(s.cidr.network_address), int(s.cidr.netmask))
                          for name, s in topology.segments.items()]
        self._paths: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]] | None] = {}
        self._verdicts: dict[tuple[object, ...], bool] = {}
        self._neighbours: set[tuple[str, str]] = set()
        self._resolving: dict[tuple[str, str], float] = {}  # unanswered ARP: when it began
        self._next_port: dict[int, int] = {}
        self._address_text: dict[int, str] = {}  # host index -> its address (str: slow)
        self._services: dict[tuple[int, int, str], Service | None] = {}  # (host, port, proto)
        self.flows = 0

    # ---- addresses and paths ---------------------------------------------------------------
    @cached_property
    def index_of(self) -> dict[str, int]:
        """address -> host index (built on first use: the fast path never needs it)."""
        return {str(h.ip): i for i, h in enumerate(self.hosts)}

    @cached_property
    def _host_facts(self) -> tuple[list[str], list[str], list[bool]]:
        """Per host index: its segment, its name, whether its firewall is open (read on every
        flow; attribute lookups on ``Host`` cost more than the rest of a flow's bookkeeping)."""
        return ([h.segment for h in self.hosts], [h.name for h in self.hosts],
                [h.firewall.is_open for h in self.hosts])

    def segment_of(self, address: str) -> str | None:
        index = self.index_of.get(address)
        if index is not None:
            return self.hosts[index].segment
        first, second, third, fourth = address.split(".")
        value = (int(first) << 24) | (int(second) << 16) | (int(third) << 8) | int(fourth)
        for name, network, mask in self._segments:
            if value & mask == network:
                return name
        return None

    def path(self, source_segment: str, destination_segment: str
             ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(segments crossed, routers crossed) from one segment to another; None: no route.
        The routers are ``Topology.router_paths``'; the segments between them follow."""
        key = (source_segment, destination_segment)
        if key in self._paths:
            return self._paths[key]
        routers = self.topology.router_paths.get(key)
        found: tuple[tuple[str, ...], tuple[str, ...]] | None
        if routers is None:
            found = None
        else:
            segments = [source_segment]
            for position, name in enumerate(routers):
                interfaces = self.topology.routers[name].interfaces
                if position + 1 < len(routers):
                    following = self.topology.routers[routers[position + 1]].interfaces
                    segments.append(next(s for s in interfaces if s in following
                                         and s != segments[-1]))
                else:
                    segments.append(destination_segment)
            found = (tuple(segments), tuple(routers))
        self._paths[key] = found
        return found

    def ephemeral_port(self, host: int) -> int:
        port = self._next_port.get(host, _EPHEMERAL_FIRST)
        self._next_port[host] = port + 1 if port < _EPHEMERAL_LAST else _EPHEMERAL_FIRST
        return port

    # ---- policy ----------------------------------------------------------------------------
    def allowed(self, source: int, address: str, port: int, proto: str,
                routed: bool = True) -> bool:
        """``decide_flow`` under the live containment state.

        The topology's own verdict never changes during a run, so it is cached: per flow, or,
        for a flow that crosses no router (``routed`` False) to an address that is no router's
        and whose host (if any) has no firewall, once per source segment -- decide_flow reads
        nothing else of such a flow, so every one of them gets the same verdict."""
        return self._allowed(source, self.index_of.get(address), address, port, proto, routed)

    def _allowed(self, source: int, target: int | None, address: str, port: int, proto: str,
                 routed: bool) -> bool:
        """``allowed`` with the target's host index (None: no host) already looked up."""
        key: tuple[object, ...]
        if not routed and address not in self.router_address and (
                target is None or self._host_facts[2][target]):
            key = ("unrouted-open", self._host_facts[0][source], proto)
        else:
            key = (source, address, port, proto)
        base = self._verdicts.get(key)
        if base is None:
            base = decide_flow(self.topology, self.hosts[source], address, port, proto).allowed
            if len(self._verdicts) >= _VERDICT_CACHE_LIMIT:
                self._verdicts.clear()
            self._verdicts[key] = base
        state = self.state
        if not base or (not state.quarantined and not state.blocks):
            return base
        return decide_flow(self.topology, self.hosts[source], address, port, proto,
                           state).allowed

    def _reach(self, source: Host, address: str, port: int, proto: str,
               segments: tuple[str, ...], routers: tuple[str, ...]) -> int:
        """How many of ``segments`` a denied flow's packets cross before they are dropped,
        following decide_flow's order (quarantine, blocks, router addresses, routers, the host
        firewall)."""
        state = self.state
        if source.name in state.quarantined:
            return 1  # dropped at the source's own bridge port, after its tap saw it
        target = self.index_of.get(address)
        if target is not None and self.hosts[target].name in state.quarantined:
            return len(segments)
        destination = ipaddress.IPv4Address(address)
        if any(block.matches(self.topology, source, destination, port, proto)
               for block in state.blocks):
            return 1  # the fabric drops it on the first bridge it crosses
        owner = self.router_address.get(address)
        for position, name in enumerate(routers):
            if owner is not None and owner[0] == name:
                return position + 1  # delivered to the router itself, which drops it
            action, _rule = self.topology.routers[name].decide(source.ip, destination, port,
                                                                proto)
            if action == "deny":
                return position + 1
        return len(segments)  # reached the destination: its host firewall (or router) drops it

    # ---- the exchange ----------------------------------------------------------------------
    def resolved(self, sender: str, receiver: str) -> bool:
        """Whether ``sender`` holds ``receiver`` in its neighbour table (an ARP exchange
        between them succeeded, either way round)."""
        return (sender, receiver) in self._neighbours

    def _failed_resolution(self, sender: str, receiver: str, segment: str, t: float) -> float:
        """A neighbour that does not answer: when the sender's kernel gives up. A resolution
        already under way (an earlier packet to the same address) is joined, not restarted:
        it fails at its own deadline and sends no new requests."""
        timing = self.timing
        key = (sender, receiver)
        started = self._resolving.get(key)
        if started is not None and t < started + timing.arp_failure_s:
            return started + timing.arp_failure_s
        if len(self._resolving) >= _VERDICT_CACHE_LIMIT:
            self._resolving = {k: v for k, v in self._resolving.items()
                               if v + timing.arp_failure_s > t}
        self._resolving[key] = t
        if self.sink is not None:
            for attempt in range(max(1, timing.arp_requests)):
                self.sink(t + attempt * timing.arp_retrans_s, "arp-request", sender, receiver,
                          0, 0, "ARP", (segment,))
        return t + timing.arp_failure_s

    def _resolution(self, sender: str, receiver: str, segment: str, t: float) -> float:
        """A neighbour that answers: request and reply on ``segment``, each end learns the
        other; returns when the sender can send."""
        timing = self.timing
        sink = self.sink
        if sink is not None:
            sink(t, "arp-request", sender, receiver, 0, 0, "ARP", (segment,))
            sink(t + timing.link_one_way_s, "arp-reply", receiver, sender, 0, 0, "ARP",
                 (segment,))
        self._neighbours.add((sender, receiver))
        self._neighbours.add((receiver, sender))  # it learnt us from our request
        return t + 2 * timing.link_one_way_s

    def _resolve_hops(self, flow: Flow, segments: tuple[str, ...], routers: tuple[str, ...],
                      reach: int, receiver_alive: bool, now: float) -> tuple[float, int]:
        """ARP on every hop the flow's packets cross: (time the first packet leaves the last
        resolved hop, or when the failing hop's resolution gives up; index of the hop whose
        resolution failed, or -1)."""
        t = now
        sender = flow.src_ip
        for hop in range(reach):
            segment = segments[hop]
            if hop + 1 < len(segments):
                receiver = str(self.topology.routers[routers[hop]].interfaces[segment])
                answers = hop != 0 or self.hosts[flow.src].name not in self.state.quarantined
            else:
                receiver = flow.dst_ip
                answers = receiver_alive and (
                    hop != 0 or self.hosts[flow.src].name not in self.state.quarantined)
            if (sender, receiver) not in self._neighbours:
                if not answers:
                    return self._failed_resolution(sender, receiver, segment, t), hop
                t = self._resolution(sender, receiver, segment, t)
            if hop + 1 < len(segments):
                sender = str(self.topology.routers[routers[hop]].interfaces[segments[hop + 1]])
        return t, -1

    def open(self, source: int, address: str, port: int, proto: str, now: float,
             timeout: float, *, payload: bytes = b"") -> Flow:
        """Start a TCP connect (``proto == "tcp"``) or send one UDP datagram carrying
        ``payload``; the returned flow says how it ends for the initiator."""
        self.flows += 1
        timing = self.timing
        segment_of_host, name_of_host, _ = self._host_facts
        src_ip = self._address_text.get(source)
        if src_ip is None:
            src_ip = self._address_text[source] = str(self.hosts[source].ip)
        sport = self.ephemeral_port(source)
        flow = Flow(source, src_ip, address, sport, port, proto, "timeout", now + timeout,
                    sent_at=now)
        target = self.index_of.get(address)
        if target is None:
            destination_segment = self.segment_of(address)
        else:
            flow.target = target
            destination_segment = segment_of_host[target]
        route = None
        if destination_segment is not None:
            route_key = (segment_of_host[source], destination_segment)
            route = self._paths.get(route_key)
            if route is None and route_key not in self._paths:
                route = self.path(*route_key)
        if route is None:
            flow.status, flow.at = "prohibited", now  # ENETUNREACH at connect(): no route
            return flow
        segments, routers = route
        flow.segments = segments
        flow.one_way = timing.one_way(len(routers))
        cap = self.rate_caps.get(name_of_host[source]) if self.rate_caps else None
        allowed = self._allowed(source, target, address, port, proto, bool(routers)) and (
            cap is None or cap.delay(now) == 0.0)  # type: ignore[attr-defined]
        reach = len(segments) if allowed else self._reach(self.hosts[source], address, port,
                                                          proto, segments, routers)
        quarantined = self.state.quarantined
        alive = target is not None and (
            not quarantined or name_of_host[target] not in quarantined)
        if len(segments) == 1 and (src_ip, address) in self._neighbours:
            sent, failed_hop = now, -1  # on link, neighbour known: _resolve_hops in short
        elif len(segments) == 1 and alive and (
                not quarantined or name_of_host[source] not in quarantined):
            # on link, a live neighbour that answers: _resolve_hops in short
            sent, failed_hop = self._resolution(src_ip, address, segments[0], now), -1
        else:
            sent, failed_hop = self._resolve_hops(flow, segments, routers, reach, alive, now)
        sink = self.sink
        kind = "syn" if proto == "tcp" else "udp"
        l4 = "TCP" if proto == "tcp" else "UDP"
        if failed_hop >= 0:
            gave_up = sent  # when the failing hop's ARP resolution gave up
            if failed_hop == 0:
                # the initiator's own kernel gives up: EHOSTUNREACH (on or off link: a late
                # EHOSTUNREACH is "unreachable" in classify_connect_error)
                if gave_up - now < timeout:
                    flow.status, flow.at = "unreachable", gave_up
            else:
                # a router queues the SYNs while it resolves: they are seen before it
                self._unanswered(now, now + timeout, kind, src_ip, address, sport, port, l4,
                                 segments[:failed_hop], payload)
                if sink is not None:
                    sink(gave_up, "icmp-unreachable", src_ip, address, sport, port, l4,
                         segments[failed_hop - 1::-1], "unreachable")
                answer = gave_up + flow.one_way
                if answer - now < timeout:
                    flow.status, flow.at = "unreachable", answer
            return flow
        flow.sent_at = sent
        if not allowed or target is None:
            # silently dropped on its way: retransmissions until the caller gives up
            self._unanswered(sent, now + timeout, kind, src_ip, address, sport, port, l4,
                             segments[:reach], payload)
            return flow
        service_key = (target, port, proto)
        try:
            service = self._services[service_key]
        except KeyError:
            service = None
            for listening in self.hosts[target].services:  # a loop: no generator per lookup
                if listening.port == port and listening.proto == proto:
                    service = listening
                    break
            if len(self._services) >= _VERDICT_CACHE_LIMIT:
                self._services.clear()
            self._services[service_key] = service
        back = segments[::-1]
        arrive = sent + flow.one_way
        if sink is not None:
            sink(sent, kind, src_ip, address, sport, port, l4, segments, payload=payload)
        if service is None:
            if sink is not None:
                if proto == "tcp":
                    sink(arrive, "rst", address, src_ip, port, sport, "TCP", back)
                else:
                    sink(arrive, "icmp-unreachable", src_ip, address, sport, port, "UDP", back,
                         "refused")
            flow.status, flow.at = "refused", arrive + flow.one_way
            return flow
        flow.service = service
        flow.status = "open"
        if proto == "tcp":
            if sink is not None:
                sink(arrive, "syn-ack", address, src_ip, port, sport, "TCP", back)
            flow.at = arrive + flow.one_way
        else:
            flow.at = arrive  # the datagram reached the service
        return flow

    def _unanswered(self, sent: float, give_up: float, kind: str, src_ip: str, address: str,
                    sport: int, port: int, l4: str, segments: tuple[str, ...],
                    payload: bytes) -> None:
        """A first packet nothing answers, and (TCP) its SYN retransmissions until the caller
        gives up (1 s, then 3 s, 7 s ... after the first: TCP_TIMEOUT_INIT doubling)."""
        sink = self.sink
        if sink is None or not segments:
            return
        sink(sent, kind, src_ip, address, sport, port, l4, segments, payload=payload)
        if kind == "syn":
            retry = self.timing.syn_retrans_s
            while sent + retry < give_up:
                sink(sent + retry, kind, src_ip, address, sport, port, l4, segments)
                retry = 2 * retry + self.timing.syn_retrans_s

    def send(self, flow: Flow, at: float, *, from_initiator: bool, payload: bytes) -> None:
        """A data segment (TCP with payload) or a UDP reply on an open flow, for the sensor."""
        if self.sink is None or not payload:
            return
        if flow.proto == "tcp":
            if from_initiator:
                self.sink(at, "data", flow.src_ip, flow.dst_ip, flow.sport, flow.dport, "TCP",
                          flow.segments, payload=payload)
            else:
                self.sink(at, "data", flow.dst_ip, flow.src_ip, flow.dport, flow.sport, "TCP",
                          flow.segments[::-1], payload=payload)
        elif not from_initiator:
            self.sink(at, "udp", flow.dst_ip, flow.src_ip, flow.dport, flow.sport, "UDP",
                      flow.segments[::-1], payload=payload)

    def cut(self, flow: Flow) -> bool:
        """Whether containment now stops packets of this (established) flow: a quarantine of
        either end cuts established flows too (blocks only stop new ones)."""
        quarantined = self.state.quarantined
        if not quarantined:
            return False
        if self.hosts[flow.src].name in quarantined:
            return True
        return flow.target >= 0 and self.hosts[flow.target].name in quarantined
