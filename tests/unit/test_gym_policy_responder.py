"""response: {policy: FILE}: the Responder runs a policy file (numpy forward pass) on alerts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detectors.base import Alert
from testbed.gym.observation import ACTIONS, QUARANTINE, ObservationBuilder
from testbed.gym.policies import save_mlp
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
