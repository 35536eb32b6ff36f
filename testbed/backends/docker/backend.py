"""The ``docker`` backend: every host and router a container, wired like the netns backend.

Owns: the docker lifecycle (ledger first, then the fabric namespace and the containers, then the
shared wiring; rollback on any failure), the Deployment handle's processes (``docker exec``
inside the containers) and teardown that also removes containers by label. Everything else is
the netns backend's, reused rather than copied: the wiring plan and names, the netlink and
nftables wiring (:mod:`testbed.backends.netns.wiring`), the policy compiler
(:mod:`testbed.backends.nftables`), containment actions, taps and egress counters
(:class:`~testbed.backends.netns.backend.NetnsDeployment`).

Why veths from a fabric namespace rather than Docker networks (Containerlab's way): containers
run with ``network_mode=none``; each one's namespace is named under /run/netns and receives its
veth from the run's fabric namespace, where the segment bridges live. So the sensors' taps, the
policy compiler, quarantine at the bridge port and the egress guard are the same kernel objects
as with netns, and results compare. Docker networks would put bridges (and NAT rules) in the
root namespace and give every container a default route out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from testbed.backends.base import Backend, Progress, RunInfo
from testbed.backends.docker.containers import (
    LABEL_PREFIX,
    LABEL_RUN,
    check_images,
    container_specs,
    list_testbed_containers,
    remove_containers,
    start_containers,
)
from testbed.backends.ledger import Ledger, check_run_name, list_ledgers, pid_alive, run_lock
from testbed.backends.netns.backend import (
    CONTAINMENT_FILE,
    NetnsBackend,
    NetnsDeployment,
    containment_to_json,
    deferred_interrupts,
    destroy_from_ledger,
    load_ledger_topology,
    require_bridge_netfilter,
    store_ledger_topology,
    write_json,
)
from testbed.backends.netns.kernel import create_named_netns, load_libnftables, require_root
from testbed.backends.netns.plan import WiringPlan
from testbed.backends.netns.wiring import FABRIC_SYSCTLS, wire
from testbed.docker.engine import connect
from testbed.errors import BackendError, TestbedError, ToolMissingError
from testbed.model.topology import Topology
from testbed.policy import ContainmentState

if TYPE_CHECKING:
    import docker

__all__ = ["DockerBackend", "DockerDeployment"]

BACKEND_NAME = "docker"


def _docker_cli() -> str:
    found = shutil.which("docker")
    if found is None:
        raise ToolMissingError("the docker command is missing",
                               stderr="hint: apt-get install docker.io")
    return found


def _in_container(argv: Sequence[str]) -> list[str]:
    """The engine's Python is not the container's: ``sys.executable`` becomes ``python3``."""
    if not argv:
        raise BackendError("empty command")
    first = argv[0]
    if first == sys.executable or os.path.realpath(first) == os.path.realpath(sys.executable):
        first = "python3"
    return [first, *argv[1:]]


class DockerBackend(Backend):
    """Docker containers (network_mode=none) wired from a fabric namespace; needs root."""

    name = BACKEND_NAME

    def deploy(self, topology: Topology, run_name: str, *,
               progress: Progress | None = None) -> DockerDeployment:
        require_root()
        load_libnftables()
        check_run_name(run_name)
        require_bridge_netfilter()
        client = connect()
        check_images(client, topology)  # before anything is recorded or made
        plan = WiringPlan.from_topology(topology, NetnsBackend._unique_prefix())
        ledger = Ledger.create(run_name, BACKEND_NAME)  # refuses an existing run: outside try
        try:
            ledger.topology = store_ledger_topology(topology, ledger.directory)
            # Recorded before anything is made: destroy() finds the namespaces by name and the
            # containers by their prefix label, whatever the deployer got to.
            ledger.objects = {"plan": plan.to_json(), "namespaces": plan.namespaces,
                              "containers": {"label": f"{LABEL_PREFIX}={plan.prefix}"}}
            ledger.save()
            fabric = create_named_netns(plan.fabric_netns, FABRIC_SYSCTLS)
            specs = container_specs(topology, plan, run_name, ledger.directory)
            node_paths = start_containers(client, specs, progress=progress)
            wire(topology, plan, fabric, node_paths, progress=progress)
            write_json(ledger.directory / CONTAINMENT_FILE, containment_to_json(ContainmentState()))
            ledger.status = "up"
            ledger.save()
        except BaseException as err:
            with deferred_interrupts():
                with contextlib.suppress(Exception):
                    ledger.status = "failed"
                    ledger.save()
                _destroy_run(client, ledger)
            if isinstance(err, (TestbedError, KeyboardInterrupt, SystemExit)):
                raise
            raise BackendError(f"deploying run {run_name!r} failed and was rolled back: "
                               f"{type(err).__name__}: {err}") from err
        return DockerDeployment(topology, run_name, plan, ledger, client)

    def attach(self, run_name: str) -> DockerDeployment:
        ledger = Ledger.load_live(run_name, BACKEND_NAME)
        plan = WiringPlan.from_json(ledger.objects["plan"])
        return DockerDeployment(load_ledger_topology(ledger), run_name, plan, ledger, connect())

    def runs(self) -> list[RunInfo]:
        """Runs with a docker ledger, plus runs whose containers outlived their state (after a
        reboot wiped /run, say): those show with pid None so that ``down --all`` removes them."""
        ledgers = list_ledgers()
        found = [RunInfo(name=ledger.run, backend=ledger.backend,
                         topology=str(ledger.topology.get("name", "?")),
                         hosts=int(ledger.topology.get("hosts", 0)), created=ledger.created,
                         pid=ledger.pid, alive=pid_alive(ledger.pid))
                 for ledger in ledgers if ledger.backend == BACKEND_NAME]
        known = {ledger.run for ledger in ledgers}
        try:
            containers = list_testbed_containers(connect(timeout=10))
        except TestbedError:
            return found  # no engine: nothing more to find
        orphans: dict[str, list[float]] = {}
        for container in containers:
            run = container.get("Labels", {}).get(LABEL_RUN)
            if run and run not in known:
                orphans.setdefault(run, []).append(float(container.get("Created", 0)))
        found += [RunInfo(name=run, backend=BACKEND_NAME, topology="?", hosts=len(created),
                          created=min(created), pid=None, alive=False)
                  for run, created in sorted(orphans.items())]
        return found

    def destroy(self, run_name: str) -> None:
        require_root()
        client = connect()
        try:
            ledger = Ledger.load(run_name)
        except TestbedError:
            # No ledger: perhaps containers that outlived their state. Remove them by label.
            orphans = list_testbed_containers(client, run=run_name)
            if not orphans:
                raise
            with deferred_interrupts():
                for prefix in {c["Labels"].get(LABEL_PREFIX, "") for c in orphans}:
                    remove_containers(client, prefix)
            return
        if ledger.backend != BACKEND_NAME:
            raise BackendError(f"run {run_name!r} belongs to the {ledger.backend} backend")
        with deferred_interrupts():
            _destroy_run(client, ledger)


def _destroy_run(client: docker.DockerClient, ledger: Ledger,
                 progress: Progress | None = None) -> None:
    """Containers first (by label, so also those the ledger could not name yet), then the
    namespaces and the ledger exactly as the netns backend removes them."""
    plan = ledger.objects.get("plan") or {}
    prefix = str(plan.get("prefix", ""))
    if prefix:
        remove_containers(client, prefix, progress=progress)
    destroy_from_ledger(ledger, progress)


class DockerDeployment(NetnsDeployment):
    """A live docker deployment: the netns deployment's handle, with processes in containers."""

    def __init__(self, topology: Topology, run_name: str, plan: WiringPlan, ledger: Ledger,
                 client: docker.DockerClient) -> None:
        super().__init__(topology, run_name, plan, ledger)
        self._client = client

    def container_of(self, node: str) -> str:
        """The container name of a host or router."""
        self.netns_path(node)  # raises a helpful error for an unknown name
        return self.plan.nodes[node].netns

    def teardown(self, progress: Progress | None = None) -> None:
        if self._torn_down:
            return
        with deferred_interrupts():
            self._stop_processes()
            with run_lock(self.run_name):
                remove_containers(self._client, self.plan.prefix, progress=progress)
        super().teardown(progress)

    # ---- processes: `docker exec`, so they live in the container (files, pids, limits) ------
    def _exec(self, host: str, argv: Sequence[str], *, interactive: bool,
              env: Mapping[str, str] | None = None) -> list[str]:
        command = [_docker_cli(), "exec"]
        if interactive:
            command.append("-i")
        for key, value in (env or {}).items():
            command += ["-e", f"{key}={value}"]
        return [*command, self.container_of(host), *_in_container(argv)]

    def run(self, host: str, argv: Sequence[str], *, timeout: float = 30.0,
            check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        command = self._exec(host, argv, interactive=input is not None)
        try:
            completed = subprocess.run(
                command, input=input, capture_output=True, timeout=timeout, check=False,
                stdin=subprocess.DEVNULL if input is None else None)
        except subprocess.TimeoutExpired:
            raise BackendError(f"command in {host} timed out after {timeout} s",
                               command=" ".join(argv)) from None
        if check and completed.returncode != 0:
            raise BackendError(f"command in {host} failed", command=" ".join(argv),
                               stderr=completed.stderr.decode(errors="replace"),
                               exit_status=completed.returncode)
        return completed

    def spawn(self, host: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              stdout: int | None = subprocess.DEVNULL, stderr: int | None = subprocess.DEVNULL
              ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``host``'s container. ``env`` is set inside (the engine's own
        environment is not passed in); ``sys.executable`` becomes the container's python3.
        Teardown ends it with the container."""
        process = subprocess.Popen(self._exec(host, argv, interactive=False, env=env),
                                   stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                   start_new_session=True)
        with self._lock:
            self._processes = [p for p in self._processes if p.poll() is None]
            self._processes.append(process)
        return process
