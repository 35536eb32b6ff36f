"""Measured reachability of a live deployment, compared with the policy's static answer.

Owns: ``testbed reach``'s engine. For every host and every declared service of every *other*
host it makes a real connection inside the emulated network (TCP connect; UDP datagram that a
responder answers), using short-lived listeners it opens for the check, and compares each result
with :func:`testbed.policy.decide_flow` under the deployment's current containment.

How it stays fast on a few hundred hosts without starting a process per host: a socket belongs
to the network namespace it was created in, so one process opens the listeners inside every
target's namespace and answers them from one thread, and a couple of prober processes create
their sockets inside each source's namespace and run thousands of non-blocking connects at once
(epoll). Namespaces come from ``Deployment.netns_path(host)`` (every backend has one) and are
entered with :func:`testbed.kernel.entered`. Only addresses of the deployed topology are ever
contacted.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import resource
import select
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from testbed.backends.base import Deployment
from testbed.errors import BackendError
from testbed.kernel import entered
from testbed.model.topology import Topology
from testbed.policy import Verdict, decide_flow

__all__ = ["Probe", "ProbeOutcome", "ReachReport", "measure_reachability", "plan_probes"]

PROBE_PAYLOAD = b"testbed-reach?"
REPLY_PAYLOAD = b"testbed-reach!"
UDP_RESEND_SECONDS = 0.4
IN_PROCESS_LIMIT = 1500  # below this many probes a subprocess costs more than it saves

ReachProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Probe:
    source: str
    target: str
    address: str
    port: int
    proto: str  # "tcp" or "udp"


@dataclass(frozen=True)
class ProbeOutcome:
    probe: Probe
    reachable: bool
    detail: str  # connected, refused, reply, timeout, no reply, or an errno name


@dataclass
class ReachReport:
    run: str
    outcomes: list[ProbeOutcome]
    expected: list[Verdict]
    seconds: float
    listeners: int = 0
    preexisting_listeners: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> list[tuple[ProbeOutcome, Verdict]]:
        return [(outcome, verdict) for outcome, verdict in zip(self.outcomes, self.expected,
                                                                 strict=True)
                if outcome.reachable != verdict.allowed]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def describe_mismatches(self, limit: int = 20) -> str:
        """Human lines for the first ``limit`` mismatches (for logs and test failures)."""
        mismatches = self.mismatches
        lines = [f"{len(mismatches)} of {len(self.outcomes)} probes disagree with the policy"]
        for outcome, verdict in mismatches[:limit]:
            p = outcome.probe
            lines.append(f"  {p.source} -> {p.target} {p.address}:{p.port}/{p.proto}: policy "
                         f"{'allows' if verdict.allowed else 'denies'} ({verdict.reason}), "
                         f"measured {'reachable' if outcome.reachable else 'unreachable'} "
                         f"({outcome.detail})")
        return "\n".join(lines)

    def to_json(self, *, include_all: bool = False) -> dict[str, Any]:
        def row(outcome: ProbeOutcome, verdict: Verdict) -> dict[str, Any]:
            p = outcome.probe
            return {"source": p.source, "target": p.target, "address": p.address,
                    "port": p.port, "proto": p.proto, "expected": verdict.allowed,
                    "measured": outcome.reachable, "detail": outcome.detail,
                    "reason": verdict.reason}

        data: dict[str, Any] = {
            "run": self.run, "ok": self.ok, "probes": len(self.outcomes),
            "reachable": sum(o.reachable for o in self.outcomes),
            "expected_reachable": sum(v.allowed for v in self.expected),
            "mismatches": [row(o, v) for o, v in self.mismatches],
            "seconds": round(self.seconds, 3), "listeners": self.listeners,
            "preexisting_listeners": self.preexisting_listeners,
        }
        if include_all:
            data["results"] = [row(o, v) for o, v in zip(self.outcomes, self.expected,
                                                          strict=True)]
        return data


def plan_probes(topology: Topology, sources: Iterable[str] | None = None,
                targets: Iterable[str] | None = None) -> list[Probe]:
    """Every (source host, other host's declared service) pair, grouped by source."""
    source_names = list(sources) if sources is not None else list(topology.hosts)
    target_names = list(targets) if targets is not None else list(topology.hosts)
    probes: list[Probe] = []
    for source in source_names:
        for target in target_names:
            if target == source:
                continue
            host = topology.hosts[target]
            probes.extend(Probe(source, target, str(host.ip), service.port, service.proto)
                          for service in host.services)
    return probes


# ---- listeners ------------------------------------------------------------------------------
class _Listeners:
    """Listening sockets inside every target's namespace, answered by one thread."""

    def __init__(self, topology: Topology, netns_path: Callable[[str], str],
                 targets: Iterable[str]) -> None:
        self.sockets: list[socket.socket] = []
        self.preexisting: list[str] = []
        self.selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        self._thread: threading.Thread | None = None
        try:
            for target in targets:
                host = topology.hosts[target]
                if not host.services:
                    continue
                with entered(netns_path(target)):
                    for service in host.services:
                        self._open(str(host.ip), service.port, service.proto, target)
        except BaseException:
            self.close()
            raise

    def _open(self, address: str, port: int, proto: str, target: str) -> None:
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            if proto == "tcp":
                sock.listen(4096)
        except OSError as err:
            sock.close()
            if err.errno == errno.EADDRINUSE:  # an agent already serves it: that answers too
                self.preexisting.append(f"{target}:{port}/{proto}")
                return
            raise BackendError(f"cannot listen on {address}:{port}/{proto} in {target}: "
                               f"{err.strerror}") from None
        self.sockets.append(sock)
        self.selector.register(sock, selectors.EVENT_READ, proto)

    def start(self) -> None:
        self.selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._serve, name="reach-listeners", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            for key, _mask in self.selector.select():
                if key.data == "wake":
                    return
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                with contextlib.suppress(OSError):
                    if key.data == "tcp":
                        for _ in range(64):
                            connection, _peer = sock.accept()
                            connection.close()
                    else:
                        for _ in range(64):
                            data, peer = sock.recvfrom(2048)
                            if data == PROBE_PAYLOAD:
                                sock.sendto(REPLY_PAYLOAD, peer)

    def close(self) -> None:
        if self._thread is not None:
            os.write(self._wake_write, b"x")
            self._thread.join(5)
            self._thread = None
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        self.selector.close()
        for descriptor in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(descriptor)


# ---- probing ----------------------------------------------------------------------------------
Job = tuple[str, list[tuple[int, str, int, str]]]  # (source netns path, [(id, ip, port, proto)])


def _raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def run_probes(jobs: Sequence[Job], *, timeout: float, networks: Sequence[str],
               progress: Callable[[int], None] | None = None) -> dict[int, tuple[bool, str]]:
    """Run every probe of every job; ``{probe id: (reachable, detail)}``.

    Sockets are created inside the job's source namespace; up to a few thousand are in flight.
    """
    allowed = [ipaddress.IPv4Network(n) for n in networks]
    limit = max(64, min(_raise_fd_limit() - 256, 8000))
    epoll = select.epoll()
    results: dict[int, tuple[bool, str]] = {}
    in_flight: dict[int, tuple[int, socket.socket, str, float]] = {}  # fd -> id, sock, proto
    deadlines: deque[tuple[float, int, int]] = deque()  # (deadline, fd, id) in start order
    resend: deque[tuple[float, int, int]] = deque()  # UDP: (when, fd, id)
    linger = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT, no lingering state
    reported = 0

    def finish(fd: int, reachable: bool, detail: str) -> None:
        probe_id, sock, _proto, _deadline = in_flight.pop(fd)
        with contextlib.suppress(OSError):
            epoll.unregister(fd)
        sock.close()
        results[probe_id] = (reachable, detail)

    def settle(fd: int, writable: bool) -> bool:
        """Finish the probe on ``fd`` if its outcome is known; True if it was."""
        _probe_id, sock, proto, _deadline = in_flight[fd]
        if proto == "tcp":
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == errno.ECONNREFUSED:
                finish(fd, True, "refused")
            elif code:
                finish(fd, False, errno.errorcode.get(code, str(code)))
            elif writable:
                finish(fd, True, "connected")
            else:
                try:
                    sock.getpeername()
                except OSError:
                    return False  # still connecting
                finish(fd, True, "connected")
            return True
        try:
            data = sock.recv(2048)
        except ConnectionRefusedError:
            finish(fd, True, "refused")
        except BlockingIOError:
            return False
        except OSError as err:
            finish(fd, False, errno.errorcode.get(err.errno or 0, str(err)))
        else:
            finish(fd, True, "reply" if data == REPLY_PAYLOAD else "answered")
        return True

    def pump(wait: float) -> None:
        nonlocal reported
        while True:  # drain every ready event before judging any deadline
            ready = epoll.poll(wait, 4096)
            for fd, events in ready:
                if fd in in_flight:
                    settle(fd, bool(events & select.EPOLLOUT))
            if len(ready) < 4096:
                break
            wait = 0
        now = time.monotonic()
        while deadlines and deadlines[0][0] <= now:
            _deadline, fd, probe_id = deadlines.popleft()
            entry = in_flight.get(fd)
            if entry is not None and entry[0] == probe_id and not settle(fd, False):
                finish(fd, False, "timeout" if entry[2] == "tcp" else "no reply")
        while resend and resend[0][0] <= now:
            _when, fd, probe_id = resend.popleft()
            entry = in_flight.get(fd)
            if entry is not None and entry[0] == probe_id:
                with contextlib.suppress(OSError):
                    entry[1].send(PROBE_PAYLOAD)
                resend.append((now + UDP_RESEND_SECONDS, fd, probe_id))
        if progress is not None and len(results) - reported >= 200:
            reported = len(results)
            progress(reported)

    def start(probe_id: int, address: str, port: int, proto: str) -> None:
        if not any(ipaddress.IPv4Address(address) in n for n in allowed):
            results[probe_id] = (False, "outside topology (not sent)")
            return
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        deadline = time.monotonic() + timeout
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            code = sock.connect_ex((address, port))
            if code == 0:
                sock.close()
                results[probe_id] = (True, "connected")
                return
            if code != errno.EINPROGRESS:
                sock.close()
                results[probe_id] = (False, errno.errorcode.get(code, str(code)))
                return
            events = select.EPOLLOUT
        else:
            try:
                sock.connect((address, port))
                sock.send(PROBE_PAYLOAD)
            except OSError as err:
                sock.close()
                results[probe_id] = (False, errno.errorcode.get(err.errno or 0, str(err)))
                return
            events = select.EPOLLIN
            resend.append((time.monotonic() + UDP_RESEND_SECONDS, sock.fileno(), probe_id))
        fd = sock.fileno()
        in_flight[fd] = (probe_id, sock, proto, deadline)
        deadlines.append((deadline, fd, probe_id))
        epoll.register(fd, events | select.EPOLLERR | select.EPOLLHUP)

    try:
        for netns_path, probes in jobs:
            with entered(netns_path):
                for probe_id, address, port, proto in probes:
                    while len(in_flight) >= limit:
                        pump(0.05)
                    start(probe_id, address, port, proto)
                    if len(in_flight) % 256 == 0:
                        pump(0)
        while in_flight:
            pump(0.05)
    finally:
        for _probe_id, sock, _proto, _deadline in in_flight.values():
            sock.close()
        epoll.close()
    return results


def _worker_main() -> int:
    """``python -m testbed.reach``: run the probe jobs given as JSON on stdin."""
    request = json.load(sys.stdin)

    def tell(done: int) -> None:
        sys.stdout.write(json.dumps({"done": done}) + "\n")
        sys.stdout.flush()

    jobs = [(path, [tuple(p) for p in probes]) for path, probes in request["jobs"]]
    results = run_probes(jobs, timeout=request["timeout"],  # type: ignore[arg-type]
                         networks=request["networks"], progress=tell)
    sys.stdout.write(json.dumps({"results": {str(k): v for k, v in results.items()}}) + "\n")
    return 0


def _run_in_workers(jobs: list[Job], *, timeout: float, networks: list[str], workers: int,
                    progress: Callable[[int], None] | None) -> dict[int, tuple[bool, str]]:
    chunks: list[list[Job]] = [[] for _ in range(workers)]
    sizes = [0] * workers
    for job in sorted(jobs, key=lambda j: -len(j[1])):  # balance by probe count
        smallest = sizes.index(min(sizes))
        chunks[smallest].append(job)
        sizes[smallest] += len(job[1])
    processes = []
    for chunk in chunks:
        if not chunk:
            continue
        process = subprocess.Popen([sys.executable, "-m", "testbed.reach"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert process.stdin is not None
        process.stdin.write(json.dumps({"jobs": chunk, "timeout": timeout,
                                        "networks": networks}))
        process.stdin.close()
        processes.append(process)
    done = [0] * len(processes)
    results: dict[int, tuple[bool, str]] = {}
    lock = threading.Lock()
    failures: list[str] = []

    def read(index: int, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        finished = False
        for line in process.stdout:
            message = json.loads(line)
            if "done" in message:
                with lock:
                    done[index] = message["done"]
                    total = sum(done)
                if progress is not None:
                    progress(total)
            elif "results" in message:
                with lock:
                    results.update({int(k): (bool(v[0]), str(v[1]))
                                    for k, v in message["results"].items()})
                finished = True
        if process.wait() != 0 or not finished:
            with lock:
                failures.append(f"prober {index} exited with status {process.returncode}")

    readers = [threading.Thread(target=read, args=(i, p), daemon=True)
               for i, p in enumerate(processes)]
    try:
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    if failures:
        raise BackendError("reachability probing failed: " + "; ".join(failures))
    return results


def measure_reachability(deployment: Deployment, *, timeout: float = 2.0,
                         workers: int | None = None, sources: Iterable[str] | None = None,
                         progress: ReachProgress | None = None) -> ReachReport:
    """Probe every (host, other host's service) pair for real; compare with decide_flow."""
    netns_path = deployment.netns_path
    started = time.perf_counter()
    topology = deployment.topology
    probes = plan_probes(topology, sources)
    state = deployment.containment()
    networks = [str(n) for n in topology.cidrs]
    jobs_by_source: dict[str, list[tuple[int, str, int, str]]] = {}
    for index, probe in enumerate(probes):
        jobs_by_source.setdefault(probe.source, []).append(
            (index, probe.address, probe.port, probe.proto))
    jobs: list[Job] = [(netns_path(source), items)
                       for source, items in jobs_by_source.items()]
    total = len(probes)

    def tell(done: int) -> None:
        if progress is not None:
            progress(min(done, total), total)

    listeners = _Listeners(topology, netns_path, sorted({p.target for p in probes}))
    try:
        listeners.start()
        if workers is None:
            workers = 1 if total < IN_PROCESS_LIMIT else min(2, os.cpu_count() or 1)
        if workers <= 1:
            raw = run_probes(jobs, timeout=timeout, networks=networks, progress=tell)
        else:
            raw = _run_in_workers(jobs, timeout=timeout, networks=networks, workers=workers,
                                  progress=tell)
    finally:
        count, preexisting = len(listeners.sockets), list(listeners.preexisting)
        listeners.close()
    tell(total)
    outcomes = [ProbeOutcome(probe, *raw.get(index, (False, "not run")))
                for index, probe in enumerate(probes)]
    expected = [decide_flow(topology, topology.hosts[p.source], p.address, p.port, p.proto,
                            state) for p in probes]
    return ReachReport(deployment.run_name, outcomes, expected, time.perf_counter() - started,
                       count, preexisting)


if __name__ == "__main__":
    raise SystemExit(_worker_main())
