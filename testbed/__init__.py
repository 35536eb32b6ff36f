"""Adaptive-worm cyber-defence testbed: YAML topologies become emulated networks to rehearse on.

Kept import-light on purpose: ``testbed.agent`` runs inside hosts with nothing but python3, and
the engine's heavier parts (pydantic, networkx, scapy, docker, pandas) load only where they are
used. The notebook API (docs/api.md) is imported on first use:

- ``testbed.run(scenario_or_dict, **overrides)`` -> typed ``Results``;
- ``testbed.load_run(run_dir)`` -> ``RunData`` (``.results``, ``.events``, ``.alerts``,
  ``.actions``, ``.labels``, ``.flows``);
- ``testbed.Topology`` and ``testbed.Scenario`` (each with ``from_dict``).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Scenario", "Topology", "__version__", "load_run", "run"]

_LAZY = {
    "run": ("testbed.api", "run"),
    "load_run": ("testbed.api", "load_run"),
    "Topology": ("testbed.model.topology", "Topology"),
    "Scenario": ("testbed.model.load_scenario", "Scenario"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        return getattr(importlib.import_module(module_name), attribute)
    raise AttributeError(f"module 'testbed' has no attribute {name!r}")
