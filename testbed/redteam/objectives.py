"""What the red team maximises, computed from one run's scored results.

Owns: ``OBJECTIVES`` (``infected``: hosts infected, patient zero included; ``value``: value of
the hosts lost; ``jewel-time``: how early the first crown jewel fell, ``1 - t / duration`` in
[0, 1], 0 when none fell), ``RunSummary`` (the few numbers of one run the search keeps, taken
from ``testbed.results.Results``) and ``objective_value``.
Every objective is "more is worse for the defender"; a trial's score is the mean over its seeds.
Must not: run or score anything.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.errors import RegistryError, TestbedError
from testbed.results import Results

__all__ = ["OBJECTIVES", "DetectorSummary", "RunSummary", "UnknownObjectiveError",
           "check_objective", "objective_value", "summarize_run", "trial_score"]

OBJECTIVES: dict[str, str] = {
    "infected": "hosts infected (patient zero included), mean over the seeds",
    "value": "value of the hosts lost (value_weighted_loss), mean over the seeds",
    "jewel-time": "how early the first crown jewel fell: 1 - t/duration (0: none fell), "
                  "mean over the seeds",
}


class UnknownObjectiveError(RegistryError):
    """An objective name the red team does not know (the CLI's exit status 2)."""

    def __init__(self, name: str) -> None:
        super().__init__("objective", name, list(OBJECTIVES))


def check_objective(name: str) -> str:
    if name not in OBJECTIVES:
        raise UnknownObjectiveError(name)
    return name


@dataclass(frozen=True)
class DetectorSummary:
    """One detector in one run: did it alert, when, on whom."""

    alerts: int
    first_alert_s: float | None
    true_positive_hosts: tuple[str, ...]
    false_negative_hosts: tuple[str, ...]


@dataclass(frozen=True)
class RunSummary:
    """The numbers of one run the red team keeps (JSON-ready through ``as_dict``)."""

    seed: int
    backend: str
    duration_s: float
    infected_total: int
    value_weighted_loss: float
    first_jewel_s: float | None
    contained: bool
    time_to_first_detection_s: float | None
    benign_hosts_quarantined: int
    infected_hosts: tuple[str, ...]
    detectors: dict[str, DetectorSummary] = field(default_factory=dict)
    hosts_total: int = 0
    susceptible_total: int = 0  # with an unpatched vulnerability: the ceiling of "infected"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        detectors = {name: DetectorSummary(
            value["alerts"], value["first_alert_s"], tuple(value["true_positive_hosts"]),
            tuple(value["false_negative_hosts"])) for name, value in data["detectors"].items()}
        return cls(**{**data, "infected_hosts": tuple(data["infected_hosts"]),
                      "detectors": detectors})


def summarize_run(results: Results, duration_s: float) -> RunSummary:
    """The summary of one scored run."""
    jewel_times = [loss.time_s for loss in results.crown_jewels_infected
                   if loss.time_s is not None]
    return RunSummary(
        seed=results.run.seed if results.run.seed is not None else -1,
        backend=results.run.backend or "?", duration_s=duration_s,
        infected_total=results.infected_total,
        value_weighted_loss=results.value_weighted_loss,
        first_jewel_s=min(jewel_times) if jewel_times else None,
        contained=results.contained,
        time_to_first_detection_s=results.time_to_first_detection_s,
        benign_hosts_quarantined=results.collateral.benign_hosts_quarantined,
        infected_hosts=tuple(infection.host for infection in results.infections),
        detectors={name: DetectorSummary(row.alerts, row.first_alert_s,
                                         tuple(row.true_positive_hosts),
                                         tuple(row.false_negative_hosts))
                   for name, row in results.detectors.items() if name != "any"},
        hosts_total=results.run.hosts_total, susceptible_total=results.run.susceptible_total)


def objective_value(run: RunSummary, objective: str) -> float:
    """The objective of one run (higher: worse for the defender)."""
    check_objective(objective)
    if objective == "infected":
        return float(run.infected_total)
    if objective == "value":
        return float(run.value_weighted_loss)
    if run.first_jewel_s is None or run.duration_s <= 0:
        return 0.0
    return max(0.0, 1.0 - run.first_jewel_s / run.duration_s)


def trial_score(runs: Sequence[RunSummary], objective: str) -> float:
    """A worm's score: the mean objective over its runs (seeds)."""
    if not runs:
        raise TestbedError("a worm's score needs at least one run")
    return statistics.fmean(objective_value(run, objective) for run in runs)
