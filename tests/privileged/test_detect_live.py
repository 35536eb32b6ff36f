"""Live detection on a deployed topology: the sensor on real taps, real nmap, real Suricata,
automated quarantine, and benign users who must not be flagged.

Each test deploys its own small topology under its own TESTBED_STATE_DIR with the netns backend
and scans only that topology's addresses (10.9.0.0/24, 10.9.1.0/24 inside its namespaces).
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from detectors.base import Alert, SensorContext
from testbed.detection import DetectorSet
from testbed.model.load_topology import load_topology
from testbed.model.scenario_spec import ResponseRuleSpec, ResponseSpec
from testbed.response import Responder
from testbed.sensor import Sensor

TOPOLOGY = """\
name: {name}
segments:
  lan: {{cidr: 10.9.0.0/24}}
  dmz: {{cidr: 10.9.1.0/24}}
defaults:
  services: [{{name: http, port: 8080}}]
hosts:
  web: {{segment: dmz, tier: server}}
  files: {{segment: dmz, tier: server, services: [{{name: smb}}]}}
groups:
  pc: {{count: 3, segment: lan}}
routers:
  fw: {{segments: [lan, dmz], default: allow}}
"""
WEB = "10.9.1.2"
LISTENER = (f"import socket,time\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
            f"socket.SO_REUSEADDR, 1)\ns.bind(('{WEB}', 8080)); s.listen(64)\n"
            "while True:\n    c,_=s.accept(); c.send(b'ok'); c.close()\n")


def can_connect(deployment: Any, host: str, address: str, port: int) -> bool:
    probe = (f"import socket,sys\ntry:\n    socket.create_connection(('{address}', {port}), "
             f"timeout=1.5).close()\nexcept OSError:\n    sys.exit(1)\n")
    return deployment.run(host, [sys.executable, "-c", probe], check=False,
                          timeout=10).returncode == 0


@pytest.fixture()
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from testbed.backends import get_backend

    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    name = f"det{int(time.time() * 1000) % 10**8}"
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY.format(name=name))
    with get_backend("netns").deploy(load_topology(path), name) as deployed:
        yield deployed


def pump(sensor: Sensor, detectors: DetectorSet, seconds: float,
         responder: Responder | None = None, until: Any = None) -> tuple[list[Alert], Counter[str]]:
    alerts: list[Alert] = []
    kinds: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = sensor.poll(0.1)
        kinds.update(e.kind for e in events)
        kinds.update(f"outcome:{e.outcome}" for e in events if e.kind == "outcome")
        fresh = detectors.observe_many(events) + detectors.tick(time.monotonic())
        alerts += fresh
        if responder is not None:
            for alert in fresh:
                responder.handle(alert)
            responder.tick(time.monotonic())
        if until is not None and until(alerts):
            break
    return alerts, kinds


@pytest.mark.skipif(shutil.which("nmap") is None or shutil.which("suricata") is None,
                    reason="needs nmap and suricata (see docs/detectors.md)")
def test_nmap_syn_scan_is_flagged_and_quarantine_cuts_the_scanner_off(
        deployment: Any, tmp_path: Path) -> None:
    topology = deployment.topology
    scanner, bystander = "pc-1", "pc-2"
    scanner_ip = str(topology.hosts[scanner].ip)
    deployment.spawn("web", [sys.executable, "-c", LISTENER])
    deadline = time.monotonic() + 10
    while not can_connect(deployment, bystander, WEB, 8080):
        assert time.monotonic() < deadline, "the test's listener never came up"
        time.sleep(0.2)
    assert can_connect(deployment, scanner, WEB, 8080)

    taps = deployment.taps()
    context = SensorContext.from_topology(topology, taps=taps, workdir=tmp_path / "detectors")
    actions = tmp_path / "actions.jsonl"
    # Quarantine on fan-out, the slowest of the three to decide, so that all three can see the
    # scan before the scanner is cut off.
    responder = Responder(ResponseSpec(rules=[ResponseRuleSpec(on=["fanout"])]), deployment,
                          actions)
    with Sensor(taps) as sensor, DetectorSet.from_names(["trw", "fanout", "suricata"],
                                                        context) as detectors:
        detectors.start()
        nmap = deployment.spawn(scanner, [
            "nmap", "-sS", "-Pn", "-n", "-T4", "--max-retries", "0", "--min-rate", "300",
            "-p", "445,8080", "10.9.1.0/27", "10.9.0.0/27"])

        def all_three(alerts: list[Alert]) -> bool:
            return {a.detector for a in alerts if a.src_ip == scanner_ip} == {
                "trw", "fanout", "suricata"}

        alerts, kinds = pump(sensor, detectors, 60, responder, until=all_three)
        nmap.wait(timeout=60)
        alerts += detectors.close()
        stats = sensor.stats()
    flagged = {a.detector for a in alerts if a.src_ip == scanner_ip}
    assert flagged >= {"trw", "fanout", "suricata"}, (flagged, kinds)
    assert {a.host for a in alerts if a.src_ip == scanner_ip} == {scanner}
    assert not [a for a in alerts if a.src_ip != scanner_ip], "only the scanner is flagged"
    assert stats["kernel_drops"] == 0 and stats["duplicates"] > 0  # routed packets deduplicated
    records = responder.records
    assert [(r.action, r.target, r.ok) for r in records] == [
        ("quarantine", scanner, True)]
    assert records[0].cause["detector"] == "fanout"
    assert actions.read_text().count("\n") == 1
    assert scanner in deployment.containment().quarantined
    assert not can_connect(deployment, scanner, WEB, 8080)  # cut off ...
    assert can_connect(deployment, bystander, WEB, 8080)  # ... and only the scanner


def test_benign_users_raise_no_trw_alert_over_60_s(deployment: Any, tmp_path: Path) -> None:
    """The real agents' benign users (no worm wakes) under TRW, fan-out and CB-CRL for 60 s."""
    from testbed.agent import control
    from testbed.detection import load_scenario
    from testbed.runner.agent_configs import agent_command, write_agent_configs

    topology_file = tmp_path / "topology.yaml"
    scenario_file = tmp_path / "benign.yaml"
    scenario_file.write_text(f"""\
name: benign-only
topology: {topology_file}
duration_s: 90
worm: {{profile: classic, patient_zero: pc-3, start_s: 3600}}
benign:
  users:
    - {{hosts: pc, targets: [web, files], per_minute: 30}}
detectors: [{{name: trw}}]
""")
    scenario = load_scenario(scenario_file)
    state_dir = deployment.state_dir
    paths = write_agent_configs(scenario, state_dir, seed=3, secret=b"s" * 32,
                                layout="per-host")  # started one per host, just below
    for host, path in paths.items():
        deployment.spawn(host, agent_command(path))
    assert control.wait_ready(state_dir, list(paths), timeout=30) == []
    taps = deployment.taps()
    context = SensorContext.from_topology(deployment.topology, taps=taps)
    try:
        with Sensor(taps) as sensor, DetectorSet.from_names(["trw", "fanout", "cbcrl"],
                                                            context) as detectors:
            alerts, kinds = pump(sensor, detectors, 60)
            alerts += detectors.close()
    finally:
        control.stop_all(state_dir)
    assert kinds["outcome:success"] >= 30, kinds  # the users really worked
    assert [a for a in alerts if a.detector == "trw"] == []
    assert alerts == []


