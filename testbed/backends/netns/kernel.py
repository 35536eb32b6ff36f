"""Low-level Linux plumbing for namespace-based backends, in process and without forking.

Owns: creating and removing *named* network namespaces (``/run/netns/<name>``, as iproute2 does),
entering a namespace from the current thread (network namespaces are per thread, so worker
threads can configure many namespaces in parallel while the main thread stays where it is),
sending pre-encoded rtnetlink batches on a socket opened inside a namespace, loading nftables
text through libnftables (its socket is bound to the namespace it is created in), finding and
killing processes that live in given namespaces. Nothing here knows about topologies.

Everything takes a namespace *path*: ``/run/netns/<name>`` for named namespaces, or
``/proc/<pid>/ns/net`` for a container's, so the docker backend reuses all of it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import ipaddress
import os
import shlex
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from testbed.errors import BackendError, PrivilegeError, ToolMissingError

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
    "share_run_dir",
    "write_sysctls",
]

NETNS_RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_BIND = 0x1000
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_run_dir_ready = threading.Lock()
_run_dir_shared = False


def require_root() -> None:
    if os.geteuid() != 0:
        raise PrivilegeError("the netns backend needs root (network namespaces, veth, nftables)",
                             stderr="hint: run with sudo, or use the privileged CI job")


def _os_error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def named_netns_path(name: str) -> str:
    return str(NETNS_RUN_DIR / name)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise _os_error("setns")


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """Move the *calling thread* into the namespace at ``path``; move it back afterwards.

    Sockets created inside stay bound to that namespace for their whole life.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        os.close(own)
        raise BackendError(f"network namespace {path} is gone: {err.strerror}") from None
    try:
        _setns(target)
        os.close(target)
        target = -1
        yield
    finally:
        if target >= 0:
            os.close(target)
        # Going back must not fail silently: a thread left in a run's namespace would create
        # the next sockets there.
        _setns(own)
        os.close(own)


def share_run_dir() -> None:
    """Make /run/netns a shared mount point, as ``ip netns add`` does (once per process)."""
    global _run_dir_shared
    with _run_dir_ready:
        if _run_dir_shared:
            return
        NETNS_RUN_DIR.mkdir(parents=True, exist_ok=True)
        directory = str(NETNS_RUN_DIR).encode()
        if _libc.mount(b"", directory, b"none", MS_SHARED | MS_REC, None) != 0:
            if _libc.mount(directory, directory, b"none", MS_BIND | MS_REC, None) != 0:
                raise _os_error(f"bind-mount {NETNS_RUN_DIR}")
            if _libc.mount(b"", directory, b"none", MS_SHARED | MS_REC, None) != 0:
                raise _os_error(f"make {NETNS_RUN_DIR} shared")
        _run_dir_shared = True


def write_sysctls(values: Mapping[str, str]) -> None:
    """Write ``net.*`` sysctls of the namespace the calling thread is in."""
    for key, value in values.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as stream:
                stream.write(value)
        except OSError as err:
            raise BackendError(f"cannot set sysctl {key}={value}: {err.strerror}") from None


def _claim_netns_name(name: str) -> str:
    """Create the empty mount point ``/run/netns/<name>``; refuse a name already in use."""
    share_run_dir()
    path = named_netns_path(name)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except FileExistsError:
        raise BackendError(f"network namespace {name!r} already exists") from None
    return path


def create_named_netns(name: str, sysctls: Mapping[str, str] | None = None) -> str:
    """Create ``/run/netns/<name>`` (must not exist) and set its sysctls; return its path.

    Runs ``unshare`` in the calling thread, then returns the thread to where it was.
    """
    path = _claim_netns_name(name)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise _os_error("unshare(CLONE_NEWNET)")
        try:
            source = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            if _libc.mount(source, path.encode(), b"none", MS_BIND, None) != 0:
                raise _os_error(f"bind-mount namespace {name}")
            if sysctls:
                write_sysctls(sysctls)
        finally:
            _setns(own)
    finally:
        os.close(own)
    return path


def name_existing_netns(name: str, source: str,
                        sysctls: Mapping[str, str] | None = None) -> str:
    """Give an existing network namespace (``source``, e.g. ``/proc/PID/ns/net`` of a
    container) the name ``/run/netns/<name>``, as ``ip netns attach`` does without a process,
    and set its sysctls. The name keeps the namespace alive until ``remove_named_netns``."""
    path = _claim_netns_name(name)
    if _libc.mount(source.encode(), path.encode(), b"none", MS_BIND, None) != 0:
        code = ctypes.get_errno()
        raise BackendError(f"cannot name the network namespace {source} as {name!r}: "
                           f"{os.strerror(code)}")
    if sysctls:
        with entered(path):
            write_sysctls(sysctls)
    return path


