"""Simulated runs end to end: the run directory an emulated run writes, scored by the scorer;
determinism; detectors and quarantine on smb-flat; inherited weights; refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from testbed.errors import RunError
from testbed.eve import alert_detector, alert_source_host, alert_time
from testbed.model.load_scenario import Scenario, load_scenario
from testbed.model.scenario_spec import DetectorSpec
from testbed.results import Manifest
from testbed.scoring import METRIC_KEYS
from testbed.sim import run_simulation

REPO = Path(__file__).resolve().parents[2]
SMB_FLAT = REPO / "scenarios" / "smb-flat.yaml"


def variant(profile: str | None = None, detectors: list[str] | None = None,
            duration: float | None = None, **spec: Any) -> Scenario:
    scenario = load_scenario(SMB_FLAT)
    update: dict[str, Any] = dict(spec)
    if profile is not None:
        update["worm"] = scenario.spec.worm.model_copy(update={"profile": profile, "params": {}})
    if detectors is not None:
        update["detectors"] = [DetectorSpec(name=name) for name in detectors]
        rules = [rule.model_copy(update={"on": ["any"]}) for rule in scenario.spec.response.rules]
        update["response"] = scenario.spec.response.model_copy(
            update={"rules": rules if detectors else []})
    if duration is not None:
        update["duration_s"] = duration
    return replace(scenario, spec=scenario.spec.model_copy(update=update))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_directory_has_the_emulated_shape_and_scores(tmp_path: Path) -> None:
    results, run_dir = run_simulation(load_scenario(SMB_FLAT), seed=7, out_dir=tmp_path / "run")
    for name in ("manifest.json", "events.jsonl", "alerts.jsonl", "actions.jsonl",
                 "results.json", "report.html"):
        assert (run_dir / name).is_file(), name
    manifest = Manifest.model_validate_json((run_dir / "manifest.json").read_text())
    assert (manifest.backend, manifest.clock, manifest.t0_mono) == ("sim", "virtual", 0.0)
    assert manifest.end_mono is not None and 0 < manifest.end_mono <= 60.0
    assert manifest.wall_duration_s is not None and manifest.wall_duration_s > 0
    assert set(METRIC_KEYS) <= set(results)
    assert json.loads((run_dir / "results.json").read_text())["run"]["backend"] == "sim"
    events = lines(run_dir / "events.jsonl")
    assert [e["mono"] for e in events] == sorted(e["mono"] for e in events)
    types = {e["type"] for e in events}
    assert {"listen", "wake", "probe", "benign-request", "stop"} <= types
    probe = next(e for e in events if e["type"] == "probe")
    assert {"target", "target_host", "port", "proto", "service", "vuln", "tactic", "encoding",
            "outcome", "start_mono", "technique", "generation", "wall"} <= set(probe)
    assert all(e["outcome"] in ("infected", "not-vulnerable", "rejected", "refused", "timeout",
                                "prohibited", "unreachable", "ok")
               for e in events if e["type"] == "probe")
    with pytest.raises(RunError, match="already holds"):
        run_simulation(load_scenario(SMB_FLAT), seed=7, out_dir=run_dir)


def comparable(run_dir: Path) -> tuple[Any, ...]:
    results = json.loads((run_dir / "results.json").read_text())
    results["run"].pop("timings_s")
    events = [{k: v for k, v in e.items() if k != "wall"} for e in lines(run_dir / "events.jsonl")]
    alerts = [{k: v for k, v in a.items() if k != "timestamp"}
              for a in lines(run_dir / "alerts.jsonl")]
    return results, events, alerts


def test_same_seed_same_run_other_seed_other_run(tmp_path: Path) -> None:
    scenario = variant("adaptive", ["trw", "fanout", "signature"], duration=20.0)
    run_simulation(scenario, seed=3, out_dir=tmp_path / "a")
    run_simulation(scenario, seed=3, out_dir=tmp_path / "b")
    run_simulation(scenario, seed=4, out_dir=tmp_path / "c")
    assert comparable(tmp_path / "a") == comparable(tmp_path / "b")
    assert comparable(tmp_path / "a")[1] != comparable(tmp_path / "c")[1]


def test_detectors_catch_a_classic_worm_and_quarantine_cuts_it(tmp_path: Path) -> None:
    results, run_dir = run_simulation(variant("classic", ["trw", "fanout"], duration=30.0),
                                      seed=1, out_dir=tmp_path / "run")
    alerts = lines(run_dir / "alerts.jsonl")
    assert any(alert_detector(a) == "trw" and alert_source_host(a) == "lobby-printer"
               for a in alerts)
    assert results["contained"] and results["time_to_first_detection_s"] is not None
    actions = lines(run_dir / "actions.jsonl")
    quarantine = next(a for a in actions if a["action"] == "quarantine"
                      and a["target"] == "lobby-printer")
    landed = quarantine["mono"] + quarantine["enforced_s"]
    events = lines(run_dir / "events.jsonl")
    after = [e for e in events if e["type"] == "probe" and e["host"] == "lobby-printer"
             and e["start_mono"] >= landed]
    assert after, "the worm kept probing after the quarantine landed"
    assert {e["outcome"] for e in after} <= {"timeout", "unreachable"}
    before = [e for e in events if e["type"] == "probe" and e["host"] == "lobby-printer"
              and e["start_mono"] < landed]
    assert before
    assert not [e for e in events if e["type"] == "infection" and e["mono"] > landed
                and e.get("parent") == "lobby-printer"]


def test_offspring_inherit_the_adaptive_worms_weights(tmp_path: Path) -> None:
    results, run_dir = run_simulation(variant("adaptive", [], duration=20.0), seed=2,
                                      out_dir=tmp_path / "run")
    assert results["infected_total"] > 3  # the flat network falls without a defence
    events = lines(run_dir / "events.jsonl")
    infections = [e for e in events if e["type"] == "infection"]
    assert infections and all(e["weights"] and "uniform" in e["weights"] for e in infections)
    generation = {e["host"]: e["generation"] for e in events if e["type"] == "wake"}
    for infection in infections:
        assert infection["generation"] == generation[infection["parent"]] + 1
        assert generation[infection["host"]] == infection["generation"]


def test_packet_reading_detectors_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="suricata"):
        run_simulation(variant(detectors=["suricata"]), seed=1, out_dir=tmp_path / "run")


def test_reaction_delay_counts_from_the_alert_and_acts_once(tmp_path: Path) -> None:
    scenario = variant("classic", ["trw", "fanout"], duration=30.0)
    rules = [rule.model_copy(update={"delay_s": 2.0}) for rule in scenario.spec.response.rules]
    scenario = replace(scenario, spec=scenario.spec.model_copy(update={
        "response": scenario.spec.response.model_copy(update={"rules": rules})}))
    _, run_dir = run_simulation(scenario, seed=1, out_dir=tmp_path / "run")
    actions = lines(run_dir / "actions.jsonl")
    pairs = [(a["action"], a["target"]) for a in actions]
    assert len(pairs) == len(set(pairs))  # once per host and action
    for action in actions:
        assert action["mono"] == pytest.approx(action["cause"]["alert_mono"] + 2.0, abs=1e-6)
    first = next(a for a in actions if a["target"] == "lobby-printer")
    alerts = lines(run_dir / "alerts.jsonl")
    assert min(alert_time(a) for a in alerts if alert_source_host(a) == "lobby-printer") == \
        pytest.approx(first["cause"]["alert_mono"])


UDP_TOPOLOGY = """\
name: udpnet
segments:
  lan: {cidr: 10.8.0.0/29}
