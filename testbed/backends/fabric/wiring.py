"""Realising a WiringPlan in namespaces that already exist: fabric, veths, addresses, policy.

Owns: the order and parallelism of wiring a deployment, given one namespace path per node and
one for the fabric, and the sysctls of those namespaces. It does not create or remove node
namespaces: that step is the node runtime's (a bare named namespace for netns, a container's
namespace given a name for docker), so every runtime shares this code.

Order: fabric (bridges, and veths whose node end is born inside the node's namespace), then every
node in parallel (addresses, routes, nftables), then the fabric's containment tables.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from testbed.backends.base import Progress
from testbed.backends.fabric.plan import NodePlan, WiringPlan
from testbed.backends.fabric.ruleset import (
    containment_rules,
    fabric_ruleset,
    host_ruleset,
    router_ruleset,
)
from testbed.kernel import Nft, RtNetlink, RtnlBatch
from testbed.model.topology import Topology
from testbed.policy import ContainmentState

__all__ = [
    "FABRIC_SYSCTLS",
    "WORKERS",
    "build_fabric",
    "configure_node",
    "load_fabric_policy",
    "node_sysctls",
    "parallel",
    "wire",
]

WORKERS = 8
"""Threads per parallel stage. More than the CPU count on purpose: most of a node's setup time
is spent asleep in the kernel (RCU grace periods when nftables hooks and namespaces are
registered), not on a CPU."""

_NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
FABRIC_SYSCTLS = {
    **_NO_IPV6,
    "net.ipv4.ip_forward": "0",
    # Bridged IPv4 passes the fabric's inet hooks (blocks, rate limits are stateful there).
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "0",
    "net.bridge.bridge-nf-call-arptables": "0",
}


def node_sysctls(kind: str) -> dict[str, str]:
    # Explicit either way: a new namespace may inherit ip_forward=1 from the root namespace.
    return {**_NO_IPV6, "net.ipv4.ip_forward": "1" if kind == "router" else "0"}


T = TypeVar("T")


def parallel(items: Iterable[T], work: Callable[[T], object], *, stage: str,
             progress: Progress | None = None, workers: int = WORKERS) -> None:
    """Run ``work`` over ``items`` in a few threads (kernel calls release the GIL).

    The first failure stops handing out work and is raised once running calls have ended.
    """
    pending = list(items)
    total = len(pending)
    done = 0
    lock = threading.Lock()
    failed: list[BaseException] = []

    def take() -> T | None:
        with lock:
            if failed or not pending:
                return None
            return pending.pop(0)

    def worker() -> None:
        nonlocal done
        while (item := take()) is not None:
            try:
                work(item)
            except BaseException as err:  # surfaced below, in the caller's thread
                with lock:
                    failed.append(err)
                return
            with lock:
                done += 1
                finished = done
            if progress is not None:
                progress(stage, finished, total)

    if progress is not None:
        progress(stage, 0, total)
    count = max(1, min(workers, total))
    if count == 1:
        worker()
    else:
        with ThreadPoolExecutor(count, thread_name_prefix=f"testbed-{stage}") as executor:
            for future in [executor.submit(worker) for _ in range(count)]:
                future.result()
    if failed:
        raise failed[0]


def build_fabric(plan: WiringPlan, fabric_path: str, node_paths: Mapping[str, str]) -> None:
    """Bridges and every veth pair, from one netlink socket inside the fabric namespace."""
    descriptors: dict[str, int] = {}
    try:
        for name, path in node_paths.items():
            descriptors[name] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        batch = RtnlBatch()
        batch.set_up(1, "lo")
        for bridge in plan.bridges.values():
            batch.add_bridge(bridge.name, bridge.index)
        for node in plan.nodes.values():
            for link in node.links:
                batch.add_veth(link.port, link.port_index,
                               master=plan.bridges[link.segment].index,
                               peer_name=link.interface, peer_index=link.index,
                               peer_netns_fd=descriptors[node.name])
        with RtNetlink(fabric_path) as netlink:
            netlink.execute(batch.data, batch.describe)
    finally:
        for descriptor in descriptors.values():
            os.close(descriptor)


def configure_node(topology: Topology, plan: WiringPlan, node: NodePlan, path: str) -> None:
    """Inside one node: loopback, interfaces up, addresses, routes; then its nftables."""
    batch = RtnlBatch()
    batch.set_up(1, "lo")
    for link in node.links:
        batch.set_up(link.index, link.interface)
        batch.add_address(link.index, link.address)
    for destination, gateway in node.routes:
        batch.add_route(destination, gateway)
    with RtNetlink(path) as netlink:
        netlink.execute(batch.data, batch.describe)
    if node.kind == "router":
        ruleset = router_ruleset(topology, topology.routers[node.name], plan.table)
    else:
        ruleset = host_ruleset(topology, topology.hosts[node.name], plan.table)
    with Nft(path) as nft:
        nft.run(ruleset)


def load_fabric_policy(topology: Topology, plan: WiringPlan, fabric_path: str,
                       state: ContainmentState | None = None) -> None:
    state = state or ContainmentState()
    ports = [plan.host_port(host) for host in sorted(state.quarantined)]
    rules = containment_rules(topology, state, plan.bridge_of_segment())
    with Nft(fabric_path) as nft:
        nft.run(fabric_ruleset(topology, plan.table, quarantined_ports=ports,
                               containment_rules=rules))


def wire(topology: Topology, plan: WiringPlan, fabric_path: str, node_paths: Mapping[str, str],
         *, progress: Progress | None = None) -> None:
    """Everything after the namespaces exist. Raises on the first failure (caller rolls back)."""
    if progress is not None:
        progress("fabric", 0, 1)
    build_fabric(plan, fabric_path, node_paths)
    if progress is not None:
        progress("fabric", 1, 1)
    parallel(list(plan.nodes.values()),
             lambda node: configure_node(topology, plan, node, node_paths[node.name]),
             stage="nodes", progress=progress)
    if progress is not None:
        progress("policy", 0, 1)
    load_fabric_policy(topology, plan, fabric_path)
    if progress is not None:
        progress("policy", 1, 1)