def remove_named_netns(name: str) -> bool:
    """Unmount and delete ``/run/netns/<name>``; True if it existed. The kernel frees the
    namespace (and every interface in it) once no process or socket uses it any more."""
    path = named_netns_path(name)
    if not os.path.lexists(path):
        return False
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):  # EINVAL: created but never mounted
            raise BackendError(f"cannot unmount namespace {name}: {os.strerror(code)}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def netns_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of a namespace, None if the path holds no namespace."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def pids_in_netns(paths: Iterable[str]) -> dict[int, str]:
    """Processes whose network namespace is one of ``paths``: pid -> path. Never our own pid."""
    wanted = {identity: path for path in paths
              if (identity := netns_identity(path)) is not None}
    found: dict[int, str] = {}
    if not wanted:
        return found
    own = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            status = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        path = wanted.get((status.st_dev, status.st_ino))
        if path is not None:
            found[int(entry.name)] = path
    return found


def kill_processes_in(paths: Iterable[str], sig: int = signal.SIGKILL) -> int:
    """Signal every process living in one of the namespaces; return how many."""
    count = 0
    for pid in pids_in_netns(paths):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            count += 1
    return count


# ---- the kernel's global neighbour (ARP) table -------------------------------------------------
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


# ---- rtnetlink ---------------------------------------------------------------------------------
_NLMSG_HEADER = struct.Struct("=IHHII")
NLMSG_ERROR = 2
NLMSG_DONE = 3
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_CAP_ACK = 10


def split_messages(data: bytes) -> list[tuple[int, bytes]]:
    """(sequence number, message bytes) for every netlink message in a buffer."""
    messages: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        length, _type, _flags, sequence, _pid = _NLMSG_HEADER.unpack_from(data, offset)
        if length < _NLMSG_HEADER.size:
            raise ValueError("malformed netlink buffer")
        aligned = (length + 3) & ~3
        messages.append((sequence, data[offset:offset + length]))
        offset += aligned
    return messages


class RtNetlink:
    """A raw NETLINK_ROUTE socket opened inside one namespace; sends pre-encoded batches.

    Messages come from :class:`pyroute2.IPBatch` (encoding only); sending them ourselves avoids
    pyroute2 forking a helper per namespace, the slowest part of its netns support.
    """

    CHUNK = 48 * 1024

    def __init__(self, netns_path: str | None = None) -> None:
        if netns_path is None:
            self.socket = self._open()
        else:
            with entered(netns_path):
                self.socket = self._open()
        self.where = netns_path or "(own namespace)"

    @staticmethod
    def _open() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             socket.NETLINK_ROUTE)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
        with contextlib.suppress(OSError):
            sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # short acks: no request echo
        with contextlib.suppress(OSError):
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)  # error text from the kernel
        sock.bind((0, 0))
        return sock

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> RtNetlink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def execute(self, batch: bytes, describe: Mapping[int, str] | None = None) -> None:
        """Send every message (each must ask for an ACK); raise on the first kernel error."""
        messages = split_messages(batch)
        start = 0
        while start < len(messages):
            chunk: list[tuple[int, bytes]] = []
            size = 0
            while start < len(messages) and (not chunk or size + len(messages[start][1])
                                             <= self.CHUNK):
                chunk.append(messages[start])
                size += (len(messages[start][1]) + 3) & ~3
                start += 1
            payload = b"".join(m + b"\0" * (((len(m) + 3) & ~3) - len(m)) for _, m in chunk)
            self.socket.send(payload)
            self._collect({sequence for sequence, _ in chunk}, describe or {})

    def _collect(self, pending: set[int], describe: Mapping[int, str]) -> None:
        first_error: tuple[int, int, str] | None = None
        while pending:
            data = self.socket.recv(1 << 20)
            offset = 0
            while offset < len(data):
                length, kind, _flags, sequence, _pid = _NLMSG_HEADER.unpack_from(data, offset)
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, offset + _NLMSG_HEADER.size)
                    pending.discard(sequence)
                    if code != 0 and first_error is None:
                        first_error = (sequence, -code, _ext_ack_text(data[offset:offset
                                                                             + length]))
                offset += max((length + 3) & ~3, _NLMSG_HEADER.size)
        if first_error is not None:
            sequence, code, text = first_error
            what = describe.get(sequence, f"netlink request #{sequence}")
            raise BackendError(f"{what} failed in {self.where}: {os.strerror(code)}"
                               + (f" ({text})" if text else ""))


