"""The docker node runtime: a node is a container whose network namespace the fabric wires.

Owns: starting a node's container (``network_mode=none``) and naming its namespace, the
``docker exec`` command lines that run programs inside a container (its own files, pids,
hostname and limits), removing a run's containers by label (with or without a ledger), and
saying in words when the Docker engine is gone, with the command that cleans up once it is back.

Why veths from a fabric namespace rather than Docker networks (Containerlab's way): containers
run with ``network_mode=none``; each one's namespace is named under /run/netns and receives its
veth from the run's fabric namespace, where the segment bridges live. So the sensors' taps, the
policy compiler, quarantine at the bridge port and the egress guard are the same kernel objects
as with netns, and results compare. Docker networks would put bridges (and NAT rules) in the
root namespace and give every container a default route out.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from testbed.backends.base import Progress, RunInfo
from testbed.backends.docker.containers import (
    LABEL_PREFIX,
    LABEL_RUN,
    check_images,
    container_spec,
    list_testbed_containers,
    remove_containers,
    start_container,
)
from testbed.backends.fabric.plan import NodePlan, WiringPlan
from testbed.backends.fabric.runtime import DeployContext, NodeCommand, NodeRuntime
from testbed.backends.ledger import Ledger
from testbed.errors import BackendError, TestbedError, ToolMissingError
from testbed.image import EngineUnavailableError, connect
from testbed.image.engine import START_HINT
from testbed.model.topology import Topology

if TYPE_CHECKING:
    import docker

__all__ = ["DockerRuntime", "in_container"]

CONTAINER_PYTHON = "python3"


def docker_cli() -> str:
    found = shutil.which("docker")
    if found is None:
        raise ToolMissingError("the docker command is missing",
                               stderr="hint: apt-get install docker.io")
    return found


def in_container(argv: Sequence[str]) -> list[str]:
    """The engine's Python is not the container's: ``sys.executable`` becomes ``python3``."""
    if not argv:
        raise BackendError("empty command")
    first = argv[0]
    if first == sys.executable or os.path.realpath(first) == os.path.realpath(sys.executable):
        first = CONTAINER_PYTHON
    return [first, *argv[1:]]


def engine_gone(err: EngineUnavailableError, run_name: str | None) -> EngineUnavailableError:
    """The engine error, with what to do about the run once the engine is back."""
    cleanup = (f"`testbed down {run_name}` (or `testbed down --all`)" if run_name
               else "`testbed down --all`")
    where = f" while removing run {run_name!r}" if run_name else ""
    return EngineUnavailableError(
        f"the Docker engine is not answering ({err.reason or 'no connection'}){where}: it "
        f"stopped or restarted under the run. Once it runs again ({START_HINT}), remove what "
        f"is left with {cleanup}", reason=err.reason)


class DockerRuntime(NodeRuntime):
    """Nodes as containers of the testbed image; programs start with ``docker exec``."""

    name = "docker"
    node_stage = "containers"
    python = CONTAINER_PYTHON
    host_memory_mib = 40.0  # the agent, plus the container's shim and runtime
    node_memory_mib = 14.0  # the container alone

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> docker.DockerClient:
        """The engine's client, connected on first use (exec and actions never need it)."""
        if self._client is None:
            self._client = connect()
        return self._client

    def preflight(self, topology: Topology) -> None:
        check_images(self.client, topology)

    def ledger_objects(self, plan: WiringPlan) -> dict[str, Any]:
        # destroy finds the containers by their prefix label, whatever the deployer got to.
        return {"containers": {"label": f"{LABEL_PREFIX}={plan.prefix}"}}

    def make_node(self, node: NodePlan, context: DeployContext) -> str:
        spec = container_spec(context.topology, context.plan, node, context.run_name,
                              context.state_dir)
        return start_container(self.client, spec)

    def command(self, node: NodePlan, argv: Sequence[str], *,
                env: Mapping[str, str] | None = None, interactive: bool = False) -> NodeCommand:
        """``docker exec`` into the node's container (named like its namespace). ``env`` is set
        inside (the engine's own environment is not passed in)."""
        command = [docker_cli(), "exec"]
        if interactive:
            command.append("-i")
            if sys.stdin.isatty() and sys.stdout.isatty():
                command.append("-t")
        for key, value in (env or {}).items():
            command += ["-e", f"{key}={value}"]
        return NodeCommand([*command, node.netns, *in_container(argv)])

    def remove_nodes(self, ledger: Ledger, progress: Progress | None = None) -> None:
        """Every container with the run's prefix label (also those the ledger could not name)."""
        prefix = str((ledger.objects.get("plan") or {}).get("prefix", ""))
        if not prefix:
            return
        try:
            remove_containers(self.client, prefix, progress=progress)
        except EngineUnavailableError as err:
            raise engine_gone(err, ledger.run) from err

    def orphan_runs(self, known: set[str]) -> list[RunInfo]:
        try:
            containers = list_testbed_containers(connect(timeout=10))
        except TestbedError:
            return []  # no engine: nothing more to find
        orphans: dict[str, list[float]] = {}
        for container in containers:
            run = container.get("Labels", {}).get(LABEL_RUN)
            if run and run not in known:
                orphans.setdefault(run, []).append(float(container.get("Created", 0)))
        return [RunInfo(name=run, backend=self.name, topology="?", hosts=len(created),
                        created=min(created), pid=None, alive=False)
                for run, created in sorted(orphans.items())]

    def remove_orphans(self, run_name: str) -> bool:
        try:
            orphans = list_testbed_containers(self.client, run=run_name)
            for prefix in {c["Labels"].get(LABEL_PREFIX, "") for c in orphans}:
                remove_containers(self.client, prefix)
        except EngineUnavailableError as err:
            raise engine_gone(err, run_name) from err
        return bool(orphans)
