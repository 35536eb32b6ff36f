"""The node runtime contract: what a backend adds to the fabric (how a node exists).

Owns: :class:`NodeRuntime`, the small interface the netns and docker backends implement, and
the value types it exchanges (:class:`DeployContext`, :class:`NodeCommand`). Everything else of
a deployment (plan, wiring, policy, containment, taps, counters, rollback, teardown) is the
fabric's and exists once, in :mod:`testbed.backends.fabric`.

A runtime makes a node's network namespace (and whatever holds it: nothing for netns, a
container for docker), names it ``/run/netns/<node.netns>`` so the fabric can wire and remove it
like any other, builds the command lines that run a program inside a node, and removes its own
nodes again from the ledger alone (after ``kill -9`` of the deployer too).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.backends.base import Progress, RunInfo
from testbed.backends.fabric.agents import PER_HOST
from testbed.backends.fabric.plan import NodePlan, WiringPlan
from testbed.backends.ledger import Ledger
from testbed.errors import BackendError
from testbed.model.topology import Topology

__all__ = ["DeployContext", "NodeCommand", "NodeRuntime"]


@dataclass(frozen=True)
class DeployContext:
    """What a runtime may need to know to make a node of a run."""

    topology: Topology
    plan: WiringPlan
    run_name: str
    state_dir: Path


@dataclass(frozen=True)
class NodeCommand:
    """A command line that runs a program inside a node, and the environment to launch it with
    (None: the caller's own)."""

    argv: list[str]
    env: dict[str, str] | None = None


class NodeRuntime(ABC):
    """How the nodes of one backend exist. One instance per backend instance."""

    name: str
    """The backend's name, recorded in every ledger it writes."""
    node_stage: str = "namespaces"
    """The progress stage reported while nodes are made."""
    python: str = "python3"
    """The Python interpreter inside a node (agents are started with it)."""
    host_memory_mib: float = 26.0
    """Memory one host costs in a run (MiB): its agent process (25 MiB resident, measured) and
    its node; the pre-flight (``testbed.backends.preflight``) multiplies it by the hosts."""
    node_memory_mib: float = 1.0
    """Memory one host costs without an agent (``testbed up``): its namespace, links, rules."""
    multiplexed_host_memory_mib: float = 1.5
    """Memory one host costs when its agent shares a multiplexed process: its node, and its
    agent's objects, sockets and buffers on the group's loop. Measured (``benchmarks/scale.py``):
    0.03-0.3 MiB resident per host in the agents, 0.2-0.25 MiB of kernel memory per namespace;
    the rest is margin for connections, socket buffers and neighbour entries under load."""
    agent_process_memory_mib: float = 30.0
    """Memory of one multiplexed agent process before any host (the interpreter, modules)."""

    def agent_layout(self) -> str:
        """How this runtime runs agents (``testbed.backends.fabric.agents``): one per node,
        unless the runtime can run many hosts' agents in one process."""
        return PER_HOST

    def group_command(self, fabric_netns: str, argv: Sequence[str]) -> NodeCommand:
        """The command line that runs a multiplexed agent process in the run's fabric namespace
        (``fabric_netns``: its path)."""
        raise BackendError(f"the {self.name} backend runs one agent per node")

    def preflight(self, topology: Topology) -> None:  # noqa: B027 - optional hook
        """Check what this runtime needs before anything is recorded (tools, engine, images)."""

    def ledger_objects(self, plan: WiringPlan) -> dict[str, Any]:
        """Extra entries for the ledger's ``objects``, recorded before any node is made."""
        return {}

    @abstractmethod
    def make_node(self, node: NodePlan, context: DeployContext) -> str:
        """Make one node with its sysctls set and its namespace named ``/run/netns/<node.netns>``;
        return that path. Called from worker threads, several nodes at once."""

    @abstractmethod
    def command(self, node: NodePlan, argv: Sequence[str], *,
                env: Mapping[str, str] | None = None, interactive: bool = False) -> NodeCommand:
        """The command line that runs ``argv`` inside ``node``. ``env`` adds to the program's
        environment; ``interactive``: the program reads the caller's stdin."""

    @abstractmethod
    def remove_nodes(self, ledger: Ledger, progress: Progress | None = None) -> None:
        """Remove what this runtime made for the run's nodes beyond their namespaces (which the
        fabric removes afterwards). Works from the ledger alone."""

    def orphan_runs(self, known: set[str]) -> list[RunInfo]:
        """Runs whose nodes outlived their ledger (a reboot wiped /run), not in ``known``."""
        return []

    def remove_orphans(self, run_name: str) -> bool:
        """Remove the nodes of a run that has no ledger; False if there were none."""
        return False
