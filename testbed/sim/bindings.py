"""Every name the simulator takes from modules that the architecture refactor (issue 10) moves
or retypes, imported in this one place so that switching a path is a one-line change here.

Owns: nothing but these imports. Must not: wrap or re-implement what it imports.

Already on the refactor's names (PLAN.md): ``testbed.detection`` (DetectorSet, AlertLog),
``testbed.runner.agent_configs``, ``testbed.containment``, ``testbed.actions``, ``testbed.results``.
Still to follow: ``testbed.response.Responder`` (it may switch to ``execute_action``; the sim only
needs its constructor, ``handle``, ``tick`` and ``next_due``), ``testbed.scoring.score`` (typed
``Results`` soon: ``testbed.sim.run`` accepts a dict or a model), and ``derive_seed``, private
in the agent runtime (asked to be made public).
"""

from __future__ import annotations

from testbed.actions import ActionRecord, apply_action
from testbed.agent.runtime import _derive_seed as derive_seed  # the agent's seed derivation
from testbed.backends.base import ActionTiming
from testbed.containment import ReachabilityOracle
from testbed.detection import AlertLog, DetectorSet
from testbed.report import write_report
from testbed.response import Responder
from testbed.results import Manifest
from testbed.runner.agent_configs import build_agent_configs, host_seed
from testbed.scoring import load_run_records, score

__all__ = [
    "ActionRecord",
    "ActionTiming",
    "AlertLog",
    "DetectorSet",
    "Manifest",
    "ReachabilityOracle",
    "Responder",
    "apply_action",
    "build_agent_configs",
    "derive_seed",
    "host_seed",
    "load_run_records",
    "score",
    "write_report",
]
