"""Backends realise a topology: ``netns`` (Linux namespaces, default) and ``docker``.

Both are the one fabric (:mod:`testbed.backends.fabric`: plan, wiring, policy, containment,
deploy with rollback, one Deployment class) with a different node runtime (``netns``: a bare
named namespace; ``docker``: a container). The contract is :mod:`testbed.backends.base`; kernel
calls live in :mod:`testbed.kernel`.

``BACKENDS.get(name)`` returns the backend class; an unknown name lists the known ones.
"""

from __future__ import annotations

from typing import Any

from testbed.registry import Registry

__all__ = ["BACKENDS", "get_backend"]

BACKENDS: Registry[Any] = Registry("backend")
BACKENDS.register("netns", "testbed.backends.netns:NetnsBackend")
BACKENDS.register("docker", "testbed.backends.docker:DockerBackend")


def get_backend(name: str) -> Any:
    """An instance of the backend called ``name``."""
    return BACKENDS.get(name)()
