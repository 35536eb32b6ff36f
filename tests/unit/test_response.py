"""The responder: which alerts become which actions, when, and what gets logged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detectors.base import Alert
from testbed.actions import ActionLog
from testbed.backends.base import ActionTiming, Deployment, Tap
from testbed.errors import BackendError
from testbed.model.load_topology import load_topology
from testbed.model.scenario_spec import ResponseRuleSpec, ResponseSpec
from testbed.policy import ContainmentState
from testbed.response import Responder

TOPOLOGY = """\
name: rtest
segments:
  lan: {cidr: 10.9.0.0/24}
  dmz: {cidr: 10.9.1.0/24}
hosts:
  web: {segment: dmz, tier: server}
  pc: {segment: lan, tier: workstation}
  laptop: {segment: lan, tier: launch-pad}
routers:
  fw: {segments: [lan, dmz], default: allow}
"""


class FakeDeployment(Deployment):
    """Records containment calls; fails on demand."""

    def __init__(self, topology: Any, state_dir: Path) -> None:
        self.topology = topology
        self.run_name = "fake"
        self.state_dir = state_dir
        self.calls: list[tuple[Any, ...]] = []
        self.fail_on: set[str] = set()

    def _act(self, action: str, *args: Any) -> ActionTiming:
        self.calls.append((action, *args))
        if action in self.fail_on:
            raise BackendError(f"{action} refused", command="nft ...", exit_status=1)
        return ActionTiming(action, str(args[0]), 0.004)

    def teardown(self, progress: Any = None) -> None: ...
    def run(self, host: str, argv: Any, **kwargs: Any) -> Any: raise NotImplementedError
    def spawn(self, host: str, argv: Any, **kwargs: Any) -> Any: raise NotImplementedError
    def netns_path(self, node: str) -> str: raise NotImplementedError
    def exec_argv(self, host: str, argv: Any) -> list[str]: raise NotImplementedError
    def agent_argv(self, host: str, config_path: Path) -> list[str]: raise NotImplementedError

    def quarantine(self, host: str) -> ActionTiming:
        return self._act("quarantine", host)

    def release(self, host: str) -> ActionTiming:
        return self._act("release", host)

    def block(self, source: str, destination: str = "any", port: int | None = None,
              proto: str = "any") -> ActionTiming:
        return self._act("block", source, destination)

    def unblock(self, source: str, destination: str = "any", port: int | None = None,
                proto: str = "any") -> ActionTiming:
        return self._act("unblock", source, destination)

    def rate_limit(self, host: str, per_second: float) -> ActionTiming:
        return self._act("rate-limit", host, per_second)

    def remove_rate_limit(self, host: str) -> ActionTiming:
        return self._act("remove-rate-limit", host)

    def containment(self) -> ContainmentState:
        raise NotImplementedError

    def taps(self) -> list[Tap]:
        return []

    def egress_counters(self) -> dict[str, int]:
        return {}


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def deployment(tmp_path: Path) -> FakeDeployment:
    path = tmp_path / "t.yaml"
    path.write_text(TOPOLOGY)
    return FakeDeployment(load_topology(path), tmp_path)


def alert(detector: str = "trw", src: str = "10.9.0.3", time: float = 100.0,
          severity: int = 1) -> Alert:
    return Alert(time=time, detector=detector, src_ip=src, reason=f"{detector}: scanner",
                 severity=severity, signature_id=9100001)


def read_actions(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_immediate_quarantine_is_applied_and_logged(deployment: FakeDeployment,
                                                    tmp_path: Path) -> None:
    actions = tmp_path / "actions.jsonl"
    clock = Clock(100.2)
    responder = Responder(ResponseSpec(rules=[ResponseRuleSpec(on=["trw"])]), deployment,
                          actions, clock=clock)
    records = responder.handle(alert())
    assert deployment.calls == [("quarantine", "laptop")]
    logged = ActionLog(actions).read()
    assert logged == records
    assert len(read_actions(actions)) == 1
    record = logged[0]
    assert record.action == "quarantine" and record.target == "laptop"
    assert record.ok is True and record.enforced_s == 0.004
    assert record.mono == 100.2
    assert record.cause["detector"] == "trw" and record.cause["alert_mono"] == 100.0
    assert record.cause["src_ip"] == "10.9.0.3"
    # Acts once per host and action.
    assert responder.handle(alert(time=101.0)) == []
    assert len(deployment.calls) == 1


def test_reaction_delay_counts_from_the_alert(deployment: FakeDeployment,
                                              tmp_path: Path) -> None:
    clock = Clock(100.0)
    spec = ResponseSpec(rules=[ResponseRuleSpec(on=["any"], action="block", delay_s=30)])
    responder = Responder(spec, deployment, tmp_path / "actions.jsonl", clock=clock)
    assert responder.handle(alert(time=99.0)) == []
    assert [p.due for p in responder.pending()] == [129.0]
    assert responder.tick(128.9) == [] and deployment.calls == []
    records = responder.tick(129.0)
    assert deployment.calls == [("block", "laptop", "any")]
    assert records[0].params["delay_s"] == 30 and records[0].params["destination"] == "any"
    assert responder.pending() == []


def test_rules_filter_by_detector_and_severity(deployment: FakeDeployment,
                                               tmp_path: Path) -> None:
    spec = ResponseSpec(rules=[
        ResponseRuleSpec(on=["fanout"], action="quarantine"),
        ResponseRuleSpec(on=["graph"], action="rate-limit", min_severity=2, rate_per_s=0.5),
    ])
    responder = Responder(spec, deployment, tmp_path / "a.jsonl", clock=Clock(1e9))
    responder.handle(alert("trw"))  # no rule for trw
    responder.handle(alert("graph", severity=3))  # below the rule's severity
    assert deployment.calls == []
    responder.handle(alert("graph", src="10.9.1.2", severity=2))
    assert deployment.calls == [("rate-limit", "web", 0.5)]
    reasons = [why for _, why in responder.ignored]
    assert reasons == ["no rule matches its detector and severity"] * 2


def test_sources_outside_the_topology_or_not_hosts_are_ignored(deployment: FakeDeployment,
                                                               tmp_path: Path) -> None:
    spec = ResponseSpec(rules=[ResponseRuleSpec(on=["any"])])
    responder = Responder(spec, deployment, tmp_path / "a.jsonl", clock=Clock(1e9))
    for source in ("8.8.8.8", "10.9.0.1", "10.9.0.77", ""):  # outside, router, unused, none
        assert responder.handle(alert(src=source)) == []
    assert deployment.calls == []
    assert not (tmp_path / "a.jsonl").exists()


def test_no_automation_means_no_actions(deployment: FakeDeployment, tmp_path: Path) -> None:
    spec = ResponseSpec(automation=False, rules=[ResponseRuleSpec(on=["any"])])
    responder = Responder(spec, deployment, tmp_path / "a.jsonl", clock=Clock(1e9))
    assert responder.handle(alert()) == [] and deployment.calls == []
    assert responder.ignored[0][1] == "automation is off"


def test_failed_actions_are_logged_with_the_error(deployment: FakeDeployment,
                                                  tmp_path: Path) -> None:
    deployment.fail_on.add("quarantine")
    spec = ResponseSpec(rules=[ResponseRuleSpec(on=["any"]),
                               ResponseRuleSpec(on=["any"], action="block")])
    responder = Responder(spec, deployment, tmp_path / "a.jsonl", clock=Clock(1e9))
    records = responder.handle(alert())
    assert [(r.action, r.ok) for r in records] == [("quarantine", False), ("block", True)]
    assert "quarantine refused" in (records[0].error or "")
    assert len(read_actions(tmp_path / "a.jsonl")) == 2
