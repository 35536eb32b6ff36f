"""The run's agents as processes: started inside their hosts, waited for, stopped.

Owns: spawning the agents through the deployment (``Deployment.agent_argv`` says how to start one
host's agent there; a fabric deployment that multiplexes agents starts one process per group
config instead, ``FabricDeployment.spawn_agent_group``), waiting until every host's agent reports
ready (giving up early when its process has already exited, with the tail of its log in the
error), and stopping them all (the agents' stop file, a grace period, then SIGTERM and SIGKILL
of what is left).

Must not touch: what the agents do (that is their config, ``testbed.runner.agent_configs``) or
their ground truth.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

from testbed.agent import control
from testbed.backends.base import Deployment
from testbed.backends.fabric import FabricDeployment
from testbed.errors import RunError
from testbed.runner.agent_configs import group_config_path

__all__ = ["AGENT_STOP_GRACE_S", "READY_TIMEOUT_S", "AgentFleet"]

READY_TIMEOUT_S = 30.0
AGENT_STOP_GRACE_S = 3.0


class AgentFleet:
    """The agents of one run: ``start``, then ``wait_ready``; ``stop`` is safe at any point."""

    def __init__(self, deployment: Deployment, state_dir: Path) -> None:
        self.deployment = deployment
        self.state_dir = state_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # host -> its agent's process
        self._group_of: dict[str, Path] = {}  # host -> its group config (multiplexed agents)

    def log_path(self, host: str) -> Path:
        group = self._group_of.get(host)
        if group is not None:  # one log per multiplexed process, beside its group config
            return group.with_suffix(".log")
        return self.state_dir / "hosts" / host / "agent.log"

    def start(self, configs: dict[str, Path]) -> None:
        """Spawn every host's agent, its output going to ``hosts/<host>/agent.log``; with
        multiplexed agents (``configs`` maps the hosts to the group configs of the recorded
        layout), one process per group, its output going to ``agents/group-<n>.log``."""
        if isinstance(self.deployment, FabricDeployment):
            layout = self.deployment.agent_layout
            groups = {group_config_path(self.state_dir, n) for n in range(len(layout.groups))}
            if layout.multiplexed and set(configs.values()) <= groups:
                self._start_groups(configs, self.deployment)
                return
        for host, config_path in configs.items():
            log_path = self.log_path(host)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            argv = self.deployment.agent_argv(host, config_path)
            # The agent gets its own copy of the descriptor; closing ours at once keeps the
            # runner's descriptor count flat however many hosts there are.
            with log_path.open("ab") as log:
                self.processes[host] = self.deployment.spawn(host, argv, stdout=log.fileno(),
                                                             stderr=log.fileno())

    def _start_groups(self, configs: dict[str, Path], deployment: FabricDeployment) -> None:
        started: dict[Path, subprocess.Popen[bytes]] = {}
        for host, group in configs.items():
            self._group_of[host] = group
            if group not in started:
                with group.with_suffix(".log").open("ab") as log:
                    started[group] = deployment.spawn_agent_group(
                        group, stdout=log.fileno(), stderr=log.fileno())
            self.processes[host] = started[group]

    @property
    def pids(self) -> list[int]:
        """The agent processes (one per host, or one per group of hosts)."""
        return sorted({process.pid for process in self.processes.values()})

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Return when every agent is ready; raise ``RunError`` naming those that are not."""
        hosts = list(self.processes)
        deadline = time.monotonic() + timeout
        while True:
            hosts = control.wait_ready(self.state_dir, hosts, 0.5)
            if not hosts:
                return
            exited = [host for host in hosts if self.processes[host].poll() is not None]
            if exited:
                raise RunError(self._not_ready_message(exited, timeout))
            if time.monotonic() >= deadline:
                raise RunError(self._not_ready_message(hosts, timeout))

    def wake(self, hosts: list[str], at_monotonic: float | None = None) -> None:
        """Wake ``hosts`` (patient zero) at ``at_monotonic`` (``time.monotonic()``), or at once."""
        for host in hosts:
            control.wake(self.state_dir, host, at_monotonic)

    def stop(self, grace: float = AGENT_STOP_GRACE_S) -> None:
        """Ask every agent to stop; after ``grace`` seconds terminate, then kill, the rest."""
        with contextlib.suppress(OSError):
            control.stop_all(self.state_dir)
        processes = list({process.pid: process for process in self.processes.values()}.values())
        deadline = time.monotonic() + grace
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1.0)
            if process.poll() is None:
                process.kill()

    def _not_ready_message(self, hosts: list[str], timeout: float) -> str:
        lines = [f"{len(hosts)} agent(s) did not become ready (exited, or not within "
                 f"{timeout:g}s): "
                 f"{', '.join(hosts[:8])}{' ...' if len(hosts) > 8 else ''}"]
        for host in hosts[:3]:
            with contextlib.suppress(OSError):
                tail = self.log_path(host).read_text(errors="replace").strip().splitlines()[-5:]
                if tail:
                    lines.append(f"  {host}: " + "\n    ".join(tail))
        return "\n".join(lines)
