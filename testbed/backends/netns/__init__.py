"""The ``netns`` backend: topologies as Linux network namespaces (the embedded default).

Modules: ``plan`` (names, indexes, addresses, routes as data), ``kernel`` (namespaces, netlink,
libnftables, processes), ``wiring`` (realising a plan in existing namespaces; shared with the
docker backend), ``backend`` (NetnsBackend and NetnsDeployment).
"""

from __future__ import annotations

from testbed.backends.netns.backend import NetnsBackend, NetnsDeployment

__all__ = ["NetnsBackend", "NetnsDeployment"]
