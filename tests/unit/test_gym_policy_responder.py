"""response: {policy: FILE}: the Responder runs a policy file (numpy forward pass) on alerts and,
for a policy trained on first-contact features, on the sensor's connection events; bad policy
files fail with the file, the reason and a hint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detectors.base import Alert, ConnEvent
from testbed.gym.observation import ACTIONS, QUARANTINE, ObservationBuilder
from testbed.gym.policies import PolicyError, load_policy_for, resolve_policy_path, save_mlp
from testbed.model import load_scenario
from testbed.response import Responder
from testbed.sim.engine import SimDeployment
from testbed.sim.timing import load_timing

REPO = Path(__file__).resolve().parents[2]


def alert_quarantiner(path: Path, builder: ObservationBuilder) -> Path:
    """One linear layer: a host's trw alert column drives its quarantine logit."""
    hosts, columns = builder.layout.hosts, builder.layout.columns
    width, column = len(columns), columns.index("alerts:trw")
    weight = np.zeros((len(hosts) * len(ACTIONS), len(hosts) * width))
    bias = np.tile([0.5, 0.0, 0.0, 0.0], len(hosts))
    for row in range(len(hosts)):
        weight[row * len(ACTIONS) + QUARANTINE, row * width + column] = 10.0
    return save_mlp(path, [(weight, bias)], {"hosts": hosts, "columns": columns,
                                             "decision_interval_s": 1.0})


