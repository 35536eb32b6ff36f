"""The netns wiring plan (names, routes) and the cleanup ledger, without privileges."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from testbed.backends.fabric.plan import IFNAMSIZ, WiringPlan, new_prefix
from testbed.backends.ledger import Ledger, backend_of_run, check_run_name, list_ledgers
from testbed.errors import BackendError, RunNotFoundError
from testbed.kernel import RtnlBatch, split_messages
from testbed.model.load_topology import topology_from_document
from testbed.yamlsource import parse_yaml_text

TOPOLOGY = """
name: chain
segments:
  a: {cidr: 10.1.0.0/16}
  b: {cidr: 10.2.0.0/24}
  c: {cidr: 10.3.0.0/24}
  island: {cidr: 10.9.0.0/24}
groups:
  many: {count: 4000, segment: a}
hosts:
  bee: {segment: b}
  sea: {segment: c}
  alone: {segment: island}
routers:
  r1: {segments: [a, b], default: allow}
  r2: {segments: [b, c], default: allow}
"""


@pytest.fixture(scope="module")
def plan() -> WiringPlan:
    topology = topology_from_document(parse_yaml_text(TOPOLOGY, "<test>"))
    return WiringPlan.from_topology(topology, "tabcd")


def test_names_fit_and_carry_the_prefix(plan: WiringPlan) -> None:
    names = [b.name for b in plan.bridges.values()]
    for node in plan.nodes.values():
        assert node.netns.startswith("tabcd-")
        for link in node.links:
            names += [link.interface, link.port]
    assert all(len(name) <= IFNAMSIZ and name.startswith("tabcd") for name in names)
    assert plan.fabric_netns == "tabcd_fabric" and plan.table == "testbed_tabcd"
    assert len({b.index for b in plan.bridges.values()}
               | {link.port_index for n in plan.nodes.values() for link in n.links}) == (
        len(plan.bridges) + sum(len(n.links) for n in plan.nodes.values()))


def test_routes_only_to_topology_segments_via_the_right_router(plan: WiringPlan) -> None:
    assert plan.nodes["many-1"].routes == (("10.2.0.0/24", "10.1.0.1"),
                                           ("10.3.0.0/24", "10.1.0.1"))
    assert dict(plan.nodes["sea"].routes) == {"10.1.0.0/16": "10.3.0.1",
                                              "10.2.0.0/24": "10.3.0.1"}
    assert plan.nodes["alone"].routes == ()  # no router: no route at all
    assert dict(plan.nodes["r1"].routes) == {"10.3.0.0/24": "10.2.0.2"}
    for node in plan.nodes.values():
        for destination, _gateway in node.routes:
            assert ipaddress.IPv4Network(destination).prefixlen > 0  # never a default route


def test_plan_round_trips_through_json(plan: WiringPlan) -> None:
    assert WiringPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_prefixes_are_short_and_valid() -> None:
    for _ in range(50):
        prefix = new_prefix()
        assert len(prefix) == 5 and prefix[0] == "t" and prefix.isalnum()


def test_netlink_batch_encoding() -> None:
    batch = RtnlBatch()
    batch.set_up(1, "lo")
    batch.add_address(10, "10.0.0.5/24")
    batch.add_route("10.1.0.0/16", "10.0.0.1")
    messages = split_messages(batch.data)
    assert [sequence for sequence, _ in messages] == [1, 2, 3]
    assert all(len(m) % 4 == 0 for _, m in messages)
    assert batch.describe[3] == "adding route 10.1.0.0/16 via 10.0.0.1"


def test_ledger_lifecycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path))
    ledger = Ledger.create("demo-1", "netns")
    ledger.objects = {"namespaces": ["tabcd_fabric"]}
    ledger.save()
    assert backend_of_run("demo-1") == "netns"
    assert Ledger.load("demo-1").objects == {"namespaces": ["tabcd_fabric"]}
    assert [item.run for item in list_ledgers()] == ["demo-1"]
    with pytest.raises(BackendError, match="already exists"):
        Ledger.create("demo-1", "netns")
    (tmp_path / "demo-1" / "alerts.jsonl").write_text("{}\n")
    ledger.remove()
    assert list_ledgers() == []
    assert (tmp_path / "demo-1" / "alerts.jsonl").exists()  # records are kept
    with pytest.raises(RunNotFoundError, match="no run named"):
        Ledger.load("demo-1")


@pytest.mark.parametrize("name", ["", "Bad", "../x", "a/b", "x" * 64, "-lead"])
def test_bad_run_names_are_refused(name: str) -> None:
    with pytest.raises(BackendError, match="invalid run name"):
        check_run_name(name)
