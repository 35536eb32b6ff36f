"""The new worm profiles really spread on netns: real namespaces, real sockets, the agents'
own benign users, the hosts' real ARP tables. Infection is the mock services' state change on
an accepted token, read from the agents' ground truth.

The lab is the one the unit tests simulate (tests/unit/profile_support.py): benign users chain
ws-1 -> files -> db, ws-1 holds the file server's credentials. recon and mimic must take exactly
that chain (and recon without one failed first contact), the planner and the adaptive worm at
least that chain.
"""

from __future__ import annotations

import contextvars
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from profile_support import LAB_CHAIN, write_lab
from test_agent_netns import events, infected_hosts, outbreak, wait_until

from testbed.agent import control, multiplex
from testbed.agent.knowledge import CONNECTED
from testbed.agent.neighbours import read_neighbours
from testbed.backends.base import Deployment
from testbed.model import load_scenario


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))


@pytest.mark.parametrize(("profile", "exact"), [("recon", True), ("mimic", True),
                                                ("planner", False), ("adaptive", False)])
def test_profile_spreads_on_netns(tmp_path: Path, profile: str, exact: bool) -> None:
    scenario = load_scenario(write_lab(tmp_path, profile, rate=5.0))
    topology = scenario.topology
    with outbreak(scenario, f"prof{profile[:3]}{os.getpid()}") as (_, state):
        control.wake(state, "ws-1")
        wait_until(lambda: infected_hosts(state, topology) >= LAB_CHAIN, 90.0)
        if exact:
            time.sleep(5.0)  # room to overreach, were it going to
        infected = infected_hosts(state, topology)
        every = {host: events(state, host) for host in topology.hosts}
    if exact:
        assert infected == LAB_CHAIN
    else:
        assert infected >= LAB_CHAIN
    if profile == "recon":  # no first contact of the worm failed
        contacted: set[tuple[str, str]] = set()
        for host, log in every.items():
            for event in log:
                if event["type"] == "probe" and (host, event["target"]) not in contacted:
                    contacted.add((host, event["target"]))
                    assert event["outcome"] in CONNECTED, (host, event)
    if profile == "mimic":  # only its users' peers, on their services
        users = {("ws-1", "10.77.0.20", 445), ("files", "10.77.0.30", 3306)}
        probes = {(host, e["target"], e["port"]) for host, log in every.items() for e in log
                  if e["type"] == "probe"}
        assert probes and probes <= users


def test_netns_arp_tables_hold_what_the_simulator_feeds_recon(tmp_path: Path) -> None:
    """The neighbour tables the agents read on netns equal the ones the simulator derives
    (on-link pairs whose ARP resolution succeeded, both ends), once every user has worked."""
    from testbed.sim.engine import Simulation
    from testbed.sim.timing import load_timing

    scenario = load_scenario(write_lab(tmp_path, "recon", duration=60.0))
    simulation = Simulation(scenario, seed=5, timing=load_timing(), run_dir=tmp_path,
                            duration=60.0, wall_base=0.0, run_name="lab")
    simulation.run()
    # the simulator keeps the tables of the hosts that can wake (all but the printer)
    expected = {simulation.hosts[index].name: set(table)
                for index, table in simulation.neighbours.items()}
    assert set(expected) == {"ws-1", "ws-2", "files", "db"}
    assert expected["ws-2"] == {"10.77.0.40"} and expected["files"] == {"10.77.0.11",
                                                                       "10.77.0.30"}
    read = [sys.executable, "-c", "from testbed.agent.neighbours import read_neighbours; "
                                  "print(' '.join(read_neighbours()))"]

    def tables(deployment: Deployment) -> dict[str, set[str]]:
        return {host: set(deployment.run(host, read, timeout=30).stdout.decode().split())
                for host in expected}

    def multiplexed_tables(deployment: Deployment) -> dict[str, set[str]]:
        """The same tables read as a multiplexed agent reads them: this thread enters each
        host's namespace (``HOST_NAMESPACE``) only to read, then comes home."""
        found = {}
        for host in expected:
            descriptor = os.open(deployment.netns_path(host), os.O_RDONLY | os.O_CLOEXEC)
            try:
                context = contextvars.copy_context()
                context.run(multiplex.HOST_NAMESPACE.set, descriptor)
                found[host] = set(context.run(read_neighbours))
            finally:
                os.close(descriptor)
        return found

    home = os.stat("/proc/thread-self/ns/net").st_ino
    with outbreak(scenario, f"profarp{os.getpid()}") as (deployment, _):
        wait_until(lambda: tables(deployment) == expected, 60.0)
        found = tables(deployment)
        multiplexed = multiplexed_tables(deployment)
    assert found == expected
    assert multiplexed == expected
    assert os.stat("/proc/thread-self/ns/net").st_ino == home  # back in our own namespace
