"""The ``sim`` backend's entry in the registry: runs simulated in virtual time, nothing deployed.

Owns: :class:`SimBackend`, which declares ``simulated = True`` so that the runner hands the
scenario to the simulator (``testbed.sim``, a layer above this one) and every command that needs
a live network (``up``, ``exec``, ``reach``, ``quarantine`` ...) gets a clear refusal instead of
a half-made deployment. Must not: import the simulator (it sits above the backends layer).
"""

from __future__ import annotations

from testbed.backends.base import Backend, Deployment, Progress, RunInfo
from testbed.errors import BackendError
from testbed.model.topology import Topology

__all__ = ["SimBackend"]

_NOTHING_DEPLOYED = ("the sim backend simulates a whole run in virtual time and deploys no "
                     "network; use `testbed run SCENARIO --backend sim` (or `backend: sim` in the "
                     "scenario), or an emulation backend (netns, docker) for a live network")


class SimBackend(Backend):
    """Simulated runs (``testbed run --backend sim``); no live network to deploy or attach to."""

    name = "sim"
    simulated = True

    def deploy(self, topology: Topology, run_name: str, *,
               progress: Progress | None = None, agents: bool = True) -> Deployment:
        raise BackendError(_NOTHING_DEPLOYED)

    def attach(self, run_name: str) -> Deployment:
        raise BackendError(f"run {run_name!r}: {_NOTHING_DEPLOYED}")

    def runs(self) -> list[RunInfo]:
        return []  # a simulated run leaves nothing on the machine but its run directory

    def destroy(self, run_name: str) -> None:
        raise BackendError(f"run {run_name!r}: {_NOTHING_DEPLOYED}")
