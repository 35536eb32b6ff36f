"""One containment vocabulary (testbed.actions) and the incremental containment timeline
(testbed.containment), on a hand-checked topology.

Topology: basement (laptop, printer: launch pads) -- r1 -- office (pc1, pc2) -- r2 -- vault (db).
Every host runs smb with MOCK-SMB-1; routers allow everything, so any infected, unquarantined
host can reach every other susceptible host.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from testbed.actions import (
    Action,
    ActionLog,
    ActionRecord,
    apply_action,
    execute_action,
)
from testbed.backends.base import ActionTiming
from testbed.containment import ContainmentTimeline
from testbed.errors import BackendError
from testbed.model import Topology, load_topology
from testbed.policy import Block, ContainmentState

pytestmark = pytest.mark.unit

TOPOLOGY_YAML = """
name: timeline-net
segments:
  basement: {cidr: 10.8.0.0/24}
  office: {cidr: 10.8.1.0/24}
  vault: {cidr: 10.8.2.0/24}
defaults:
  services: [{name: smb, vulns: [MOCK-SMB-1]}]
hosts:
  laptop: {segment: basement, tier: launch-pad}
  printer: {segment: basement, tier: launch-pad}
  pc1: {segment: office, tier: workstation}
  pc2: {segment: office, tier: workstation}
  db: {segment: vault, tier: crown-jewel}
routers:
  r1: {segments: [basement, office], default: allow}
  r2: {segments: [office, vault], default: allow}
