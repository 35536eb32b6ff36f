"""A synthetic, deterministic run (topology + ground truth + alerts + actions) for report previews
and tests: ``python -m testbed.report.sample OUT.html`` writes a sample report.

Owns: nothing the real pipeline uses; it makes up records in the shapes of testbed/records.py and
testbed/actions.py.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from testbed.actions import parse_action_records
from testbed.model import load_topology
from testbed.results import Manifest
from testbed.scoring import RunRecords

__all__ = ["SAMPLE_TOPOLOGY", "sample_records"]

SAMPLE_TOPOLOGY = """
name: sample-company
segments:
  basement: {cidr: 10.20.0.0/24}
  office: {cidr: 10.20.1.0/24}
  servers: {cidr: 10.20.2.0/24}
  vault: {cidr: 10.20.3.0/24}
defaults:
  services: [{name: smb, vulns: [MOCK-SMB-1]}]
hosts:
  old-laptop: {segment: basement, tier: launch-pad}
  printer: {segment: basement, tier: launch-pad}
  camera: {segment: basement, tier: launch-pad}
  fileserver: {segment: servers, tier: server}
  mail: {segment: servers, tier: server}
  backup: {segment: servers, tier: server, patched: true}
  payroll-db: {segment: vault, tier: crown-jewel}
groups:
  pc: {count: 14, segment: office, tier: workstation}
routers:
  edge: {segments: [basement, office], default: allow}
  core: {segments: [office, servers], default: allow}
  vault-fw: {segments: [servers, vault], rules: [{action: allow, from: fileserver}]}
"""


def sample_records(*, t0: float = 5000.0, seed: int = 3) -> RunRecords:
    """An outbreak from the basement laptop into the office, detected and contained."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sample.yaml"
        path.write_text(SAMPLE_TOPOLOGY, encoding="utf-8")
        topology = load_topology(path)
    events: list[dict[str, Any]] = [{"mono": t0 + 2.0, "host": "old-laptop", "type": "wake"}]
    alerts: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    infected = [("old-laptop", t0 + 2.0)]
    victims = ["printer", "pc-1", "pc-2", "pc-5", "pc-7", "fileserver", "pc-9", "camera"]
    clock = t0 + 3.0
    for victim in victims:
        parent = rng.choice(infected)[0]
        for _ in range(rng.randint(2, 5)):
            clock += rng.uniform(0.2, 0.8)
            events.append({"mono": clock, "host": parent, "type": "probe", "target": "10.20.1.200",
                           "port": 445, "proto": "tcp", "outcome": "refused"})
        clock += rng.uniform(0.3, 1.5)
        events.append({"mono": clock, "host": victim, "type": "infection", "parent": parent})
        infected.append((victim, clock))
    for index, (host, when) in enumerate(infected[:6]):
        detector = "trw" if index % 2 == 0 else "fanout"
        alert_at = when + 1.5 + rng.uniform(0, 2.0)
        alerts.append({"mono": alert_at, "detector": detector, "host": host,
                       "src_ip": str(topology.hosts[host].ip),
                       "alert": {"signature": f"{detector}: scanning", "severity": 1}})
        actions.append({"mono": alert_at + 0.05, "action": "quarantine", "target": host,
                        "params": {}, "cause": {"detector": detector}, "enforced_s": 0.02,
                        "ok": True})
    alerts.append({"mono": t0 + 9.0, "detector": "fanout", "host": "pc-12",
                   "src_ip": str(topology.hosts["pc-12"].ip),
                   "alert": {"signature": "fanout: many peers", "severity": 2}})
    actions.append({"mono": t0 + 9.1, "action": "quarantine", "target": "pc-12", "params": {},
                    "cause": {"detector": "fanout"}, "enforced_s": 0.02, "ok": True})
    late = sorted(infected[6:], key=lambda item: item[1])
    for host, when in late:
        actions.append({"mono": when + 3.0, "action": "quarantine", "target": host, "params": {},
                        "cause": {"manual": "analyst"}, "enforced_s": 0.03, "ok": True})
    for step in range(40):
        ok = rng.random() > 0.1
        events.append({"mono": t0 + 1.0 + step * 0.9, "host": f"pc-{1 + step % 14}",
                       "type": "benign-request", "role": "user",
                       "outcome": "ok" if ok else "failed"})
    events.sort(key=lambda e: e["mono"])
    egress = {name: 0 for name in topology.hosts}
    sensor = {"packets": 18234, "kernel_drops": 0}
    manifest = Manifest(scenario="sample-outbreak", scenario_path="(sample)",
                        topology_path="(sample)", run_name="sample-outbreak", backend="netns",
                        seed=seed, duration_s=45.0, worm_profile="classic",
                        patient_zero=("old-laptop",), detectors=("trw", "fanout"), t0_mono=t0,
                        end_mono=t0 + 45.0, egress_counters=egress, sensor_stats=sensor)
    return RunRecords(topology=topology, t0=t0, end=t0 + 45.0, events=events, alerts=alerts,
                      actions=parse_action_records(actions), patient_zero=manifest.patient_zero,
                      detectors=manifest.detectors, egress_counters=egress, sensor_stats=sensor,
                      manifest=manifest)


def main(argv: list[str]) -> int:
    from testbed.report import write_report
    from testbed.scoring import score

    out = Path(argv[0] if argv else "sample-report.html")
    records = sample_records()
    write_report(out, score(records), records)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
