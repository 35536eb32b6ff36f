"""The adaptive profile as a learner over every tactic: it finds the tactic that pays (here its
host's benign peers: mimic) within the outbreak, its weights cover every arm and travel as
numbers in a token, offspring start from them; and it spreads in the simulator."""

from __future__ import annotations

import json
from pathlib import Path

from profile_support import simulate, write_lab

from testbed.agent.brain import TACTIC_ARMS, Brain, Probe, WormView, arm_names
from testbed.agent.config import BenignTarget, ExploitSpec, UserJob
from testbed.agent.protocol import MAX_WEIGHTS, make_exploit, parse_weights

SMB = ExploitSpec("MOCK-SMB-1", "smb", 445, "tcp")
CIDRS = ("10.0.1.0/24", "10.0.2.0/24")
SERVERS = tuple(BenignTarget(f"10.0.2.{n}", 445, "tcp", "smb") for n in range(1, 61))
VIEW = WormView("10.0.1.10", "10.0.1.0/24", CIDRS, (SMB,), users=(UserJob(6.0, SERVERS),))


def only_users_peers_fall(probe: Probe, now: float) -> str:
    """Its users' servers are vulnerable; everything else is dark."""
    servers = {t.address for t in SERVERS}
    return "infected" if probe.target in servers else "unreachable"


def test_every_tactic_is_an_arm_of_the_bandit() -> None:
    assert {"recon", "mimic", "planned"} <= set(TACTIC_ARMS)
    assert arm_names((SMB,)) == (*TACTIC_ARMS, SMB.key)


def test_adaptive_learns_within_the_outbreak_that_its_users_peers_pay() -> None:
    brain = Brain(VIEW, "adaptive", {"rate": 5.0, "epsilon": 0.1}, seed=3, start=0.0)
    log = simulate(brain, only_users_peers_fall, 10.0)  # before its users' peers run out
    tactics = [p.tactic for _, p, _ in log if p.vuln]
    assert brain.values["mimic"] > max(brain.values[arm] for arm in ("uniform", "sequential"))
    late = tactics[len(tactics) // 2:]
    assert sum(t in ("mimic", "recon", "planned") for t in late) / len(late) > 0.6
    infected = {p.target for _, p, o in log if o == "infected"}
    assert len(infected) >= 25


def test_weights_of_every_arm_travel_as_numbers_and_are_inherited() -> None:
    parent = Brain(VIEW, "adaptive", {"rate": 5.0}, seed=3, start=0.0)
    simulate(parent, only_users_peers_fall, 20.0)
    weights = parent.weights()
    assert len(weights) == len(TACTIC_ARMS) + 1 <= MAX_WEIGHTS
    message = make_exploit(secret=b"s" * 32, run="r", vuln="MOCK-SMB-1", source="10.0.1.10",
                           target="10.0.2.1", nonce="n" * 32, issued_ms=1, generation=0,
                           parent="ws", weights=weights)
    assert parse_weights(message.weights_text) == weights  # only numbers, and all of them
    child = Brain(VIEW, "adaptive", {"epsilon": 0.0}, seed=9, start=0.0, inherited=weights)
    assert child.weights() == weights
    first = [p for _, p, _ in simulate(child, only_users_peers_fall, 3.0) if p.vuln]
    available = [arm for arm in TACTIC_ARMS if arm != "hitlist"]  # no trusts, no peers yet
    best = max(weights[TACTIC_ARMS.index(arm)] for arm in available)
    assert best > 0  # the parent learnt that something pays
    assert first and weights[TACTIC_ARMS.index(first[0].tactic)] == best  # the child starts there


def test_tokens_of_the_four_arm_era_are_ignored_as_the_wrong_length() -> None:
    old = (0.5, -0.2, 0.1, 0.3, 0.9)  # four tactic arms and one exploit
    brain = Brain(VIEW, "adaptive", {}, seed=1, start=0.0, inherited=old)
    assert set(brain.weights()) == {0.0}


def test_adaptive_spreads_in_the_simulator(tmp_path: Path) -> None:
    from testbed.model import load_scenario
    from testbed.sim import run_simulation

    _, run_dir = run_simulation(load_scenario(write_lab(tmp_path, "adaptive")), seed=5,
                                out_dir=tmp_path / "run")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    infected = {e["host"] for e in events if e["type"] in ("wake", "infection")}
    assert infected >= {"ws-1", "files", "db"}
    inherited = [e for e in events if e["type"] == "infection" and e.get("weights")]
    assert inherited
    assert {"recon", "mimic", "planned"} <= set(inherited[0]["weights"])
