"""The mimic profile on the brain: only its host's benign peers, on their services, at no more
than its users' rate with their exponential timing, payload encoded; silent without users; and
it spreads in the simulator along the users' edges."""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path

import pytest
from profile_support import LAB_CHAIN, simulate, write_lab

from testbed.agent.brain import Brain, Probe, WormView
from testbed.agent.config import BackupJob, BenignTarget, ExploitSpec, UserJob

SMB = ExploitSpec("MOCK-SMB-1", "smb", 445, "tcp")
HTTP = ExploitSpec("MOCK-HTTP-1", "http", 80, "tcp")
SQL = ExploitSpec("MOCK-SQL-1", "sql", 3306, "tcp")
CIDRS = ("10.0.1.0/24", "10.0.2.0/24")
FILES = BenignTarget("10.0.2.5", 445, "tcp", "smb")
INTRANET = BenignTarget("10.0.2.6", 80, "tcp", "http")
PRINTER = BenignTarget("10.0.1.40", 631, "tcp", "ipp")  # no exploit for its service
USERS = (UserJob(6.0, (FILES, INTRANET)), UserJob(3.0, (PRINTER,)))
USERS_RATE = 9.0 / 60.0  # requests per second, together
VIEW = WormView("10.0.1.10", "10.0.1.0/24", CIDRS, (SMB, HTTP, SQL), users=USERS)


def never_infected(probe: Probe, now: float) -> str:
    return "timeout"  # nothing settles: it keeps trying, so its pace is visible


def test_mimic_contacts_only_its_users_peers_on_their_services() -> None:
    brain = Brain(VIEW, "mimic", {}, seed=1, start=0.0)
    log = simulate(brain, never_infected, 3600.0)
    assert len(log) > 100
    used = {(t.address, t.port, t.proto) for job in USERS for t in job.targets}
    assert {(p.target, p.port, p.proto) for _, p, _ in log} <= used
    assert {(p.target, p.vuln) for _, p, _ in log} == {("10.0.2.5", "MOCK-SMB-1"),
                                                      ("10.0.2.6", "MOCK-HTTP-1")}
    assert {p.encoding for _, p, _ in log} == {"encoded"}
    assert {p.tactic for _, p, _ in log} == {"mimic"}


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_mimic_never_exceeds_its_users_rate_and_keeps_their_timing(share: float) -> None:
    brain = Brain(VIEW, "mimic", {"share": share, "rate": 5.0}, seed=2, start=0.0)
    hours = 4 * 3600.0
    log = simulate(brain, never_infected, hours)
    # the printer's share of requests (a third) carries no exploit: the worm stays silent there
    expected = share * USERS_RATE * hours * 2 / 3
    assert len(log) <= 1.1 * expected
    assert len(log) >= 0.85 * expected
    gaps = [b - a for (a, _, _), (b, _, _) in itertools.pairwise(log)]
    cv = statistics.pstdev(gaps) / statistics.fmean(gaps)
    assert 0.8 < cv < 1.25  # exponential gaps (coefficient of variation 1), not a metronome


def test_mimic_rate_parameter_is_a_ceiling() -> None:
    brain = Brain(VIEW, "mimic", {"rate": 0.01}, seed=2, start=0.0)
    log = simulate(brain, never_infected, 20000.0)
    assert len(log) <= 0.01 * 20000.0 * 1.2


def test_mimic_stops_once_every_peer_is_settled_and_is_silent_without_users() -> None:
    brain = Brain(VIEW, "mimic", {}, seed=1, start=0.0)
    log = simulate(brain, lambda p, t: "not-vulnerable", 3600.0)
    assert len(log) == 2  # one verdict per (peer, exploit), then nothing left to try
    lonely = Brain(WormView("10.0.1.10", "10.0.1.0/24", CIDRS, (SMB,)), "mimic", {}, seed=1,
                   start=0.0)
    assert simulate(lonely, never_infected, 3600.0) == []


def test_a_backup_server_mimics_its_round() -> None:
    targets = tuple(BenignTarget(f"10.0.2.{n}", 445, "tcp", "smb") for n in range(1, 11))
    view = WormView("10.0.2.200", "10.0.2.0/24", CIDRS, (SMB,),
                    backup=BackupJob(60.0, targets))
    brain = Brain(view, "mimic", {}, seed=4, start=0.0)
    log = simulate(brain, never_infected, 600.0)
    assert [p.target for _, p, _ in log[:10]] == [t.address for t in targets]
    assert len(log) <= 1.3 * 10 / 60.0 * 600.0


def test_mimic_spreads_in_the_simulator_along_the_users_edges(tmp_path: Path) -> None:
    from testbed.model import load_scenario
    from testbed.sim import run_simulation

    _, run_dir = run_simulation(load_scenario(write_lab(tmp_path, "mimic")), seed=5,
                                out_dir=tmp_path / "run")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    infected = {e["host"] for e in events if e["type"] in ("wake", "infection")}
    assert infected == LAB_CHAIN
    users = {("10.77.0.11", "10.77.0.20", 445), ("10.77.0.20", "10.77.0.30", 3306)}
    address = {"ws-1": "10.77.0.11", "files": "10.77.0.20", "db": "10.77.0.30"}
    probes = {(address[e["host"]], e["target"], e["port"]) for e in events
              if e["type"] == "probe"}
    assert probes and probes <= users
