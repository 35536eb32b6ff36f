"""The one Deployment class of every fabric backend (netns, docker).

Owns: the handle on a live run: where its nodes are (namespace paths, interfaces), processes
started inside nodes (through the node runtime's command lines; teardown stops them),
containment actions (delegated to :class:`FabricContainment`), taps, egress counters, and
teardown (through :func:`destroy_run`, under the run lock). What differs between backends is
only the :class:`NodeRuntime` it is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from testbed.backends.base import ActionTiming, Deployment, Progress
from testbed.backends.fabric.agents import AgentLayout, read_agent_layout
from testbed.backends.fabric.containment import FabricContainment, suggest
from testbed.backends.fabric.lifecycle import deferred_interrupts, destroy_run
from testbed.backends.fabric.plan import NodePlan, WiringPlan
from testbed.backends.fabric.ruleset import EGRESS_COUNTER
from testbed.backends.fabric.runtime import NodeCommand, NodeRuntime
from testbed.backends.fabric.wiring import parallel
from testbed.backends.ledger import Ledger, run_lock
from testbed.errors import BackendError, ToolMissingError
from testbed.kernel import Nft, named_netns_path
from testbed.model.topology import Topology
from testbed.policy import ContainmentState
from testbed.taps import Tap

__all__ = ["AGENT_MODULE", "FABRIC", "FabricDeployment"]

AGENT_MODULE = "testbed.agent"
"""The module an agent runs as (``python -m testbed.agent --config PATH``)."""
FABRIC = "fabric"
"""The node name ``netns_path`` accepts for the run's fabric namespace."""


class FabricDeployment(Deployment):
    """A live run of a fabric backend (from ``deploy`` or ``attach``)."""

    def __init__(self, runtime: NodeRuntime, topology: Topology, run_name: str,
                 plan: WiringPlan, ledger: Ledger) -> None:
        self.runtime = runtime
        self.topology = topology
        self.run_name = run_name
        self.plan = plan
        self.state_dir = ledger.directory
        self._ledger = ledger
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._torn_down = False
        self._containment = FabricContainment(topology, plan, run_name, ledger.directory,
                                              named_netns_path(plan.fabric_netns))

    # ---- where things are ------------------------------------------------------------------
    def _node(self, node: str) -> NodePlan:
        try:
            return self.plan.nodes[node]
        except KeyError:
            raise BackendError(f"no host or router {node!r} in run {self.run_name!r}"
                               + suggest(node, list(self.plan.nodes))) from None

    def netns_path(self, node: str) -> str:
        if node == FABRIC:
            return named_netns_path(self.plan.fabric_netns)
        return named_netns_path(self._node(node).netns)

    def interface_of(self, host: str) -> str:
        """The host's own interface name (inside its namespace)."""
        return self._node(host).links[0].interface

    # ---- lifecycle -------------------------------------------------------------------------
    def teardown(self, progress: Progress | None = None) -> None:
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
        with deferred_interrupts():
            self._stop_processes()
            self._containment.close()  # its socket inside the fabric would keep it alive
            if not self.state_dir.is_dir():  # destroyed meanwhile (`testbed down` elsewhere)
                destroy_run(self.runtime, self._ledger, progress)
                return
            with run_lock(self.run_name):
                destroy_run(self.runtime, self._ledger, progress)

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

    # ---- processes -------------------------------------------------------------------------
    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        if not argv:
            raise BackendError("empty command")
        return self.runtime.command(self._node(host), argv, interactive=True).argv

    def agent_argv(self, host: str, config_path: Path) -> list[str]:
        self._node(host)
        return [self.runtime.python, "-m", AGENT_MODULE, "--config", str(config_path)]

    def run(self, host: str, argv: Sequence[str], *, timeout: float = 30.0,
            check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        if not argv:
            raise BackendError("empty command")
        command = self.runtime.command(self._node(host), argv, interactive=input is not None)
        try:
            completed = subprocess.run(
                command.argv, input=input, capture_output=True, timeout=timeout, check=False,
                env=command.env, stdin=subprocess.DEVNULL if input is None else None)
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
        """Start ``argv`` inside ``host`` in its own process group (teardown kills the group).
        ``env`` adds to the program's environment."""
        if not argv:
            raise BackendError("empty command")
        return self._launch(self.runtime.command(self._node(host), argv, env=env), stdout, stderr)

    # ---- multiplexed agents ----------------------------------------------------------------
    @property
    def agent_layout(self) -> AgentLayout:
        """How this run's agents run (recorded at deploy time, after the pre-flight counted it):
        one process per host, or groups of hosts per process."""
        return read_agent_layout(self.state_dir)

    def spawn_agent_group(self, group_config: Path, *, stdout: int | None = subprocess.DEVNULL,
                          stderr: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        """Start a multiplexed agent process (``python -m testbed.agent --group PATH``) in the
        run's fabric namespace, which has no address: it sends only through sockets it makes
        inside its hosts' namespaces. Teardown ends it with the run's other processes."""
        argv = [self.runtime.python, "-m", AGENT_MODULE, "--group", str(group_config)]
        return self._launch(self.runtime.group_command(self.netns_path(FABRIC), argv),
                            stdout, stderr)

    def _launch(self, command: NodeCommand, stdout: int | None, stderr: int | None
                ) -> subprocess.Popen[bytes]:
        try:
            process = subprocess.Popen(command.argv, env=command.env, stdin=subprocess.DEVNULL,
                                       stdout=stdout, stderr=stderr, start_new_session=True)
        except FileNotFoundError as err:
            raise ToolMissingError(f"cannot run {err.filename}") from None
        with self._lock:
            self._processes = [p for p in self._processes if p.poll() is None]
            self._processes.append(process)
        return process

    # ---- containment -----------------------------------------------------------------------
    def containment(self) -> ContainmentState:
        return self._containment.state()

    def quarantine(self, host: str) -> ActionTiming:
        return self._containment.quarantine(host)

    def release(self, host: str) -> ActionTiming:
        return self._containment.release(host)

    def block(self, source: str, destination: str = "any", port: int | None = None,
              proto: str = "any") -> ActionTiming:
        return self._containment.block(source, destination, port, proto)

    def unblock(self, source: str, destination: str = "any", port: int | None = None,
                proto: str = "any") -> ActionTiming:
        return self._containment.unblock(source, destination, port, proto)

    def rate_limit(self, host: str, per_second: float) -> ActionTiming:
        return self._containment.rate_limit(host, per_second)

    def remove_rate_limit(self, host: str) -> ActionTiming:
        return self._containment.remove_rate_limit(host)

    def quarantine_drops(self) -> int:
        """Frames the fabric dropped at quarantined ports so far (for reports)."""
        return self._containment.quarantine_drops()

    # ---- observation -----------------------------------------------------------------------
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
