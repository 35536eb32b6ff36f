"""Many hosts' agents in one process: one event loop, every socket made inside its host's
network namespace (the netns backend's default; ``TESTBED_AGENTS=per-host`` turns it off).

Owns: the *group config* (one JSON file for the hosts one process serves: what their configs share
once, ``shared``, then each host's own keys and network namespace; mode 0600, it holds the run's
secret), :class:`NamespacedEventLoop` (the loop's thread enters a host's namespace with
``setns(2)`` only to make a socket, then returns home, so every packet leaves with that host's own
address over its own veth, bridge and router), one control poll for the whole group (the run's
stop file, the wake files, every agent's TTL), the process's signals and its descriptor limit.

Must not: decide anything an agent decides: every host is a :class:`testbed.agent.runtime.Agent`
exactly as in its own process (same config, brain, guards, rate cap, ground truth file). Never
make a socket outside a host's namespace: the loop refuses. Standard library only (plus
``testbed.errors``), like the rest of the agent.

The process itself lives in the run's fabric namespace, which has no address: nothing it could
send from there reaches anything, and teardown finds and ends it with the run's namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import ctypes.util
import dataclasses
import json
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.agent.config import AgentConfig, dump_config, parse_config, read_config_file
from testbed.errors import AgentError

__all__ = [
    "GROUP_FORMAT",
    "HOST_NAMESPACE",
    "AgentGroup",
    "GroupMember",
    "NamespacedEventLoop",
    "dump_group",
    "inside_namespace",
    "load_group",
    "run_group",
    "write_group",
]

GROUP_FORMAT = 1
CLONE_NEWNET = 0x40000000
CONTROL_POLL_S = 0.25  # as an agent of its own polls: the stop file ends a group within 0.25 s

HOST_NAMESPACE: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "testbed_host_namespace", default=None)
"""The network namespace (an open descriptor) of the host whose agent runs in this context.
Each agent's task starts in a context holding its host's; every task and callback it makes
inherits it, so the loop knows whose socket it is asked for."""

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


class NamespaceEscape(AgentError):
    """The loop's thread could not return to its own namespace after making a socket."""


def _setns(descriptor: int) -> None:
    if _libc.setns(descriptor, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


@contextlib.contextmanager
def inside_namespace(namespace: int, home: int) -> Iterator[None]:
    """The calling thread inside the network namespace ``namespace`` (an open descriptor) for
    the block, and back in ``home`` when it ends or raises (``NamespaceEscape`` if it cannot)."""
    _setns(namespace)
    try:
        yield
    finally:
        try:
            _setns(home)
        except OSError as err:
            raise NamespaceEscape(f"cannot return to the agent process's namespace: {err}"
                                  ) from None


def _socket_in(namespace: int, home: int, kind: int) -> socket.socket:
    """An IPv4 socket made inside ``namespace`` (a socket keeps its namespace for life)."""
    with inside_namespace(namespace, home):
        return socket.socket(socket.AF_INET, kind)


class NamespacedEventLoop(asyncio.SelectorEventLoop):
    """A selector loop whose connections, servers and datagram endpoints are made inside the
    network namespace of the host in the calling context (:data:`HOST_NAMESPACE`).

    The asyncio calls the agent makes (``open_connection``, ``start_server``,
    ``create_datagram_endpoint``, with numeric addresses) reach these three methods; each makes
    the socket in the host's namespace, binds or connects it like the base loop would, and hands
    it on as ``sock=``. A call outside any host's context is refused: nothing is ever made in the
    process's own namespace.
    """

    def __init__(self) -> None:
        super().__init__()
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        super().close()
        if self._home >= 0:
            os.close(self._home)
            self._home = -1

    def _host_socket(self, kind: int, what: str) -> socket.socket:
        namespace = HOST_NAMESPACE.get()
        if namespace is None:
            raise AgentError(f"{what}: refused, no host namespace in this context (a "
                             "multiplexed agent makes sockets only inside its hosts)")
        sock = _socket_in(namespace, self._home, kind)
        sock.setblocking(False)
        return sock

    async def create_connection(  # type: ignore[override]
            self, protocol_factory: Any, host: str | None = None, port: int | None = None, *,
            sock: socket.socket | None = None, local_addr: tuple[str, int] | None = None,
            **kwargs: Any) -> Any:
        if sock is None:
            sock = self._host_socket(socket.SOCK_STREAM, f"connect to {host}:{port}")
            try:
                if local_addr is not None:
                    sock.bind(local_addr)
                await self.sock_connect(sock, (host, port))
            except BaseException:
                sock.close()
                raise
        return await super().create_connection(protocol_factory, sock=sock, **kwargs)

    async def create_server(  # type: ignore[override]
            self, protocol_factory: Any, host: str | None = None, port: int | None = None, *,
            sock: socket.socket | None = None, reuse_address: bool | None = None,
            **kwargs: Any) -> asyncio.Server:
        if sock is None:
            sock = self._host_socket(socket.SOCK_STREAM, f"listen on {host}:{port}")
            try:
                if reuse_address is not False:  # the base loop's default on Linux
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host or "0.0.0.0", port or 0))
            except BaseException:
                sock.close()
                raise
        return await super().create_server(protocol_factory, sock=sock, **kwargs)

    async def create_datagram_endpoint(  # type: ignore[override]
            self, protocol_factory: Any, local_addr: tuple[str, int] | None = None,
            remote_addr: tuple[str, int] | None = None, *, sock: socket.socket | None = None,
            **kwargs: Any) -> Any:
        if sock is None:
            sock = self._host_socket(socket.SOCK_DGRAM, f"datagrams to {remote_addr}")
            try:
                if local_addr is not None:
                    sock.bind(local_addr)
                if remote_addr is not None:
                    sock.connect(remote_addr)
            except BaseException:
                sock.close()
                raise
        return await super().create_datagram_endpoint(protocol_factory, sock=sock, **kwargs)


