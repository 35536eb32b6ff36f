"""Kernel interfaces in one place: namespaces, rtnetlink, nftables, the neighbour table.

Owns: every direct call into the Linux kernel the engine makes (ctypes into libc and
libnftables, raw netlink sockets). Backends, the sensor and ``testbed reach`` use these; nothing
here knows about topologies, runs or backends, and nothing here imports the rest of the engine
except :mod:`testbed.errors`.

Modules: ``namespaces`` (create, name, remove, enter; processes in a namespace), ``rtnetlink``
(RtNetlink, RtnlBatch, split_messages), ``nftables`` (Nft), ``neighbours`` (ARP table limits).
"""

from __future__ import annotations

from testbed.kernel.namespaces import (
    NETNS_RUN_DIR,
    create_named_netns,
    entered,
    kill_processes_in,
    name_existing_netns,
    named_netns_path,
    netns_identity,
    pids_in_netns,
    remove_named_netns,
    require_root,
    setns,
    share_run_dir,
    write_sysctls,
)
from testbed.kernel.neighbours import ensure_neighbour_capacity
from testbed.kernel.nftables import Nft, load_libnftables
from testbed.kernel.rtnetlink import RtNetlink, RtnlBatch, split_messages

__all__ = [
    "NETNS_RUN_DIR",
    "Nft",
    "RtNetlink",
    "RtnlBatch",
    "create_named_netns",
    "ensure_neighbour_capacity",
    "entered",
    "kill_processes_in",
    "load_libnftables",
    "name_existing_netns",
    "named_netns_path",
    "netns_identity",
    "pids_in_netns",
    "remove_named_netns",
    "require_root",
    "setns",
    "share_run_dir",
    "split_messages",
    "write_sysctls",
]
