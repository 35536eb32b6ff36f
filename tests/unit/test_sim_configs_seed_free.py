"""Agent configs built once per scenario and reseeded per run equal the builder's for every
seed and run directory: the simulator builds them once and only replaces each host's seed,
the secret and the run's directory and name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from testbed.model.load_scenario import load_scenario
from testbed.model.scenario_spec import BenignSpec
from testbed.runner.agent_configs import build_agent_configs
from testbed.sim.configs import SimAgentConfigs

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["smb-flat", "campus", "hospital"])
@pytest.mark.parametrize("eager_limit", [10_000, 0])
def test_reseeded_configs_equal_the_builders(name: str, eager_limit: int,
                                             tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios" / f"{name}.yaml")
    first = SimAgentConfigs(scenario, tmp_path, seed=1, secret=b"a" * 32,
                            eager_limit=eager_limit)
    assert first["pc-1" if "pc-1" in first else next(iter(first))].seed
    for seed, secret, run in ((2, b"b" * 32, "a"), (1, b"a" * 32, "b"), (99, b"c" * 40, "a")):
        reseeded = SimAgentConfigs(scenario, tmp_path / run, seed=seed, secret=secret,
                                   eager_limit=eager_limit)
        built = build_agent_configs(scenario, tmp_path / run, seed=seed, secret=secret)
        assert list(reseeded) == list(built)
        for host, config in built.items():
            assert reseeded[host] == config, (seed, host)
            assert reseeded[host].seed == config.seed and reseeded[host].secret == secret


def test_a_short_secret_is_still_refused(tmp_path: Path) -> None:
    from testbed.errors import AgentError

    scenario = load_scenario(REPO / "scenarios" / "smb-flat.yaml")
    SimAgentConfigs(scenario, tmp_path, seed=1, secret=b"a" * 32)
    with pytest.raises(AgentError):
        SimAgentConfigs(scenario, tmp_path, seed=2, secret=b"short")


def test_lazily_derived_configs_follow_the_seed(tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios" / "campus.yaml")
    scenario = replace(scenario, spec=scenario.spec.model_copy(update={"benign": BenignSpec()}))
    for seed, run in ((3, "a"), (4, "b"), (3, "c")):
        lazy = SimAgentConfigs(scenario, tmp_path / run, seed=seed, secret=b"s" * 32,
                               eager_limit=0)
        assert lazy.lazy
        built = build_agent_configs(scenario, tmp_path / run, seed=seed, secret=b"s" * 32)
        for host, config in built.items():
            assert replace(lazy[host], address_book={}) == replace(config, address_book={})
