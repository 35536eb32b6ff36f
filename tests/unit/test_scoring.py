"""The scorer on synthetic ground truth, every expected number computed by hand in the comments.

Topology (all hosts run smb with MOCK-SMB-1 unless patched; routers allow everything):
    basement 10.9.0.0/24: laptop (launch-pad, value 1), printer (launch-pad, 1)
    office   10.9.1.0/24: pc1, pc2 (workstation, 5 each), pc3 (workstation, 5, patched)
    vault    10.9.2.0/24: db (crown-jewel, 100)
Patient zero: laptop. Value at risk = everything but the laptop = 1+5+5+5+100 = 116.
Susceptible hosts: laptop, printer, pc1, pc2, db (pc3 is patched).
t0 = 1000.0 (monotonic); times in results are seconds since t0.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from testbed.actions import ActionRecord
from testbed.containment import ContainmentTimeline, ReachabilityOracle
from testbed.model import Topology, load_topology
from testbed.policy import Block, ContainmentState
from testbed.results import Manifest
from testbed.scoring import (
    METRIC_KEYS,
    RunRecords,
    containment_grade,
    load_run_records,
    score,
)

T0 = 1000.0

TOPOLOGY_YAML = """
name: score-net
segments:
  basement: {cidr: 10.9.0.0/24}
  office: {cidr: 10.9.1.0/24}
  vault: {cidr: 10.9.2.0/24}
defaults:
  services: [{name: smb, vulns: [MOCK-SMB-1]}]
hosts:
  laptop: {segment: basement, tier: launch-pad}
  printer: {segment: basement, tier: launch-pad}
  pc1: {segment: office, tier: workstation}
  pc2: {segment: office, tier: workstation}
  pc3: {segment: office, tier: workstation, patched: true}
  db: {segment: vault, tier: crown-jewel}
routers:
  r1: {segments: [basement, office], default: %(r1)s}
  r2: {segments: [office, vault], default: allow}
