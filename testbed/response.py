"""Automated containment: alerts become quarantine / block / rate-limit actions, after a delay.

Owns: the ``Responder``, which applies a scenario's response policy (``ResponseSpec``) to a
deployment: for every rule whose ``on`` lists the alert's detector (or ``any``) and whose
``min_severity`` admits it (severity 1 is the highest: an alert passes when its severity number
is at most ``min_severity``), it schedules the rule's action on the alert's source host
``delay_s`` seconds after the alert (0 for automation, minutes to rehearse a human in the loop),
acts once per host and action, and carries each out with ``testbed.actions.execute_action``,
which logs it -- applied or failed -- with its time and cause to the run's ``ActionLog``
(``actions.jsonl``; the same log manual commands from other terminals append to).
With ``policy: FILE`` a trained defender (``testbed.gym.policies.PolicyDriver``, numpy only)
decides instead of the rules, once per its decision interval, from the alerts so far, the
sensor's connection events its host passes to ``observe`` (a policy trained on first-contact
features reads them; the others ignore them) and the containment this responder applied.

Must not touch: ground truth (it knows only alerts, sensor events and the topology's address
inventory), and addresses outside the topology (an alert about them is ignored, never acted on).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from detectors.base import Alert, ConnEvent
from testbed.actions import (
    Action,
    ActionLog,
    ActionRecord,
    ActionTarget,
    apply_action,
    execute_action,
)
from testbed.errors import TestbedError
from testbed.model.scenario_spec import ResponseRuleSpec, ResponseSpec
from testbed.model.topology import Topology
from testbed.policy import ContainmentState

__all__ = ["PlannedAction", "Responder", "ResponseTarget", "check_policy"]


def check_policy(spec: ResponseSpec, topology: Topology, detectors: Sequence[str]) -> None:
    """A policy responder's file fits this scenario (its hosts and its detectors' alert columns).
    The runner calls it before deploying, so a bad file leaves nothing behind; raises
    ``testbed.gym.policies.PolicyError`` (file, what is wrong, hint)."""
    if spec.policy is None or not spec.automation:
        return
    from testbed.gym.policies import load_policy_for  # numpy only

    load_policy_for(spec.policy, topology, detectors)


class ResponseTarget(ActionTarget, Protocol):
    """What the responder acts on: a deployment's containment calls and its topology (to tell
    which host an alert's address belongs to). A ``backends.base.Deployment``, or the
    simulator's stand-in."""

    topology: Topology


@dataclass(order=True)
class PlannedAction:
    due: float  # monotonic time when it applies
    sequence: int
    action: str = field(compare=False)
    host: str = field(compare=False)
    rule_index: int = field(compare=False)
    rule: ResponseRuleSpec = field(compare=False)
    alert: Alert = field(compare=False)


