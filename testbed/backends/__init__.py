"""Backends realise a topology: ``netns`` (Linux namespaces, default) and ``docker``; ``sim``
simulates the run in virtual time instead (``SimBackend.simulated``; the runner hands it to
``testbed.sim``).

netns and docker are the one fabric (:mod:`testbed.backends.fabric`: plan, wiring, policy,
containment, deploy with rollback, one Deployment class) with a different node runtime
(``netns``: a bare named namespace; ``docker``: a container); before deploying, the fabric asks
:mod:`testbed.backends.preflight` whether the topology fits on this machine. The contract is
:mod:`testbed.backends.base`; kernel calls live in :mod:`testbed.kernel`.

``BACKENDS.get(name)`` returns the backend class; an unknown name lists the known ones.
"""

from __future__ import annotations

from typing import Any

from testbed.registry import Registry

__all__ = ["BACKENDS", "get_backend"]



def _conforms(name: str, backend: Any) -> None:
    """The conformance check a backend plug-in (entry point ``testbed.backends``) passes."""
    from testbed.backends.base import Backend

    if not (isinstance(backend, type) and issubclass(backend, Backend)):
        raise TypeError(f"{backend!r} is not a subclass of testbed.backends.base.Backend")


BACKENDS: Registry[Any] = Registry("backend", plugins="backend", check=_conforms)
BACKENDS.register("netns", "testbed.backends.netns:NetnsBackend")
BACKENDS.register("docker", "testbed.backends.docker:DockerBackend")
BACKENDS.register("sim", "testbed.backends.sim:SimBackend")


def get_backend(name: str) -> Any:
    """An instance of the backend called ``name``."""
    return BACKENDS.get(name)()