# ---- the group config ------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupMember:
    """One host a group serves: its agent config and the path of its network namespace."""

    config: AgentConfig
    netns: str


def dump_group(members: Sequence[GroupMember]) -> dict[str, Any]:
    """The JSON-ready group config: every top-level key equal for all hosts (the address book,
    topology CIDRs, secret, worm profile ...) once under ``shared``, the rest per host. Each
    host's merged keys are exactly its own config (:func:`testbed.agent.config.dump_config`)."""
    if not members:
        raise AgentError("an agent group needs at least one host")
    books = {id(member.config.address_book) for member in members}
    first_book = members[0].config.address_book
    book_shared = len(books) == 1 or all(m.config.address_book == first_book for m in members)
    # the address book is the big part (hosts x hosts): dumped once, never copied per host
    dumped = [dump_config(dataclasses.replace(member.config, address_book={}))
              for member in members]
    shared = {key: value for key, value in dumped[0].items()
              if all(entry.get(key) == value for entry in dumped[1:])}
    hosts = []
    for member, entry in zip(members, dumped, strict=True):
        own = {key: value for key, value in entry.items() if key not in shared}
        if not book_shared:
            own["address_book"] = dict(member.config.address_book)
        hosts.append({"netns": member.netns, "config": own})
    if book_shared:
        shared["address_book"] = dict(first_book)
    return {"group_format": GROUP_FORMAT, "shared": shared, "hosts": hosts}


