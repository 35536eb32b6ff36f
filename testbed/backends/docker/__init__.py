"""The ``docker`` backend: every host and router a container from the testbed image.

Modules: ``containers`` (container descriptions, start, remove by label), ``backend``
(DockerBackend and DockerDeployment, built on the netns backend's wiring and handle).
"""

from __future__ import annotations

from testbed.backends.docker.backend import DockerBackend, DockerDeployment

__all__ = ["DockerBackend", "DockerDeployment"]
