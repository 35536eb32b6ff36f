"""Lifecycle of netns deployments: what exists while up, and that nothing exists afterwards.

Covers: routes only to topology CIDRs, no IPv6, forwarding only on routers, egress counters,
taps, processes killed at teardown, rollback of a failed deployment, ``kill -9`` of ``testbed up``
followed by ``testbed down --all``, an invalid topology deploying nothing, and the CLI round trip.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.backends import get_backend
from testbed.backends.fabric import lifecycle, wiring
from testbed.backends.fabric.plan import new_prefix
from testbed.backends.ledger import Ledger, list_ledgers
from testbed.errors import BackendError, ValidationError
from testbed.model import load_topology

Leftovers = Callable[[str], dict[str, list[str]]]


def run_cli(*args: str, env_dir: Path,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TESTBED_STATE_DIR": str(env_dir)}
    return subprocess.run([sys.executable, "-m", "testbed", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)


def in_node(deployment: Any, node: str, *argv: str) -> str:
    return deployment.run(node, list(argv)).stdout.decode()


def test_namespaces_hold_only_topology_routes_and_no_ipv6(
        deploy: Callable[..., Any], small_topology: str, leftovers: Leftovers) -> None:
    deployment = deploy(small_topology)
    topology = deployment.topology
    networks = [ipaddress.IPv4Network(n) for n in topology.cidrs]
    for node in [*topology.hosts, *topology.routers]:
        routes = in_node(deployment, node, "ip", "-4", "route", "show", "table", "all")
        for line in routes.splitlines():
            destination = line.split()[0]
            if destination in ("local", "broadcast"):
                continue  # kernel-owned local table entries of the node's own addresses
            assert destination != "default", (node, line)
            assert any(ipaddress.IPv4Network(destination).subnet_of(n) for n in networks), (
                node, line)
        assert in_node(deployment, node, "ip", "-6", "addr").strip() == "", node
        forwarding = in_node(deployment, node, "cat", "/proc/sys/net/ipv4/ip_forward").strip()
        assert forwarding == ("1" if node in topology.routers else "0"), node
    # Nothing in the root namespace carries the run's prefix; everything is in namespaces.
    found = leftovers(deployment.plan.prefix)
    assert found["root_links"] == [] and found["root_tables"] == []
    assert len(found["namespaces"]) == len(topology.hosts) + len(topology.routers) + 1


def test_egress_guard_counters_and_taps(deploy: Callable[..., Any], small_topology: str) -> None:
    deployment = deploy(small_topology)
    counters = deployment.egress_counters()
    assert set(counters) == set(deployment.topology.hosts) | set(deployment.topology.routers)
    assert set(counters.values()) == {0}
    # The guard really is there: its rule and named counter exist in a host's table.
    ruleset = in_node(deployment, "laptop", "nft", "list", "ruleset")
    assert "ip daddr != @topology_nets counter name \"egress_dropped\" drop" in ruleset
    fabric_links = subprocess.run(["ip", "-n", deployment.plan.fabric_netns, "-o", "link"],
                                  capture_output=True, text=True, check=True).stdout
    taps = deployment.taps()
    assert {t.segment for t in taps if t.kind == "segment"} == set(deployment.topology.segments)
    assert len([t for t in taps if t.kind == "router"]) == 4
    for tap in taps:
        assert tap.netns == deployment.plan.fabric_netns
        assert f" {tap.interface}:" in fabric_links or f" {tap.interface}@" in fabric_links


def test_run_spawn_and_teardown_kills_processes(
        deploy: Callable[..., Any], small_topology: str, leftovers: Leftovers) -> None:
    deployment = deploy(small_topology)
    assert "10.77.1.3" in in_node(deployment, "pc-1", "ip", "-4", "-o", "addr")
    with pytest.raises(BackendError, match="failed") as failure:
        deployment.run("pc-1", ["sh", "-c", "echo oops >&2; exit 3"])
    assert failure.value.exit_status == 3 and "oops" in failure.value.stderr
    with pytest.raises(BackendError, match="did you mean 'pc-1'"):
        deployment.run("pc-11", ["true"])
    process = deployment.spawn("pc-2", ["sleep", "300"])
    # A process started outside the handle (as by a deployer that died) is found by namespace.
    stray = subprocess.Popen(["ip", "netns", "exec", deployment.plan.nodes["db"].netns,
                              "sleep", "300"], start_new_session=True)
    time.sleep(0.2)
    prefix = deployment.plan.prefix
    deployment.teardown()
    assert process.wait(5) is not None and stray.wait(5) is not None
    assert not any(leftovers(prefix).values()), leftovers(prefix)
    deployment.teardown()  # idempotent


def test_failed_deployment_rolls_back(
        state_dir: Path, small_topology: str, leftovers: Leftovers,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from testbed.model.load_topology import topology_from_document
    from testbed.yamlsource import parse_yaml_text

    topology = topology_from_document(parse_yaml_text(small_topology, "<small>"))
    prefix = new_prefix()
    monkeypatch.setattr(lifecycle, "new_prefix", lambda: prefix)
    real = wiring.configure_node
    calls = []

    def failing(topology: Any, plan: Any, node: Any, path: str) -> None:
        calls.append(node.name)
        if len(calls) == 4:
            raise BackendError("injected failure")
        real(topology, plan, node, path)

    monkeypatch.setattr(wiring, "configure_node", failing)
    with pytest.raises(BackendError, match="injected failure"):
        get_backend("netns").deploy(topology, "doomed")
    assert not any(leftovers(prefix).values()), leftovers(prefix)
    assert list_ledgers() == []


def test_invalid_topology_deploys_nothing(state_dir: Path, write_topology: Callable[..., Path]
                                          ) -> None:
    path = write_topology("name: broken\nsegments:\n  a: {cidr: 10.99.0.0/24}\n"
                          "hosts:\n  h1: {segment: nowhere}\n")
    with pytest.raises(ValidationError):
        load_topology(path)
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    result = run_cli("up", str(path), "--name", "broken", env_dir=state_dir)
    assert result.returncode == 1
    assert f"{path}:5:" in result.stderr and "unknown segment 'nowhere'" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(state_dir.iterdir()) == []  # no ledger, no run directory
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert not [n for n in after - before if n.endswith("-h1")]


def test_kill_9_during_deploy_then_down_all_leaves_nothing(
        state_dir: Path, write_topology: Callable[..., Path], leftovers: Leftovers) -> None:
    path = write_topology("name: big\nsegments:\n  a: {cidr: 10.98.0.0/20}\n"
                          "  b: {cidr: 10.98.16.0/20}\n"
                          "groups:\n  x: {count: 700, segment: a}\n  y: {count: 700, segment: b}\n"
                          "routers:\n  r: {segments: [a, b], default: allow}\n")
    env = {**os.environ, "TESTBED_STATE_DIR": str(state_dir)}
    process = subprocess.Popen([sys.executable, "-m", "testbed", "up", str(path), "--name",
                                "victim", "-q"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    ledger_path = state_dir / "victim" / "ledger.json"
    prefix = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if prefix is None and ledger_path.exists():
            try:
                prefix = json.loads(ledger_path.read_text())["objects"]["plan"]["prefix"]
            except (ValueError, KeyError):
                pass
        if prefix is not None and len(leftovers(prefix)["namespaces"]) >= 50:
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert prefix is not None, "the deployer never wrote its ledger"
    assert Ledger.load("victim").status == "deploying", "killed too late to test a half deploy"
    assert leftovers(prefix)["namespaces"], "nothing was created before the kill"

    result = run_cli("down", "--all", env_dir=state_dir)
    assert result.returncode == 0, result.stderr
    assert "removed run 'victim'" in result.stdout
    assert not any(leftovers(prefix).values()), leftovers(prefix)
    assert list_ledgers() == []


def test_cli_round_trip(state_dir: Path, write_topology: Callable[..., Path],
                        small_topology: str, leftovers: Leftovers) -> None:
    path = write_topology(small_topology)
    up = run_cli("up", str(path), "--name", "roundtrip", "--json", env_dir=state_dir)
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["hosts"] == 6
    prefix = Ledger.load("roundtrip").objects["plan"]["prefix"]
    try:
        status = json.loads(run_cli("status", "--json", env_dir=state_dir).stdout)
        assert [row["name"] for row in status] == ["roundtrip"]
        assert run_cli("up", str(path), "--name", "roundtrip",
                           env_dir=state_dir).returncode == 3  # the name is taken
        shown = run_cli("exec", "roundtrip", "db", "--", "ip", "-4", "-o", "addr",
                            env_dir=state_dir)
        assert shown.returncode == 0 and "10.77.2.3/24" in shown.stdout
        assert run_cli("exec", "roundtrip", "db", "--", "sh", "-c", "exit 5",
                           env_dir=state_dir).returncode == 5
        detail = json.loads(run_cli("status", "roundtrip", "--json", env_dir=state_dir).stdout)
        assert len(detail["nodes"]) == 8 and detail["quarantined"] == []
        reach = run_cli("reach", "roundtrip", "--json", env_dir=state_dir)
        assert reach.returncode == 0, reach.stdout + reach.stderr
        assert json.loads(reach.stdout)["mismatches"] == []
    finally:
        down = run_cli("down", "roundtrip", env_dir=state_dir)
    assert down.returncode == 0, down.stderr
    assert not any(leftovers(prefix).values()), leftovers(prefix)
    assert run_cli("down", "roundtrip", env_dir=state_dir).returncode == 3
