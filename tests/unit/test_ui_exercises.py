"""Exercises: the scenario format's optional ``exercise`` section and the shipped exercises."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testbed.detection import load_scenario
from testbed.errors import ValidationError

EXERCISES = sorted((Path(__file__).resolve().parents[2] / "scenarios" / "exercises")
                   .glob("*.yaml"))


def test_at_least_three_exercises_are_shipped() -> None:
    assert len(EXERCISES) >= 3


@pytest.mark.parametrize("path", EXERCISES, ids=lambda path: path.stem)
def test_each_shipped_exercise_is_played_by_hand_and_complete(path: Path) -> None:
    scenario = load_scenario(path)
    exercise = scenario.spec.exercise
    assert exercise is not None and exercise.title
    assert scenario.spec.response.automation is False
    assert exercise.objectives and exercise.hints and exercise.debrief
    assert any(objective.metric for objective in exercise.objectives)
    assert exercise.truth_view == "after-run"


def test_an_exercise_with_automation_on_is_refused(tmp_path: Path) -> None:
    document = yaml.safe_load(EXERCISES[0].read_text())
    document["response"] = {"automation": True}
    document["topology"] = str((EXERCISES[0].parent / document["topology"]).resolve())
    path = tmp_path / "automated.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ValidationError, match="defended by hand"):
        load_scenario(path)


def test_a_scenario_without_exercise_section_is_unchanged() -> None:
    flat = load_scenario(EXERCISES[0].parents[1] / "smb-flat.yaml")
    assert flat.spec.exercise is None and flat.spec.response.automation is True
