"""The planner profile on the brain: a held credential before any exploit, the most valuable
observed host first, never back to a host that gave a defence signal; and it spreads in the
simulator."""

from __future__ import annotations

import json
from pathlib import Path

from profile_support import simulate, write_lab

from testbed.agent.brain import Brain, Probe, WormView
from testbed.agent.config import BenignTarget, ExploitSpec, UserJob
from testbed.agent.events import TECHNIQUES

SMB = ExploitSpec("MOCK-SMB-1", "smb", 445, "tcp")
SQL = ExploitSpec("MOCK-SQL-1", "sql", 3306, "tcp")
IPP = ExploitSpec("MOCK-IPP-1", "ipp", 631, "tcp")
CIDRS = ("10.0.1.0/24", "10.0.2.0/24")
TRUSTED = "10.0.2.5"
PRINTER, DATABASE = "10.0.1.40", "10.0.2.30"
USERS = (UserJob(2.0, (BenignTarget(PRINTER, 631, "tcp", "ipp"),
                       BenignTarget(DATABASE, 3306, "tcp", "sql"))),)
VIEW = WormView("10.0.1.10", "10.0.1.0/24", CIDRS, (SMB, SQL, IPP), trusts=(TRUSTED,),
                users=USERS)


def answers(probe: Probe, now: float) -> str:
    return "not-vulnerable" if probe.target in (TRUSTED, PRINTER, DATABASE) else "unreachable"


def test_planner_takes_a_held_credential_before_any_exploit() -> None:
    brain = Brain(VIEW, "planner", {"rate": 10.0, "explore": "none"}, seed=1, start=0.0)
    log = simulate(brain, answers, 5.0)
    first = log[0][1]
    assert (first.target, first.tactic) == (TRUSTED, "hitlist")  # labelled a credential use
    credential = [i for i, (_, p, _) in enumerate(log) if p.target == TRUSTED]
    others = [i for i, (_, p, _) in enumerate(log) if p.target != TRUSTED]
    assert others and max(credential[:3]) < min(others)  # every credential move comes first


def test_planner_goes_for_the_most_valuable_host_it_has_seen() -> None:
    view = WormView(VIEW.address, VIEW.segment_cidr, CIDRS, VIEW.arsenal, users=USERS)
    brain = Brain(view, "planner", {"rate": 10.0, "explore": "none"}, seed=1, start=0.0)
    log = simulate(brain, answers, 5.0)
    assert (log[0][1].target, log[0][1].vuln) == (DATABASE, "MOCK-SQL-1")  # before the printer
    assert PRINTER in {p.target for _, p, _ in log}


def test_planner_avoids_a_host_that_gave_a_defence_signal() -> None:
    def guarded(probe: Probe, now: float) -> str:
        if probe.target == DATABASE:
            return "prohibited"  # the defence answered for the crown jewel
        return answers(probe, now)

    brain = Brain(VIEW, "planner", {"rate": 10.0}, seed=1, start=0.0)
    log = simulate(brain, guarded, 120.0)
    to_database = [p for _, p, _ in log if p.target == DATABASE]
    assert len(to_database) == 1
    assert brain.knowledge is not None and DATABASE in brain.knowledge.defended
    assert len(log) > 50  # it went on elsewhere (its own subnet, explore local)
    assert all(p.target != DATABASE for _, p, _ in log[1:] if p.tactic == "local")


def test_planner_never_explores_with_explore_none() -> None:
    view = WormView(VIEW.address, VIEW.segment_cidr, CIDRS, VIEW.arsenal)
    brain = Brain(view, "planner", {"rate": 10.0, "explore": "none"}, seed=1, start=0.0)
    assert simulate(brain, answers, 60.0) == []


def test_planner_spreads_in_the_simulator_credential_first(tmp_path: Path) -> None:
    from testbed.model import load_scenario
    from testbed.sim import run_simulation

    _, run_dir = run_simulation(load_scenario(write_lab(tmp_path, "planner")), seed=5,
                                out_dir=tmp_path / "run")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    infected = {e["host"] for e in events if e["type"] in ("wake", "infection")}
    assert infected >= {"ws-1", "files", "db", "ws-2"}
    first = next(e for e in events if e["type"] == "probe" and e["host"] == "ws-1")
    assert (first["target"], first["technique"]) == ("10.77.0.20", TECHNIQUES["valid-credentials"])
