"""The agent on the netns backend: real namespaces, real policy, real sockets.

- smb-flat: a classic worm from the launch pad infects every vulnerable host the policy lets it
  reach (the expectation is computed from ``testbed.policy.decide_flow``, not hard-coded);
- smb-segmented: it never crosses a rule that denies it: every probe that got an answer and
  every infection was allowed by the policy, and nothing outside the expectation falls;
- nmap from a host inside a topology sees every mock service kind as open, and identifies some.

Each deployment uses its own run name under a temporary TESTBED_STATE_DIR; agents run at a high
worm rate with short timeouts so each test takes tens of seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from testbed.agent import control
from testbed.agent.config import write_config
from testbed.model import Scenario, Topology, load_scenario
from testbed.policy import decide_flow
from testbed.runner.agent_configs import agent_command, build_agent_configs

REPO = Path(__file__).resolve().parents[2]
PROBE_CONNECTED = ("infected", "not-vulnerable", "rejected", "refused", "ok")


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))


def write_scenario(tmp_path: Path, topology: Path | str, worm: str, name: str) -> Scenario:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ntopology: {topology}\nduration_s: 120\nworm: {worm}\n")
    return load_scenario(path)


@contextmanager
def outbreak(scenario: Scenario, run_name: str) -> Iterator[tuple[Any, Path]]:
    """Deploy, start one agent per host (fast timeouts for the test), yield, stop, tear down."""
    from testbed.backends import get_backend

    with get_backend("netns").deploy(scenario.topology, run_name) as deployment:
        state = deployment.state_dir
        control.clear(state)
        configs = build_agent_configs(scenario, state, seed=11, secret=os.urandom(32), ttl_s=180)
        processes = {}
        for host, config in configs.items():
            worm = dataclasses.replace(config.worm, connect_timeout_s=0.5, reply_timeout_s=1.0,
                                       max_in_flight=128)
            path = state / "agents" / f"{host}.json"
            write_config(path, dataclasses.replace(config, worm=worm))
            processes[host] = deployment.spawn(host, agent_command(path),
                                               stderr=subprocess.PIPE)
        try:
            not_ready = control.wait_ready(state, list(configs), 60.0)
            assert not_ready == [], {h: processes[h].poll() for h in not_ready}
            yield deployment, state
        finally:
            control.stop_all(state)
            failures = {}
            for host, process in processes.items():
                try:
                    status = process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    status = process.wait()
                if status != 0:
                    failures[host] = (status, process.stderr.read()[-400:] if process.stderr
                                      else b"")
            assert failures == {}
        assert set(deployment.egress_counters().values()) == {0}  # nothing tried to leave


def events(state: Path, host: str) -> list[dict[str, Any]]:
    """The host's complete event lines so far: a live agent may be midway through writing the
    last one (everything after the last newline)."""
    path = state / "hosts" / host / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line]


def infected_hosts(state: Path, topology: Topology) -> set[str]:
    return {host for host in topology.hosts
            if any(e["type"] in ("wake", "infection") for e in events(state, host))}


def reachable_susceptible(topology: Topology, patient_zero: str) -> set[str]:
    """Hosts a worm can infect from ``patient_zero``, hop by hop, under decide_flow."""
    infected = {patient_zero}
    changed = True
    while changed:
        changed = False
        for host in topology.hosts.values():
            if host.name in infected:
                continue
            for service in host.services:
                open_vulns = [v for v in service.vulns if host.is_vulnerable_to(v)]
                if open_vulns and any(decide_flow(topology, topology.hosts[source], host.ip,
                                                  service.port, service.proto)
                                      for source in infected):
                    infected.add(host.name)
                    changed = True
                    break
    return infected


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


def test_classic_worm_infects_every_reachable_vulnerable_host_on_smb_flat(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, REPO / "topologies" / "smb-flat.yaml",
                              "{profile: classic, patient_zero: lobby-printer, rate: 200}",
                              "agent-flat")
    topology = scenario.topology
    expected = reachable_susceptible(topology, "lobby-printer")
    assert len(expected) > 10  # the flat network exposes most of the business
    with outbreak(scenario, f"agtflat{os.getpid()}") as (_, state):
        control.wake(state, "lobby-printer")
        wait_until(lambda: infected_hosts(state, topology) >= expected, 120.0)
        infected = infected_hosts(state, topology)
    assert infected == expected
    for host in set(topology.hosts) - expected:  # patched or without a vulnerability
        assert not topology.hosts[host].susceptible or host not in infected


def test_worm_never_crosses_a_denying_rule_on_smb_segmented(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, REPO / "topologies" / "smb-segmented.yaml",
                              "{profile: classic, patient_zero: lobby-printer, rate: 200}",
                              "agent-segmented")
    topology = scenario.topology
    expected = reachable_susceptible(topology, "lobby-printer")
    assert expected < {h.name for h in topology.hosts.values() if h.susceptible}
    with outbreak(scenario, f"agtseg{os.getpid()}") as (_, state):
        control.wake(state, "lobby-printer")
        wait_until(lambda: infected_hosts(state, topology) >= expected, 60.0)
        time.sleep(10.0)  # let the infected devices keep trying to get out
        infected = infected_hosts(state, topology)
        every = {host: events(state, host) for host in topology.hosts}
    assert infected == expected
    address_of = {str(h.ip): h for h in topology.hosts.values()}
    # A router's own interface addresses answer for themselves (RST from the router's input
    # path): that is not crossing the router, so those probes are left out.
    router_addresses = {str(a) for r in topology.routers.values() for a in r.interfaces.values()}
    crossing_attempts = 0
    for host, log in every.items():
        for event in log:
            if event["type"] == "probe" and event["target"] not in router_addresses:
                verdict = decide_flow(topology, topology.hosts[host], event["target"],
                                      event["port"], event["proto"])
                if event["outcome"] in PROBE_CONNECTED:
                    assert verdict, (host, event["target"], event["port"], event["outcome"])
                elif not verdict:
                    crossing_attempts += 1
            if event["type"] == "infection":
                parent = address_of[event["source"]]
                assert decide_flow(topology, parent, topology.hosts[host].ip, event["port"],
                                   event["proto"]), event
    assert crossing_attempts > 100  # it did try to cross, many times


def test_nmap_inside_the_topology_sees_every_mock_service_open(tmp_path: Path) -> None:
    from testbed.model.spec import DEFAULT_PORTS

    services = ", ".join(f"{{name: {kind}}}" for kind in DEFAULT_PORTS)
    topology = tmp_path / "nmap-topology.yaml"
    topology.write_text(f"""
