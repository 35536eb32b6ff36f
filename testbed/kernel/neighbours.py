"""The kernel's IPv4 neighbour (ARP) table: one table for every network namespace.

Owns: reading its limits and fill, and raising the limits when a deployment needs room. Limits
are only ever raised, never lowered (other runs may rely on them).
"""

from __future__ import annotations

from testbed.errors import BackendError

__all__ = ["ensure_neighbour_capacity", "neighbour_entries", "neighbour_table_limits"]

NEIGHBOUR_SYSCTL = "/proc/sys/net/ipv4/neigh/default"


def neighbour_table_limits() -> tuple[int, int, int]:
    """(gc_thresh1, gc_thresh2, gc_thresh3) of the IPv4 neighbour table."""
    values = []
    for name in ("gc_thresh1", "gc_thresh2", "gc_thresh3"):
        with open(f"{NEIGHBOUR_SYSCTL}/{name}") as stream:
            values.append(int(stream.read()))
    return values[0], values[1], values[2]


def neighbour_entries() -> int:
    """Entries in the IPv4 neighbour table right now, all namespaces together."""
    with open("/proc/net/stat/arp_cache") as stream:
        stream.readline()
        return int(stream.readline().split()[0], 16)


def ensure_neighbour_capacity(needed: int) -> dict[str, int] | None:
    """Make room for ``needed`` more ARP entries; return the old limits if they were raised.

    The IPv4 neighbour table is ONE table for every network namespace, capped by the root
    namespace's gc_thresh3 (1024 by default). A few hundred hosts on a shared segment that all
    talk to each other need far more; past the cap the kernel drops packets ("neighbor table
    overflow") and allowed connections silently fail. Limits are only ever raised, never
    lowered (other runs may rely on them).
    """
    try:
        low, soft, hard = neighbour_table_limits()
        wanted = neighbour_entries() + needed
    except (OSError, ValueError, IndexError):
        return None
    if hard >= 2 * wanted:
        return None
    new_soft, new_hard = max(soft, wanted), max(hard, 2 * wanted)
    try:
        for name, value in (("gc_thresh3", new_hard), ("gc_thresh2", new_soft)):
            with open(f"{NEIGHBOUR_SYSCTL}/{name}", "w") as stream:
                stream.write(str(value))
    except OSError as err:
        raise BackendError(f"cannot raise the kernel's neighbour table limit to {new_hard} "
                           f"entries: {err.strerror}",
                           stderr="hint: sysctl -w net.ipv4.neigh.default.gc_thresh3="
                                  f"{new_hard}") from None
    return {"gc_thresh1": low, "gc_thresh2": soft, "gc_thresh3": hard}
