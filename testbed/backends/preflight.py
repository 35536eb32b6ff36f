"""Pre-flight for the emulation backends: will this topology fit on this machine?

Owns: the estimates of what an emulated run needs, each against the limit of this machine that
holds it, and the ``CapacityError`` that names the limit, the estimate and what would fit:

- memory: hosts x the runtime's memory per host (an agent process of its own, or a share of a
  multiplexed agent process, plus its namespace or container), plus each multiplexed agent
  process's own, plus the kernel memory of the nftables objects, against ``MemAvailable``
  (a deployment without agents, ``testbed up``, counts only the nodes);
- open files: the busiest agent process's descriptors against RLIMIT_NOFILE (the hard limit the
  agents inherit and a multiplexed agent raises itself to), and all agents' against the
  machine's free file handles (``fs.file-max``);
- neighbour (ARP) entries: the plan's worst case against ``net.ipv4.neigh.default.gc_thresh3``
  (one table for all namespaces), which the deployment raises when it may;
- the ceiling an emulation backend holds on any machine (``EMULATION_MAX_HOSTS``).

The fabric calls ``check_deployment`` before anything is recorded or made (no ledger, no
namespace, no process), so an oversized topology costs nothing.

Must not: create, record or change anything; the simulation backend has no such limit (its scale
is the model's: ``testbed.model.load_topology.MAX_HOSTS``).
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.errors import BackendError
from testbed.model.topology import Topology

__all__ = [
    "EMULATION_MAX_HOSTS",
    "HEADROOM_MIB",
    "NFT_OBJECT_KIB",
    "CapacityError",
    "CapacityEstimate",
    "DescriptorEstimate",
    "NeighbourEstimate",
    "available_memory_bytes",
    "check_capacity",
    "check_deployment",
    "descriptor_limit",
    "estimate_capacity",
    "estimate_descriptors",
    "estimate_neighbours",
    "free_file_handles",
    "nft_objects",
]

EMULATION_MAX_HOSTS = 5000
"""No emulation backend holds more hosts than this on any machine (namespaces, veths, bridge
ports, nftables sets and the kernel's shared neighbour table grow with it; the largest run
measured has 5,000 hosts: ``benchmarks/scale.py``)."""
HEADROOM_MIB = 512
"""Memory kept for the runner, the sensor and the detectors (MiB)."""
NFT_OBJECT_KIB = 0.5
"""Kernel memory of one nftables object (table, chain, rule, set, element, counter), KiB."""
MEMINFO = Path("/proc/meminfo")
FILE_NR = Path("/proc/sys/fs/file-nr")
NEIGHBOUR_SYSCTL = Path("/proc/sys/net/ipv4/neigh/default")
ARP_CACHE = Path("/proc/net/stat/arp_cache")
SCAN_MARGIN = 64  # unanswered ARP look-ups per node, as ``WiringPlan.neighbour_entries_needed``
_INT_MAX = 2**31 - 1
_MIB = 2**20
_GIB = 2**30
_HINT = ("(hint: use --backend sim, or `backend: sim` in the scenario: it simulates topologies "
         "of any supported size in virtual time)")


class CapacityError(BackendError):
    """An emulation backend cannot hold the topology on this machine (nothing was created)."""


@dataclass(frozen=True)
class CapacityEstimate:
    """What deploying ``topology`` on ``backend`` needs in memory, and what this machine holds."""

    topology: str
    backend: str
    hosts: int
    host_memory_mib: float  # per host: its agent (or share of one) plus its namespace/container
    available_bytes: int | None  # None: unknown (no /proc/meminfo); then only the ceiling counts
    memory_of: str = "agent"  # what the memory is for: "agent" (a run) or "node" (no agents)
    fixed_mib: float = 0.0  # beyond hosts x per host: multiplexed agent processes, nftables
    fixed_detail: str = ""  # what ``fixed_mib`` pays for, for the message

    @property
    def needed_bytes(self) -> int:
        return int((self.hosts * self.host_memory_mib + self.fixed_mib) * _MIB)

    @property
    def max_hosts(self) -> int:
        """The most hosts this backend holds here: the ceiling, or fewer when memory is short."""
        if self.available_bytes is None:
            return EMULATION_MAX_HOSTS
        usable = self.available_bytes - (HEADROOM_MIB + self.fixed_mib) * _MIB
        by_memory = max(0, math.floor(usable / (self.host_memory_mib * _MIB)))
        return min(EMULATION_MAX_HOSTS, by_memory)

    @property
    def fits(self) -> bool:
        return self.hosts <= self.max_hosts

    def message(self) -> str:
        free = ("an unknown amount of memory free" if self.available_bytes is None
                else f"{self.available_bytes / _GIB:.1f} GiB free")
        bound = ("its ceiling" if self.max_hosts == EMULATION_MAX_HOSTS
                 else f"free memory less {HEADROOM_MIB} MiB for the sensor and detectors")
        fixed = (f" + {self.fixed_mib:,.0f} MiB ({self.fixed_detail})" if self.fixed_mib
                 else "")
        return (f"topology {self.topology!r} needs about {self.hosts} hosts x "
                f"{self.host_memory_mib:g} MiB{fixed} = {self.needed_bytes / _GIB:.1f} GiB of "
                f"{self.memory_of} memory; this machine has {free}; {self.backend} holds at most "
                f"~{self.max_hosts} hosts here ({bound}; no emulation backend holds more than "
                f"{EMULATION_MAX_HOSTS})")


@dataclass(frozen=True)
class DescriptorEstimate:
    """Open files the agents need: per agent process against RLIMIT_NOFILE, and all of them
    against the machine's free file handles."""

    hosts: int
    per_process: tuple[int, ...]  # each agent process's need (one entry per process)
    limit: int  # RLIMIT_NOFILE (hard) the agent processes inherit
    system_free: int | None  # fs.file-max less the handles in use; None: unknown

    @property
    def total(self) -> int:
        return sum(self.per_process)

    @property
    def busiest(self) -> int:
        return max(self.per_process, default=0)

    @property
    def fits(self) -> bool:
        return self.busiest <= self.limit and (self.system_free is None
                                               or self.total <= self.system_free)

    @property
    def max_hosts(self) -> int:
        """Hosts that would fit with the same processes and files per host."""
        if not self.hosts or not self.total:
            return self.hosts
        per_host = self.total / self.hosts
        by_process = self.limit / max(1, self.busiest) * self.hosts
        by_system = (self.system_free / per_host if self.system_free is not None
                     else float("inf"))
        return max(0, math.floor(min(by_process, by_system, self.hosts * 1e6)))

    def message(self) -> str:
        processes = len(self.per_process)
        if self.busiest > self.limit:
            return (f"the agents need about {self.busiest:,} open files in the busiest of "
                    f"{processes} agent process(es); RLIMIT_NOFILE is {self.limit:,}; about "
                    f"{self.max_hosts:,} hosts would fit (raise it: `ulimit -n "
                    f"{self.busiest + 1024}`, or LimitNOFILE= for a service)")
        return (f"the agents need about {self.total:,} open files; the machine has "
                f"{self.system_free:,} file handles free (fs.file-max); about "
                f"{self.max_hosts:,} hosts would fit (raise it: sysctl -w fs.file-max=...)")