def _ext_ack_text(message: bytes) -> str:
    """The NLMSGERR_ATTR_MSG text of an extended ack, if the kernel sent one."""
    # header(16) + error(4) + original header(16) with NETLINK_CAP_ACK; then attributes.
    offset = _NLMSG_HEADER.size + 4 + _NLMSG_HEADER.size
    while offset + 4 <= len(message):
        length, kind = struct.unpack_from("=HH", message, offset)
        if length < 4:
            break
        if kind == 1:  # NLMSGERR_ATTR_MSG
            return message[offset + 4:offset + length].split(b"\0", 1)[0].decode(errors="replace")
        offset += (length + 3) & ~3
    return ""


class RtnlBatch:
    """Encodes the few rtnetlink requests a deployment needs (link, address, route).

    Hand-encoded because it is the hot path: pyroute2's generic encoder costs about 0.3 ms per
    message, this about 3 microseconds. Every request asks for an ACK; :meth:`RtNetlink.execute`
    sends the buffer and checks them. ``describe`` maps sequence numbers to human text.
    """

    RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
    NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
    IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 10, 18, 28
    IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
    IFLA_BR_FORWARD_DELAY, IFLA_BR_STP_STATE, IFLA_BR_MCAST_SNOOPING = 1, 5, 23
    IFA_ADDRESS, IFA_LOCAL = 1, 2
    RTA_DST, RTA_GATEWAY = 1, 5
    IFF_UP = 0x1
    _IFINFO = struct.Struct("=BxHiII")
    _IFADDR = struct.Struct("=BBBBI")
    _RTMSG = struct.Struct("=BBBBBBBBI")

    def __init__(self, first_sequence: int = 1) -> None:
        self.parts: list[bytes] = []
        self.describe: dict[int, str] = {}
        self.sequence = first_sequence

    @staticmethod
    def _attr(kind: int, payload: bytes) -> bytes:
        length = 4 + len(payload)
        return struct.pack("=HH", length, kind) + payload + b"\0" * ((-length) % 4)

    def _message(self, kind: int, flags: int, body: bytes, what: str) -> None:
        sequence = self.sequence
        self.sequence += 1
        header = _NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(body), kind,
                                    flags | self.NLM_F_REQUEST | self.NLM_F_ACK, sequence, 0)
        self.parts.append(header + body + b"\0" * ((-len(body)) % 4))
        self.describe[sequence] = what

    def _ifinfo(self, index: int, up: bool) -> bytes:
        flags = self.IFF_UP if up else 0
        return self._IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, self.IFF_UP if up else 0)

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)

    def __len__(self) -> int:
        return len(self.parts)

    # ---- requests ----------------------------------------------------------------------------
    def set_up(self, index: int, name: str = "") -> None:
        self._message(self.RTM_NEWLINK, 0, self._ifinfo(index, True),
                      f"bringing up interface {name or index}")

    def add_bridge(self, name: str, index: int) -> None:
        data = (self._attr(self.IFLA_BR_FORWARD_DELAY, struct.pack("=I", 0))
                + self._attr(self.IFLA_BR_STP_STATE, struct.pack("=I", 0))
                + self._attr(self.IFLA_BR_MCAST_SNOOPING, struct.pack("=B", 0)))
        linkinfo = (self._attr(self.IFLA_INFO_KIND, b"bridge\0")
                    + self._attr(self.IFLA_INFO_DATA, data))
        body = (self._ifinfo(index, True) + self._attr(self.IFLA_IFNAME, name.encode() + b"\0")
                + self._attr(self.IFLA_LINKINFO, linkinfo))
        self._message(self.RTM_NEWLINK, self.NLM_F_CREATE | self.NLM_F_EXCL, body,
                      f"creating bridge {name}")

    def add_veth(self, name: str, index: int, *, master: int, peer_name: str, peer_index: int,
                 peer_netns_fd: int) -> None:
        """A veth whose peer is born directly inside another namespace (never in ours)."""
        peer = (self._ifinfo(peer_index, False)
                + self._attr(self.IFLA_IFNAME, peer_name.encode() + b"\0")
                + self._attr(self.IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd)))
        linkinfo = (self._attr(self.IFLA_INFO_KIND, b"veth\0")
                    + self._attr(self.IFLA_INFO_DATA, self._attr(self.VETH_INFO_PEER, peer)))
        body = (self._ifinfo(index, True) + self._attr(self.IFLA_IFNAME, name.encode() + b"\0")
                + self._attr(self.IFLA_MASTER, struct.pack("=I", master))
                + self._attr(self.IFLA_LINKINFO, linkinfo))
        self._message(self.RTM_NEWLINK, self.NLM_F_CREATE | self.NLM_F_EXCL, body,
                      f"creating veth {name} <-> {peer_name}")

    def add_address(self, index: int, interface: str) -> None:
        """``interface`` like "10.0.1.5/24"."""
        parsed = ipaddress.IPv4Interface(interface)
        packed = parsed.ip.packed
        body = (self._IFADDR.pack(socket.AF_INET, parsed.network.prefixlen, 0, 0, index)
                + self._attr(self.IFA_LOCAL, packed) + self._attr(self.IFA_ADDRESS, packed))
        self._message(self.RTM_NEWADDR, self.NLM_F_CREATE | self.NLM_F_EXCL, body,
                      f"adding address {interface}")

    def add_route(self, destination: str, gateway: str) -> None:
        network = ipaddress.IPv4Network(destination)
        body = (self._RTMSG.pack(socket.AF_INET, network.prefixlen, 0, 0, 254, 4, 0, 1, 0)
                + self._attr(self.RTA_DST, network.network_address.packed)
                + self._attr(self.RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed))
        self._message(self.RTM_NEWROUTE, self.NLM_F_CREATE | self.NLM_F_EXCL, body,
                      f"adding route {destination} via {gateway}")