@pytest.mark.parametrize("ring", [True, False], ids=["tpacket-v3", "recv"])
def test_sensor_sees_a_routed_connection_once(deployment: Any, tmp_path: Path,
                                              ring: bool) -> None:
    """A connection across the router crosses four taps but yields one SYN and one outcome;
    the per-segment pcaps hold it too."""
    from testbed.sensor import events_from_pcap
    from testbed.sensor.capture import RingGeometry

    deployment.spawn("web", [sys.executable, "-c", LISTENER])
    time.sleep(1.0)
    taps = deployment.taps()
    assert {t.kind for t in taps} == {"segment", "router"}
    pcaps = tmp_path / "pcap"
    with Sensor(taps, pcap_dir=pcaps, ring=RingGeometry() if ring else None) as sensor:
        time.sleep(0.2)
        assert can_connect(deployment, "pc-3", WEB, 8080)
        time.sleep(1.5)
        events = sensor.poll(0.5)
        stats = sensor.stats()
    pc3 = str(deployment.topology.hosts["pc-3"].ip)
    syns = [e for e in events if e.kind == "syn" and e.src == pc3 and e.dport == 8080]
    outcomes = [e for e in events if e.kind == "outcome" and e.src == pc3 and e.dport == 8080]
    assert len(syns) == 1, events
    assert [(o.outcome, o.first) for o in outcomes] == [("success", True)]
    assert stats["duplicates"] >= 3 and stats["kernel_drops"] == 0
    assert socket.inet_aton(syns[0].dst) == socket.inet_aton(WEB)
    assert sorted(p.name for p in pcaps.iterdir()) == ["dmz.pcap", "lan.pcap"]
    for segment in ("lan", "dmz"):
        offline = [(e.kind, e.outcome) for e in events_from_pcap(pcaps / f"{segment}.pcap")
                   if e.src == pc3 and e.dport == 8080]
        assert ("syn", "") in offline and ("outcome", "success") in offline, segment
