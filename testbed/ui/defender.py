"""The defender's view: what sensors, detectors and actions show, and nothing else.

Owns: the JSON the defender's page is built from (``topology_view``: segments, routers, hosts as
an operator's inventory knows them; ``defender_view``: the clock, the alert queue with each
detector's evidence, the action log, the quarantine and block state at a moment), an exercise's
public side (title, briefing, objectives, hints revealed on request: ``reveal_hint``), and the
defender's actions from the page (``act``: the same ``testbed.actions.Action`` values as the
responder's and the CLI's, carried out and logged by ``testbed.runner.manual``, so they are
scored like ``testbed quarantine``).

The wall: a real defender does not know which hosts are infected. This module and the modules it
imports never read ground truth nor the scorer's records: the import contract
``dashboard-truth-view`` forbids ``testbed.truth``, ``testbed.scoring``, ``testbed.results`` and
the dashboard's ``truth_view`` here, and a test checks that no infection state reaches the
defender's page or its API.

Must not touch: runs other than the one named; files other than by appending (actions through
``ActionLog``, revealed hints to ``hints.jsonl``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

from testbed.actions import Action, ActionRecord, apply_action, parse_action_records
from testbed.errors import TestbedError
from testbed.model.load_scenario import Scenario
from testbed.model.topology import Topology
from testbed.policy import ContainmentState
from testbed.runner.manual import manual_action, manual_user
from testbed.sim.pacing import request_action
from testbed.ui.alerts import AlertView, read_alert
from testbed.ui.sources import RunSource, read_lines

__all__ = ["ALERT_QUEUE_LIMIT", "act", "defender_view", "inventory", "reveal_hint",
           "topology_view"]

ALERT_QUEUE_LIMIT = 300  # newest alerts sent to the page; the total is sent too


def inventory(topology: Topology) -> dict[str, str]:
    """Address -> host name: what a network operator's inventory knows (routers excluded)."""
    return {str(host.ip): name for name, host in topology.hosts.items()}


def topology_view(topology: Topology) -> dict[str, Any]:
    """Segments with their hosts, and routers with the segments they join."""
    segments = []
    for segment in topology.segments.values():
        hosts = [{"name": host.name, "ip": str(host.ip), "tier": host.tier.value,
                  "device": host.device, "services": [service.name for service in host.services]}
                 for host in topology.hosts_in(segment.name)]
        segments.append({"name": segment.name, "cidr": str(segment.cidr),
                         "zone": segment.zone, "hosts": hosts})
    routers = [{"name": router.name, "segments": sorted(router.interfaces)}
               for router in topology.routers.values()]
    return {"name": topology.name, "segments": segments, "routers": routers}


def _action_json(record: ActionRecord, source: RunSource) -> dict[str, Any]:
    return {"time_s": _round(source.facts.since_t0(record.mono)),
            "effective_s": _round(source.facts.since_t0(record.effective_at)),
            "action": record.action, "target": record.target, "params": record.params,
            "cause": record.cause, "ok": record.ok, "error": record.error}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _in_window(time_s: float | None, at_s: float | None) -> bool:
    return at_s is None or time_s is None or time_s <= at_s