"""


@pytest.fixture()
def topology(tmp_path: Path) -> Topology:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY_YAML, encoding="utf-8")
    return load_topology(path)


def record(kind: str, target: str, at: float, *, enforced: float = 0.0, ok: bool = True,
           **params: object) -> ActionRecord:
    return ActionRecord(mono=at, action=kind, target=target, params=dict(params),  # type: ignore[arg-type]
                        enforced_s=enforced, ok=ok)


def test_records_round_trip_to_the_action_they_carried_out() -> None:
    block = Action(kind="block", target="pc1", destination="10.8.2.0/24", port=445, proto="tcp")
    line = ActionRecord(mono=5.0, action="block", target="pc1", params=block.params()
                        ).to_json_line()
    again = ActionRecord.model_validate_json(line)
    assert again.to_action() == block
    assert again.effective_at == 5.0
    limit = Action(kind="rate-limit", target="pc2", per_second=2.5)
    assert ActionRecord(mono=1.0, action="rate-limit", target="pc2",
                        params=limit.params()).to_action() == limit


def test_apply_action_changes_the_state_and_failed_actions_do_nothing() -> None:
    state = ContainmentState()
    apply_action(state, record("quarantine", "pc1", 1.0, ok=False))
    assert state.quarantined == set()
    apply_action(state, record("quarantine", "pc1", 1.0))
    apply_action(state, record("block", "pc2", 2.0, source="pc2", destination="any",
                               port=None, proto="any"))
    apply_action(state, record("rate-limit", "db", 3.0, per_second=1.0))
    assert state.quarantined == {"pc1"}
    assert state.blocks == [Block(source="pc2")]
    assert state.rate_limited == {"db": 1.0}
    apply_action(state, record("release", "pc1", 4.0))
    apply_action(state, record("unblock", "pc2", 5.0, source="pc2", destination="any",
                               port=None, proto="any"))
    assert state.quarantined == set() and state.blocks == []


class _FakeDeployment:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.fail = fail

    def quarantine(self, host: str) -> ActionTiming:
        if self.fail:
            raise BackendError(f"no host {host!r}")
        self.calls.append(("quarantine", (host,)))
        return ActionTiming("quarantine", host, 0.002)

    def block(self, source: str, destination: str = "any", port: int | None = None,
              proto: str = "any") -> ActionTiming:
        self.calls.append(("block", (source, destination, port, proto)))
        return ActionTiming("block", source, 0.001)


def test_execute_action_logs_applied_and_failed_actions(tmp_path: Path) -> None:
    log = ActionLog(tmp_path / "actions.jsonl")
    deployment = _FakeDeployment()
    done = execute_action(deployment, Action(kind="quarantine", target="pc1"),  # type: ignore[arg-type]
                          cause={"manual": "alice"}, log=log)
    execute_action(deployment, Action(kind="block", target="pc2", port=445),  # type: ignore[arg-type]
                   cause={"detector": "trw"}, log=log, extra_params={"rule": 0})
    assert deployment.calls == [("quarantine", ("pc1",)), ("block", ("pc2", "any", 445, "any"))]
    assert done.ok and done.enforced_s == 0.002
    with pytest.raises(BackendError) as raised:
        execute_action(_FakeDeployment(fail=True), Action(kind="quarantine", target="zz"),  # type: ignore[arg-type]
                       cause={"manual": "alice"}, log=log)
    assert raised.value.action_record.ok is False  # type: ignore[attr-defined]
    logged = log.read()
    assert [(r.action, r.target, r.ok) for r in logged] == [
        ("quarantine", "pc1", True), ("block", "pc2", True), ("quarantine", "zz", False)]
    assert logged[1].params == {"rule": 0, "source": "pc2", "destination": "any", "port": 445,
                                "proto": "any"}
    assert "no host 'zz'" in (logged[2].error or "")


def test_action_log_lines_from_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    log = ActionLog(tmp_path / "actions.jsonl")

    def write(who: str) -> None:
        for index in range(200):
            log.append(record("quarantine", f"{who}-{index}", float(index)))

    threads = [threading.Thread(target=write, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log.read()) == 600
    # a torn last line (writer killed mid-write) is skipped, not an error
    with open(log.path, "a", encoding="utf-8") as stream:
        stream.write('{"mono": 1.0, "action": "quaran')
    assert len(log.read()) == 600
    assert os.path.getsize(log.path) > 0


def test_timeline_contained_when_every_infected_host_is_quarantined(topology: Topology) -> None:
    timeline = ContainmentTimeline(topology, patient_zero=["laptop"])
    assert timeline.status == "dormant"
    timeline.infect("laptop", 10.0)
    timeline.infect("pc1", 12.0)
    timeline.act(record("quarantine", "laptop", 11.0, enforced=0.5))  # effective 11.5
    timeline.act(record("quarantine", "pc1", 13.0))
    timeline.advance(11.9)  # the laptop was cut at 11.5, before pc1 fell
    assert timeline.status == "contained" and timeline.contained_since == 11.5
    assert timeline.quarantined_at == {"laptop": 11.5} and timeline.peak == 1
    timeline.advance(12.5)  # pc1 was infected at 12.0 all the same (in flight before the cut)
    assert timeline.status == "spreading" and timeline.contained_since is None
    assert timeline.peak == 1
    timeline.advance(100.0)
    assert timeline.status == "contained" and timeline.contained_since == 13.0
    assert timeline.actions_by_kind == {"quarantine": 2}


def test_timeline_orders_changes_fed_out_of_order(topology: Topology) -> None:
    """Records arrive from several files in any order; the replay is by time, infections before
    actions at the same moment (the infection happened, then the cut)."""
    timeline = ContainmentTimeline(topology, patient_zero=["laptop"])
    timeline.act(record("quarantine", "laptop", 5.0))
    timeline.infect("laptop", 5.0)
    assert timeline.infect("laptop", 6.0) is False  # only the first infection counts
    assert timeline.infect("not-a-host", 6.0) is False
    timeline.advance(5.0)
    assert timeline.infected == {"laptop": 5.0}
    assert timeline.status == "contained" and timeline.contained_since == 5.0
    assert timeline.peak == 0  # infection and quarantine at the same moment: never active


def test_timeline_burned_out_is_not_contained(topology: Topology) -> None:
    timeline = ContainmentTimeline(topology, patient_zero=["laptop"])
    for at, host in enumerate(["laptop", "printer", "pc1", "pc2", "db"]):
        timeline.infect(host, float(at))
    timeline.advance(10.0)
    assert timeline.status == "burned-out"
    assert timeline.contained_since is None and timeline.peak == 5


def test_timeline_failed_actions_change_nothing(topology: Topology) -> None:
    timeline = ContainmentTimeline(topology, patient_zero=["laptop"])
    timeline.infect("laptop", 1.0)
    timeline.act(record("quarantine", "laptop", 2.0, ok=False))
    timeline.advance(3.0)
    assert timeline.status == "spreading" and timeline.quarantined_at == {}
    assert timeline.next_change() is None
