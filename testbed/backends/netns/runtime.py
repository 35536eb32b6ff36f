"""The netns node runtime: a node is a bare named network namespace.

Owns: making a node's namespace (``/run/netns/<prefix>-<node>``, with its sysctls) and the
``nsenter`` command lines that run programs in it (and multiplexed agent processes in the run's
fabric namespace: agents are multiplexed here by default, ``TESTBED_AGENTS=per-host`` starts one
process per host instead). Host programs share the machine's file system
and process table; only the network is the node's. Processes in a node are found and killed
through the namespace, which the fabric removes; there is nothing else to remove.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence

from testbed.backends.base import Progress
from testbed.backends.fabric.agents import MULTIPLEXED, requested_layout
from testbed.backends.fabric.plan import NodePlan
from testbed.backends.fabric.runtime import DeployContext, NodeCommand, NodeRuntime
from testbed.backends.fabric.wiring import node_sysctls
from testbed.backends.ledger import Ledger
from testbed.errors import ToolMissingError
from testbed.kernel import create_named_netns, named_netns_path
from testbed.model.topology import Topology

__all__ = ["NSENTER", "NetnsRuntime"]

NSENTER = "nsenter"


class NetnsRuntime(NodeRuntime):
    """Nodes as named network namespaces; programs start with ``nsenter --net``."""

    name = "netns"
    node_stage = "namespaces"
    python = sys.executable  # the node shares the machine's file system

    def preflight(self, topology: Topology) -> None:
        if shutil.which(NSENTER) is None:
            raise ToolMissingError("nsenter is not installed",
                                   stderr="hint: apt-get install util-linux")

    def agent_layout(self) -> str:
        """Multiplexed (a few processes serve every host, each host's sockets made inside its
        namespace) unless ``TESTBED_AGENTS=per-host``."""
        return requested_layout(MULTIPLEXED)

    def group_command(self, fabric_netns: str, argv: Sequence[str]) -> NodeCommand:
        return NodeCommand([NSENTER, f"--net={fabric_netns}", "--", *argv])

    def make_node(self, node: NodePlan, context: DeployContext) -> str:
        return create_named_netns(node.netns, node_sysctls(node.kind))

    def command(self, node: NodePlan, argv: Sequence[str], *,
                env: Mapping[str, str] | None = None, interactive: bool = False) -> NodeCommand:
        return NodeCommand([NSENTER, f"--net={named_netns_path(node.netns)}", "--", *argv],
                           None if env is None else {**os.environ, **env})

    def remove_nodes(self, ledger: Ledger, progress: Progress | None = None) -> None:
        """Nothing beyond the namespaces, which the fabric removes."""