class Responder:
    """Turns alerts into containment on ``deployment``; ``tick(now)`` applies what is due.

    ``handle(alert)`` plans actions (and applies those already due); call ``tick`` regularly
    with the monotonic clock. Alerts carry the sensor's monotonic time: the delay counts from
    the alert, not from when ``handle`` was called. ``automation: false`` plans nothing.
    """

    def __init__(self, spec: ResponseSpec, deployment: ResponseTarget, log: ActionLog | Path, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.deployment = deployment
        self.log = log if isinstance(log, ActionLog) else ActionLog(log)
        self.clock = clock
        self._planned: list[PlannedAction] = []
        self._decided: set[tuple[str, str]] = set()  # (action, host): planned or done
        self._sequence = 0
        self._lock = threading.Lock()
        self.records: list[ActionRecord] = []
        self.ignored: list[tuple[Alert, str]] = []  # alerts not acted on, and why
        topology = deployment.topology
        self._host_by_ip = {str(h.ip): name for name, h in topology.hosts.items()}
        self._topology = topology
        self._driver = None
        self._containment = ContainmentState()  # what this responder applied (policy input)
        if spec.policy is not None and spec.automation:
            from testbed.gym.policies import MlpPolicy, PolicyDriver  # numpy only

            self._driver = PolicyDriver(MlpPolicy.load(spec.policy), topology)

    # ---- intake ------------------------------------------------------------------------------
    @property
    def wants_events(self) -> bool:
        """Whether ``observe`` does anything: a policy trained on first-contact features."""
        return self._driver is not None and self._driver.wants_events

    def observe(self, events: Iterable[ConnEvent]) -> None:
        """The sensor's connection events, as the detectors get them (call before handing
        this batch's alerts to ``handle``); only a policy responder reads them."""
        if self._driver is not None and self.spec.automation:
            self._driver.events(events)

    def resolve_host(self, alert: Alert) -> str | None:
        """The host an alert's source address belongs to, or None (router, unused, outside)."""
        if not alert.src_ip or not self._topology.contains_address(alert.src_ip):
            return None
        return self._host_by_ip.get(alert.src_ip)

    def handle(self, alert: Alert) -> list[ActionRecord]:
        """Plan the actions ``alert`` calls for; apply (and return) those already due."""
        if not self.spec.automation:
            self.ignored.append((alert, "automation is off"))
            return []
        if self._driver is not None:
            self._driver.alert(alert)
            return self.tick(self.clock())
        matching = [(i, rule) for i, rule in enumerate(self.spec.rules)
                    if ("any" in rule.on or alert.detector in rule.on)
                    and alert.severity <= rule.min_severity]
        if not matching:
            self.ignored.append((alert, "no rule matches its detector and severity"))
            return []
        host = self.resolve_host(alert)
        if host is None:
            self.ignored.append((alert, f"source {alert.src_ip} is not a host of the topology"))
            return []
        with self._lock:
            for index, rule in matching:
                key = (rule.action, host)
                if key in self._decided:
                    continue
                self._decided.add(key)
                self._sequence += 1
                heapq.heappush(self._planned, PlannedAction(
                    alert.time + rule.delay_s, self._sequence, rule.action, host, index, rule,
                    alert))
        return self.tick(self.clock())

    # ---- acting ------------------------------------------------------------------------------
    def pending(self) -> list[PlannedAction]:
        with self._lock:
            return sorted(self._planned)

    def next_due(self) -> float | None:
        if self._driver is not None:
            return self._driver.next_due()
        with self._lock:
            return self._planned[0].due if self._planned else None

    def tick(self, now: float) -> list[ActionRecord]:
        """Apply every planned action whose reaction delay has passed; return their records."""
        if self._driver is not None:
            return self._policy_tick(now)
        applied: list[ActionRecord] = []
        while True:
            with self._lock:
                if not self._planned or self._planned[0].due > now:
                    break
                planned = heapq.heappop(self._planned)
            applied.append(self._apply(planned))
        return applied

    def _policy_tick(self, now: float) -> list[ActionRecord]:
        assert self._driver is not None
        records = []
        for kind, host in self._driver.decide(now, self._containment):
            action = (Action(kind=kind, target=host, destination="any")  # type: ignore[arg-type]
                      if kind in ("block", "unblock") else Action(kind=kind, target=host))  # type: ignore[arg-type]
            try:
                record = execute_action(self.deployment, action, cause={"policy": self.spec.policy},
                                        log=self.log, clock=self.clock)
            except TestbedError as err:  # logged as failed; the run goes on
                record = err.action_record  # type: ignore[attr-defined]
            apply_action(self._containment, record)
            self.records.append(record)
            records.append(record)
        return records

    def _apply(self, planned: PlannedAction) -> ActionRecord:
        rule, alert = planned.rule, planned.alert
        if planned.action == "quarantine":
            action = Action(kind="quarantine", target=planned.host)
        elif planned.action == "block":
            action = Action(kind="block", target=planned.host, destination="any")
        else:
            action = Action(kind="rate-limit", target=planned.host, per_second=rule.rate_per_s)
        cause = {"detector": alert.detector, "alert_mono": alert.time,
                 "signature": alert.reason, "signature_id": alert.signature_id,
                 "src_ip": alert.src_ip, "severity": alert.severity}
        try:
            record = execute_action(self.deployment, action, cause=cause, log=self.log,
                                    extra_params={"rule": planned.rule_index,
                                                  "delay_s": rule.delay_s},
                                    clock=self.clock)
        except TestbedError as err:  # logged as failed; the run goes on
            record = err.action_record  # type: ignore[attr-defined]
        self.records.append(record)
        return record
