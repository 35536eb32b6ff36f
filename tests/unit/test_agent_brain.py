"""The worm brain, sans-IO: determinism, each profile's targeting, adaptation, rate limits."""

from __future__ import annotations

import ipaddress
import itertools
from collections import Counter

import pytest
from profile_support import simulate

from testbed.agent.brain import (
    PROFILE_PARAMETERS,
    TACTIC_ARMS,
    AddressSpace,
    Brain,
    Probe,
    WormView,
    resolve_params,
)
from testbed.agent.config import BenignTarget, ExploitSpec, UserJob
from testbed.errors import AgentError

SMB = ExploitSpec("MOCK-SMB-1", "smb", 445, "tcp")
HTTP = ExploitSpec("MOCK-HTTP-1", "http", 80, "tcp")
CIDRS = ("10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24")
VIEW = WormView("10.0.1.10", "10.0.1.0/24", CIDRS, (SMB,), trusts=("10.0.2.5", "10.0.3.7"))

# The same view with what the observation-driven profiles (recon, mimic, planner) read: its
# host's users reach 40 file servers; its host's ARP table holds ten neighbours.
USERS = (UserJob(60.0, tuple(BenignTarget(f"10.0.2.{n}", 445, "tcp", "smb")
                             for n in range(1, 41))),)
OBSERVED_VIEW = WormView(VIEW.address, VIEW.segment_cidr, CIDRS, VIEW.arsenal, VIEW.trusts,
                         users=USERS)
NEIGHBOURS = tuple(f"10.0.1.{n}" for n in range(20, 30))



def dead_network(probe: Probe, now: float) -> str:
    return "unreachable"


