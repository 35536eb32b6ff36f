"""The simulator's wire model on small hand-computed cases: what the prober's socket reports
(the agent runtime's outcome vocabulary) and which packets a sensor sees, for allowed, denied,
dead, closed and unrouted destinations; the contact tracker's derived events; the mock services'
acceptance rule against the real infection gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.agent.protocol import InfectionGate, make_exploit, message_line
from testbed.model.load_topology import load_topology
from testbed.model.topology import Topology
from testbed.sim.network import NetworkModel
from testbed.sim.sensor import SimSensor
from testbed.sim.services import exploit_verdict
from testbed.sim.timing import load_timing

TOPOLOGY = """\
name: simnet
segments:
  lan: {cidr: 10.9.0.0/24}
  dmz: {cidr: 10.9.1.0/24}
  lab: {cidr: 10.9.2.0/24}
hosts:
  pc: {segment: lan, ip: 10.9.0.10, tier: workstation,
       services: [{name: smb, vulns: [MOCK-SMB-1]}]}
  nas: {segment: lan, ip: 10.9.0.11, tier: server, patched: [MOCK-SMB-1],
        services: [{name: smb, vulns: [MOCK-SMB-1]}]}
  web: {segment: dmz, ip: 10.9.1.10, tier: server,
        services: [{name: http, vulns: [MOCK-HTTP-1]}]}
  island: {segment: lab, ip: 10.9.2.10, tier: workstation}
routers:
  fw:
    segments: [lan, dmz]
    default: deny
    rules:
      - {action: allow, from: lan, to: dmz, ports: [443]}
