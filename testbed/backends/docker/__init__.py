"""The ``docker`` backend: every host and router a container from the testbed image.

Modules: ``containers`` (container descriptions, start, remove by label), ``runtime``
(DockerRuntime: make a node's container and name its namespace, ``docker exec`` command lines).
The rest (plan, wiring, policy, containment, deploy with rollback, teardown) is the fabric's:
:mod:`testbed.backends.fabric`. The image itself is built by :mod:`testbed.image`.
"""

from __future__ import annotations

from testbed.backends.docker.runtime import DockerRuntime
from testbed.backends.fabric import FabricBackend

__all__ = ["DockerBackend", "DockerRuntime"]


class DockerBackend(FabricBackend):
    """Docker containers (network_mode=none) wired from a fabric namespace; needs root."""

    name = "docker"

    def __init__(self) -> None:
        super().__init__(DockerRuntime())
