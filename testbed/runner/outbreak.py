"""The runner's live view of the outbreak: who is infected, is it contained, should the run stop.

Owns: following the run's ground truth (agents' ``hosts/*/events.jsonl``, interpreted by
``testbed.truth`` as the scorer does) and action log (``actions.jsonl``, where the responder and
manual commands from other terminals append) as they grow, feeding them into the one
``testbed.containment.ContainmentTimeline`` (the scorer replays the same class after the run),
and the scenario's stop conditions (``stop.when``).

The wall: ground truth read here drives only the live view and the stop conditions; it never
reaches detectors or the responder.

Must not touch: the deployment, detectors, or any file (it only reads).
"""

from __future__ import annotations

from pathlib import Path

from testbed.actions import parse_action_records
from testbed.containment import ContainmentTimeline, OutbreakStatus
from testbed.model.load_scenario import Scenario
from testbed.model.spec import Tier
from testbed.runner.tail import JsonlTail, MultiTail
from testbed.truth import EVENTS_FILE, infections

__all__ = ["Outbreak"]


class Outbreak:
    """Infections and containment so far; ``poll(now)`` reads what is new."""

    def __init__(self, scenario: Scenario, state_dir: Path) -> None:
        self.topology = scenario.topology
        self.patient_zero = scenario.patient_zero()
        self.stop_when: tuple[str, ...] = tuple(scenario.spec.stop.when)
        self.timeline = ContainmentTimeline(self.topology, self.patient_zero)
        self._truth = MultiTail(state_dir / "hosts", EVENTS_FILE)
        self._actions = JsonlTail(state_dir / "actions.jsonl")

    def poll(self, now: float) -> list[str]:
        """Read new ground truth and actions, apply what is due by ``now``; returns the hosts
        whose infection was first seen."""
        fresh = [host for host, when in infections(self._truth.poll())
                 if self.timeline.infect(host, when)]
        for record in parse_action_records(self._actions.poll()):
            self.timeline.act(record)
        self.timeline.advance(now)
        return fresh

    @property
    def status(self) -> OutbreakStatus:
        return self.timeline.status

    @property
    def infected(self) -> dict[str, float]:
        return self.timeline.infected

    @property
    def actions_by_kind(self) -> dict[str, int]:
        return self.timeline.actions_by_kind

    def escaped(self, host: str) -> bool:
        """Whether ``host``'s infection is an escape from the launch pads."""
        return host not in self.patient_zero and \
            self.topology.hosts[host].tier != Tier.LAUNCH_PAD

    def infected_by_tier(self) -> dict[str, int]:
        counts = {tier.value: 0 for tier in Tier}
        for host in self.timeline.infected:
            counts[self.topology.hosts[host].tier.value] += 1
        return counts

    def stop_reasons(self) -> list[str]:
        """The scenario's stop conditions (``stop.when``) that hold now, in a fixed order."""
        reasons: list[str] = []
        condition = {"contained": "contained", "burned-out": "all-infected"}.get(self.status)
        if condition is not None and condition in self.stop_when:
            reasons.append(condition)
        if "crown-jewel-infected" in self.stop_when and any(
                self.topology.hosts[host].tier == Tier.CROWN_JEWEL
                for host in self.timeline.infected):
            reasons.append("crown-jewel-infected")
        return reasons