@dataclass(frozen=True)
class NeighbourEstimate:
    """ARP entries the run may need (``WiringPlan.neighbour_entries_needed``: every node knowing
    every other node of its segment, plus unanswered look-ups) against the kernel's one IPv4
    neighbour table, which the deployment raises to twice what is wanted when it may."""

    needed: int
    in_use: int
    limit: int  # gc_thresh3
    raisable: bool  # root may write the sysctl here
    largest_segment: int  # nodes on the busiest segment

    @property
    def wanted(self) -> int:
        return 2 * (self.in_use + self.needed)

    @property
    def fits(self) -> bool:
        return self.limit >= self.wanted or (self.raisable and self.wanted <= _INT_MAX)

    @property
    def max_segment(self) -> int:
        """The largest segment (nodes) whose worst case fits in the limit as it stands."""
        room = max(0, max(self.limit, _INT_MAX if self.raisable else 0) // 2 - self.in_use)
        # n (n - 1) + SCAN_MARGIN n <= room
        slope = SCAN_MARGIN - 1
        return max(0, (math.isqrt(slope * slope + 4 * room) - slope) // 2)

    def message(self) -> str:
        why = ("it cannot be raised here (not root in the host's namespace, or read-only "
               "/proc/sys)" if not self.raisable else f"it cannot exceed {_INT_MAX:,}")
        return (f"the segments need up to about {self.needed:,} neighbour (ARP) entries (a "
                f"segment of {self.largest_segment:,} nodes); the kernel's one table for every "
                f"namespace holds net.ipv4.neigh.default.gc_thresh3 = {self.limit:,} entries "
                f"and {why}; segments of up to ~{self.max_segment:,} nodes would fit (hint: "
                f"sysctl -w net.ipv4.neigh.default.gc_thresh3={self.wanted} as root)")


def available_memory_bytes(meminfo: Path = MEMINFO) -> int | None:
    """``MemAvailable`` of this machine (bytes), None when the kernel does not say."""
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(":")
            if key == "MemAvailable":
                return int(value.split()[0]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def descriptor_limit() -> int:
    """RLIMIT_NOFILE (hard) of this process, which the agent processes inherit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return _INT_MAX if hard == resource.RLIM_INFINITY else int(hard)


def free_file_handles(file_nr: Path = FILE_NR) -> int | None:
    """fs.file-max less the file handles in use on this machine; None when unknown."""
    try:
        allocated, _unused, maximum = (int(v) for v in file_nr.read_text().split()[:3])
    except (OSError, ValueError):
        return None
    return max(0, maximum - allocated)


def nft_objects(topology: Topology) -> int:
    """nftables objects a deployment loads (tables, sets, counters, chains, rules, elements):
    the guard in every node, each host's firewall and router's policy, the fabric's tables."""
    cidrs = len(topology.cidrs)
    guard = 3 + 2 + 5 + cidrs  # table, set, counter; two chains; their rules; set elements
    hosts = sum(guard + (0 if host.firewall.is_open else 3 + 2 * len(host.firewall.rules))
                for host in topology.hosts.values())
    routers = sum(guard + 8 + 2 * len(router.rules) for router in topology.routers.values())
    fabric = 2 * (3 + 3) + cidrs + 4  # two tables with their sets, counters, chains, rules
    return hosts + routers + fabric


def estimate_capacity(topology: Topology, backend: str, *, host_memory_mib: float,
                      available_bytes: int | None = None, meminfo: Path = MEMINFO,
                      memory_of: str = "agent", fixed_mib: float = 0.0,
                      fixed_detail: str = "") -> CapacityEstimate:
    """The memory estimate for deploying ``topology`` on ``backend`` (``available_bytes``:
    measured from ``meminfo`` unless given; ``memory_of``: what ``host_memory_mib`` pays for, in
    the message; ``fixed_mib``: memory beyond hosts x per host, ``fixed_detail`` saying what)."""
    if available_bytes is None:
        available_bytes = available_memory_bytes(meminfo)
    return CapacityEstimate(topology=topology.name, backend=backend, hosts=len(topology.hosts),
                            host_memory_mib=host_memory_mib, available_bytes=available_bytes,
                            memory_of=memory_of, fixed_mib=fixed_mib, fixed_detail=fixed_detail)


def check_capacity(topology: Topology, backend: str, *, host_memory_mib: float,
                   available_bytes: int | None = None, meminfo: Path = MEMINFO,
                   memory_of: str = "agent", fixed_mib: float = 0.0,
                   fixed_detail: str = "") -> CapacityEstimate:
    """The memory estimate, or ``CapacityError`` when the topology does not fit (hint: the
    simulation backend)."""
    estimate = estimate_capacity(topology, backend, host_memory_mib=host_memory_mib,
                                 available_bytes=available_bytes, meminfo=meminfo,
                                 memory_of=memory_of, fixed_mib=fixed_mib,
                                 fixed_detail=fixed_detail)
    if not estimate.fits:
        raise CapacityError(f"{estimate.message()} {_HINT}")
    return estimate


def estimate_descriptors(hosts: int, per_process: Sequence[int], *, limit: int | None = None,
                         system_free: int | None = None, file_nr: Path = FILE_NR
                         ) -> DescriptorEstimate:
    """Open files of the agent processes (``per_process``: each one's need) against
    RLIMIT_NOFILE (``limit``, this process's unless given) and the machine's free handles."""
    return DescriptorEstimate(hosts=hosts, per_process=tuple(per_process),
                              limit=descriptor_limit() if limit is None else limit,
                              system_free=(free_file_handles(file_nr) if system_free is None
                                           else system_free))


def estimate_neighbours(needed: int, largest_segment: int, *, limit: int | None = None,
                        in_use: int | None = None, raisable: bool | None = None
                        ) -> NeighbourEstimate:
    """ARP entries needed against gc_thresh3 (read from /proc unless given)."""
    if limit is None:
        try:
            limit = int((NEIGHBOUR_SYSCTL / "gc_thresh3").read_text())
        except (OSError, ValueError):
            limit = _INT_MAX  # unknown: nothing to refuse on
    if in_use is None:
        try:
            with open(ARP_CACHE) as stream:
                stream.readline()
                in_use = int(stream.readline().split()[0], 16)
        except (OSError, ValueError, IndexError):
            in_use = 0
    if raisable is None:
        raisable = os.access(NEIGHBOUR_SYSCTL / "gc_thresh3", os.W_OK)
    return NeighbourEstimate(needed=needed, in_use=in_use, limit=limit, raisable=raisable,
                             largest_segment=largest_segment)


def check_deployment(memory: CapacityEstimate,
                     descriptors: DescriptorEstimate | None = None,
                     neighbours: NeighbourEstimate | None = None) -> None:
    """Raise one ``CapacityError`` naming every limit the deployment would exceed (memory,
    open files, neighbour entries), each with what would fit; nothing when all fit."""
    problems = [estimate.message() for estimate in (memory, descriptors, neighbours)
                if estimate is not None and not estimate.fits]
    if problems:
        raise CapacityError("; and ".join(problems) + f" {_HINT}")
