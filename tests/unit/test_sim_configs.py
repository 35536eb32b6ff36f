"""The simulator's lazily derived agent configs equal the runner's builder's, host by host."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from testbed.model.load_scenario import load_scenario
from testbed.model.scenario_spec import BenignSpec
from testbed.runner.agent_configs import build_agent_configs
from testbed.sim.configs import SimAgentConfigs
from testbed.sim.generate import flat_topology, scenario_for

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p for p in (REPO / "scenarios").glob("*.yaml")
                   if "topology" in (yaml.safe_load(p.read_text()) or {}))  # not sweeps
SECRET = b"s" * 32


def without_benign(path: Path):  # type: ignore[no-untyped-def]
    scenario = load_scenario(path)
    return replace(scenario, spec=scenario.spec.model_copy(update={"benign": BenignSpec()}))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_lazy_configs_equal_the_builders(path: Path, tmp_path: Path) -> None:
    scenario = without_benign(path)
    eager = build_agent_configs(scenario, tmp_path, seed=5, secret=SECRET)
    lazy = SimAgentConfigs(scenario, tmp_path, seed=5, secret=SECRET, eager_limit=0)
    assert lazy.lazy and list(lazy) == list(eager)
    for name, config in eager.items():
        assert replace(lazy[name], address_book={}) == replace(config, address_book={}), name


def test_generated_network_and_benign_scenarios(tmp_path: Path) -> None:
    topology = flat_topology(300, vulnerable_fraction=0.2, seed=3)
    scenario = scenario_for(topology, {"duration_s": 10, "worm": {
        "profile": "adaptive", "patient_zero": ["lan"], "start_s": 0}})
    eager = build_agent_configs(scenario, tmp_path, seed=9, secret=SECRET)
    lazy = SimAgentConfigs(scenario, tmp_path, seed=9, secret=SECRET, eager_limit=0)
    assert sum(c.worm.patient_zero for c in eager.values()) == 300
    for name, config in eager.items():
        assert replace(lazy[name], address_book={}) == replace(config, address_book={})
    smb_flat = load_scenario(REPO / "scenarios" / "smb-flat.yaml")  # has benign users
    assert not SimAgentConfigs(smb_flat, tmp_path, seed=1, secret=SECRET, eager_limit=0).lazy
