"""Multiplexed agents on the netns backend (issue 17): many hosts' agents in one process, each
host's sockets made inside its own namespace.

- A connection made for a host by the multiplexed loop reaches its peer *from that host's own
  address*, across its segment's bridge (the host's fabric port counts the frames) and the
  router's policy: an allowed flow connects, a flow the router denies does not.
- A socket asked for outside any host's context is refused (nothing is made in the agent
  process's own namespace).
- A run's agents by default: one group process in the fabric namespace serves every host; the
  benign users' requests succeed where the policy allows them and fail where it denies them,
  each host writes its own ground truth, the stop file ends the group, and teardown leaves
  nothing. ``TESTBED_AGENTS=per-host`` keeps one process per host.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.agent import control
from testbed.agent.multiplex import HOST_NAMESPACE, NamespacedEventLoop
from testbed.backends.fabric import FabricDeployment
from testbed.errors import AgentError
from testbed.kernel import entered
from testbed.model import load_scenario
from testbed.runner.agent_configs import write_agent_configs
from testbed.runner.agents import AgentFleet

pytestmark = pytest.mark.privileged

ALLOWED_PORT = 445  # core: allow pc -> fileserver 445/tcp
DENIED_PORT = 3306  # nothing lets a pc reach the database


class PeerRecorder:
    """A TCP server inside a host's namespace that records the source address of every
    connection it accepts (plain sockets, no agent involved)."""

    def __init__(self, netns: str, address: str, port: int) -> None:
        with entered(netns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.peers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, (peer, _port) = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.peers.append(peer)
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture()
def recorder() -> Iterator[Callable[[str, str, int], PeerRecorder]]:
    made: list[PeerRecorder] = []

    def make(netns: str, address: str, port: int) -> PeerRecorder:
        made.append(PeerRecorder(netns, address, port))
        return made[-1]

    yield make
    for item in made:
        item.close()


def port_packets(deployment: FabricDeployment, host: str) -> int:
    """Frames through ``host``'s port on its segment's bridge (in the fabric namespace)."""
    port = deployment.plan.host_port(host)
    fabric = deployment.plan.fabric_netns
    output = subprocess.run(["ip", "-n", fabric, "-s", "-j", "link", "show", "dev", port],
                            capture_output=True, text=True, check=True).stdout
    stats = json.loads(output)[0]["stats64"]
    return int(stats["rx"]["packets"]) + int(stats["tx"]["packets"])


def connect_as(netns: str, address: str, port: int, timeout: float) -> str:
    """Connect to ``address:port`` for the host whose namespace is ``netns``, through the
    multiplexed loop, as an agent's Egress does (``asyncio.open_connection``); the outcome."""

    async def attempt() -> str:
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port),
                                                     timeout)
        except (OSError, TimeoutError) as err:
            return f"failed: {type(err).__name__}"
        local = writer.get_extra_info("sockname")[0]
        writer.close()
        return f"connected from {local}"

    descriptor = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        context = contextvars.copy_context()
        context.run(HOST_NAMESPACE.set, descriptor)  # as the group does for each host's agent
        with asyncio.Runner(loop_factory=NamespacedEventLoop) as runner:
            return runner.run(attempt(), context=context)
    finally:
        os.close(descriptor)


def test_a_multiplexed_connection_leaves_from_the_hosts_own_address_through_bridge_and_router(
        deploy: Callable[..., Any], recorder: Callable[[str, str, int], PeerRecorder],
        small_topology: str) -> None:
    deployment = deploy(small_topology)
    topology = deployment.topology
    pc, server, database = "pc-1", "fileserver", "db"
    pc_ip, server_ip, db_ip = (str(topology.hosts[h].ip) for h in (pc, server, database))
    allowed = recorder(deployment.netns_path(server), server_ip, ALLOWED_PORT)
    denied = recorder(deployment.netns_path(database), db_ip, DENIED_PORT)
    before = port_packets(deployment, pc)

    assert connect_as(deployment.netns_path(pc), server_ip, ALLOWED_PORT, 5.0) == \
        f"connected from {pc_ip}"
    deadline = time.monotonic() + 5  # the kernel completed the handshake; the recorder's
    while not allowed.peers and time.monotonic() < deadline:  # thread accepts a moment later
        time.sleep(0.05)
    assert allowed.peers == [pc_ip]  # the peer saw the host's own address
    assert port_packets(deployment, pc) > before  # it crossed pc-1's port on the office bridge

    outcome = connect_as(deployment.netns_path(pc), db_ip, DENIED_PORT, 1.5)
    assert outcome.startswith("failed"), outcome  # the core router's policy denies it
    assert denied.peers == []


