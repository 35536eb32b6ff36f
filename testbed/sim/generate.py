"""In-memory topologies and scenarios for simulator experiments and benchmarks.

Owns: ``flat_topology`` (one segment of N hosts, a share of them running a vulnerable service)
and ``scenario_for`` (a Scenario over such a topology, without a file). Pure data, built straight
into the model's frozen types; the future ``testbed generate`` command (issue 11) writes files
instead. Must not: write files or bypass the model's types.
"""

from __future__ import annotations

import ipaddress
import math
import random
from pathlib import Path
from typing import Any

from testbed.model.load_scenario import Scenario
from testbed.model.scenario_spec import ScenarioSpec
from testbed.model.spec import Tier
from testbed.model.topology import Host, Segment, Service, Topology

__all__ = ["flat_topology", "scenario_for"]


def flat_topology(hosts: int, *, vulnerable_fraction: float = 0.1, seed: int = 1,
                  name: str = "flat") -> Topology:
    """``hosts`` hosts on one segment just large enough for them (a /N), each running SMB with
    MOCK-SMB-1; all but ``vulnerable_fraction`` of them (chosen with ``seed``) patched."""
    if hosts < 2:
        raise ValueError("a flat topology needs at least two hosts")
    prefix = 32 - math.ceil(math.log2(hosts + 2))
    network = ipaddress.IPv4Network(f"10.0.0.0/{min(prefix, 24)}")
    first = int(network.network_address) + 1
    rng = random.Random(seed)
    vulnerable = set(rng.sample(range(hosts), max(1, round(hosts * vulnerable_fraction))))
    smb = Service.make("smb", vulns=("MOCK-SMB-1",))
    patched: frozenset[str] = frozenset({"MOCK-SMB-1"})
    table: dict[str, Host] = {}
    for index in range(hosts):
        host_name = f"h{index}"
        table[host_name] = Host(
            name=host_name, segment="lan", ip=ipaddress.IPv4Address(first + index),
            tier=Tier.LAUNCH_PAD if index == 0 else Tier.WORKSTATION, value=1.0,
            services=(smb,), patched=frozenset() if index in vulnerable or index == 0
            else patched)
    return Topology(name=name, description=f"{hosts} hosts on one flat segment",
                    segments={"lan": Segment("lan", network)}, hosts=table, routers={},
                    groups={}, source="<generated>")


def scenario_for(topology: Topology, spec: dict[str, Any]) -> Scenario:
    """A scenario over an in-memory topology (``spec`` as in a scenario file, ``topology`` key
    optional)."""
    data = {"name": topology.name, "topology": "<generated>", **spec}
    return Scenario(ScenarioSpec.model_validate(data), topology, Path("<generated>"),
                    Path("<generated>"))
