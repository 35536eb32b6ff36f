"""The red team: search for the worst-case worm against a scenario's defence (``testbed
redteam``), and explain what each detector missed.

Owns: the search space over every registered worm profile within its safe ranges (``space``),
the objectives (``objectives``), running worms x seeds as experiment cells (``evaluate``), the
detectors' evidence (``evidence``), the resumable Optuna-driven driver (``search``) and its files
(``outputs``: worst-case.scenario.yaml, redteam.json, redteam.html).
Must not: widen a profile's parameter ranges or rate caps, or run anything but the ordinary
backends through ``testbed.experiments``. Optuna (the ``redteam`` extra) is imported lazily.
"""

from testbed.redteam.objectives import OBJECTIVES, RunSummary, objective_value, trial_score
from testbed.redteam.search import (
    RedTeamConfig,
    RedTeamError,
    RedTeamInterrupted,
    RedTeamOutcome,
    run_redteam,
)
from testbed.redteam.space import SearchSpace, WormChoice, discover_space

__all__ = [
    "OBJECTIVES",
    "RedTeamConfig",
    "RedTeamError",
    "RedTeamInterrupted",
    "RedTeamOutcome",
    "RunSummary",
    "SearchSpace",
    "WormChoice",
    "discover_space",
    "objective_value",
    "run_redteam",
    "trial_score",
]
