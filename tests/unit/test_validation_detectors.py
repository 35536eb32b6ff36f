"""A scenario's detectors are checked against the registry wherever users load scenarios.

The model's loader may not import the detector registry (an import contract); the engine passes
it as a ``DetectorCatalog`` (``testbed.detection.load_scenario``). These tests pin that
``testbed run``, ``testbed validate`` and the bench still refuse unknown detectors and bad
parameters with the same located diagnostics, and that the model uses whatever catalog it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from testbed.cli.main import main
from testbed.detection import REGISTERED_DETECTORS, load_scenario
from testbed.errors import ValidationError
from testbed.model import load_scenario as load_scenario_without_registry

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "data" / "bad"

SCENARIO = """\
name: params
topology: {topology}
worm: {{patient_zero: lobby-printer}}
detectors:
  - name: trw
    params: {{thetta0: 0.9, theta1: high}}
  - name: fanoutt
"""


def diagnostics(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error: " in line]


def messages(error: ValidationError) -> list[str]:
    return [diagnostic.format() for diagnostic in error.diagnostics]


def found_with_registry(path: Path) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_scenario(path)
    return messages(caught.value)


def write_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO.format(topology=REPO / "topologies" / "smb-flat.yaml"))
    return path


def test_run_refuses_what_validate_refuses_with_the_same_diagnostics(
        capsys: pytest.CaptureFixture[str]) -> None:
    bad = str(BAD / "s-unknown-detector.yaml")
    assert main(["validate", bad]) == 1
    from_validate = diagnostics(capsys.readouterr().err)
    assert main(["run", bad]) == 1  # refused while loading, before anything is deployed
    from_run = diagnostics(capsys.readouterr().err)
    assert any("unknown detector 'fanoutt'" in line for line in from_run)
    assert from_run == from_validate


def test_parameters_are_checked_against_the_registered_defaults(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        load_scenario(write_scenario(tmp_path))
    found = messages(caught.value)
    assert any("detector 'trw' has no parameter 'thetta0'" in m and "did you mean 'theta0'" in m
               for m in found), found
    assert any("'high' does not fit parameter 'theta1' (default 0.2)" in m for m in found), found
    assert any("unknown detector 'fanoutt'" in m and "did you mean 'fanout'" in m
               for m in found), found


def test_the_model_checks_against_the_catalog_it_is_given(tmp_path: Path) -> None:
    path = write_scenario(tmp_path)

    class OnlyTrw:
        def names(self) -> list[str]:
            return ["trw"]

        def parameters(self, name: str) -> Mapping[str, Any]:
            return {"thetta0": 0.5, "theta1": "low"}

    # Without a catalog the model knows no detector names: nothing here is its to refuse.
    assert load_scenario_without_registry(path).spec.detectors[1].name == "fanoutt"
    with pytest.raises(ValidationError) as caught:
        load_scenario_without_registry(path, detectors=OnlyTrw())
    found = messages(caught.value)
    assert len(found) == 1 and "unknown detector 'fanoutt'" in found[0], found
    with pytest.raises(ValidationError) as caught:
        load_scenario_without_registry(path, detectors=REGISTERED_DETECTORS)
    assert messages(caught.value) == found_with_registry(path)


def test_the_bench_checks_its_scenarios_detectors(tmp_path: Path) -> None:
    from testbed.bench import load_bench

    write_scenario(tmp_path)
    bench = tmp_path / "bench.yaml"
    bench.write_text("name: b\nscenarios: [scenario.yaml]\ndetector_sets: {none: []}\n"
                     "profiles: [classic]\nseeds: 1\nduration_s: 5\n")
    with pytest.raises(ValidationError) as caught:
        load_bench(bench)
    assert any("unknown detector 'fanoutt'" in m for m in messages(caught.value))
