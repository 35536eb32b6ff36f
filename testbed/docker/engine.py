"""Connecting to the Docker engine, with an error that says how to start one.

Owns: only the connection (``connect``). Everything else talks to the returned client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from testbed.errors import BackendError, ToolMissingError

if TYPE_CHECKING:
    import docker

__all__ = ["connect"]

START_HINT = ("start it with 'scripts/start-dockerd.sh' (or 'make install'), "
              "or install it with 'apt-get install docker.io'")


def connect(timeout: float = 60.0) -> docker.DockerClient:
    """A client of the local engine (``DOCKER_HOST`` or the default socket), checked alive."""
    try:
        import docker
        import docker.errors
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise ToolMissingError("the Docker SDK for Python is missing: pip install docker") from err
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as err:
        raise BackendError(f"no Docker engine answers ({err}); {START_HINT}") from err
    return client
