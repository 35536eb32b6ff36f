"""The Backend of every fabric runtime: deploy, attach, list and destroy runs.

Owns: :class:`FabricBackend`, which turns the lifecycle (:mod:`.lifecycle`) and the one
deployment class (:mod:`.deployment`) into the ``Backend`` contract for a given node runtime.
``NetnsBackend`` and ``DockerBackend`` are this class with their runtime.
"""

from __future__ import annotations

from testbed.backends.base import Backend, Progress, RunInfo
from testbed.backends.fabric.deployment import FabricDeployment
from testbed.backends.fabric.lifecycle import (
    deferred_interrupts,
    deploy_run,
    destroy_run,
    load_ledger_topology,
)
from testbed.backends.fabric.plan import WiringPlan
from testbed.backends.fabric.runtime import NodeRuntime
from testbed.backends.ledger import Ledger, list_ledgers, pid_alive
from testbed.errors import BackendError, TestbedError
from testbed.kernel import require_root
from testbed.model.topology import Topology

__all__ = ["FabricBackend"]


class FabricBackend(Backend):
    """Segment bridges in a per-run fabric namespace, nodes made by ``runtime``; needs root."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self.name = runtime.name

    def deploy(self, topology: Topology, run_name: str, *,
               progress: Progress | None = None, agents: bool = True) -> FabricDeployment:
        plan, ledger = deploy_run(self.runtime, topology, run_name, progress=progress,
                                  agents=agents)
        return FabricDeployment(self.runtime, topology, run_name, plan, ledger)

    def attach(self, run_name: str) -> FabricDeployment:
        ledger = Ledger.load_live(run_name, self.name)
        plan = WiringPlan.from_json(ledger.objects["plan"])
        return FabricDeployment(self.runtime, load_ledger_topology(ledger), run_name, plan,
                                ledger)

    def runs(self) -> list[RunInfo]:
        """Runs with a ledger of this backend, plus runs whose nodes outlived their state (after
        a reboot wiped /run, say): those show with pid None so that ``down --all`` removes
        them."""
        ledgers = list_ledgers()
        found = [RunInfo(name=ledger.run, backend=ledger.backend,
                         topology=str(ledger.topology.get("name", "?")),
                         hosts=int(ledger.topology.get("hosts", 0)), created=ledger.created,
                         pid=ledger.pid, alive=pid_alive(ledger.pid))
                 for ledger in ledgers if ledger.backend == self.name]
        return found + self.runtime.orphan_runs({ledger.run for ledger in ledgers})

    def destroy(self, run_name: str) -> None:
        require_root()
        try:
            ledger = Ledger.load(run_name)
        except TestbedError:
            # No ledger: perhaps nodes that outlived their state. Remove them if so.
            with deferred_interrupts():
                if self.runtime.remove_orphans(run_name):
                    return
            raise
        if ledger.backend != self.name:
            raise BackendError(f"run {run_name!r} belongs to the {ledger.backend} backend")
        with deferred_interrupts():
            destroy_run(self.runtime, ledger)