def test_a_socket_outside_any_host_is_refused() -> None:
    async def attempt() -> None:
        await asyncio.open_connection("10.77.2.5", ALLOWED_PORT)

    with asyncio.Runner(loop_factory=NamespacedEventLoop) as runner, \
            pytest.raises(AgentError, match="no host namespace"):
        runner.run(attempt())


SCENARIO = """name: mux
topology: topology.yaml
duration_s: 60
worm: {profile: classic, patient_zero: laptop}
benign:
  users:
    - {hosts: pc-1, targets: fileserver, services: [smb], per_minute: 600}
    - {hosts: pc-2, targets: db, services: [sql], per_minute: 600}
"""


def run_agents(deploy: Callable[..., Any], tmp_path: Path, topology: str
               ) -> tuple[Any, AgentFleet, Path]:
    (tmp_path / "topology.yaml").write_text(topology)
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    scenario = load_scenario(tmp_path / "scenario.yaml")
    deployment = deploy(scenario.topology)
    configs = write_agent_configs(scenario, deployment.state_dir, seed=5,
                                  secret=secrets.token_bytes(32), ttl_s=120)
    fleet = AgentFleet(deployment, deployment.state_dir)
    fleet.start(configs)
    fleet.wait_ready(60)
    return deployment, fleet, deployment.state_dir


def benign_outcomes(state: Path, host: str) -> set[tuple[str, str]]:
    path = state / "hosts" / host / "events.jsonl"
    return {(event["target_host"], event["outcome"])
            for event in map(json.loads, path.read_text().splitlines())
            if event["type"] == "benign-request"}


def test_a_runs_agents_share_one_process_and_obey_the_policy(
        deploy: Callable[..., Any], tmp_path: Path, leftovers: Callable[[str], Any],
        small_topology: str) -> None:
    deployment, fleet, state = run_agents(deploy, tmp_path, small_topology)
    assert deployment.agent_layout.multiplexed
    assert len(fleet.pids) == 1 and len(fleet.processes) == len(deployment.topology.hosts)
    # the group process lives in the fabric namespace (no address), not in any host's
    fabric = os.stat(deployment.netns_path("fabric"))
    own = os.stat(f"/proc/{fleet.pids[0]}/ns/net")
    assert (own.st_dev, own.st_ino) == (fabric.st_dev, fabric.st_ino)
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if ("fileserver", "ok") in benign_outcomes(state, "pc-1") and \
                    ("db", "failed") in benign_outcomes(state, "pc-2"):
                break
            time.sleep(0.25)
    finally:
        fleet.stop()
    assert ("fileserver", "ok") in benign_outcomes(state, "pc-1")
    assert ("db", "ok") not in benign_outcomes(state, "pc-2")  # the router denies it
    assert ("db", "failed") in benign_outcomes(state, "pc-2")
    for host in deployment.topology.hosts:  # ground truth stays per host
        lines = (state / "hosts" / host / "events.jsonl").read_text().splitlines()
        assert {json.loads(line)["host"] for line in lines} == {host}
        assert json.loads(lines[-1])["type"] == "stop"
    assert all(process.poll() == 0 for process in fleet.processes.values())
    assert set(deployment.egress_counters().values()) == {0}
    prefix = deployment.plan.prefix
    deployment.teardown()
    assert leftovers(prefix) == {"namespaces": [], "root_links": [], "root_tables": []}


def test_per_host_agents_remain_available(deploy: Callable[..., Any], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          small_topology: str) -> None:
    monkeypatch.setenv("TESTBED_AGENTS", "per-host")
    deployment, fleet, state = run_agents(deploy, tmp_path, small_topology)
    try:
        assert not deployment.agent_layout.multiplexed
        assert len(fleet.pids) == len(deployment.topology.hosts)
        assert (state / "agents" / "pc-1.json").is_file()
    finally:
        fleet.stop()
    control.clear(state)