def in_segment(address: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(address) in ipaddress.IPv4Network(cidr)


@pytest.mark.parametrize("profile", sorted(PROFILE_PARAMETERS))
def test_same_seed_same_decisions_different_seed_differs(profile: str) -> None:
    def environment(probe: Probe, now: float) -> str:  # deterministic, mixes every outcome
        last = int(probe.target.rsplit(".", 1)[1])
        return ("not-vulnerable", "refused", "timeout", "prohibited", "unreachable",
                "infected")[last % 6]

    def run(seed: int) -> list[tuple[float, str, int, str, str]]:
        brain = Brain(OBSERVED_VIEW, profile, {}, seed=seed, start=0.0)
        for address in NEIGHBOURS:
            brain.see_neighbour(address)
        return [(t, p.target, p.port, p.tactic, p.encoding)
                for t, p, _ in simulate(brain, environment, 120.0)]

    first, second, other = run(7), run(7), run(8)
    assert len(first) > 20
    assert first == second
    assert first != other


def test_classic_scans_the_whole_space_uniformly_including_unused_addresses() -> None:
    brain = Brain(VIEW, "classic", {"rate": 100.0}, seed=1, start=0.0)
    probes = [p for _, p, _ in simulate(brain, dead_network, 30.0)]
    assert 2800 <= len(probes) <= 3200  # 100/s for 30 s
    assert {p.tactic for p in probes} == {"uniform"}
    shares = Counter(next(c for c in CIDRS if in_segment(p.target, c)) for p in probes)
    for cidr in CIDRS:
        assert abs(shares[cidr] / len(probes) - 1 / 3) < 0.05, shares
    assert len({p.target for p in probes}) > 600  # nearly all 762 addresses, used or not
    assert VIEW.address not in {p.target for p in probes}


def test_local_preference_sweeps_its_own_subnet_sequentially() -> None:
    brain = Brain(VIEW, "local-preference", {"rate": 50.0, "local_bias": 0.75}, seed=3,
                  start=0.0)
    probes = [p for _, p, _ in simulate(brain, dead_network, 20.0)]
    local = [p for p in probes if p.tactic == "local"]
    assert abs(len(local) / len(probes) - 0.75) < 0.05
    assert all(in_segment(p.target, VIEW.segment_cidr) for p in local)
    # upward from its own address, one after the other
    assert [p.target for p in local[:5]] == [f"10.0.1.{n}" for n in range(11, 16)]
    others = [int(ipaddress.IPv4Address(p.target)) for p in probes if p.tactic == "sequential"]
    steps = Counter(b - a for a, b in itertools.pairwise(others))
    assert steps.most_common(1)[0][0] == 1  # a sequential sweep of the whole space


def test_hitlist_tries_trusts_then_seen_peers_then_falls_back() -> None:
    view = WormView("10.0.1.10", "10.0.1.0/24", CIDRS, (SMB, HTTP), trusts=("10.0.2.5",))
    brain = Brain(view, "hitlist", {"rate": 10.0, "fallback": "sequential"}, seed=1, start=0.0)
    brain.see_peer("10.0.3.9")
    brain.see_peer("192.0.2.1")  # outside the topology: never a candidate
    probes = [p for _, p, _ in simulate(brain, dead_network, 3.0)]
    first = [(p.target, p.vuln, p.tactic) for p in probes[:4]]
    assert first == [("10.0.2.5", "MOCK-SMB-1", "hitlist"), ("10.0.2.5", "MOCK-HTTP-1", "hitlist"),
                     ("10.0.3.9", "MOCK-SMB-1", "hitlist"), ("10.0.3.9", "MOCK-HTTP-1", "hitlist")]
    assert {p.tactic for p in probes[4:]} == {"sequential"}
    assert all(p.target != "192.0.2.1" for p in probes)


def test_hitlist_adds_hosts_that_answered() -> None:
    view = WormView("10.0.1.10", "10.0.1.0/24", CIDRS, (SMB,))

    def environment(probe: Probe, now: float) -> str:
        return "refused" if probe.target == "10.0.1.20" else "unreachable"

    brain = Brain(view, "hitlist", {"rate": 10.0}, seed=1, start=0.0)
    probes = [p for _, p, _ in simulate(brain, environment, 3.0)]
    answered = [i for i, p in enumerate(probes) if p.target == "10.0.1.20"]
    assert answered and probes[answered[0] + 1].tactic == "hitlist"


@pytest.mark.parametrize("rate", [0.5, 0.99])
def test_stealth_stays_below_one_new_destination_per_second(rate: float) -> None:
    brain = Brain(VIEW, "stealth", {"rate": rate, "jitter": 1.0}, seed=5, start=0.0)

    def environment(probe: Probe, now: float) -> str:
        return "not-vulnerable" if probe.target.endswith(("5", "7")) else "unreachable"

    log = simulate(brain, environment, 600.0)
    times = [t for t, _, _ in log]
    assert len(times) > 200
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1.0
    assert len(times) / 600.0 <= rate * 1.05
    new_destinations = []
    seen: set[str] = set()
    for t, probe, _ in log:
        if probe.target not in seen:
            seen.add(probe.target)
            new_destinations.append(t)
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(new_destinations))
    assert any(p.tactic == "interleave" for _, p, _ in log)  # hides among known-good hosts
    assert {p.encoding for _, p, _ in log} == {"encoded"}


def test_adaptive_shifts_away_from_a_blocked_service() -> None:
    view = WormView("10.0.1.10", "10.0.1.0/24", CIDRS, (SMB, HTTP))

    def environment(probe: Probe, now: float) -> str:  # smb is filtered everywhere
        return "prohibited" if probe.port == 445 else "unreachable"

    brain = Brain(view, "adaptive", {"rate": 20.0, "dormancy_s": 0.0}, seed=11, start=0.0)
    probes = [p for _, p, _ in simulate(brain, environment, 600.0) if p.vuln]
    assert len(probes) > 300
    late = probes[-200:]
    smb_share = sum(p.port == 445 for p in late) / len(late)
    assert smb_share < 0.15, smb_share
    assert brain.values[SMB.key] < brain.values[HTTP.key]


