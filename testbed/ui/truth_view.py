"""The truth view: what really happened (infections, the infection curve, the score so far) and,
for an exercise, the debrief. For instructors, replays and the debrief.

Owns: ``truth_gate`` (whether the truth view of a run may open now: always for a finished run,
for a live exercise only as its ``exercise.truth_view`` allows), ``truth_view`` (infections up to
a moment, the curve, containment status, the final score for a finished run) and the exercise's
debrief (grade, objectives met or missed, what would have changed the grade, hints used).

The wall: this is the dashboard's only reader of ground truth, next to the scorer and the report
(``testbed.truth`` reads the files; the import contract ``dashboard-truth-view`` keeps the
defender's view from importing this module). Its answers are served only on the truth page's
endpoints, never on the defender's.

Must not touch: the deployment or any file (it only reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testbed.actions import parse_action_records
from testbed.containment import ContainmentTimeline
from testbed.model.load_scenario import Scenario
from testbed.model.scenario_spec import ObjectiveSpec
from testbed.results import Results
from testbed.truth import infection_times, read_events, read_host_events
from testbed.ui.sources import RESULTS_FILE, RunSource, read_lines

__all__ = ["TruthGate", "debrief", "truth_gate", "truth_view"]


@dataclass(frozen=True)
class TruthGate:
    open: bool
    reason: str


def truth_gate(source: RunSource, scenario: Scenario | None) -> TruthGate:
    """Whether the truth view of ``source`` may open now, and why (or why not)."""
    if source.finished or not source.live:
        return TruthGate(True, "the run is over: replay and debrief")
    exercise = scenario.spec.exercise if scenario is not None else None
    if exercise is None:
        return TruthGate(True, "a rehearsal, not an exercise: the instructor's screen")
    if exercise.truth_view == "live":
        return TruthGate(True, "this exercise shows the truth live")
    if exercise.truth_view == "never":
        return TruthGate(False, "this exercise never shows the truth view during the run")
    return TruthGate(False, "the truth view opens after the run (the debrief)")


def _infections(source: RunSource) -> dict[str, float]:
    """Host -> infection time (run clock) from the agents' ground truth."""
    if source.state_dir is not None:
        return infection_times(read_host_events(source.state_dir))
    return infection_times(read_events(source.run_dir))


def _results(source: RunSource) -> Results | None:
    path = source.run_dir / RESULTS_FILE
    try:
        return Results.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None


def truth_view(source: RunSource, scenario: Scenario | None,
               at_s: float | None = None) -> dict[str, Any]:
    """Infections up to ``at_s`` seconds after t0 (None: now), the curve, the containment status
    then, and for a finished run its score (and an exercise's debrief)."""
    facts = source.facts
    times = {host: since for host, when in _infections(source).items()
             if (since := facts.since_t0(when)) is not None}
    shown = {host: since for host, since in times.items() if at_s is None or since <= at_s}
    curve = [[round(since, 3), index + 1]
             for index, since in enumerate(sorted(times.values()))]
    topology = scenario.topology if scenario is not None else None
    status, peak = None, None
    if topology is not None and facts.t0_mono is not None:
        timeline = ContainmentTimeline(topology, scenario.patient_zero() if scenario else ())
        for host, since in shown.items():
            timeline.infect(host, facts.t0_mono + since)
        for record in parse_action_records(read_lines(source.actions_path)):
            timeline.act(record)
        moment = facts.t0_mono + (at_s if at_s is not None else
                                  (source.clock().now_s() or 0.0))
        timeline.advance(moment)
        status, peak = timeline.status, timeline.peak
    tiers = {host: topology.hosts[host].tier.value for host in shown
             if topology is not None and host in topology.hosts}
    results = _results(source) if source.finished else None
    view: dict[str, Any] = {
        "view": "truth", "run": source.name,
        "infected": [{"host": host, "time_s": round(since, 3), "tier": tiers.get(host)}
                     for host, since in sorted(shown.items(), key=lambda item: item[1])],
        "infected_total": len(shown), "curve": curve, "status": status, "peak": peak,
        "score": _score(results) if results is not None else None,
        "debrief": None,
    }
    if results is not None and scenario is not None and scenario.spec.exercise is not None:
        view["debrief"] = debrief(scenario, results, hints_used=len(read_lines(
            source.hints_path)))
    return view


def _score(results: Results) -> dict[str, Any]:
    return {"grade": results.grade.letter, "score": results.grade.score,
            "contained": results.contained,
            "time_to_first_detection_s": results.time_to_first_detection_s,
            "time_to_containment_s": results.time_to_containment_s,
            "infected_total": results.infected_total,
            "crown_jewels_infected": [loss.host for loss in results.crown_jewels_infected],
            "launch_pad_escape": results.launch_pad_escape.escaped,
            "benign_hosts_quarantined": results.collateral.benign_hosts_quarantined,
            "value_loss_fraction": results.value_loss_fraction}


def _metric(results: Results, name: str) -> float | None:
    values: dict[str, float | None] = {
        "infected_total": results.infected_total,
        "crown_jewels_infected": len(results.crown_jewels_infected),
        "launch_pad_escape": 1.0 if results.launch_pad_escape.escaped else 0.0,
        "benign_hosts_quarantined": results.collateral.benign_hosts_quarantined,
        "time_to_containment_s": results.time_to_containment_s,
        "grade_score": results.grade.score,
    }
    return values.get(name)


def objective_met(objective: ObjectiveSpec, results: Results) -> bool | None:
    """True/False when the objective names a metric; None: the instructor judges."""
    if objective.metric is None:
        return None
    value = _metric(results, objective.metric)
    if value is None:
        return False
    if objective.at_most is not None and value > objective.at_most:
        return False
    return not (objective.at_least is not None and value < objective.at_least)


def debrief(scenario: Scenario, results: Results, *, hints_used: int) -> dict[str, Any]:
    """The grade, the objectives, and what would have changed the grade (the points lost, the
    largest first, and the caps applied), with the exercise's own lessons."""
    exercise = scenario.spec.exercise
    assert exercise is not None
    objectives = [{"text": objective.text, "metric": objective.metric,
                   "value": _metric(results, objective.metric) if objective.metric else None,
                   "met": objective_met(objective, results)}
                  for objective in exercise.objectives]
    changes = [f"{points:.1f} points lost to {reason.replace('_', ' ')}" for reason, points in
               sorted(results.grade.penalties.items(), key=lambda item: -item[1])
               if points >= 0.05]
    changes += [f"grade capped: {cap}" for cap in results.grade.caps]
    return {"title": exercise.title, "grade": results.grade.letter,
            "score": results.grade.score, "objectives": objectives,
            "would_have_changed": changes or ["nothing: a clean run"],
            "lessons": list(exercise.debrief), "hints_used": hints_used,
            "hints_total": len(exercise.hints)}
