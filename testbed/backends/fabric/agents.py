"""How a fabric run's agents are laid out over processes: one process per host, or a few
processes each serving many hosts on one event loop (``testbed.agent.multiplex``).

Owns: the choice (the runtime's default, or ``TESTBED_AGENTS=multiplexed|per-host``), the split
of the hosts into groups (one per CPU past a few hundred hosts, more when one process could not
hold the descriptors its hosts need), the descriptors a host's agent holds, and the record of the
layout in the run's state directory (``agents/layout.json``), written at deploy time, read by the
runner when it writes agent configs and starts agents.

Must not: start processes or write agent configs (``testbed.runner``), or decide what an agent
does.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from testbed.errors import BackendError
from testbed.model.topology import Host, Topology

__all__ = [
    "AGENTS_ENV",
    "LAYOUTS",
    "MULTIPLEXED",
    "PER_HOST",
    "AgentLayout",
    "host_descriptors",
    "plan_agent_layout",
    "read_agent_layout",
    "requested_layout",
    "write_agent_layout",
]

AGENTS_ENV = "TESTBED_AGENTS"
MULTIPLEXED = "multiplexed"
PER_HOST = "per-host"
LAYOUTS = (MULTIPLEXED, PER_HOST)
LAYOUT_FILE = Path("agents") / "layout.json"
HOSTS_PER_PROCESS = 250
"""A further agent process (up to one per CPU) pays off only past this many hosts each: below,
one loop starts them all in well under a second and a process costs ~25 MiB."""
DESCRIPTOR_RESERVE = 256
"""Descriptors a group process keeps for itself: stdio, the loop's self-pipe, modules, and a
burst of inbound connections."""
CONNECTION_DESCRIPTORS = 2
"""Connections a host's agent has open at a time, on average (benign requests, probes)."""


def host_descriptors(host: Host) -> int:
    """Open files a host's agent holds in a group process: its namespace, its ground-truth file,
    a socket per service, and its connections in flight."""
    return 2 + len(host.services) + CONNECTION_DESCRIPTORS


def requested_layout(default: str) -> str:
    """``$TESTBED_AGENTS`` if set (checked), else ``default``."""
    value = os.environ.get(AGENTS_ENV, "").strip() or default
    if value not in LAYOUTS:
        raise BackendError(f"{AGENTS_ENV}={value!r} is not one of {', '.join(LAYOUTS)}")
    return value


@dataclass(frozen=True)
class AgentLayout:
    """``per-host``: one agent process per host (``groups`` empty). ``multiplexed``: one process
    per group, serving its hosts (host name, network namespace path) on one event loop."""

    layout: str
    groups: tuple[tuple[tuple[str, str], ...], ...] = ()
    descriptors: tuple[int, ...] = ()  # open files each group's process needs

    @property
    def multiplexed(self) -> bool:
        return self.layout == MULTIPLEXED

    def with_namespaces(self, netns_of: dict[str, str]) -> AgentLayout:
        """The same groups with each host's namespace path (known once the plan is made)."""
        return replace(self, groups=tuple(tuple((host, netns_of[host]) for host, _ in group)
                                          for group in self.groups))

    def processes(self, hosts: int) -> int:
        return len(self.groups) if self.multiplexed else hosts

    def to_json(self) -> dict[str, Any]:
        return {"layout": self.layout, "groups": [[list(m) for m in g] for g in self.groups],
                "descriptors": list(self.descriptors)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentLayout:
        return cls(str(data["layout"]),
                   tuple(tuple((str(h), str(n)) for h, n in group) for group in data["groups"]),
                   tuple(int(d) for d in data.get("descriptors", ())))


def plan_agent_layout(topology: Topology, layout: str, netns_of: dict[str, str], *, cpus: int,
                      descriptor_limit: int, max_processes: int) -> AgentLayout:
    """Split the hosts into contiguous groups: one per CPU once there are more than
    ``HOSTS_PER_PROCESS`` hosts, and enough that no group needs more than ``descriptor_limit``
    open files, but never more than ``max_processes`` (the pre-flight then refuses)."""
    if layout == PER_HOST:
        return AgentLayout(PER_HOST)
    hosts = list(topology.hosts.values())
    if not hosts:
        return AgentLayout(MULTIPLEXED)
    needed = [host_descriptors(host) for host in hosts]
    usable = max(1, descriptor_limit - DESCRIPTOR_RESERVE)
    count = max(1, min(cpus, math.ceil(len(hosts) / HOSTS_PER_PROCESS)),
                math.ceil(sum(needed) / usable))
    count = min(count, len(hosts), max(1, max_processes))
    groups: list[tuple[tuple[str, str], ...]] = []
    descriptors: list[int] = []
    size, extra = divmod(len(hosts), count)
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        groups.append(tuple((host.name, netns_of[host.name]) for host in hosts[start:end]))
        descriptors.append(sum(needed[start:end]) + DESCRIPTOR_RESERVE)
        start = end
    return AgentLayout(MULTIPLEXED, tuple(groups), tuple(descriptors))


def write_agent_layout(state_dir: Path, layout: AgentLayout) -> None:
    path = state_dir / LAYOUT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(layout.to_json()), encoding="utf-8")
    os.replace(temporary, path)


def read_agent_layout(state_dir: Path) -> AgentLayout:
    """The layout recorded at deploy time; ``per-host`` where none is (a run directory made by
    hand, a deployment without agents, a backend that runs one agent per node)."""
    try:
        data = json.loads((Path(state_dir) / LAYOUT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AgentLayout(PER_HOST)
    except (OSError, ValueError) as err:
        raise BackendError(f"{state_dir}: unreadable agent layout: {err}") from None
    try:
        return AgentLayout.from_json(data)
    except (KeyError, TypeError, ValueError) as err:
        raise BackendError(f"{state_dir}: invalid agent layout: {err}") from None
