"""Every example topology deploys, agrees with the policy under real probes, and vanishes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.model import load_topology
from testbed.model.topology import Topology
from testbed.reach import measure_reachability

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "topologies").glob("*.yaml"))
FULL_PROBE_LIMIT = 80  # above this many hosts, probe from a sample of sources (time budget)


def sample_sources(topology: Topology) -> list[str]:
    """Every named host, and the first and last member of every group: each rule's sources."""
    if len(topology.hosts) <= FULL_PROBE_LIMIT:
        return list(topology.hosts)
    chosen = [name for name, host in topology.hosts.items() if host.group is None]
    for members in topology.groups.values():
        chosen += [members[0], members[-1]]
    return list(dict.fromkeys(chosen))


@pytest.mark.skipif(not EXAMPLES, reason="no example topologies in topologies/")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_deploys_agrees_and_tears_down(path: Path, deploy: Callable[..., Any],
                                               leftovers: Callable[[str], Any]) -> None:
    topology = load_topology(path)
    deployment = deploy(topology)
    prefix = deployment.plan.prefix
    assert len(leftovers(prefix)["namespaces"]) == len(topology.hosts) + len(
        topology.routers) + 1
    report = measure_reachability(deployment, sources=sample_sources(topology))
    assert report.outcomes, "the topology declares no services to probe"
    assert report.ok, report.describe_mismatches()
    assert set(deployment.egress_counters().values()) == {0}
    deployment.teardown()
    assert not any(leftovers(prefix).values()), leftovers(prefix)
