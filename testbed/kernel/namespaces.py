"""Linux namespaces from Python, in process and without forking.

Owns: creating and removing *named* network namespaces (``/run/netns/<name>``, as iproute2 does),
naming an existing one (a container's), entering a namespace from the calling thread (network
namespaces are per thread, so worker threads can configure many namespaces in parallel while the
main thread stays where it is), writing a namespace's sysctls, and finding and killing the
processes that live in given namespaces. Nothing here knows about topologies, runs or backends.

Everything takes a namespace *path*: ``/run/netns/<name>`` for named namespaces (see
:func:`named_netns_path`), or ``/proc/<pid>/ns/net`` for a process's.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from testbed.errors import BackendError, PrivilegeError

__all__ = [
    "NETNS_RUN_DIR",
    "create_named_netns",
    "entered",
    "kill_processes_in",
    "name_existing_netns",
    "named_netns_path",
    "netns_identity",
    "pids_in_netns",
    "remove_named_netns",
    "require_root",
    "setns",
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


def require_root(what: str = "network namespaces, veth and nftables") -> None:
    """Raise PrivilegeError unless the process runs as root."""
    if os.geteuid() != 0:
        raise PrivilegeError(f"this needs root ({what})",
                             stderr="hint: run with sudo, or use the privileged CI job")


def _os_error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def named_netns_path(name: str) -> str:
    """``/run/netns/<name>``: where a named network namespace is mounted."""
    return str(NETNS_RUN_DIR / name)


def setns(fd: int, kind: int = CLONE_NEWNET) -> None:
    """Move the calling thread into the namespace open at ``fd`` (``setns(2)``)."""
    if _libc.setns(fd, kind) != 0:
        raise _os_error("setns")


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """Move the *calling thread* into the network namespace at ``path``; move it back afterwards.

    Sockets created inside stay bound to that namespace for their whole life.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except PermissionError:
        os.close(own)
        raise PrivilegeError(f"entering network namespace {path} needs root") from None
    except OSError as err:
        os.close(own)
        raise BackendError(f"network namespace {path} is gone: {err.strerror}") from None
    try:
        try:
            setns(target)
        except OSError as err:
            raise PrivilegeError(f"cannot enter network namespace {path}: {err}") from None
        os.close(target)
        target = -1
        yield
    finally:
        if target >= 0:
            os.close(target)
        # Going back must not fail silently: a thread left in a run's namespace would create
        # the next sockets there.
        setns(own)
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
            setns(own)
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
