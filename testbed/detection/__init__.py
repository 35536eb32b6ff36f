"""Detection in the engine: running a scenario's detector plug-ins and keeping their alerts.

Owns: building a configured set of detectors from scenario specs and feeding it one event stream
(``DetectorSet``), the alert log ``alerts.jsonl`` (``AlertLog``), detection over a capture file
(``run_offline``), the default detector set, and checking a scenario's detector names and
parameters against the registry (``REGISTERED_DETECTORS``, and ``load_scenario``: the model's
loader with that check, what users loading a scenario call).

Layer: above the sensor (``run_offline`` reads pcaps through it) and the plug-in API
(``detectors.base``, ``detectors.registry``); below the runner. Must not touch: ground truth
(``testbed.truth``, the scorer: an import contract in pyproject.toml enforces it) or the
deployment (responders act; detectors only speak).
"""

from __future__ import annotations

from testbed.detection.alert_log import AlertLog
from testbed.detection.catalog import REGISTERED_DETECTORS, load_scenario, scenario_from_document
from testbed.detection.detector_set import DEFAULT_DETECTORS, DetectorSet
from testbed.detection.offline import run_offline

__all__ = [
    "DEFAULT_DETECTORS",
    "REGISTERED_DETECTORS",
    "AlertLog",
    "DetectorSet",
    "load_scenario",
    "run_offline",
    "scenario_from_document",
]