hosts:
  laptop: {segment: lan, ip: 10.8.0.2, tier: launch-pad,
           services: [{name: vpn, vulns: [MOCK-VPN-1]}]}
  gateway: {segment: lan, ip: 10.8.0.3, tier: server,
            services: [{name: vpn, vulns: [MOCK-VPN-1]}]}
"""
UDP_SCENARIO = """\
name: udp
topology: udpnet.yaml
duration_s: 20
seed: 3
worm: {profile: classic, patient_zero: laptop, start_s: 1}
detectors: [{name: signature}]
"""


def test_a_udp_exploit_infects_and_its_payload_reaches_the_signature_detector(
        tmp_path: Path) -> None:
    (tmp_path / "udpnet.yaml").write_text(UDP_TOPOLOGY)
    (tmp_path / "udp.yaml").write_text(UDP_SCENARIO)
    results, run_dir = run_simulation(load_scenario(tmp_path / "udp.yaml"),
                                      out_dir=tmp_path / "run")
    events = lines(run_dir / "events.jsonl")
    infection = next(e for e in events if e["type"] == "infection")
    assert (infection["host"], infection["proto"], infection["port"]) == ("gateway", "udp", 1194)
    probes = [e for e in events if e["type"] == "probe"]
    assert {e["outcome"] for e in probes} <= {"infected", "timeout", "unreachable"}
    assert any(e["outcome"] == "infected" and e["target"] == "10.8.0.3" for e in probes)
    alerts = lines(run_dir / "alerts.jsonl")
    assert any(alert_detector(a) == "signature" and alert_source_host(a) == "laptop"
               for a in alerts)
    assert results["infected_total"] == 2
