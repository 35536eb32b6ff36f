"""Each built-in detector over pcaps the tests generate: one positive and one negative case.

The pcaps go through ``events_from_pcap`` (the same parser and contact tracker as live capture)
and ``testbed.detection.run_offline``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from detectors.base import Alert, SensorContext
from testbed.detection import run_offline
from testbed.model.load_topology import load_topology
from testbed.sensor.synth import TrafficBuilder

TOPOLOGY = """\
name: dtest
segments:
  lan: {cidr: 10.9.0.0/24}
  dmz: {cidr: 10.9.1.0/24}
hosts:
  web: {segment: dmz, tier: server, services: [{name: http}]}
groups:
  pc: {count: 3, segment: lan}
routers:
  fw: {segments: [lan, dmz], default: allow}
decoys: [10.9.0.200]
"""
# Addresses the loader assigns: pc-1..3 = 10.9.0.2..4, web = 10.9.1.2, fw = 10.9.0.1 / 10.9.1.1.
SCANNER, CLIENT, OTHER, WEB = "10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.1.2"


@pytest.fixture()
def context(tmp_path: Path) -> SensorContext:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    return SensorContext.from_topology(load_topology(path))


def detect(tmp_path: Path, traffic: TrafficBuilder, names: list[str],
           context: SensorContext | None = None, **params: dict[str, object]) -> list[Alert]:
    from testbed.model.scenario_spec import DetectorSpec

    pcap = traffic.write(tmp_path / "capture.pcap")
    specs = [DetectorSpec(name=n, params=params.get(n, {})) for n in names]
    return run_offline(pcap, specs=specs, context=context)


def benign(traffic: TrafficBuilder, rounds: int = 30) -> TrafficBuilder:
    """Clients using a few services that answer, with a ping now and then."""
    for i in range(rounds):
        traffic.tcp(CLIENT, WEB, 80, payload=b"GET / HTTP/1.0\r\n\r\n").wait(0.7)
        traffic.tcp(OTHER, WEB, 80, payload=b"GET /x HTTP/1.0\r\n\r\n").wait(0.6)
        if i % 10 == 0:
            traffic.ping(CLIENT, OTHER).wait(0.1)
            traffic.udp(OTHER, WEB, 53).wait(0.1)
    return traffic


# ---- trw ------------------------------------------------------------------------------------

def test_trw_flags_a_pure_scanner_at_its_fourth_failed_first_contact(tmp_path: Path) -> None:
    traffic = TrafficBuilder()
    targets = [f"10.9.1.{50 + i}" for i in range(10)]
    for target in targets:
        traffic.tcp(SCANNER, target, 445, "refused").wait(0.2)
    alerts = detect(tmp_path, traffic, ["trw"])
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.src_ip == SCANNER and alert.detector == "trw"
    assert alert.dest_ip == targets[3]  # the 4th failed first contact
    assert alert.evidence["failures"] == 4 and alert.evidence["successes"] == 0


def test_trw_with_unanswered_syns_also_flags_at_the_fourth(tmp_path: Path) -> None:
    traffic = TrafficBuilder()
    targets = [f"10.9.1.{50 + i}" for i in range(6)]
    for target in targets:
        traffic.tcp(SCANNER, target, 445, "unanswered").wait(0.05)
    traffic.wait(5)
    alerts = detect(tmp_path, traffic, ["trw"])
    assert [a.dest_ip for a in alerts] == [targets[3]]


def test_clients_whose_connections_succeed_are_never_flagged(tmp_path: Path) -> None:
    traffic = benign(TrafficBuilder(), rounds=60)
    # Even many distinct servers, all answering, keep the walk low.
    for i in range(40):
        traffic.tcp(CLIENT, f"10.9.1.{100 + i}", 80).wait(0.3)
    alerts = detect(tmp_path, traffic, ["trw", "fanout", "cbcrl", "signature"])
    assert alerts == []


def test_trw_is_evaded_by_interleaving_successes(tmp_path: Path) -> None:
    """The documented weakness (Mell & Harang 2013): a test that guards the semantics."""
    traffic = TrafficBuilder()
    for i in range(20):
        traffic.tcp(SCANNER, f"10.9.1.{50 + i}", 445, "refused").wait(0.1)
        traffic.tcp(SCANNER, f"10.9.1.{150 + i}", 80, "success").wait(0.1)
    assert detect(tmp_path, traffic, ["trw"]) == []


def test_arp_only_scanning_of_dead_addresses_is_caught(tmp_path: Path,
                                                       context: SensorContext) -> None:
    traffic = TrafficBuilder()
    traffic.tcp(SCANNER, OTHER, 445, "success", arp=True).wait(0.1)  # a live neighbour
    for i in range(30):  # dead neighbours: only ARP requests, never a SYN
        traffic.tcp(SCANNER, f"10.9.0.{100 + i}", 445, "unanswered", arp=True).wait(0.05)
    traffic.wait(3)
    frames = [f for _, f in traffic.frames]
    to_dead = [f for f in frames if f[12:14] == b"\x08\x00" and f[30:33] == bytes([10, 9, 0])
               and f[33] >= 100]
    assert to_dead == []  # not one IP packet to the dead: ARP is all there is
    alerts = detect(tmp_path, traffic, ["trw", "fanout", "darknet", "throttle", "cbcrl"],
                    context)
    by = {a.detector: a for a in alerts}
    assert set(by) == {"trw", "fanout", "darknet", "throttle", "cbcrl"}
    assert all(a.src_ip == SCANNER and a.host == "pc-1" for a in alerts)
    # one success (x0.25) then failures (x4): 0.25 * 4^5 = 256 >= 99 at the 5th dead address
    assert by["trw"].proto == "ARP" and by["trw"].dest_ip == "10.9.0.104"
    assert by["fanout"].evidence["scan"] == "address"


# ---- throttle -------------------------------------------------------------------------------

def test_throttle_alarms_when_its_delay_queue_grows(tmp_path: Path) -> None:
    traffic = TrafficBuilder()
    for i in range(15):  # 20 new destinations per second: the queue grows by ~19 a second
        traffic.tcp(SCANNER, f"10.9.1.{50 + i}", 445, "success").wait(0.05)
    alerts = detect(tmp_path, traffic, ["throttle"])
    assert len(alerts) == 1 and alerts[0].src_ip == SCANNER
    assert alerts[0].evidence["queue_length"] == 10


def test_throttle_stays_quiet_for_a_small_working_set_and_slow_newcomers(tmp_path: Path) -> None:
    traffic = benign(TrafficBuilder(), rounds=40)
    for i in range(20):  # a new destination every 1.5 s: released faster than it arrives
        traffic.tcp(CLIENT, f"10.9.1.{100 + i}", 80).wait(1.5)
    assert detect(tmp_path, traffic, ["throttle"]) == []


# ---- cbcrl ----------------------------------------------------------------------------------

def test_cbcrl_runs_a_failing_scanner_out_of_credit(tmp_path: Path) -> None:
    traffic = TrafficBuilder()
    for i in range(15):
        traffic.tcp(SCANNER, f"10.9.1.{50 + i}", 445, "refused").wait(0.3)
    alerts = detect(tmp_path, traffic, ["cbcrl"])
    assert len(alerts) == 1 and alerts[0].evidence["first_contacts"] == 10


def test_cbcrl_lets_a_mostly_successful_client_through(tmp_path: Path) -> None:
    traffic = TrafficBuilder()
    for i in range(60):  # 2 of 3 first contacts succeed: +2 -1 ... stays in credit
        outcome = "refused" if i % 3 == 0 else "success"
        traffic.tcp(CLIENT, f"10.9.1.{10 + i}", 80, outcome).wait(0.3)  # type: ignore[arg-type]
    assert detect(tmp_path, traffic, ["cbcrl"]) == []


# ---- fanout ---------------------------------------------------------------------------------

def test_fanout_address_and_port_scans_at_zeek_thresholds(tmp_path: Path) -> None:
    traffic = TrafficBuilder()
    for i in range(30):
        traffic.tcp(SCANNER, f"10.9.1.{50 + i}", 445, "refused").wait(0.01)
    for port in range(1000, 1020):
        traffic.tcp(OTHER, WEB, port, "refused").wait(0.01)
    alerts = detect(tmp_path, traffic, ["fanout"])
    scans = {(a.src_ip, a.evidence["scan"]): a for a in alerts}
    assert set(scans) == {(SCANNER, "address"), (OTHER, "port")}
    assert scans[(SCANNER, "address")].evidence["hosts"] == 25
    assert scans[(OTHER, "port")].evidence["ports"] == 15


def test_fanout_ignores_failures_below_threshold_or_spread_over_time(tmp_path: Path) -> None:
    traffic = benign(TrafficBuilder(), rounds=10)
    for i in range(24):  # one short of the threshold
        traffic.tcp(SCANNER, f"10.9.1.{50 + i}", 445, "refused").wait(0.01)
    for i in range(30):  # 30 failures, but 20 s apart: never 25 within 300 s
        traffic.tcp(OTHER, f"10.9.1.{100 + i}", 445, "refused").wait(20)
    assert detect(tmp_path, traffic, ["fanout"]) == []


# ---- darknet --------------------------------------------------------------------------------

def test_darknet_flags_a_contact_to_a_decoy_or_unused_address(
        tmp_path: Path, context: SensorContext) -> None:
    traffic = benign(TrafficBuilder(), rounds=5)
    traffic.tcp(SCANNER, "10.9.0.200", 445, "unanswered", arp=True).wait(2)  # the decoy
    traffic.tcp(OTHER, "10.9.1.99", 22, "unanswered").wait(2)  # unused, across the router
    alerts = detect(tmp_path, traffic, ["darknet"], context)
    kinds = {a.src_ip: a.evidence["kind"] for a in alerts}
    assert kinds == {SCANNER: "decoy", OTHER: "unused"}


def test_darknet_is_silent_for_used_addresses_and_without_inventory(
        tmp_path: Path, context: SensorContext) -> None:
    traffic = benign(TrafficBuilder(), rounds=10)
    assert detect(tmp_path, traffic, ["darknet"], context) == []
    traffic.tcp(SCANNER, "10.9.0.200", 445, "unanswered", arp=True)
    assert detect(tmp_path, traffic, ["darknet"]) == []  # a bare pcap: no inventory


# ---- signature ------------------------------------------------------------------------------

def _exploit_lines() -> tuple[bytes, bytes]:
    from testbed.agent.protocol import PAYLOAD_MARKER

    plain = f"{PAYLOAD_MARKER} MOCK-SMB-1 10.9.0.2 10.9.1.2 {'0' * 32} 1 0 pc-1 - ab\n".encode()
    import base64

    key = b"\x13\x37\x42\x99"
    encoded = base64.b64encode(key + bytes(b ^ key[i % 4] for i, b in enumerate(plain))) + b"\n"
    return plain, encoded


def test_signature_matches_the_plain_marker(tmp_path: Path) -> None:
    plain, _ = _exploit_lines()
    traffic = benign(TrafficBuilder(), rounds=3)
    traffic.tcp(SCANNER, WEB, 445, payload=plain)
    alerts = detect(tmp_path, traffic, ["signature"])
    assert [(a.src_ip, a.dest_ip, a.dest_port) for a in alerts] == [(SCANNER, WEB, 445)]


def test_signature_is_blind_to_the_encoded_marker(tmp_path: Path) -> None:
    _, encoded = _exploit_lines()
    traffic = benign(TrafficBuilder(), rounds=3)
    traffic.tcp(SCANNER, WEB, 445, payload=encoded)
    assert detect(tmp_path, traffic, ["signature"]) == []


def test_signature_uses_the_agents_marker() -> None:
    from detectors.signature import SignatureDetector
    from testbed.agent.protocol import PAYLOAD_MARKER

    assert SignatureDetector.PARAMETERS["marker"] == PAYLOAD_MARKER


# ---- graph ----------------------------------------------------------------------------------

def test_graph_flags_many_never_seen_edges_after_warmup(tmp_path: Path) -> None:
    traffic = benign(TrafficBuilder(), rounds=30)  # ~40 s of the usual edges
    for i in range(6):
        traffic.tcp(CLIENT, f"10.9.1.{60 + i}", 445, "refused").wait(0.5)
    alerts = detect(tmp_path, traffic, ["graph"])
    assert [a.src_ip for a in alerts] == [CLIENT]
    assert alerts[0].severity == 2


def test_graph_stays_quiet_when_users_keep_to_their_edges(tmp_path: Path) -> None:
    traffic = benign(TrafficBuilder(), rounds=80)
    assert detect(tmp_path, traffic, ["graph"]) == []


# ---- suricata (real Suricata on the pcap; no privileges needed) --------------------------------

needs_suricata = pytest.mark.skipif(shutil.which("suricata") is None,
                                    reason="suricata is not installed (see docs/detectors.md)")


@needs_suricata
def test_suricata_flags_a_syn_scan_and_the_marker(tmp_path: Path,
                                                  context: SensorContext) -> None:
    plain, _ = _exploit_lines()
    traffic = benign(TrafficBuilder(), rounds=3)
    for port in range(1, 40):
        traffic.tcp(SCANNER, WEB, port, "refused").wait(0.01)
    traffic.tcp(OTHER, WEB, 445, payload=plain).wait(1)
    alerts = detect(tmp_path, traffic, ["suricata"], context)
    signatures = {(a.src_ip, a.signature_id) for a in alerts}
    assert (SCANNER, 9000001) in signatures  # SYN fan-out
    assert (OTHER, 9000010) in signatures  # exploit marker
    assert all(a.detector == "suricata" for a in alerts)
    assert {a.host for a in alerts} == {"pc-1", "pc-3"}


@needs_suricata
def test_suricata_is_quiet_on_benign_traffic(tmp_path: Path, context: SensorContext) -> None:
    traffic = benign(TrafficBuilder(), rounds=15)
    assert detect(tmp_path, traffic, ["suricata"], context) == []