"""

TIMING = load_timing()
CONNECT_TIMEOUT = 2.0  # WormConfig.connect_timeout_s


@pytest.fixture
def topology(tmp_path: Path) -> Topology:
    path = tmp_path / "simnet.yaml"
    path.write_text(TOPOLOGY)
    return load_topology(path)


class Recorder:
    """A packet sink that keeps (time, kind, src, dst, dport, segments)."""

    def __init__(self) -> None:
        self.packets: list[tuple[Any, ...]] = []

    def __call__(self, time: float, kind: str, src: str, dst: str, sport: int, dport: int,
                 proto: str, segments: tuple[str, ...], outcome: str = "",
                 payload: bytes = b"") -> None:
        self.packets.append((time, kind, src, dst, dport, segments))

    def kinds(self) -> list[str]:
        return [packet[1] for packet in self.packets]


def model(topology: Topology) -> tuple[NetworkModel, Recorder]:
    recorder = Recorder()
    return NetworkModel(topology, TIMING, sink=recorder), recorder


def test_router_denial_is_a_silent_timeout_seen_only_before_the_router(topology: Topology
                                                                         ) -> None:
    network, wire = model(topology)
    pc = network.index_of["10.9.0.10"]
    flow = network.open(pc, "10.9.1.10", 80, "tcp", 10.0, CONNECT_TIMEOUT)
    # nftables drops (never rejects): the agent's connect times out (classify -> "timeout")
    assert (flow.status, flow.at) == ("timeout", 12.0)
    # ARP for the gateway, then the SYN and its retransmission after 1 s, all on the lan only
    assert wire.kinds() == ["arp-request", "arp-reply", "syn", "syn"]
    assert wire.packets[0][2:4] == ("10.9.0.10", "10.9.0.1")
    syns = [p for p in wire.packets if p[1] == "syn"]
    assert all(p[5] == ("lan",) for p in syns)
    assert syns[1][0] - syns[0][0] == pytest.approx(TIMING.syn_retrans_s)


def test_allowed_port_without_listener_is_refused_by_rst(topology: Topology) -> None:
    network, wire = model(topology)
    flow = network.open(network.index_of["10.9.0.10"], "10.9.1.10", 443, "tcp", 0.0,
                        CONNECT_TIMEOUT)
    assert flow.status == "refused"
    # two ARP exchanges first (pc -> gateway on lan, router -> web on dmz), then SYN and RST
    arp = 2 * 2 * TIMING.link_one_way_s
    assert flow.at == pytest.approx(arp + 2 * TIMING.one_way(1))
    assert wire.kinds()[-2:] == ["syn", "rst"]
    assert wire.packets[-2][5] == ("lan", "dmz") and wire.packets[-1][5] == ("dmz", "lan")


def test_dead_address_on_the_segment_is_only_arp(topology: Topology) -> None:
    network, wire = model(topology)
    flow = network.open(network.index_of["10.9.0.10"], "10.9.0.99", 445, "tcp", 0.0,
                        CONNECT_TIMEOUT)
    # ARP fails after 3 s, later than the 2 s connect timeout
    assert flow.status == "timeout"
    assert wire.kinds() == ["arp-request"] * TIMING.arp_requests
    longer = network.open(network.index_of["10.9.0.10"], "10.9.0.98", 445, "tcp", 0.0, 5.0)
    assert (longer.status, longer.at) == ("unreachable", TIMING.arp_failure_s)


def test_no_route_is_prohibited_at_once_and_silent(topology: Topology) -> None:
    network, wire = model(topology)
    flow = network.open(network.index_of["10.9.0.10"], "10.9.2.10", 22, "tcp", 5.0,
                        CONNECT_TIMEOUT)
    assert (flow.status, flow.at) == ("prohibited", 5.0)
    assert wire.packets == []


def test_open_service_connects_and_quarantine_cuts_it(topology: Topology) -> None:
    network, wire = model(topology)
    pc, nas = network.index_of["10.9.0.10"], network.index_of["10.9.0.11"]
    flow = network.open(pc, "10.9.0.11", 445, "tcp", 0.0, CONNECT_TIMEOUT)
    assert flow.status == "open" and flow.service is not None and flow.service.name == "smb"
    assert wire.kinds() == ["arp-request", "arp-reply", "syn", "syn-ack"]
    network.state.quarantined.add("nas")
    assert network.cut(flow)
    wire.packets.clear()
    again = network.open(pc, "10.9.0.11", 445, "tcp", 1.0, CONNECT_TIMEOUT)
    # the neighbour is cached: the SYN goes out, is seen, and dies at nas's bridge port
    assert again.status == "timeout"
    assert wire.kinds() == ["syn", "syn"]
    network.state.quarantined = {"pc"}
    wire.packets.clear()
    fresh = network.open(pc, "10.9.0.12", 445, "tcp", 2.0, 5.0)
    assert fresh.status == "unreachable"  # a quarantined host's ARP gets no answer
    assert set(wire.kinds()) == {"arp-request"}
    assert network.open(nas, "10.9.0.10", 445, "tcp", 3.0, CONNECT_TIMEOUT).status == "timeout"


def test_sensor_derives_first_contact_and_unanswered_outcome(topology: Topology) -> None:
    sensor = SimSensor({"lan"}, want_data=False)
    network = NetworkModel(topology, TIMING, sink=sensor.packet)
    network.open(network.index_of["10.9.0.10"], "10.9.1.10", 80, "tcp", 0.0, CONNECT_TIMEOUT)
    events = sensor.drain(5.0)
    kinds = [e.kind for e in events]
    assert kinds.count("syn") == 2
    first = [e for e in events if e.kind == "first-contact" and e.dst == "10.9.1.10"]
    assert len(first) == 1 and first[0].proto == "TCP"
    outcomes = [e for e in events if e.kind == "outcome" and e.dst == "10.9.1.10"]
    assert outcomes[0].outcome == "unanswered" and outcomes[0].first
    assert all(e.tap == "segment:lan" for e in events if e.kind in ("syn", "arp-request"))
    assert [e.time for e in events] == sorted(e.time for e in events)


def test_a_routed_packet_is_one_event_however_many_taps_see_it(topology: Topology) -> None:
    sensor = SimSensor({"lan", "dmz"}, want_data=False)
    network = NetworkModel(topology, TIMING, sink=sensor.packet)
    network.open(network.index_of["10.9.0.10"], "10.9.1.10", 443, "tcp", 0.0, CONNECT_TIMEOUT)
    events = sensor.drain(5.0)
    assert [e.tap for e in events if e.kind == "syn"] == ["segment:lan"]
    assert [e.tap for e in events if e.kind == "rst"] == ["segment:dmz"]
    assert sensor.duplicates == 2  # the SYN and the RST each crossed two monitored segments
    refused = [e for e in events if e.kind == "outcome" and e.dst == "10.9.1.10"]
    assert refused[0].outcome == "refused"


@pytest.mark.parametrize(("host", "vuln", "expected"), [
    ("pc", "MOCK-SMB-1", ""),
    ("pc", "MOCK-SMB-9", "not-vulnerable"),
    ("nas", "MOCK-SMB-1", "patched"),
])
def test_acceptance_rule_matches_the_infection_gate(topology: Topology, host: str, vuln: str,
                                                    expected: str) -> None:
    target = topology.hosts[host]
    service = target.services[0]
    verdict = exploit_verdict(target, service, vuln)
    assert verdict.reason == expected
    gate = InfectionGate(run="r", secret=b"s" * 32, own_address=str(target.ip),
                         patched=True if target.patched is True else frozenset(target.patched))
    message = make_exploit(secret=b"s" * 32, run="r", vuln=vuln, source="10.9.1.10",
                           target=str(target.ip), nonce="ab" * 16, issued_ms=1_000_000,
                           generation=0, parent="web")
    real = gate.check(message_line(message), peer="10.9.1.10", service_vulns=service.vulns,
                      now_wall=1000.0)
    assert (real.accepted, real.reason) == (verdict.accepted, verdict.reason)
