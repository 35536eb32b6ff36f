"""Deploy with rollback, and destroy from the ledger: the one lifecycle of every fabric run.

Owns: the order of a deployment (checks, capacity first: :mod:`testbed.backends.preflight`;
ledger first; the fabric namespace; every node through the node runtime, in parallel; the wiring
and policy; "up") and its rollback on any failure or Ctrl-C, and removal from the ledger alone
(the runtime's nodes, then every process in the run's namespaces, then the namespaces, then the
ledger), which also works after ``kill -9`` of the deployer. Also the run prefix, and the copy of
the topology that lets another process attach. This block exists once: the netns and docker
backends differ only in their node runtime.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from testbed.backends.base import Progress
from testbed.backends.fabric.agents import (
    AgentLayout,
    host_descriptors,
    plan_agent_layout,
    write_agent_layout,
)
from testbed.backends.fabric.containment import CONTAINMENT_FILE, write_containment
from testbed.backends.fabric.plan import (
    NodePlan,
    WiringPlan,
    neighbour_entries,
    new_prefix,
    segment_nodes,
)
from testbed.backends.fabric.runtime import DeployContext, NodeRuntime
from testbed.backends.fabric.wiring import FABRIC_SYSCTLS, parallel, wire
from testbed.backends.ledger import Ledger, check_run_name, list_ledgers
from testbed.backends.preflight import (
    NFT_OBJECT_KIB,
    check_deployment,
    descriptor_limit,
    estimate_capacity,
    estimate_descriptors,
    estimate_neighbours,
    nft_objects,
)
from testbed.errors import BackendError, TestbedError, ToolMissingError
from testbed.kernel import (
    NETNS_RUN_DIR,
    create_named_netns,
    ensure_neighbour_capacity,
    kill_processes_in,
    load_libnftables,
    named_netns_path,
    pids_in_netns,
    remove_named_netns,
    require_root,
)
from testbed.model.topology import Topology
from testbed.policy import ContainmentState

__all__ = [
    "deferred_interrupts",
    "deploy_run",
    "destroy_run",
    "load_ledger_topology",
    "preflight",
    "remove_namespaces",
    "require_bridge_netfilter",
    "store_ledger_topology",
    "unique_prefix",
]

TOPOLOGY_COPY = "topology.yaml"
PER_HOST_PROCESS_FILES = 8  # an agent process of its own: stdio, its loop, its modules
TOPOLOGY_PICKLE = "topology.pickle"


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) while cleaning up; re-raise it afterwards. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def require_bridge_netfilter() -> None:
    """Blocks and rate limits are enforced statefully on the fabric's bridges, which needs
    bridge netfilter (built into some kernels, the ``br_netfilter`` module on stock Debian)."""
    if Path("/proc/sys/net/bridge").is_dir():
        return
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
    if not Path("/proc/sys/net/bridge").is_dir():
        raise ToolMissingError("bridge netfilter is not available in this kernel",
                               command="modprobe br_netfilter",
                               stderr="hint: load the br_netfilter module (apt-get install kmod; "
                                      "modprobe br_netfilter)")


def unique_prefix() -> str:
    """A run prefix no ledger and no namespace on this machine uses."""
    used = {str(ledger.objects.get("plan", {}).get("prefix")) for ledger in list_ledgers()}
    existing = {entry.split("-")[0].split("_")[0]
                for entry in (os.listdir(NETNS_RUN_DIR) if NETNS_RUN_DIR.is_dir() else [])}
    for _ in range(100):
        prefix = new_prefix()
        if prefix not in used and prefix not in existing:
            return prefix
    raise BackendError("could not find an unused run prefix")


# ---- the topology copy, for attach() in another process ----------------------------------
def store_ledger_topology(topology: Topology, directory: Path) -> dict[str, Any]:
    """Keep what attach() needs to rebuild the Topology in another process."""
    record: dict[str, Any] = {"name": topology.name, "hosts": len(topology.hosts),
                              "routers": len(topology.routers), "source": topology.source}
    source = Path(topology.source) if topology.source else None
    if source is not None and source.is_file():
        shutil.copyfile(source, directory / TOPOLOGY_COPY)
        record["copy"] = TOPOLOGY_COPY
    else:  # built in memory (benchmarks, tests): the run directory is root-only (0700)
        with open(directory / TOPOLOGY_PICKLE, "wb") as stream:
            pickle.dump(topology, stream)
        record["pickle"] = TOPOLOGY_PICKLE
    return record


def load_ledger_topology(ledger: Ledger) -> Topology:
    record = ledger.topology
    if "copy" in record:
        from testbed.model import load_topology

        return load_topology(ledger.directory / record["copy"],
                             display_name=record.get("source") or None)
    if "pickle" in record:
        with open(ledger.directory / record["pickle"], "rb") as stream:
            topology = pickle.load(stream)
        if not isinstance(topology, Topology):
            raise BackendError(f"run {ledger.run!r}: stored topology is unreadable")
        return topology
    raise BackendError(f"run {ledger.run!r} has no stored topology")


# ---- deploy ----------------------------------------------------------------------------------
def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def _max_agent_processes() -> int:
    return max(4, 2 * _cpus())


def preflight(runtime: NodeRuntime, topology: Topology, *,
              agents: bool = True) -> AgentLayout | None:
    """Whether this machine holds the run: memory, the agents' open files, neighbour entries
    (``testbed.backends.preflight``); ``CapacityError`` naming every limit exceeded, before
    anything is recorded or made. Returns how the agents will run (None without agents)."""
    nft_mib = nft_objects(topology) * NFT_OBJECT_KIB / 1024
    sizes = segment_nodes(topology)
    neighbours = estimate_neighbours(neighbour_entries(sizes.values()),
                                     max(sizes.values(), default=0))
    if not agents:
        check_deployment(estimate_capacity(
            topology, runtime.name, host_memory_mib=runtime.node_memory_mib, memory_of="node",
            fixed_mib=nft_mib, fixed_detail="nftables objects"), None, neighbours)
        return None
    layout = plan_agent_layout(topology, runtime.agent_layout(),
                               dict.fromkeys(topology.hosts, ""), cpus=_cpus(),
                               descriptor_limit=descriptor_limit(),
                               max_processes=_max_agent_processes())
    if layout.multiplexed:
        processes = layout.processes(len(topology.hosts))
        memory = estimate_capacity(
            topology, runtime.name, host_memory_mib=runtime.multiplexed_host_memory_mib,
            fixed_mib=processes * runtime.agent_process_memory_mib + nft_mib,
            fixed_detail=f"{processes} multiplexed agent process(es) x "
                         f"{runtime.agent_process_memory_mib:g} MiB and nftables objects")
        per_process = list(layout.descriptors)
    else:
        memory = estimate_capacity(topology, runtime.name,
                                   host_memory_mib=runtime.host_memory_mib)
        per_process = [host_descriptors(host) + PER_HOST_PROCESS_FILES
                       for host in topology.hosts.values()]
    check_deployment(memory, estimate_descriptors(len(topology.hosts), per_process), neighbours)
    return layout


def _make_nodes(runtime: NodeRuntime, context: DeployContext,
                progress: Progress | None) -> dict[str, str]:
    paths: dict[str, str] = {}
    lock = threading.Lock()

    def make(node: NodePlan) -> None:
        path = runtime.make_node(node, context)
        with lock:
            paths[node.name] = path

    parallel(list(context.plan.nodes.values()), make, stage=runtime.node_stage,
             progress=progress)
    return paths


def deploy_run(runtime: NodeRuntime, topology: Topology, run_name: str, *,
               progress: Progress | None = None,
               agents: bool = True) -> tuple[WiringPlan, Ledger]:
    """Build the run; on any failure (Ctrl-C included) remove what was built and raise.

    First of all, whether the machine can hold the topology (``CapacityError`` otherwise),
    counting each host's agent when ``agents``: before privileges, tools, ledger or any
    namespace."""
    layout = preflight(runtime, topology, agents=agents)
    require_root()
    load_libnftables()
    check_run_name(run_name)
    require_bridge_netfilter()
    runtime.preflight(topology)  # before anything is recorded or made
    plan = WiringPlan.from_topology(topology, unique_prefix())
    ledger = Ledger.create(run_name, runtime.name)  # refuses an existing run: outside try
    try:
        ledger.topology = store_ledger_topology(topology, ledger.directory)
        # Recorded before anything is made: destroy_run() finds every namespace by name (and
        # the runtime its own objects), whatever the deployer got to.
        ledger.objects = {"plan": plan.to_json(), "namespaces": plan.namespaces,
                          **runtime.ledger_objects(plan)}
        raised = ensure_neighbour_capacity(plan.neighbour_entries_needed())
        if raised is not None:  # a host-wide limit, kept afterwards: recorded, not undone
            ledger.objects["raised_neighbour_limits_from"] = raised
        ledger.save()
        if layout is not None:  # the runner starts agents as the pre-flight counted them
            write_agent_layout(ledger.directory, layout.with_namespaces(
                {name: named_netns_path(node.netns) for name, node in plan.nodes.items()}))
        fabric = create_named_netns(plan.fabric_netns, FABRIC_SYSCTLS)
        context = DeployContext(topology, plan, run_name, ledger.directory)
        node_paths = _make_nodes(runtime, context, progress)
        wire(topology, plan, fabric, node_paths, progress=progress)
        write_containment(ledger.directory, ContainmentState())
        ledger.status = "up"
        ledger.save()
    except BaseException as err:
        with deferred_interrupts():
            with contextlib.suppress(Exception):
                ledger.status = "failed"
                ledger.save()
            destroy_run(runtime, ledger)
        if isinstance(err, (TestbedError, KeyboardInterrupt, SystemExit)):
            raise
        raise BackendError(f"deploying run {run_name!r} failed and was rolled back: "
                           f"{type(err).__name__}: {err}") from err
    return plan, ledger


# ---- destroy -------------------------------------------------------------------------------
def remove_namespaces(ledger: Ledger, progress: Progress | None = None) -> None:
    """Kill every process in the run's namespaces, then remove the namespaces."""
    names = [str(name) for name in ledger.objects.get("namespaces", [])]
    paths = [named_netns_path(name) for name in names]
    # A process keeps its namespace alive: end them first, including agents whose deployer died.
    if progress is not None:
        progress("processes", 0, 1)
    for _attempt in range(20):
        if not pids_in_netns(paths):
            break
        kill_processes_in(paths)
        time.sleep(0.05)
    if progress is not None:
        progress("processes", 1, 1)
        progress("namespaces", 0, len(names))
    failures: list[str] = []
    for done, name in enumerate(names, 1):
        try:
            remove_named_netns(name)
        except BackendError as err:
            failures.append(str(err))
        if progress is not None and (done % 25 == 0 or done == len(names)):
            progress("namespaces", done, len(names))
    if failures:
        raise BackendError(f"teardown of run {ledger.run!r} left objects behind: "
                           + "; ".join(failures[:5]))


def _forget(ledger: Ledger) -> None:
    for name in (CONTAINMENT_FILE, TOPOLOGY_COPY, TOPOLOGY_PICKLE):
        with contextlib.suppress(FileNotFoundError):
            (ledger.directory / name).unlink()
    ledger.remove()


def destroy_run(runtime: NodeRuntime, ledger: Ledger, progress: Progress | None = None) -> None:
    """Remove everything the ledger records, then forget the run. Works without the deployer:
    after ``kill -9`` or a half-finished deployment.

    When the runtime cannot remove its nodes (the Docker engine is gone, say), the kernel
    objects still go, the ledger stays (so that ``testbed down RUN`` can finish the job later)
    and the runtime's error is raised.
    """
    try:
        runtime.remove_nodes(ledger, progress)
    except BackendError:
        with contextlib.suppress(BackendError):
            remove_namespaces(ledger, progress)
        raise
    remove_namespaces(ledger, progress)
    _forget(ledger)
