"""Its host's neighbour (ARP) table as an unprivileged process reads it: what recon sees.

Owns: reading ``/proc/net/arp`` (the table of the host's network namespace; readable by any user)
and leaving out the host's gateways (``/proc/net/route``): a router's interface is not a host to
contact. Only complete entries count (flag ``ATF_COM``): an address whose resolution failed or is
still under way is not known to be live. An agent in its own process lives in its host's
namespace and reads the files directly; a multiplexed agent (``testbed.agent.multiplex``: the
process sits in the fabric namespace) has its thread enter its host's namespace
(``HOST_NAMESPACE``) just long enough to read them, as the multiplexer does to make a socket.
Must not: send anything (no ARP requests, no pings), leave the calling thread in another
namespace, or import outside the standard library (the agent runs standard-library only).

The simulator's counterpart is ``testbed.sim.engine``: a host's table holds the on-link
addresses whose ARP resolution with it succeeded, in either direction (docs/profiles.md).
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

from testbed.agent import multiplex

__all__ = ["ARP_TABLE", "NEIGHBOUR_POLL_S", "ROUTE_TABLE", "read_neighbours"]

ARP_TABLE = Path("/proc/net/arp")
# How often an active worm that reads it looks at its host's ARP table (the agent's loop; the
# sim engine models the same poll, so a new entry is seen at the next look, not at once).
NEIGHBOUR_POLL_S = 1.0
ROUTE_TABLE = Path("/proc/net/route")
_THREAD_NET = Path("/proc/thread-self/net")  # the calling thread's namespace, not the process's
_ATF_COM = 0x2  # the entry is complete: the neighbour answered


def read_neighbours(arp_table: Path = ARP_TABLE, route_table: Path = ROUTE_TABLE
                    ) -> list[str]:
    """Addresses of complete neighbour entries that are not a gateway; [] if unreadable.
    In a multiplexed agent's context, the default tables are those of its host."""
    namespace = multiplex.HOST_NAMESPACE.get()
    if namespace is not None and (arp_table, route_table) == (ARP_TABLE, ROUTE_TABLE):
        arp_text, route_text = _read_in_namespace(namespace)
    else:
        arp_text, route_text = _read(arp_table), _read(route_table)
    if arp_text is None:
        return []
    gateways = _gateways(route_text or "")
    arp_lines = arp_text.splitlines()[1:]
    found: list[str] = []
    for line in arp_lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        try:
            flags = int(fields[2], 16)
        except ValueError:
            continue
        if flags & _ATF_COM and fields[0] not in gateways:
            found.append(fields[0])
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except OSError:
        return None


def _read_in_namespace(namespace: int) -> tuple[str | None, str | None]:
    """The two tables of the namespace ``namespace`` (an open descriptor): the calling thread
    enters it, reads, and returns home before anything else runs on it."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with multiplex.inside_namespace(namespace, home):
            return _read(_THREAD_NET / "arp"), _read(_THREAD_NET / "route")
    finally:
        os.close(home)


def _gateways(route_text: str) -> set[str]:
    """Every next hop of the routing table (little-endian hex in ``/proc/net/route``)."""
    gateways = set()
    for line in route_text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 3:
            continue
        try:
            value = int(fields[2], 16)
        except ValueError:
            continue
        if value:
            gateways.add(socket.inet_ntoa(struct.pack("<I", value)))
    return gateways
