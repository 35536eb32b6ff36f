"""The ``netns`` backend: a topology as Linux network namespaces, veths, bridges and nftables.

Owns: the netns lifecycle (ledger first, then namespaces, wiring, policy; rollback on any
failure), the Deployment handle (run/spawn in hosts, containment actions, taps, egress counters)
and crash-safe teardown from the ledger alone. Wiring and the policy compiler live in
:mod:`testbed.backends.netns.wiring` and :mod:`testbed.backends.nftables`; this module only adds
what is specific to *named* namespaces and host processes started with ``nsenter``.

Nothing of a deployment exists in the root namespace: bridges and fabric-side veth ends live in a
per-run fabric namespace, node-side ends are born inside their node's namespace.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import pickle
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from testbed.backends.base import (
    ActionTiming,
    Backend,
    Deployment,
    Progress,
    RunInfo,
    Tap,
)
from testbed.backends.ledger import Ledger, check_run_name, list_ledgers, pid_alive, run_lock
from testbed.backends.netns.kernel import (
    NETNS_RUN_DIR,
    Nft,
    create_named_netns,
    ensure_neighbour_capacity,
    kill_processes_in,
    load_libnftables,
    named_netns_path,
    pids_in_netns,
    remove_named_netns,
    require_root,
)
from testbed.backends.netns.plan import WiringPlan, new_prefix
from testbed.backends.netns.wiring import FABRIC_SYSCTLS, node_sysctls, parallel, wire
from testbed.backends.nftables import (
    EGRESS_COUNTER,
    block_rules,
    containment_update,
    quarantine_update,
)
from testbed.errors import BackendError, TestbedError, ToolMissingError
from testbed.model.topology import Topology
from testbed.policy import Block, ContainmentState

__all__ = [
    "NetnsBackend",
    "NetnsDeployment",
    "containment_to_json",
    "deferred_interrupts",
    "destroy_from_ledger",
    "load_ledger_topology",
    "require_bridge_netfilter",
    "store_ledger_topology",
    "write_json",
]

BACKEND_NAME = "netns"
CONTAINMENT_FILE = "containment.json"
TOPOLOGY_COPY = "topology.yaml"
TOPOLOGY_PICKLE = "topology.pickle"
NSENTER = "nsenter"


# ---- helpers -------------------------------------------------------------------------------
@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) while cleaning up; re-raise it afterwards. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def containment_to_json(state: ContainmentState) -> dict[str, Any]:
    return {"quarantined": sorted(state.quarantined),
            "blocks": [{"source": b.source, "destination": b.destination, "port": b.port,
                        "proto": b.proto} for b in state.blocks],
            "rate_limited": dict(sorted(state.rate_limited.items()))}


def _state_from_json(data: Mapping[str, Any]) -> ContainmentState:
    return ContainmentState(set(data.get("quarantined", ())),
                            [Block(**b) for b in data.get("blocks", ())],
                            {h: float(r) for h, r in dict(data.get("rate_limited", {})).items()})


def store_ledger_topology(topology: Topology, directory: Path) -> dict[str, Any]:
    """Keep what attach() needs to rebuild the Topology in another process."""
    record: dict[str, Any] = {"name": topology.name, "hosts": len(topology.hosts),
                              "routers": len(topology.routers), "source": topology.source}
    source = Path(topology.source) if topology.source else None
    if source is not None and source.is_file():
        shutil.copyfile(source, directory / TOPOLOGY_COPY)
        record["copy"] = TOPOLOGY_COPY
    else:  # built in memory (benchmarks, tests): the run directory is root-only (0700)
        with open(directory / TOPOLOGY_PICKLE, "wb") as stream:
            pickle.dump(topology, stream)
        record["pickle"] = TOPOLOGY_PICKLE
    return record


def load_ledger_topology(ledger: Ledger) -> Topology:
    record = ledger.topology
    if "copy" in record:
        from testbed.model import load_topology

        return load_topology(ledger.directory / record["copy"],
                             display_name=record.get("source") or None)
    if "pickle" in record:
        with open(ledger.directory / record["pickle"], "rb") as stream:
            topology = pickle.load(stream)
        if not isinstance(topology, Topology):
            raise BackendError(f"run {ledger.run!r}: stored topology is unreadable")
        return topology
    raise BackendError(f"run {ledger.run!r} has no stored topology")


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (hint: did you mean {close[0]!r}?)" if close else ""


# ---- the backend ---------------------------------------------------------------------------
class NetnsBackend(Backend):
    """Linux network namespaces; needs root, nftables (libnftables) and nsenter."""

    name = BACKEND_NAME

    def deploy(self, topology: Topology, run_name: str, *,
               progress: Progress | None = None) -> NetnsDeployment:
        require_root()
        load_libnftables()
        if shutil.which(NSENTER) is None:
            raise ToolMissingError("nsenter is not installed",
                                   stderr="hint: apt-get install util-linux")
        check_run_name(run_name)
        require_bridge_netfilter()
        plan = WiringPlan.from_topology(topology, self._unique_prefix())
        ledger = Ledger.create(run_name, BACKEND_NAME)  # refuses an existing run: outside try
        try:
            ledger.topology = store_ledger_topology(topology, ledger.directory)
            # Recorded before anything is created: destroy() can always find every namespace.
            ledger.objects = {"plan": plan.to_json(), "namespaces": plan.namespaces}
            raised = ensure_neighbour_capacity(plan.neighbour_entries_needed())
            if raised is not None:  # a host-wide limit, kept afterwards: recorded, not undone
                ledger.objects["raised_neighbour_limits_from"] = raised
            ledger.save()
            paths = self._create_namespaces(plan, progress)
            wire(topology, plan, paths[plan.fabric_netns],
                 {name: paths[node.netns] for name, node in plan.nodes.items()},
                 progress=progress)
            write_json(ledger.directory / CONTAINMENT_FILE, containment_to_json(ContainmentState()))
            ledger.status = "up"
            ledger.save()
        except BaseException as err:
            with deferred_interrupts():
                with contextlib.suppress(Exception):
                    ledger.status = "failed"
                    ledger.save()
                destroy_from_ledger(ledger)
            if isinstance(err, (TestbedError, KeyboardInterrupt, SystemExit)):
                raise
            raise BackendError(f"deploying run {run_name!r} failed and was rolled back: "
                               f"{type(err).__name__}: {err}") from err
        return NetnsDeployment(topology, run_name, plan, ledger)

    @staticmethod
    def _unique_prefix() -> str:
        used = {str(ledger.objects.get("plan", {}).get("prefix")) for ledger in list_ledgers()}
        existing = {entry.split("-")[0].split("_")[0]
                    for entry in (os.listdir(NETNS_RUN_DIR) if NETNS_RUN_DIR.is_dir() else [])}
        for _ in range(100):
            prefix = new_prefix()
            if prefix not in used and prefix not in existing:
                return prefix
        raise BackendError("could not find an unused run prefix")

    @staticmethod
    def _create_namespaces(plan: WiringPlan, progress: Progress | None) -> dict[str, str]:
        jobs = [(plan.fabric_netns, FABRIC_SYSCTLS)]
        jobs += [(node.netns, node_sysctls(node.kind)) for node in plan.nodes.values()]
        paths: dict[str, str] = {}
        lock = threading.Lock()

        def create(job: tuple[str, dict[str, str]]) -> None:
            name, sysctls = job
            path = create_named_netns(name, sysctls)
            with lock:
                paths[name] = path

        parallel(jobs, create, stage="namespaces", progress=progress)
        return paths

    def attach(self, run_name: str) -> NetnsDeployment:
        ledger = Ledger.load_live(run_name, BACKEND_NAME)
        plan = WiringPlan.from_json(ledger.objects["plan"])
        return NetnsDeployment(load_ledger_topology(ledger), run_name, plan, ledger)

    def runs(self) -> list[RunInfo]:
        return [RunInfo(name=ledger.run, backend=ledger.backend,
                        topology=str(ledger.topology.get("name", "?")),
                        hosts=int(ledger.topology.get("hosts", 0)), created=ledger.created,
                        pid=ledger.pid, alive=pid_alive(ledger.pid))
                for ledger in list_ledgers() if ledger.backend == BACKEND_NAME]

    def destroy(self, run_name: str) -> None:
        require_root()
        ledger = Ledger.load(run_name)
        if ledger.backend != BACKEND_NAME:
            raise BackendError(f"run {run_name!r} belongs to the {ledger.backend} backend")
        with deferred_interrupts():
            destroy_from_ledger(ledger)


def write_json(path: Path, data: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(temporary, path)


def destroy_from_ledger(ledger: Ledger, progress: Progress | None = None) -> None:
    """Remove every namespace the ledger records (and every process inside them), then forget
    the run. Works without the deployer: after ``kill -9`` or a half-finished deployment."""
    names = [str(name) for name in ledger.objects.get("namespaces", [])]
    paths = [named_netns_path(name) for name in names]
    # A process keeps its namespace alive: end them first, including agents whose deployer died.
    if progress is not None:
        progress("processes", 0, 1)
    for _attempt in range(20):
        if not pids_in_netns(paths):
            break
        kill_processes_in(paths)
        time.sleep(0.05)
    if progress is not None:
        progress("processes", 1, 1)
        progress("namespaces", 0, len(names))
    failures: list[str] = []
    for done, name in enumerate(names, 1):
        try:
            remove_named_netns(name)
        except BackendError as err:
            failures.append(str(err))
        if progress is not None and (done % 25 == 0 or done == len(names)):
            progress("namespaces", done, len(names))
    if failures:
        raise BackendError(f"teardown of run {ledger.run!r} left objects behind: "
                           + "; ".join(failures[:5]))
    for name in (CONTAINMENT_FILE, TOPOLOGY_COPY, TOPOLOGY_PICKLE):
        with contextlib.suppress(FileNotFoundError):
            (ledger.directory / name).unlink()
    ledger.remove()


# ---- the deployment --------------------------------------------------------------------------
class NetnsDeployment(Deployment):
    """A live netns deployment (from ``deploy`` or ``attach``)."""

    def __init__(self, topology: Topology, run_name: str, plan: WiringPlan,
                 ledger: Ledger) -> None:
        self.topology = topology
        self.run_name = run_name
        self.plan = plan
        self.state_dir = ledger.directory
        self._ledger = ledger
        self._processes: list[subprocess.Popen[bytes]] = []
        self._fabric: Nft | None = None
        self._lock = threading.Lock()
        self._torn_down = False

    # ---- where things are (also used by testbed.reach and sensors) ---------------------------
    def netns_path(self, node: str) -> str:
        """Namespace path of a host or router (``/run/netns/...``), or of "fabric"."""
        if node == "fabric":
            return named_netns_path(self.plan.fabric_netns)
        try:
            return named_netns_path(self.plan.nodes[node].netns)
        except KeyError:
            raise BackendError(f"no host or router {node!r} in run {self.run_name!r}"
                               + _suggest(node, list(self.plan.nodes))) from None

    def interface_of(self, host: str) -> str:
        """The host's own interface name (inside its namespace)."""
        return self.plan.nodes[host].links[0].interface

    # ---- lifecycle ------------------------------------------------------------------------------
    def teardown(self, progress: Progress | None = None) -> None:
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
        with deferred_interrupts():
            self._stop_processes()
            if self._fabric is not None:
                self._fabric.close()  # a socket inside a namespace would keep it alive
                self._fabric = None
            if not self.state_dir.is_dir():  # destroyed meanwhile (`testbed down` elsewhere)
                destroy_from_ledger(self._ledger, progress)
                return
            with run_lock(self.run_name):
                destroy_from_ledger(self._ledger, progress)

    def _stop_processes(self, grace: float = 1.0) -> None:
        alive = [p for p in self._processes if p.poll() is None]
        for process in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        for process in alive:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(1.0)
        self._processes.clear()

    # ---- processes ------------------------------------------------------------------------------
    def _command(self, host: str, argv: Sequence[str]) -> list[str]:
        if not argv:
            raise BackendError("empty command")
        return [NSENTER, f"--net={self.netns_path(host)}", "--", *argv]

    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` inside ``host`` (for interactive use)."""
        return self._command(host, argv)

    def run(self, host: str, argv: Sequence[str], *, timeout: float = 30.0,
            check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        command = self._command(host, argv)
        try:
            completed = subprocess.run(command, input=input, capture_output=True,
                                       timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BackendError(f"command in {host} timed out after {timeout} s",
                               command=" ".join(argv)) from None
        except FileNotFoundError as err:
            raise ToolMissingError(f"cannot run {err.filename}") from None
        if check and completed.returncode != 0:
            raise BackendError(f"command in {host} failed", command=" ".join(argv),
                               stderr=completed.stderr.decode(errors="replace"),
                               exit_status=completed.returncode)
        return completed

    def spawn(self, host: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              stdout: int | None = subprocess.DEVNULL, stderr: int | None = subprocess.DEVNULL
              ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``host``'s namespace, in its own process group (teardown kills the
        group). ``env`` adds to the inherited environment."""
        command = self._command(host, argv)
        environment = None if env is None else {**os.environ, **env}
        process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL,
                                   stdout=stdout, stderr=stderr, start_new_session=True)
        with self._lock:
            self._processes = [p for p in self._processes if p.poll() is None]
            self._processes.append(process)
        return process

    # ---- containment ---------------------------------------------------------------------------
    def _fabric_nft(self) -> Nft:
        if self._fabric is None:
            self._fabric = Nft(self.netns_path("fabric"))
        return self._fabric

    def _state_path(self) -> Path:
        return self.state_dir / CONTAINMENT_FILE

    def containment(self) -> ContainmentState:
        try:
            return _state_from_json(json.loads(self._state_path().read_text()))
        except FileNotFoundError:
            return ContainmentState()

    def _change(self, action: str, target: str,
                change: Callable[[ContainmentState], str | None]) -> ActionTiming:
        """Apply one containment change atomically; time it from the call to the kernel's
        commit of the nftables transaction (the moment it is enforced)."""
        started = time.perf_counter()
        if self._torn_down:
            raise BackendError(f"run {self.run_name!r} was torn down")
        with run_lock(self.run_name):
            state = self.containment()
            text = change(state)
            if text:
                self._fabric_nft().run(text)
            enforced = time.perf_counter()
            write_json(self._state_path(), containment_to_json(state))
        return ActionTiming(action, target, enforced - started)

    def _check_host(self, host: str) -> None:
        if host not in self.topology.hosts:
            raise BackendError(f"no host {host!r} in run {self.run_name!r}"
                               + _suggest(host, list(self.topology.hosts)))

    def quarantine(self, host: str) -> ActionTiming:
        self._check_host(host)

        def change(state: ContainmentState) -> str | None:
            if host in state.quarantined:
                return None
            state.quarantined.add(host)
            return quarantine_update(self.plan.table, self.plan.host_port(host), add=True)

        return self._change("quarantine", host, change)

    def release(self, host: str) -> ActionTiming:
        self._check_host(host)

        def change(state: ContainmentState) -> str | None:
            if host not in state.quarantined:
                return None
            state.quarantined.discard(host)
            return quarantine_update(self.plan.table, self.plan.host_port(host), add=False)

        return self._change("release", host, change)

    def _containment_text(self, state: ContainmentState) -> str:
        return containment_update(self.topology, self.plan.table, state,
                                  self.plan.bridge_of_segment())

    def block(self, source: str, destination: str = "any", port: int | None = None,
              proto: str = "any") -> ActionTiming:
        wanted = Block(source, destination, port, proto)
        block_rules(self.topology, wanted)  # validates names, CIDRs, protocol, port

        def change(state: ContainmentState) -> str | None:
            if wanted in state.blocks:
                return None
            state.blocks.append(wanted)
            return self._containment_text(state)

        return self._change("block", f"{source}->{destination}", change)

    def unblock(self, source: str, destination: str = "any", port: int | None = None,
                proto: str = "any") -> ActionTiming:
        wanted = Block(source, destination, port, proto)

        def change(state: ContainmentState) -> str | None:
            if wanted not in state.blocks:
                return None
            state.blocks.remove(wanted)
            return self._containment_text(state)

        return self._change("unblock", f"{source}->{destination}", change)

    def rate_limit(self, host: str, per_second: float) -> ActionTiming:
        self._check_host(host)
        if not per_second > 0:
            raise BackendError(f"rate limit must be positive, not {per_second}")

        def change(state: ContainmentState) -> str | None:
            state.rate_limited[host] = float(per_second)
            return self._containment_text(state)

        return self._change("rate_limit", host, change)

    def remove_rate_limit(self, host: str) -> ActionTiming:
        """Undo ``rate_limit`` (not part of the base contract)."""
        self._check_host(host)

        def change(state: ContainmentState) -> str | None:
            if state.rate_limited.pop(host, None) is None:
                return None
            return self._containment_text(state)

        return self._change("remove_rate_limit", host, change)

    # ---- observation ---------------------------------------------------------------------------
    def taps(self) -> list[Tap]:
        fabric = self.plan.fabric_netns
        taps = [Tap(f"segment:{segment}", bridge.name, fabric, segment, "segment")
                for segment, bridge in self.plan.bridges.items()]
        for node in self.plan.nodes.values():
            if node.kind == "router":
                taps += [Tap(f"router:{node.name}:{link.segment}", link.port, fabric,
                             link.segment, "router") for link in node.links]
        return taps

    def egress_counters(self) -> dict[str, int]:
        """Packets each host's (and router's) egress guard dropped; keyed by node name."""
        counters: dict[str, int] = {}
        lock = threading.Lock()
        command = f"list counter inet {self.plan.table} {EGRESS_COUNTER}"

        def read(node: str) -> None:
            with Nft(self.netns_path(node), json=True) as nft:
                output = nft.run(command)
            packets = 0
            for item in json.loads(output).get("nftables", []):
                if "counter" in item:
                    packets = int(item["counter"].get("packets", 0))
            with lock:
                counters[node] = packets

        parallel(list(self.plan.nodes), read, stage="counters")
        return {node: counters[node] for node in self.plan.nodes}

    def quarantine_drops(self) -> int:
        """Frames the fabric dropped at quarantined ports so far (for reports)."""
        output = self._fabric_nft().run(
            f"list counter bridge {self.plan.table} quarantine_dropped")
        for line in output.splitlines():
            if "packets" in line:
                return int(line.split("packets", 1)[1].split()[0])
        return 0


def require_bridge_netfilter() -> None:
    """Blocks and rate limits are enforced statefully on the fabric's bridges, which needs
    bridge netfilter (built into some kernels, the ``br_netfilter`` module on stock Debian)."""
    if Path("/proc/sys/net/bridge").is_dir():
        return
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
    if not Path("/proc/sys/net/bridge").is_dir():
        raise ToolMissingError("bridge netfilter is not available in this kernel",
                               command="modprobe br_netfilter",
                               stderr="hint: load the br_netfilter module (apt-get install kmod; "
                                      "modprobe br_netfilter)")
