"""The ``netns`` backend: every host and router a bare Linux network namespace (the default).

Modules: ``runtime`` (NetnsRuntime: make a node's namespace, ``nsenter`` command lines). The
rest (plan, wiring, policy, containment, deploy with rollback, teardown) is the fabric's:
:mod:`testbed.backends.fabric`.
"""

from __future__ import annotations

from testbed.backends.fabric import FabricBackend
from testbed.backends.netns.runtime import NetnsRuntime

__all__ = ["NetnsBackend", "NetnsRuntime"]


class NetnsBackend(FabricBackend):
    """Linux network namespaces; needs root, nftables (libnftables) and nsenter."""

    name = "netns"

    def __init__(self) -> None:
        super().__init__(NetnsRuntime())
