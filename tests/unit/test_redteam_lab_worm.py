"""The lab-worm scenario (issue 13): shaped like the Toronto lab, the planner takes 60-75 % of it
with no defence and at most 10 % against the defence the red-team loops chose."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "scenarios" / "lab-worm.yaml"
DEFENDED = ROOT / "scenarios" / "lab-worm-defended.yaml"


def _infected_share(path: Path, seed: int, tmp_path: Path) -> float:
    from testbed.detection import load_scenario
    from testbed.sim.run import simulate

    scenario = load_scenario(path)
    scenario = dataclasses.replace(scenario, spec=scenario.spec.model_copy(
        update={"outputs": scenario.spec.outputs.model_copy(update={"report": False})}))
    run = simulate(scenario, seed, tmp_path / f"{path.stem}-{seed}", record_probes=False)
    return run.results.infected_total / run.results.run.hosts_total


def test_the_lab_is_shaped_like_the_reported_testbed() -> None:
    from testbed.detection import load_scenario

    scenario = load_scenario(LAB)
    hosts = scenario.topology.hosts
    assert 30 <= len(hosts) <= 36
    families = Counter("windows" if "windows" in (h.os or "") else
                       "iot" if h.segment == "iot" else "linux" for h in hosts.values())
    assert min(families.values()) >= 5, families
    (patient_zero,) = scenario.patient_zero()
    assert hosts[patient_zero].segment == "iot" and hosts[patient_zero].tier == "launch-pad"
    assert scenario.spec.worm.profile == "planner"
    assert not scenario.spec.response.acts_on_alerts  # detectors alert, nothing contains
    assert "virtual second stands for" in scenario.spec.description  # the time scale


@pytest.mark.parametrize("seed", [1, 2])
def test_with_no_defence_the_planner_takes_60_to_75_percent(seed: int, tmp_path: Path) -> None:
    assert 0.60 <= _infected_share(LAB, seed, tmp_path) <= 0.75


@pytest.mark.parametrize("seed", [1, 2])
def test_the_chosen_defence_holds_it_to_10_percent(seed: int, tmp_path: Path) -> None:
    assert _infected_share(DEFENDED, seed, tmp_path) <= 0.10
