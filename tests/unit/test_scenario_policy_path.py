"""``response: {policy: FILE}`` in a scenario: the path is relative to the scenario file (as its
topology is), and a missing file is a located error at load time, before anything deploys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testbed.detection import load_scenario
from testbed.errors import ValidationError

REPO = Path(__file__).resolve().parents[2]


def scenario_with_policy(directory: Path, policy: str) -> Path:
    data = yaml.safe_load((REPO / "scenarios" / "smb-flat.yaml").read_text(encoding="utf-8"))
    data["topology"] = str(REPO / "topologies" / "smb-flat.yaml")
    data["response"] = {"policy": policy}
    path = directory / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.unit
def test_a_relative_policy_path_is_relative_to_the_scenario_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "defender.npz").write_bytes(b"not checked here")
    path = scenario_with_policy(tmp_path, "policies/defender.npz")
    monkeypatch.chdir(REPO)  # not the scenario's directory: the cwd must not matter
    scenario = load_scenario(path)
    assert scenario.spec.response.policy == str(tmp_path / "policies" / "defender.npz")


@pytest.mark.unit
def test_a_missing_policy_file_is_a_located_error(tmp_path: Path) -> None:
    path = scenario_with_policy(tmp_path, "policies/missing.npz")
    with pytest.raises(ValidationError) as caught:
        load_scenario(path)
    (diagnostic,) = caught.value.diagnostics
    text = str(diagnostic)
    assert "policy file 'policies/missing.npz' not found" in text
    assert "relative to the scenario file" in text
    assert "scenario.yaml" in text and diagnostic.line is not None


@pytest.mark.unit
def test_a_policy_file_that_does_not_fit_is_refused_before_a_run_deploys(tmp_path: Path) -> None:
    from testbed.gym.policies import PolicyError
    from testbed.response import check_policy

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "defender.npz").write_bytes(b"not an npz archive")
    scenario = load_scenario(scenario_with_policy(tmp_path, "policies/defender.npz"))
    detectors = [detector.name for detector in scenario.spec.detectors]
    with pytest.raises(PolicyError) as caught:
        check_policy(scenario.spec.response, scenario.topology, detectors)
    assert "defender.npz" in str(caught.value)
    # with automation off the policy never acts, so nothing is checked
    manual = scenario.spec.response.model_copy(update={"automation": False})
    check_policy(manual, scenario.topology, detectors)