def defender_view(source: RunSource, scenario: Scenario | None,
                  at_s: float | None = None) -> dict[str, Any]:
    """What the defender sees of ``source`` up to ``at_s`` seconds after t0 (None: now).

    ``at_s`` drives a replay's time slider; a live page leaves it None."""
    facts = source.facts
    clock = source.clock()
    clock_s = clock.now_s()
    shown_s = at_s if at_s is not None else clock_s
    topology = scenario.topology if scenario is not None else None
    addresses = inventory(topology) if topology is not None else {}

    alerts: list[AlertView] = []
    for record in read_lines(source.alerts_path):
        alert = read_alert(record, inventory=addresses, t0_mono=facts.t0_mono,
                           t0_wall=facts.t0_wall)
        if alert is not None and _in_window(alert.time_s, at_s):
            alerts.append(alert)
    alerts.sort(key=lambda each: (each.time_s is None, each.time_s or 0.0))
    alerted_hosts: dict[str, int] = {}
    for alert in alerts:
        if alert.accused:
            alerted_hosts[alert.accused] = alerted_hosts.get(alert.accused, 0) + 1

    state = ContainmentState()
    actions = []
    for action in parse_action_records(read_lines(source.actions_path)):
        if not _in_window(facts.since_t0(action.effective_at), at_s):
            continue
        apply_action(state, action)
        actions.append(_action_json(action, source))

    exercise = scenario.spec.exercise if scenario is not None else None
    return {
        "view": "defender",
        "run": source.name,
        "scenario": facts.scenario or (scenario.name if scenario is not None else None),
        "phase": source.phase,
        "live": source.live,
        "clock_s": _round(clock_s),
        # a live simulated run's rate (x1, x10, 0: paused); None when the clock is fixed
        "playback_rate": getattr(clock, "rate", None) if clock.controllable else None,
        "shown_s": _round(shown_s),
        "end_s": _round(facts.end_s),
        "duration_s": facts.duration_s,
        "automation": facts.automation,
        "alerts_total": len(alerts),
        "alerts": [alert.to_json() for alert in alerts[-ALERT_QUEUE_LIMIT:]],
        "alerted_hosts": alerted_hosts,
        "actions": actions,
        "quarantined": sorted(state.quarantined),
        "blocks": [dataclasses.asdict(block) for block in state.blocks],
        "rate_limited": dict(state.rate_limited),
        "exercise": _exercise_public(source, scenario)
        if scenario is not None and exercise is not None else None,
    }


def _exercise_public(source: RunSource, scenario: Scenario) -> dict[str, Any]:
    exercise = scenario.spec.exercise
    assert exercise is not None
    revealed = _revealed_hints(source)
    return {"title": exercise.title, "briefing": exercise.briefing,
            "objectives": [objective.text for objective in exercise.objectives],
            "hints_total": len(exercise.hints),
            "hints": [exercise.hints[index] for index in range(min(revealed,
                                                                   len(exercise.hints)))],
            "truth_view": exercise.truth_view}


def _revealed_hints(source: RunSource) -> int:
    return len(read_lines(source.hints_path))


def reveal_hint(source: RunSource, scenario: Scenario | None) -> dict[str, Any]:
    """Reveal the exercise's next hint (logged to ``hints.jsonl``, counted in the debrief)."""
    exercise = scenario.spec.exercise if scenario is not None else None
    if exercise is None:
        raise TestbedError(f"run {source.name} is not an exercise: it has no hints")
    revealed = _revealed_hints(source)
    if revealed >= len(exercise.hints):
        raise TestbedError("every hint is already revealed")
    line = json.dumps({"hint": revealed, "wall": time.time()}, sort_keys=True) + "\n"
    descriptor = os.open(source.hints_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode("utf-8"))
    finally:
        os.close(descriptor)
    return {"index": revealed, "hint": exercise.hints[revealed],
            "left": len(exercise.hints) - revealed - 1}


def act(source: RunSource, action: Action, *, user: str | None) -> ActionRecord:
    """Carry out a defender's action on the live run behind ``source`` (as ``testbed quarantine``
    does: ``testbed.runner.manual.manual_action``, logged to the run's ``actions.jsonl``).

    A live simulated run takes it from the page through its state directory
    (``testbed.sim.pacing.request_action``): the simulation carries it out at its current
    virtual time and logs it the same way.

    Raises ``TestbedError`` when the run is not live, or the backend's error (after the failed
    record was logged)."""
    if not source.live or not source.facts.run_name:
        raise TestbedError(f"run {source.name} is not live: actions need a running deployment")
    if source.simulated and source.state_dir is not None:
        answer = request_action(source.state_dir, action.model_dump(mode="json"),
                                user=user or manual_user())
        record = answer.get("record")
        if "error" in answer:
            err = TestbedError(str(answer["error"]))
            err.action_record = (  # type: ignore[attr-defined]
                ActionRecord.model_validate(record) if isinstance(record, dict) else None)
            raise err
        return ActionRecord.model_validate(record)
    return manual_action(source.facts.run_name, action, backend=source.facts.backend,
                         user=user)