def write_group(path: Path, members: Sequence[GroupMember]) -> None:
    """Write a group config atomically with mode 0600 (it holds the run's secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(dump_group(members), handle, separators=(",", ":"))
    os.replace(temporary, path)


def load_group(path: str | Path) -> list[GroupMember]:
    """Read and validate a group config (every host's config through the same parser as a
    single agent's). Raises AgentError naming the file, the host and the problem."""
    path = Path(path)
    data = read_config_file(path, "agent group config")
    if not isinstance(data, dict) or data.get("group_format") != GROUP_FORMAT:
        raise AgentError(f"{path}: not an agent group config of format {GROUP_FORMAT}")
    shared = data.get("shared")
    entries = data.get("hosts")
    if not isinstance(shared, dict) or not isinstance(entries, list) or not entries:
        raise AgentError(f"{path}: an agent group config needs 'shared' and some 'hosts'")
    book = {str(k): str(v) for k, v in shared.get("address_book", {}).items()}
    members: list[GroupMember] = []
    for index, entry in enumerate(entries):
        try:
            own = entry["config"]
            merged = {**shared, **own, "address_book": {}}
            config = parse_config(merged)
            own_book = own.get("address_book")
            config = dataclasses.replace(
                config, address_book=book if own_book is None
                else {str(k): str(v) for k, v in own_book.items()})
            members.append(GroupMember(config, str(entry["netns"])))
        except (KeyError, TypeError, ValueError) as err:
            what = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise AgentError(f"{path}: host #{index}: invalid agent config: {what}") from None
    hosts = [member.config.host for member in members]
    if len(set(hosts)) != len(hosts):
        raise AgentError(f"{path}: a host appears twice in the group")
    if len({member.config.state_dir for member in members}) != 1:
        raise AgentError(f"{path}: the hosts of a group belong to one run (one state dir)")
    return members


# ---- the group at run time -------------------------------------------------------------------
class AgentGroup:
    """The agents of a group on one loop. ``await group.run()`` until all stopped; returns 0, or
    1 when an agent failed (a service could not listen, say): then the others are stopped."""

    def __init__(self, members: Sequence[GroupMember]) -> None:
        from testbed.agent.runtime import Agent

        self.members = list(members)
        self.agents = [Agent(member.config) for member in self.members]
        self.failed: list[str] = []
        self._namespaces: list[int] = []

    def stop_all(self, reason: str) -> None:
        for agent in self.agents:
            agent.stop(reason)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal_number, self.stop_all, "signal")
        tasks: dict[asyncio.Task[int], str] = {}
        try:
            for member, agent in zip(self.members, self.agents, strict=True):
                namespace = os.open(member.netns, os.O_RDONLY | os.O_CLOEXEC)
                self._namespaces.append(namespace)
                context = contextvars.copy_context()
                context.run(HOST_NAMESPACE.set, namespace)
                task = loop.create_task(agent.run(own_control=False, handle_signals=False),
                                        context=context)
                tasks[task] = member.config.host
            control = loop.create_task(self._control())
            pending: Iterable[asyncio.Task[int]] = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending,
                                                   return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        self.failed.append(tasks[task])
                        print(f"testbed agent {tasks[task]}: {task.exception()}",
                              file=sys.stderr)
                if self.failed:
                    self.stop_all("error")
            control.cancel()
            with suppress(asyncio.CancelledError):
                await control
        except OSError as err:  # a host's namespace is gone: the run is being torn down
            print(f"testbed agent group: {err}", file=sys.stderr)
            self.failed.append("?")
            self.stop_all("error")
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for namespace in self._namespaces:
                os.close(namespace)
            self._namespaces.clear()
        return 1 if self.failed else 0

    async def _control(self) -> None:
        """One look every CONTROL_POLL_S for the whole group: stop file, wake files, TTLs."""
        first = self.members[0].config
        stop_path, wake_dir = first.stop_path, first.wake_path.parent
        running = list(self.agents)
        while running:
            stop_file = stop_path.exists()
            woken: set[str] = set()
            if not stop_file:
                with suppress(OSError):
                    woken = set(os.listdir(wake_dir))
            now = time.monotonic()
            running = [agent for agent in running
                       if not agent.poll_control(now, stop_file=stop_file,
                                                 wake_file=_member_of(woken, agent.config.host))]
            await asyncio.sleep(CONTROL_POLL_S)


def _member_of(names: set[str], name: str) -> Callable[[], bool]:
    return lambda: name in names


def raise_descriptor_limit() -> int:
    """Lift this process's soft RLIMIT_NOFILE to its hard limit (a group holds several
    descriptors per host); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def run_group(path: str | Path) -> int:
    """Load a group config and serve its hosts until stopped. Raises AgentError on a bad
    config or profile (before any socket exists)."""
    from testbed.agent.brain import resolve_params

    members = load_group(path)
    for profile, params in {(m.config.worm.profile, json.dumps(m.config.worm.params,
                                                               sort_keys=True))
                            for m in members}:
        resolve_params(profile, json.loads(params))  # fail fast on a bad profile
    raise_descriptor_limit()
    with asyncio.Runner(loop_factory=NamespacedEventLoop) as runner:
        return runner.run(AgentGroup(members).run())