"""


def make_topology(tmp_path: Path, r1: str = "allow") -> Topology:
    path = tmp_path / f"topo-{r1}.yaml"
    path.write_text(TOPOLOGY_YAML % {"r1": r1}, encoding="utf-8")
    return load_topology(path)


@pytest.fixture()
def topology(tmp_path: Path) -> Topology:
    return make_topology(tmp_path)


def ip(topology: Topology, host: str) -> str:
    return str(topology.hosts[host].ip)


def wake(host: str, at: float) -> dict[str, Any]:
    return {"mono": at, "host": host, "type": "wake"}


def infection(host: str, at: float, parent: str) -> dict[str, Any]:
    return {"mono": at, "host": host, "type": "infection", "parent": parent, "generation": 1}


def probe(host: str, at: float, target: str = "10.9.1.99",
          outcome: str = "refused") -> dict[str, Any]:
    return {"mono": at, "host": host, "type": "probe", "target": target, "port": 445,
            "proto": "tcp", "outcome": outcome}


def alert(topology: Topology, host: str, at: float, detector: str = "trw") -> dict[str, Any]:
    return {"mono": at, "event_type": "alert", "src_ip": ip(topology, host), "dest_ip": "10.9.1.1",
            "detector": detector, "host": None, "alert": {"signature": "scan", "severity": 1}}


def quarantine(host: str, at: float, enforced: float = 0.0, ok: bool = True,
               action: str = "quarantine") -> dict[str, Any]:
    return {"mono": at, "action": action, "target": host, "params": {},
            "cause": {"detector": "trw"}, "enforced_s": enforced, "ok": ok}


def records(topology: Topology, events: list[dict[str, Any]],
            alerts: Sequence[dict[str, Any]] = (), actions: Sequence[dict[str, Any]] = (), *,
            detectors: tuple[str, ...] = ("trw",),
            egress: dict[str, int] | None = None, end: float = T0 + 30) -> RunRecords:
    return RunRecords(topology=topology, t0=T0, end=end, events=events, alerts=list(alerts),
                      actions=[ActionRecord.model_validate(a) for a in actions],
                      patient_zero=("laptop",), detectors=detectors,
                      egress_counters={"laptop": 0} if egress is None else egress)


def story(topology: Topology) -> RunRecords:
    """Laptop wakes, infects pc1; trw flags both, fanout flags pc3 (wrongly); both quarantined."""
    events = [
        wake("laptop", 1002.0),
        probe("laptop", 1002.5, ip(topology, "pc1"), "infected"),
        infection("pc1", 1002.6, "laptop"),
        probe("laptop", 1003.0),
        probe("pc1", 1003.5),
        probe("laptop", 1004.0),
        {"mono": 1004.2, "host": "pc2", "type": "benign-request", "outcome": "ok", "role": "user"},
        {"mono": 1007.0, "host": "pc2", "type": "benign-request", "outcome": "failed",
         "role": "user"},
        {"mono": 1008.0, "host": "db", "type": "token-rejected", "reason": "forged"},
    ]
    alerts = [alert(topology, "pc3", 1004.0, "fanout"),
              alert(topology, "laptop", 1004.5),
              alert(topology, "pc1", 1005.0)]
    actions = [quarantine("laptop", 1005.0, 0.5), quarantine("pc1", 1005.8, 0.2)]
    return records(topology, events, alerts, actions, detectors=("trw", "fanout"))


def test_story_has_every_metric_and_hand_computed_values(topology: Topology) -> None:
    results = score(story(topology))
    assert set(METRIC_KEYS) <= set(results.model_dump())
    # origin = laptop's first probe at 1002.5; first true alert: laptop at 1004.5 -> 2.0
    assert results.time_to_first_detection_s == 2.0
    # pc1 quarantined at 1005.8 + 0.2 = 1006.0: no infected, unquarantined host left -> 3.5
    assert results.time_to_containment_s == 3.5
    assert results.contained is True
    assert results.contained_at_s == 6.0
    assert results.last_infection_s == 2.6
    assert results.infected_total == 2
    assert results.infected_by_tier == {"launch-pad": 1, "workstation": 1, "server": 0,
                                           "crown-jewel": 0}
    assert results.peak_infected == 2
    assert results.launch_pad_escape.model_dump() == {"escaped": True, "time_s": 2.6, "host": "pc1",
                                            "tier": "workstation"}
    assert results.crown_jewels_infected == []
    assert results.value_weighted_loss == 5.0  # pc1; patient zero is not counted
    assert results.value_at_risk == 116.0
    assert results.value_loss_fraction == round(5 / 116, 4)
    # laptop probed at 1002.5, 1003, 1004 before its alert at 1004.5; pc1 at 1003.5 before 1005
    assert results.probes_before_detection.model_dump() == {"per_host": {"laptop": 3, "pc1": 1},
                                                  "median": 2.0}


def test_story_detector_table(topology: Topology) -> None:
    rows = score(story(topology)).detectors
    assert list(rows) == ["trw", "fanout", "any"]
    trw = rows["trw"]
    assert (trw.true_positive_hosts, trw.false_positive_hosts,
            trw.false_negative_hosts) == (["laptop", "pc1"], [], [])
    assert (trw.precision, trw.recall) == (1.0, 1.0)
    # latency from each host's first probe: laptop 1004.5-1002.5 = 2.0; pc1 1005-1003.5 = 1.5
    assert trw.median_detection_latency_s == 1.75
    # from infection: laptop 1004.5-1002 = 2.5; pc1 1005-1002.6 = 2.4 -> median 2.45
    assert trw.median_latency_from_infection_s == 2.45
    fanout = rows["fanout"]
    assert (fanout.tp, fanout.fp, fanout.fn) == (0, 1, 2)
    assert fanout.false_positive_hosts == ["pc3"]
    assert (fanout.precision, fanout.recall) == (0.0, 0.0)
    assert fanout.median_detection_latency_s is None
    combined = rows["any"]
    assert (combined.tp, combined.fp, combined.fn) == (2, 1, 0)
    assert combined.precision == round(2 / 3, 4)


def test_story_collateral_safety_and_grade(topology: Topology) -> None:
    results = score(story(topology))
    assert results.collateral.benign_hosts_quarantined == 0
    assert results.collateral.benign_requests == 2
    assert results.collateral.benign_requests_failed == 1
    assert results.collateral.benign_failure_fraction == 0.5
    assert results.safety.egress_packets == 0
    assert results.safety.forged_tokens_rejected == 1
    assert results.one_ten_sixty.held is True
    # 100 - 40*5/116 - 10 (escape) - 15*log10(4.5)/log10(3601) - 10*0.5 (benign failures)
    expected = 100 - 40 * 5 / 116 - 10 - 15 * math.log10(4.5) / math.log10(3601) - 5
    assert results.grade.score == round(expected, 1)  # 80.5
    assert results.grade.letter == "B"
    json.dumps(results.model_dump(mode="json"))  # JSON-ready


def test_no_infection_is_trivially_contained(topology: Topology) -> None:
    results = score(records(topology, [], egress={}))
    assert results.infected_total == 0
    assert results.time_to_containment_s == 0.0
    assert results.contained is True
    assert results.time_to_first_detection_s is None
    assert results.last_infection_s is None
    assert results.peak_infected == 0
    assert results.launch_pad_escape.escaped is False
    assert results.one_ten_sixty.held is True  # nothing to detect
    assert results.grade.letter == "A" and results.grade.score == 100.0


def test_nothing_detected_and_spreading(topology: Topology) -> None:
    events = [wake("laptop", 1001.0), probe("laptop", 1001.5),
              infection("pc1", 1002.0, "laptop"), infection("db", 1003.0, "pc1")]
    results = score(records(topology, events))
    assert results.time_to_first_detection_s is None
    # printer and pc2 are still reachable from infected hosts: not contained
    assert results.contained is False and results.time_to_containment_s is None
    assert [c.model_dump() for c in results.crown_jewels_infected] == [{"host": "db",
                                                                         "time_s": 3.0}]
    assert results.value_weighted_loss == 105.0
    rows = results.detectors["trw"]
    assert (rows.tp, rows.fp, rows.fn) == (0, 0, 3)
    assert rows.precision is None and rows.recall == 0.0
    assert results.one_ten_sixty.model_dump() == {"detect_within_1_min": False,
                                        "investigate_within_10_min": None,
                                        "contain_within_60_min": False, "held": False}
    # 100 - 40*105/116 - 10 - 25 = 28.79 -> F (also capped at 69 by the crown jewel)
    assert results.grade.letter == "F"
    assert results.grade.score == round(100 - 40 * 105 / 116 - 35, 1)
    assert "crown jewel infected: at best D" in results.grade.caps


def test_everything_infected_is_burned_out_not_contained(topology: Topology) -> None:
    events = [wake("laptop", 1001.0), probe("laptop", 1001.1),
              infection("printer", 1001.5, "laptop"), infection("pc1", 1002.0, "laptop"),
              infection("pc2", 1002.5, "pc1"), infection("db", 1004.0, "pc2")]
    # all infected hosts quarantined afterwards: still no credit, nothing was left to protect
    actions = [quarantine(h, 1010.0) for h in ("laptop", "printer", "pc1", "pc2", "db")]
    results = score(records(topology, events, actions=actions))
    assert results.infected_total == 5
    assert results.contained is False
    assert results.time_to_containment_s is None
    assert results.peak_infected == 5
    assert results.last_infection_s == 4.0
    assert results.value_loss_fraction == round(111 / 116, 4)
    assert results.grade.letter == "F"


def test_quarantine_of_a_benign_host_is_collateral(topology: Topology) -> None:
    events = [wake("laptop", 1001.0), probe("laptop", 1001.2),
              infection("pc2", 1012.0, "laptop")]
    actions = [quarantine("pc2", 1003.0),  # benign at that moment
               quarantine("pc2", 1010.0, action="release"),
               quarantine("printer", 1004.0),  # never infected
               quarantine("laptop", 1014.0), quarantine("pc2", 1015.0)]
    results = score(records(topology, events, actions=actions))
    collateral = results.collateral
    assert collateral.benign_hosts_quarantined == 2
    assert [q.host for q in collateral.benign_quarantines] == ["pc2", "printer"]
    assert collateral.benign_quarantines[0].time_s == 3.0
    # laptop and pc2 both quarantined at 1015 -> contained 1015 - 1001.2 = 13.8
    assert results.time_to_containment_s == 13.8
    assert results.grade.penalties["benign_quarantined"] == 10.0


def test_segmentation_alone_contains_from_the_start(tmp_path: Path) -> None:
    topology = make_topology(tmp_path, r1="deny")  # the basement reaches nobody
    events = [wake("laptop", 1002.0), probe("laptop", 1002.5, ip(topology, "pc1"), "timeout"),
              infection("printer", 1003.0, "laptop")]
    results = score(records(topology, events))
    # contained once the printer fell: both basement hosts are cut off by r1
    # (after the laptop's wake the printer was still reachable on the same segment)
    assert results.contained is True
    assert results.contained_at_s == 3.0
    assert results.time_to_containment_s == 0.5  # from the first probe at 1002.5
    assert results.launch_pad_escape.escaped is False
    assert results.value_weighted_loss == 1.0


def test_failed_actions_and_late_records_are_ignored(topology: Topology) -> None:
    events = [wake("laptop", 1001.0), probe("laptop", 1001.0),
              infection("pc1", 1050.0, "laptop")]  # after the end: not counted
    actions = [quarantine("laptop", 1002.0, ok=False)]
    results = score(records(topology, events, actions=actions, end=T0 + 30))
    assert results.infected_total == 1
    assert results.contained is False


def test_block_actions_contain(topology: Topology) -> None:
    events = [wake("laptop", 1001.0), probe("laptop", 1001.5)]
    block = {"mono": 1004.0, "action": "block", "target": "laptop", "ok": True,
             "params": {"source": "laptop", "destination": "any", "port": None, "proto": "any"},
             "cause": {"manual": "alice"}}
    results = score(records(topology, events, actions=[block]))
    assert results.time_to_containment_s == 2.5
    unblock = dict(block, mono=1006.0, action="unblock")
    results = score(records(topology, events, actions=[block, unblock]))
    assert results.contained is False  # unblocked again: the laptop reaches the printer


def test_alert_before_infection_is_a_false_positive(topology: Topology) -> None:
    events = [wake("laptop", 1001.0), probe("laptop", 1001.5),
              infection("pc1", 1005.0, "laptop")]
    alerts = [alert(topology, "pc1", 1003.0),
              {"mono": 1004.0, "src_ip": "10.9.1.1", "detector": "trw"}]  # a router address
    row = score(records(topology, events, alerts)).detectors["trw"]
    assert row.false_positive_hosts == ["pc1"]
    assert row.unattributed_alerts == 1
    assert row.false_negative_hosts == ["laptop", "pc1"]


def test_egress_invalidates_the_run(topology: Topology) -> None:
    results = score(records(topology, [], egress={"laptop": 3, "pc1": 0}))
    assert results.safety.egress_packets == 3
    assert results.safety.egress_by_host == {"laptop": 3}
    assert results.grade.letter == "F"


def test_grade_bands() -> None:
    def grade_for(loss: float, escaped: bool, contain: float | None) -> str:
        return containment_grade(
            value_loss_fraction=loss, escaped=escaped, time_to_containment_s=contain,
            crown_jewel_fell=False, benign_hosts_quarantined=0, benign_failure_fraction=None,
            egress_packets=0).letter

    assert grade_for(0.0, False, 0.5) == "A"
    assert grade_for(0.0, True, 10.0) == "B"  # 100 - 10 - 4.4
    assert grade_for(0.2, True, 60.0) == "C"  # 100 - 8 - 10 - 7.5
    assert grade_for(0.3, True, 600.0) == "D"  # 100 - 12 - 10 - 11.7
    assert grade_for(0.5, True, None) == "F"  # 100 - 20 - 10 - 25


def test_replay_and_oracle(topology: Topology) -> None:
    actions = [quarantine("pc1", 10.0), quarantine("pc1", 20.0, action="release"),
               quarantine("pc2", 15.0, enforced=10.0)]
    timeline = ContainmentTimeline(topology)
    for action in actions:
        timeline.act(ActionRecord.model_validate(action))
    timeline.advance(12.0)
    assert timeline.state.quarantined == {"pc1"}
    timeline.advance(22.0)
    assert timeline.state.quarantined == set()
    timeline.advance(math.inf)
    assert timeline.state.quarantined == {"pc2"}  # effective at 25.0
    oracle = ReachabilityOracle(topology)
    assert oracle.can_infect("laptop", "db", ContainmentState())
    assert not oracle.can_infect("laptop", "pc3", ContainmentState())  # patched
    state = ContainmentState(blocks=[Block("laptop", "10.9.2.0/24")])
    assert not oracle.can_infect("laptop", "db", state)
    assert oracle.can_infect("laptop", "pc1", state)
    assert oracle.exposures(["laptop"], ContainmentState(quarantined={"laptop"})) == []


def test_load_run_records_roundtrip(topology: Topology, tmp_path: Path) -> None:
    story_records = story(topology)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name, rows in (("events", story_records.events), ("alerts", story_records.alerts),
                       ("actions", story_records.actions)):
        text = "".join(json.dumps(row.model_dump() if isinstance(row, ActionRecord) else row)
                       + "\n" for row in rows)
        (run_dir / f"{name}.jsonl").write_text(text + '{"torn', encoding="utf-8")
    manifest = Manifest(
        scenario="story", scenario_path="story.yaml", topology_path="topo.yaml",
        run_name="story-1", backend="netns", seed=7, duration_s=30.0, worm_profile="classic",
        t0_mono=T0, end_mono=T0 + 30, patient_zero=("laptop",), detectors=("trw", "fanout"),
        egress_counters={"laptop": 0})
    (run_dir / "manifest.json").write_text(manifest.model_dump_json())
    loaded = load_run_records(run_dir, topology)
    assert loaded.manifest == manifest
    expected = score(dataclasses.replace(story_records, manifest=manifest))
    assert expected.run.seed == 7
    assert score(loaded) == expected


def test_probe_time_is_when_the_probe_began(topology: Topology) -> None:
    # agents log a probe when its outcome is known (here after a 2 s connect timeout)
    late_logged = dict(probe("laptop", 1003.0), start_mono=1001.0)
    events = [wake("laptop", 1000.9), late_logged]
    alerts = [alert(topology, "laptop", 1001.1, "darknet")]
    actions = [quarantine("laptop", 1001.2)]
    results = score(records(topology, events, alerts, actions, detectors=("darknet",)))
    assert results.run.first_probe_s == 1.0
    assert results.time_to_first_detection_s == 0.1
    assert results.time_to_containment_s == 0.2
    assert results.probes_before_detection.per_host == {"laptop": 1}
    assert results.detectors["darknet"].median_detection_latency_s == 0.1
