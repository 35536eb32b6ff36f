"""Pre-flight for the emulation backends: will this topology fit on this machine?

Owns: the one estimate of what an emulated run needs (every host runs an agent process in its own
namespace or container: hosts x the runtime's memory per host, against the memory this machine
has available; a deployment without agents, ``testbed up``, counts only the nodes), the ceiling
an emulation backend holds on any machine (``EMULATION_MAX_HOSTS``), and the ``CapacityError``
that names the limit and the estimate and points at the simulation backend. The fabric calls
``check_capacity`` before anything is recorded or made (no ledger, no namespace, no process), so
an oversized topology costs nothing.

Must not: create, record or change anything; the simulation backend has no such limit (its scale
is the model's: ``testbed.model.load_topology.MAX_HOSTS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from testbed.errors import BackendError
from testbed.model.topology import Topology

__all__ = [
    "EMULATION_MAX_HOSTS",
    "HEADROOM_MIB",
    "CapacityError",
    "CapacityEstimate",
    "available_memory_bytes",
    "check_capacity",
    "estimate_capacity",
]

EMULATION_MAX_HOSTS = 5000
"""No emulation backend holds more hosts than this on any machine (namespaces, veths, bridge
ports, nftables sets and the kernel's shared neighbour table grow with it; the largest run
measured had a few hundred hosts)."""
HEADROOM_MIB = 512
"""Memory kept for the runner, the sensor and the detectors (MiB)."""
MEMINFO = Path("/proc/meminfo")
_MIB = 2**20
_GIB = 2**30


class CapacityError(BackendError):
    """An emulation backend cannot hold the topology on this machine (nothing was created)."""


@dataclass(frozen=True)
class CapacityEstimate:
    """What deploying ``topology`` on ``backend`` needs, and what this machine holds."""

    topology: str
    backend: str
    hosts: int
    host_memory_mib: float  # per host: its agent process plus its namespace or container
    available_bytes: int | None  # None: unknown (no /proc/meminfo); then only the ceiling counts
    memory_of: str = "agent"  # what the memory is for: "agent" (a run) or "node" (no agents)

    @property
    def needed_bytes(self) -> int:
        return int(self.hosts * self.host_memory_mib * _MIB)

    @property
    def max_hosts(self) -> int:
        """The most hosts this backend holds here: the ceiling, or fewer when memory is short."""
        if self.available_bytes is None:
            return EMULATION_MAX_HOSTS
        usable = self.available_bytes - HEADROOM_MIB * _MIB
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
        return (f"topology {self.topology!r} needs about {self.hosts} hosts x "
                f"{self.host_memory_mib:g} MiB = {self.needed_bytes / _GIB:.1f} GiB of "
                f"{self.memory_of} memory; this machine has {free}; {self.backend} holds at most "
                f"~{self.max_hosts} hosts here ({bound}; no emulation backend holds more than "
                f"{EMULATION_MAX_HOSTS})")


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


def estimate_capacity(topology: Topology, backend: str, *, host_memory_mib: float,
                      available_bytes: int | None = None, meminfo: Path = MEMINFO,
                      memory_of: str = "agent") -> CapacityEstimate:
    """The estimate for deploying ``topology`` on ``backend`` (``available_bytes``: measured from
    ``meminfo`` unless given; ``memory_of``: what ``host_memory_mib`` pays for, in the
    message)."""
    if available_bytes is None:
        available_bytes = available_memory_bytes(meminfo)
    return CapacityEstimate(topology=topology.name, backend=backend, hosts=len(topology.hosts),
                            host_memory_mib=host_memory_mib, available_bytes=available_bytes,
                            memory_of=memory_of)


def check_capacity(topology: Topology, backend: str, *, host_memory_mib: float,
                   available_bytes: int | None = None, meminfo: Path = MEMINFO,
                   memory_of: str = "agent") -> CapacityEstimate:
    """The estimate, or ``CapacityError`` when the topology does not fit (hint: the simulation
    backend)."""
    estimate = estimate_capacity(topology, backend, host_memory_mib=host_memory_mib,
                                 available_bytes=available_bytes, meminfo=meminfo,
                                 memory_of=memory_of)
    if not estimate.fits:
        raise CapacityError(f"{estimate.message()} (hint: use --backend sim, or `backend: sim` "
                            f"in the scenario: it simulates topologies of any supported size in "
                            f"virtual time)")
    return estimate