# ---- nftables through libnftables -------------------------------------------------------------
class _LibNftables:
    def __init__(self) -> None:
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            raise ToolMissingError("libnftables is not installed",
                                   stderr="hint: apt-get install nftables") from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self.lib = lib


_lib_lock = threading.Lock()
_lib: _LibNftables | None = None
# Contexts are independent (own socket, parser, caches), so commands in different contexts run
# concurrently: that matters, since a commit that registers hooks sleeps in the kernel for an
# RCU grace period (about 10 ms), and many namespaces load in parallel. Creating and freeing a
# context touches process-wide library state (GMP allocators), so those are serialised.
_nft_context_lock = threading.Lock()
NFT_CTX_OUTPUT_JSON = 1 << 4


def load_libnftables() -> _LibNftables:
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _LibNftables()
        return _lib


SELECT_SAFE_DESCRIPTORS = 900
"""Below FD_SETSIZE (1024) with room for the descriptors a context opens."""


def _lowest_free_descriptor() -> int:
    probe = os.open(os.devnull, os.O_RDONLY)
    os.close(probe)
    return probe


class Nft:
    """A libnftables context bound to one namespace (its netlink socket opens at creation)."""

    def __init__(self, netns_path: str | None = None, *, json: bool = False) -> None:
        lib = load_libnftables().lib
        self._lib = lib
        self._lock = threading.Lock()
        self.where = netns_path or "(own namespace)"
        self._netns_path, self._json = netns_path, json
        # libnftables waits on its netlink socket with select(), which aborts the whole
        # process when that socket's descriptor is 1024 or above. A process holding that many
        # descriptors (a huge run) therefore talks to the nft program instead: slower, safe.
        self._via_program = _lowest_free_descriptor() >= SELECT_SAFE_DESCRIPTORS
        self._ctx = None
        if self._via_program:
            return
        with _nft_context_lock:
            if netns_path is None:
                self._ctx = lib.nft_ctx_new(0)
            else:
                with entered(netns_path):
                    self._ctx = lib.nft_ctx_new(0)
        if not self._ctx:
            raise BackendError(f"libnftables could not open a context in {self.where}")
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        if json:
            lib.nft_ctx_output_set_flags(self._ctx, NFT_CTX_OUTPUT_JSON)

    def run(self, text: str) -> str:
        """Run nft commands (a whole ``nft -f`` file is one atomic transaction)."""
        if self._via_program:
            return self._run_program(text)
        if not self._ctx:
            raise BackendError("nftables context already closed")
        with self._lock:  # one command at a time per context
            status = self._lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
            output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
            error = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if status != 0:
            first = text.strip().splitlines()[0] if text.strip() else ""
            raise BackendError(f"nftables refused a ruleset in {self.where}",
                               command=f"nft -f - ({first} ...)", stderr=error, exit_status=status)
        return output

    def _run_program(self, text: str) -> str:
        # A single command goes on the command line: `nft -j -f -` prints no listing.
        single = "\n" not in text.strip()
        argv = ["nft", *(["-j"] if self._json else []),
                *(shlex.split(text) if single else ["-f", "-"])]
        if self._netns_path is not None:
            argv = ["nsenter", f"--net={self._netns_path}", *argv]
        done = subprocess.run(argv, input=text.encode(), capture_output=True, check=False)
        if done.returncode != 0:
            first = text.strip().splitlines()[0] if text.strip() else ""
            raise BackendError(f"nftables refused a ruleset in {self.where}",
                               command=f"nft -f - ({first} ...)",
                               stderr=done.stderr.decode(errors="replace"),
                               exit_status=done.returncode)
        return done.stdout.decode(errors="replace")

    def close(self) -> None:
        if self._ctx:
            with _nft_context_lock, self._lock:
                self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> Nft:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
