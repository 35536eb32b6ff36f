"""The recon profile on the brain: it contacts only hosts its host has seen, makes no failed
first contact unless given a guess budget (and then keeps TRW's walk below the alarm), and it
spreads in the simulator along what its hosts observe."""

from __future__ import annotations

import json
from pathlib import Path

from profile_support import LAB_CHAIN, first_contacts, simulate, trw_peak, write_lab

from testbed.agent.brain import Brain, Probe, WormView
from testbed.agent.config import BenignTarget, ExploitSpec, UserJob
from testbed.agent.knowledge import CONNECTED
from testbed.agent.neighbours import read_neighbours

SMB = ExploitSpec("MOCK-SMB-1", "smb", 445, "tcp")
HTTP = ExploitSpec("MOCK-HTTP-1", "http", 80, "tcp")
CIDRS = ("10.0.1.0/24", "10.0.2.0/24")
USED = ("10.0.2.5", "10.0.2.6")  # its host's users reach these on smb
NEIGHBOURS = tuple(f"10.0.1.{n}" for n in range(20, 30))
PEERS = ("10.0.2.40", "10.0.2.41")
VIEW = WormView("10.0.1.10", "10.0.1.0/24", CIDRS, (SMB, HTTP),
                users=(UserJob(2.0, tuple(BenignTarget(a, 445, "tcp", "smb") for a in USED)),))


def lan(probe: Probe, now: float) -> str:
    """Every seen host runs http only; the used servers run smb too; the rest is dark."""
    if probe.target in USED and probe.port == 445:
        return "not-vulnerable"
    if probe.target in USED + NEIGHBOURS + PEERS:
        return "not-vulnerable" if probe.port == 80 else "refused"
    return "unreachable"


def observed_brain(params: dict[str, float]) -> Brain:
    brain = Brain(VIEW, "recon", params, seed=3, start=0.0)
    for address in (*NEIGHBOURS, "192.0.2.9", VIEW.address):  # outside / ourselves: ignored
        brain.see_neighbour(address)
    for address in PEERS:
        brain.see_peer(address)
    return brain


def test_recon_never_probes_an_address_it_has_not_seen() -> None:
    brain = observed_brain({"rate": 20.0, "guess_budget": 3})
    log = simulate(brain, lan, 60.0)
    targets = {probe.target for _, probe, _ in log}
    assert targets <= set(USED + NEIGHBOURS + PEERS)
    assert targets - set(USED)  # with a budget it also guesses on hosts it saw
    assert all(outcome != "unreachable" for _, _, outcome in log)  # no dark address


def test_strict_recon_makes_no_failed_first_contact() -> None:
    brain = observed_brain({"rate": 20.0})  # guess_budget 0
    log = simulate(brain, lan, 60.0)
    firsts = first_contacts(log)
    assert {probe.target for probe, _ in firsts} == set(USED)  # only known-open services
    assert all(outcome in CONNECTED for _, outcome in firsts)
    # a host that answered is no longer a first contact: its other services get tried too
    assert {(p.target, p.port) for _, p, _ in log} == {(a, port) for a in USED
                                                       for port in (445, 80)}
    assert brain.knowledge is not None and brain.knowledge.first_failures == 0


def test_guesses_keep_trw_walk_below_its_alarm() -> None:
    def hostile(probe: Probe, now: float) -> str:  # every guess fails
        return "not-vulnerable" if probe.target in USED and probe.port == 445 else "refused"

    for budget in (1, 2, 3):
        brain = observed_brain({"rate": 50.0, "guess_budget": budget})
        log = simulate(brain, hostile, 30.0)
        assert trw_peak(log) <= budget < 4
        assert brain.knowledge is not None and brain.knowledge.first_failures >= 1


def test_neighbour_table_reader_keeps_complete_entries_and_drops_gateways(tmp_path: Path
                                                                          ) -> None:
    arp = tmp_path / "arp"
    arp.write_text(
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "10.77.0.20       0x1         0x2         02:00:00:00:00:14     *        eth0\n"
        "10.77.0.99       0x1         0x0         00:00:00:00:00:00     *        eth0\n"
        "10.77.0.1        0x1         0x2         02:00:00:00:00:01     *        eth0\n")
    route = tmp_path / "route"
    route.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "eth0\t00004E0A\t01004D0A\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert read_neighbours(arp, route) == ["10.77.0.20"]
    assert read_neighbours(tmp_path / "missing", route) == []


def test_recon_spreads_in_the_simulator_without_a_failed_first_contact(tmp_path: Path
                                                                       ) -> None:
    from testbed.model import load_scenario
    from testbed.sim import run_simulation

    _, run_dir = run_simulation(load_scenario(write_lab(tmp_path, "recon")), seed=5,
                                out_dir=tmp_path / "run")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    infected = {e["host"] for e in events if e["type"] in ("wake", "infection")}
    assert infected == LAB_CHAIN
    contacted: set[tuple[str, str]] = set()
    for event in events:
        if event["type"] == "probe":
            pair = (event["host"], event["target"])
            if pair not in contacted:
                contacted.add(pair)
                assert event["outcome"] in CONNECTED, event


def test_the_simulator_feeds_neighbours_as_the_kernel_table_holds_them(tmp_path: Path) -> None:
    from testbed.model import load_scenario
    from testbed.sim.engine import Simulation
    from testbed.sim.timing import load_timing

    scenario = load_scenario(write_lab(tmp_path, "recon", duration=60.0))
    simulation = Simulation(scenario, seed=5, timing=load_timing(), run_dir=tmp_path,
                            duration=60.0, wall_base=0.0, run_name="lab")
    simulation.run()
    address = {h.name: str(h.ip) for h in scenario.topology.hosts.values()}
    index = {h.name: i for i, h in enumerate(simulation.hosts)}
    # users: ws-1 -> files, files -> db, ws-2 -> printer; each end learns the other (the
    # simulator keeps tables only for hosts that can wake: the printer has no vulnerability)
    assert set(simulation.neighbours[index["files"]]) == {address["ws-1"], address["db"]}
    assert set(simulation.neighbours[index["ws-2"]]) == {address["printer"]}
    assert set(simulation.neighbours[index["db"]]) == {address["files"]}
