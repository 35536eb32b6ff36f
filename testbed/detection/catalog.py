"""The detector registry as the model's scenario loader sees it, and the loader that uses it.

Owns: ``REGISTERED_DETECTORS`` (the ``DetectorCatalog`` backed by ``detectors.registry``) and
``load_scenario`` / ``scenario_from_document``: the model's loader with that catalog, so a
scenario naming an unknown detector or a wrong parameter is refused with located diagnostics
before anything runs. This is where users load scenarios (``testbed run``, ``testbed validate``,
the bench); the model itself may not import the registry (it is the engine's bottom layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detectors.registry import DETECTORS, detector_parameters
from testbed.model.load_scenario import DetectorCatalog, Scenario
from testbed.model.load_scenario import load_scenario as load_unchecked_scenario
from testbed.model.load_scenario import scenario_from_document as unchecked_scenario
from testbed.yamlsource import SourceDocument

__all__ = ["REGISTERED_DETECTORS", "RegisteredDetectors", "load_scenario",
           "scenario_from_document"]


class RegisteredDetectors:
    """``DetectorCatalog`` over ``detectors.registry.DETECTORS`` (read at each call, so plug-ins
    registered later are known)."""

    def names(self) -> list[str]:
        return DETECTORS.names()

    def parameters(self, name: str) -> Mapping[str, Any]:
        return detector_parameters(name)


REGISTERED_DETECTORS: DetectorCatalog = RegisteredDetectors()


def load_scenario(path: str | Path, *, display_name: str | None = None) -> Scenario:
    """The scenario at ``path``, its detectors checked against the registry."""
    return load_unchecked_scenario(path, display_name=display_name,
                                   detectors=REGISTERED_DETECTORS)


def scenario_from_document(document: SourceDocument, real_path: Path) -> Scenario:
    """A loaded YAML document as a scenario, its detectors checked against the registry."""
    return unchecked_scenario(document, real_path, detectors=REGISTERED_DETECTORS)