name: agent-nmap
segments: {{lan: {{cidr: 10.231.0.0/24}}}}
hosts:
  box: {{segment: lan, ip: 10.231.0.10, services: [{services}]}}
  scanner: {{segment: lan, ip: 10.231.0.20, services: []}}
""")
    scenario = write_scenario(tmp_path, topology, "{profile: classic, patient_zero: scanner}",
                              "agent-nmap")
    tcp_ports = sorted(port for port, proto in DEFAULT_PORTS.values() if proto == "tcp")
    target = "10.231.0.10"
    assert scenario.topology.contains_address(target)
    with outbreak(scenario, f"agtnmap{os.getpid()}") as (deployment, _):
        connect = deployment.run("scanner", ["nmap", "-n", "-Pn", "-sT", "-p",
                                             ",".join(map(str, tcp_ports)), target], timeout=60)
        udp = deployment.run("scanner", ["nmap", "-n", "-Pn", "-sU", "-p", "1194", target],
                             timeout=60)
        versions = deployment.run("scanner", ["nmap", "-n", "-Pn", "-sT", "-sV",
                                              "--version-light", "-p", "21,22,80,3306", target],
                                  timeout=120)
    connect_text = connect.stdout.decode()
    for port in tcp_ports:
        assert re.search(rf"^{port}/tcp\s+open\s", connect_text, re.MULTILINE), connect_text
    # an answer from the mock OpenVPN, not "open|filtered"
    assert re.search(r"^1194/udp\s+open\s", udp.stdout.decode(), re.MULTILINE)
    version_text = versions.stdout.decode()
    for identified in ("vsftpd 3.0.3", "OpenSSH 9.2p1", "Apache httpd 2.4.57", "MySQL 8.0.35"):
        assert identified in version_text, version_text