def test_adaptive_slows_down_and_goes_quiet_after_peers_vanish() -> None:
    view = WormView("10.0.1.10", "10.0.1.0/24", ("10.0.1.0/24",), (SMB,))
    alive = {f"10.0.1.{n}" for n in range(1, 255)}
    vanish_at = 30.0

    def environment(probe: Probe, now: float) -> str:
        if now >= vanish_at:
            return "timeout"  # quarantine: everybody it talked to is gone
        return "not-vulnerable" if probe.target in alive else "unreachable"

    params = {"rate": 10.0, "jitter": 0.0, "dormancy_s": 5.0, "epsilon": 0.0}
    brain = Brain(view, "adaptive", params, seed=2, start=0.0)
    log = simulate(brain, environment, 120.0)
    before = [t for t, _, _ in log if 10.0 <= t < vanish_at]
    after = [t for t, _, _ in log if 60.0 <= t < 120.0]
    rate_before, rate_after = len(before) / 20.0, len(after) / 60.0
    assert rate_before > 8.0
    assert rate_after < 0.5 * rate_before, (rate_before, rate_after)
    first_silent = min(t for t, _, o in log if t >= vanish_at)
    # the first vanished peer triggers dormancy: silence for dormancy_s after it
    assert not [t for t, _, _ in log if first_silent < t < first_silent + 5.0 - 1e-6]
    assert brain.encoding == "encoded"


def test_adaptive_weights_travel_as_numbers_and_are_inherited() -> None:
    view = WormView("10.0.1.10", "10.0.1.0/24", CIDRS, (SMB, HTTP))
    parent = Brain(view, "adaptive", {"rate": 20.0, "dormancy_s": 0.0}, seed=4, start=0.0)
    simulate(parent, lambda p, t: "prohibited" if p.port == 445 else "refused", 60.0)
    weights = parent.weights()
    assert len(weights) == len(TACTIC_ARMS) + 2
    assert all(isinstance(w, float) for w in weights)
    child = Brain(view, "adaptive", {"epsilon": 0.0}, seed=9, start=0.0,
                  inherited=weights)
    assert child.weights() == weights
    first = [p for _, p, _ in simulate(child, dead_network, 2.0) if p.vuln]
    assert first and first[0].port == 80  # the child starts where the parent ended


def test_inherited_weights_of_the_wrong_length_are_ignored() -> None:
    brain = Brain(VIEW, "adaptive", {}, seed=1, start=0.0, inherited=(5.0, 5.0))
    assert set(brain.weights()) == {0.0}


def test_address_space_indexes_without_network_or_broadcast() -> None:
    space = AddressSpace(("10.0.0.0/29", "10.0.1.0/30"))
    assert space.total == 6 + 2
    assert [space.at(i) for i in range(8)] == [
        "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6",
        "10.0.1.1", "10.0.1.2"]
    assert space.index_of("10.0.1.2") == 7
    assert space.index_of("10.0.0.0") is None


def test_no_arsenal_no_probes() -> None:
    brain = Brain(WormView("10.0.1.10", "10.0.1.0/24", CIDRS, ()), "classic", {}, seed=1,
                  start=0.0)
    assert simulate(brain, dead_network, 10.0) == []


@pytest.mark.parametrize(("profile", "params", "message"), [
    ("clasic", {}, "unknown worm profile 'clasic'"),
    ("classic", {"speed": 3}, "has no parameter 'speed'"),
    ("classic", {"rate": 0}, "outside"),
    ("classic", {"rate": float("nan")}, "not a number"),
    ("classic", {"rate": True}, "not a number"),
    ("stealth", {"rate": 2.0}, "outside"),
    ("classic", {"encoding": "rot13"}, "not one of plain, encoded"),
])
def test_bad_profile_or_parameter_is_a_clear_error(profile: str, params: dict[str, object],
                                                   message: str) -> None:
    with pytest.raises(AgentError, match=message):
        resolve_params(profile, params)


def test_brain_parameters_match_the_yaml_catalog() -> None:
    from testbed.model.profiles import profile_catalog

    catalog = profile_catalog()
    assert set(catalog) == set(PROFILE_PARAMETERS)
    for name, profile in catalog.items():
        rules = PROFILE_PARAMETERS[name]
        assert set(profile.params) == set(rules), name
        for key, spec in profile.params.items():
            rule = rules[key]
            assert (spec.default, spec.min, spec.max) == (rule.default, rule.min, rule.max), key
            assert (tuple(spec.choices) if spec.choices else None) == rule.choices, key
