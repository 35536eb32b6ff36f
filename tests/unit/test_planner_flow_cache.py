"""The planner's flow cache (one decide_flow per class of indistinguishable sources) must give
exactly the verdicts of asking decide_flow for every single host, even when rules name single
hosts, groups and CIDRs; and the planner must take every "allowed" from decide_flow."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

import testbed.planner.analysis as analysis
from testbed.model import Topology, load_topology
from testbed.planner import flow_verdicts, plan

SERVICES = [("smb", "MOCK-SMB-1"), ("http", "MOCK-HTTP-1"), ("ssh", "MOCK-SSH-1"),
            ("sql", "MOCK-SQL-1"), ("rdp", None)]


def random_topology(seed: int) -> dict:  # type: ignore[type-arg]
    rng = random.Random(seed)
    segments = {f"s{i}": {"cidr": f"10.{seed % 200}.{i}.0/24"} for i in range(3)}
    hosts: dict[str, dict] = {}  # type: ignore[type-arg]
    for i in range(rng.randint(4, 9)):
        services = [{"name": name, **({"vulns": [vuln]} if vuln else {})}
                    for name, vuln in rng.sample(SERVICES, rng.randint(0, 3))]
        hosts[f"h{i}"] = {"segment": rng.choice(list(segments)), "services": services,
                          "tier": rng.choice(["launch-pad", "workstation", "server",
                                              "crown-jewel"])}
    groups = {"g": {"count": rng.randint(2, 5), "segment": rng.choice(list(segments)),
                    "services": [{"name": "smb", "vulns": ["MOCK-SMB-1"]}]}}
    names: list[str] = [*segments, *hosts, "g", "g-1", "g-2", "any", f"10.{seed % 200}.1.0/25",
             f"10.{seed % 200}.0.2/32"]

    def rule(with_to: bool) -> dict:  # type: ignore[type-arg]
        made: dict[str, object] = {"action": rng.choice(["allow", "deny"]),
                "from": rng.sample(names, rng.randint(1, 2))}
        if with_to:
            made["to"] = rng.sample(names, rng.randint(1, 2))
        if rng.random() < 0.5:
            made["ports"] = rng.sample([22, 80, 445, 3306, 3389], rng.randint(1, 2))
            made["proto"] = "tcp"
        return made

    for host in hosts.values():
        if rng.random() < 0.4:
            host["firewall"] = {"default": rng.choice(["allow", "deny"]),
                                "rules": [rule(False) for _ in range(rng.randint(0, 3))]}
    return {"name": f"random-{seed}", "segments": segments, "hosts": hosts, "groups": groups,
            "routers": {"core": {"segments": list(segments),
                                 "default": rng.choice(["allow", "deny"]),
                                 "rules": [rule(True) for _ in range(rng.randint(1, 6))]}}}


def load(tmp_path: Path, data: dict) -> Topology:  # type: ignore[type-arg]
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_topology(path)


@pytest.mark.parametrize("seed", range(40))
def test_grouped_sources_agree_with_every_host_asked(tmp_path: Path, seed: int) -> None:
    topology = load(tmp_path, random_topology(seed))
    grouped = flow_verdicts(topology)
    every = flow_verdicts(topology, group_sources=False)
    for source in topology.hosts:
        for target in topology.hosts:
            if source != target:
                assert grouped.verdicts_for(source, target) == every.verdicts_for(source, target)


def test_rule_naming_one_host_splits_its_class(tmp_path: Path) -> None:
    data = {"name": "one-host", "segments": {"a": {"cidr": "10.9.1.0/24"},
                                             "b": {"cidr": "10.9.2.0/24"}},
            "groups": {"pc": {"count": 4, "segment": "a"}},
            "hosts": {"db": {"segment": "b", "tier": "crown-jewel",
                             "services": [{"name": "sql", "vulns": ["MOCK-SQL-1"]}]},
                      "pad": {"segment": "a", "tier": "launch-pad"}},
            "routers": {"core": {"segments": ["a", "b"],
                                 "rules": [{"action": "allow", "from": "pc-3", "to": "db"}]}}}
    topology = load(tmp_path, data)
    table = flow_verdicts(topology)
    assert table.class_of["pc-1"] == table.class_of["pc-2"] == table.class_of["pad"]
    assert table.class_of["pc-3"] != table.class_of["pc-1"]
    result = plan(topology)
    assert list(result.attack_graph.predecessors("db")) == ["pc-3"]
    # pc-3 is not vulnerable: the launch pad cannot use it, the jewel stays out of reach.
    assert not result.crown_jewels[0].reachable


def test_every_allowed_flow_comes_from_decide_flow(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    topology = load(tmp_path, random_topology(3))
    calls = []

    def deny_everything(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args)
        return analysis.Verdict(False, "test denies")

    monkeypatch.setattr(analysis, "decide_flow", deny_everything)
    result = plan(topology)
    assert calls
    assert result.attack_graph.number_of_edges() == 0
    assert all(cell.status in ("none", "n/a") for cell in result.matrix)
