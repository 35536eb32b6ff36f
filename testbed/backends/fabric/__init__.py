"""The fabric: what every namespace-based backend shares, once.

A run is a per-run *fabric* namespace holding one bridge per segment, and one network namespace
per host or router, joined to the bridges by veth pairs; nftables in every node (egress guard,
firewalls, router policy) and in the fabric (quarantine, blocks, rate limits). Only how a node
exists differs between backends: that is a :class:`NodeRuntime` (``testbed.backends.netns``:
a bare named namespace; ``testbed.backends.docker``: a container's namespace, given a name).

Modules: ``plan`` (names, indexes, addresses, routes as data), ``ruleset`` (the policy compiler:
topology and containment -> nftables text), ``wiring`` (realising a plan in existing namespaces),
``containment`` (the containment state and its enforcement), ``runtime`` (the NodeRuntime
contract), ``lifecycle`` (deploy with rollback, destroy from the ledger), ``deployment`` (the one
Deployment class), ``backend`` (the one Backend class).
"""

from __future__ import annotations

from testbed.backends.fabric.backend import FabricBackend
from testbed.backends.fabric.deployment import FabricDeployment
from testbed.backends.fabric.runtime import DeployContext, NodeCommand, NodeRuntime

__all__ = ["DeployContext", "FabricBackend", "FabricDeployment", "NodeCommand", "NodeRuntime"]