def test_policy_responder_quarantines_what_the_policy_chooses(tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios" / "smb-flat.yaml")
    detectors = tuple(d.name for d in scenario.spec.detectors)
    policy = alert_quarantiner(tmp_path / "policy.npz",
                               ObservationBuilder(scenario.topology, detectors))
    spec = scenario.spec.response.model_copy(update={"policy": str(policy), "rules": []})
    now = [10.0]
    responder = Responder(spec, SimDeployment(scenario, load_timing()), tmp_path / "a.jsonl",
                          clock=lambda: now[0])
    assert responder.tick(now[0]) == []  # first decision: no alert, nothing to do
    printer = scenario.topology.hosts["lobby-printer"]
    records = responder.handle(Alert(10.2, "fanout", str(printer.ip), "fan-out"))
    assert records == []  # not a trw alert, and the next decision is due at 11.0
    now[0] = 10.5
    assert responder.handle(Alert(10.5, "trw", str(printer.ip), "scan")) == []
    now[0] = 11.0
    records = responder.tick(now[0])
    assert [(r.action, r.target) for r in records] == [("quarantine", "lobby-printer")]
    assert records[0].cause == {"policy": str(policy)}
    now[0] = 12.0
    assert responder.tick(now[0]) == []  # quarantined: the mask forbids doing it again
    assert len(responder.log.read()) == 1


def contact_quarantiner(path: Path, builder: ObservationBuilder) -> Path:
    """Per-host architecture: a host's fan-out column drives its quarantine logit, whichever
    host it is (the same small network for every row)."""
    columns = builder.layout.columns
    width = len(columns)
    weight = np.zeros((len(ACTIONS), 2 * width))
    weight[QUARANTINE, columns.index("fan-out")] = 10.0
    bias = np.array([0.5, 0.0, 0.0, 0.0])
    return save_mlp(path, [(weight, bias)], {"hosts": builder.layout.hosts, "columns": columns,
                                             "architecture": "per-host",
                                             "contact_features": True})


def test_policy_responder_reads_sensor_events_when_trained_on_them(tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios" / "smb-flat.yaml")
    detectors = tuple(d.name for d in scenario.spec.detectors)
    policy = contact_quarantiner(tmp_path / "contacts.npz",
                                 ObservationBuilder(scenario.topology, detectors))
    spec = scenario.spec.response.model_copy(update={"policy": str(policy), "rules": []})
    now = [5.0]
    responder = Responder(spec, SimDeployment(scenario, load_timing()), tmp_path / "a.jsonl",
                          clock=lambda: now[0])
    assert responder.wants_events and responder.tick(now[0]) == []
    pc3 = str(scenario.topology.hosts["pc-3"].ip)
    first = ConnEvent(time=5.2, src=pc3, dst="10.10.20.99", sport=4000, dport=445,
                      proto="TCP", kind="outcome", outcome="timeout", first=True)
    repeat = ConnEvent(time=5.3, src=str(scenario.topology.hosts["pc-4"].ip),
                       dst="10.10.20.99", sport=4001, dport=445, proto="TCP", kind="outcome",
                       outcome="timeout", first=False)
    responder.observe([first, repeat])  # no alert at all: only the sensor's events
    now[0] = 6.0
    records = responder.tick(now[0])
    assert [(r.action, r.target) for r in records] == [("quarantine", "pc-3")]


def test_alerts_only_policy_ignores_sensor_events(tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios" / "smb-flat.yaml")
    detectors = tuple(d.name for d in scenario.spec.detectors)
    builder = ObservationBuilder(scenario.topology, detectors)
    policy = contact_quarantiner(tmp_path / "alerts-only.npz", builder)
    with np.load(policy) as data:  # the same weights, marked as trained without contacts
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    save_mlp(policy, [(arrays["w0"], arrays["b0"])], {**meta, "contact_features": False})
    spec = scenario.spec.response.model_copy(update={"policy": str(policy), "rules": []})
    responder = Responder(spec, SimDeployment(scenario, load_timing()), tmp_path / "a.jsonl",
                          clock=lambda: 5.0)
    assert not responder.wants_events
    responder.observe([ConnEvent(time=4.9, src=str(scenario.topology.hosts["pc-3"].ip),
                                 dst="10.10.20.99", sport=1, dport=445, proto="TCP",
                                 kind="outcome", outcome="timeout", first=True)])
    assert responder.tick(5.0) == []


@pytest.mark.parametrize("damage", ["missing", "garbage", "no-meta", "other-topology",
                                    "other-detectors", "bad-shapes", "architecture"])
def test_bad_policy_files_fail_with_file_reason_and_hint(tmp_path: Path, damage: str) -> None:
    scenario = load_scenario(REPO / "scenarios" / "smb-flat.yaml")
    detectors = tuple(d.name for d in scenario.spec.detectors)
    builder = ObservationBuilder(scenario.topology, detectors)
    path = tmp_path / "policy.npz"
    hosts, columns = builder.layout.hosts, builder.layout.columns
    good = [(np.zeros((len(hosts) * len(ACTIONS), len(hosts) * len(columns))),
             np.zeros(len(hosts) * len(ACTIONS)))]
    expected = {"missing": "not found", "garbage": "not a policy file",
                "no-meta": "not a policy file", "other-topology": "other hosts",
                "other-detectors": "columns not on both sides", "bad-shapes": "do not fit",
                "architecture": "unknown architecture"}[damage]
    if damage == "garbage":
        path.write_text("not numpy at all")
    elif damage == "no-meta":
        np.savez(path, w0=np.zeros(3))
    elif damage == "other-topology":
        save_mlp(path, good, {"hosts": hosts[:-1], "columns": columns})
    elif damage == "other-detectors":
        save_mlp(path, good, {"hosts": hosts, "columns": ("alerts:signature", *columns[2:])})
    elif damage == "bad-shapes":
        save_mlp(path, [(np.zeros((4, 3)), np.zeros(4))], {"hosts": hosts, "columns": columns})
    elif damage == "architecture":
        save_mlp(path, good, {"hosts": hosts, "columns": columns, "architecture": "lstm"})
    with pytest.raises(PolicyError) as caught:
        load_policy_for(path, scenario.topology, detectors)
    message = str(caught.value)
    assert expected in message and "hint:" in message
    assert str(path) in message or "'policy'" in message
    if damage != "missing":  # the good file next to it loads
        save_mlp(path, good, {"hosts": hosts, "columns": columns})
        assert load_policy_for(path, scenario.topology, detectors).hosts == hosts


def test_policy_path_resolves_relative_to_the_scenario_file(tmp_path: Path) -> None:
    scenario_path = tmp_path / "scenarios" / "mine.yaml"
    assert resolve_policy_path("policies/p.npz", scenario_path) == \
        tmp_path / "scenarios" / "policies" / "p.npz"
    assert resolve_policy_path(tmp_path / "abs.npz", scenario_path) == tmp_path / "abs.npz"
