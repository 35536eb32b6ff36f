"""Sim to real: a policy file (numpy forward pass) is the responder of a short netns run.

The policy is built here, not trained (no torch in the test): one linear layer that quarantines
a host on its first trw or fan-out alert. The scenario also keeps smb-flat's rule, which the
responder does not use once a policy is given (every action's cause must be the policy): the
runner builds a responder only when a rule exists (see docs/gym.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from testbed.gym.observation import ACTIONS, QUARANTINE, ObservationBuilder
from testbed.gym.policies import save_mlp
from testbed.model import load_scenario

REPO = Path(__file__).resolve().parents[2]


def quarantine_on_alert(path: Path, builder: ObservationBuilder) -> Path:
    hosts, columns = builder.layout.hosts, builder.layout.columns
    width = len(columns)
    weight = np.zeros((len(hosts) * len(ACTIONS), len(hosts) * width))
    for row in range(len(hosts)):
        for column in (i for i, c in enumerate(columns) if c.startswith("alerts:")):
            weight[row * len(ACTIONS) + QUARANTINE, row * width + column] = 10.0
    bias = np.tile([0.5, 0.0, 0.0, 0.0], len(hosts))
    return save_mlp(path, [(weight, bias)], {"hosts": hosts, "columns": columns})


def test_policy_file_contains_an_outbreak_on_netns(tmp_path: Path) -> None:
    source = REPO / "scenarios" / "smb-flat.yaml"
    scenario = load_scenario(source)
    detectors = tuple(d.name for d in scenario.spec.detectors)
    policy = quarantine_on_alert(tmp_path / "policy.npz",
                                 ObservationBuilder(scenario.topology, detectors))
    text = source.read_text()
    for old, new in (("topology: ../topologies/", f"topology: {REPO}/topologies/"),
                     ("\nresponse:\n", f"\nresponse:\n  policy: {policy}\n")):
        assert text.count(old) == 1
        text = text.replace(old, new)
    scenario_path = tmp_path / "smb-flat-policy.yaml"
    scenario_path.write_text(text)
    state_dir, out = tmp_path / "state", tmp_path / "out"
    state_dir.mkdir()
    completed = subprocess.run(
        [sys.executable, "-m", "testbed", "run", str(scenario_path), "--duration", "30",
         "--no-live", "--json", "--out", str(out)],
        env={**os.environ, "TESTBED_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"},
        cwd=REPO, capture_output=True, timeout=150, check=False)
    assert completed.returncode == 0, completed.stderr.decode()[-3000:]
    actions = [json.loads(line) for line in (out / "actions.jsonl").read_text().splitlines()
               if line.strip()]
    assert actions, "the policy never acted"
    assert all(a["cause"] == {"policy": str(policy)} for a in actions)
    assert {a["action"] for a in actions} == {"quarantine"}
    results = json.loads((out / "results.json").read_text())
    assert results["infected_total"] >= 1
    assert list(state_dir.iterdir()) == []
