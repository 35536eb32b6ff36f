"""The Brain's decisions for a seed do not depend on how ``AddressSpace``, ``Brain.see_peer`` and
the planner's search are computed: the simulator's speed work on them (issue 11: addresses
formatted and parsed as dotted quads, CIDRs parsed once and indices remembered, a peer already on
the hit list not parsed again; ``Knowledge.planner_pick`` walking only the hosts that can still
be chosen, with values remembered until their inputs change) must leave every profile's probe
sequence unchanged.

Differential: every profile is driven twice for 60 s with the same seed, through an environment
that mixes every outcome, over several CIDRs (a /31 and a /32 among them: the edge cases of
``AddressSpace``), with peers and neighbours seen before and during the run (inside and outside
the topology, its own address, a network and a broadcast address) -- once as it is, once with
the reference implementations below (the code before the speed work, kept here verbatim) --
and the two sequences of probes, outcomes, signals and learned weights must be equal."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator

import pytest

from testbed.agent import brain as brain_module
from testbed.agent.brain import PROFILE_PARAMETERS, AddressSpace, Brain, Observation, WormView
from testbed.agent.config import ExploitSpec
from testbed.agent.knowledge import SERVICE_VALUE, Knowledge, MimicSchedule

ARSENAL = (ExploitSpec("MOCK-SMB-1", "smb", 445, "tcp"),
           ExploitSpec("MOCK-HTTP-1", "http", 80, "tcp"),
           ExploitSpec("MOCK-SNMP-1", "snmp", 161, "udp"))
CIDRS = ("10.0.1.0/24", "10.0.2.0/23", "10.9.0.0/31", "10.9.1.1/32", "172.16.0.0/22")
VIEW = WormView("10.0.2.77", "10.0.2.0/23", CIDRS, ARSENAL, trusts=("10.0.1.5", "172.16.3.9"))
PEERS = ("10.0.1.200", "192.0.2.1", "10.0.2.77", "10.9.0.1", "10.9.1.1", "172.16.1.4",
         "10.0.3.255", "10.0.2.0", "10.0.2.78", "10.0.3.1")

SCANNING = ("classic", "local-preference", "hitlist", "stealth", "adaptive")
"""Profiles that probe in this environment without benign users to mimic."""


class ReferenceAddressSpace:
    """``AddressSpace`` before the speed work (ipaddress objects per call)."""

    def __init__(self, cidrs: tuple[str, ...]) -> None:
        self.ranges: list[tuple[int, int]] = []
        for cidr in cidrs:
            network = ipaddress.IPv4Network(cidr)
            if network.num_addresses > 2:
                self.ranges.append((int(network.network_address) + 1, network.num_addresses - 2))
            else:
                self.ranges.append((int(network.network_address), network.num_addresses))
        self.total = sum(count for _, count in self.ranges)

    def at(self, index: int) -> str:
        index %= self.total
        for first, count in self.ranges:
            if index < count:
                return str(ipaddress.IPv4Address(first + index))
            index -= count
        raise IndexError(index)

    def index_of(self, address: str) -> int | None:
        value = int(ipaddress.IPv4Address(address))
        offset = 0
        for first, count in self.ranges:
            if first <= value < first + count:
                return offset + value - first
            offset += count
        return None


def reference_see_peer(self: Brain, address: str) -> None:
    """``Brain.see_peer`` before the speed work."""
    if address != self.view.address and self.space.index_of(address) is not None:
        self._add_to_hitlist(address)


def reference_segment(address: str) -> str | None:
    """``Knowledge``'s segment of an address before the speed work (``ipaddress`` objects)."""
    try:
        value = ipaddress.IPv4Address(address)
    except ValueError:
        return None
    return next((str(network) for network in map(ipaddress.IPv4Network, CIDRS)
                 if value in network), None)


def reference_value(self: Knowledge, address: str, *, trusted: bool) -> float:
    """``Knowledge.value`` before the speed work."""
    services = self.open.get(address, {})
    value = 1.0 + max((SERVICE_VALUE.get(kind, 1.0) for kind in services.values()), default=0.0)
    if trusted:
        value += 2.0
    key = reference_segment(address)
    if key is not None:
        if key != self._own_segment:
            value += 0.5
        if address not in self.defended:
            value += 0.5 * self._blocked_value.get(key, 0.0)
    return value


def reference_planner_pick(self: Knowledge, done: set[tuple[str, str]], infected: set[str],
                           trusts: tuple[str, ...], rng: random.Random, *, credentials: bool
                           ) -> tuple[str, ExploitSpec, bool] | None:
    """``Knowledge.planner_pick`` before the speed work: every live host walked on every
    call (only the exhausted ones skipped), every value computed afresh."""
    last = self._last_pick
    if last is not None and last[:3] == (self.version, credentials, trusts):
        pick = last[3]
        if pick is None or self._usable(pick[0], pick[1], done, infected):
            return pick
    exhausted = self.__dict__.setdefault("reference_exhausted", set())
    trusted = set(trusts)
    seen = self.service_seen
    total_seen = sum(seen.values()) or 1
    best_score = 0.0
    best: list[tuple[str, ExploitSpec, bool]] = []
    for address in (*trusts, *self.live):
        if address in exhausted or address == self.address or address in infected or \
                address in self.defended:
            continue
        is_trusted = address in trusted
        value = self.value(address, trusted=is_trusted)
        services = self.open.get(address, {})
        possible = False
        for exploit in self.arsenal:
            key = exploit.key
            if (address, key) in done or (address, key) in self.tried or \
                    (address, exploit.port, exploit.proto) in self.closed:
                continue
            possible = True
            credential = credentials and is_trusted
            if credential:
                cost = 0.5
            elif (exploit.port, exploit.proto) in services:
                cost = 1.0
            else:
                base = 2.0 if address in self.answered else 3.0
                cost = base - seen.get((exploit.port, exploit.proto), 0) / total_seen
            score = value / cost
            if score > best_score + 1e-9:
                best_score, best = score, [(address, exploit, credential)]
            elif score >= best_score - 1e-9:
                best.append((address, exploit, credential))
        if not possible:
            exhausted.add(address)
    pick = (None if not best else
            best[rng.randrange(len(best))] if len(best) > 1 else best[0])
    self._last_pick = (self.version, credentials, trusts, pick)
    return pick


def use_references(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every part the speed work changed, as it was before."""
    monkeypatch.setattr(brain_module, "AddressSpace", ReferenceAddressSpace)
    monkeypatch.setattr(Brain, "see_peer", reference_see_peer)
    monkeypatch.setattr(Knowledge, "planner_pick", reference_planner_pick)
    monkeypatch.setattr(Knowledge, "value", reference_value)
    monkeypatch.setattr(MimicSchedule, "has_remaining",
                        lambda self, *sets: bool(self.remaining(*sets)))


def outcome_for(target: str, vuln: str | None, now: float) -> str:
    last = sum(int(part) for part in target.split(".")) + int(now * 7)
    outcome = ("not-vulnerable", "refused", "timeout", "prohibited", "unreachable", "infected",
               "already", "ok")[last % 8]
    return "rejected" if outcome == "ok" and vuln is not None else outcome


def decisions(profile: str, seed: int) -> Iterator[str]:
    brain = Brain(VIEW, profile, {}, seed=seed, start=0.0)
    for peer in PEERS[:4]:
        brain.see_peer(peer)
        if hasattr(brain, "see_neighbour"):
            brain.see_neighbour(PEERS[-1 - PEERS.index(peer)])
    now = 0.0
    while now < 60.0:
        plan = brain.plan(now)
        for probe in plan.probes:
            outcome = outcome_for(probe.target, probe.vuln, now)
            signals = brain.observe(Observation(probe, outcome, now + 0.01))
            yield f"{now:.6f} {probe!r} {outcome} {signals}"
            if probe.seq % 5 == 0:
                brain.see_peer(PEERS[4 + probe.seq % 6])
            if probe.seq % 7 == 0 and hasattr(brain, "see_neighbour"):
                brain.see_neighbour(PEERS[probe.seq % 10])
        yield f"plan {plan.wake_at:.6f}"
        now = max(plan.wake_at, now + 1e-6)
    yield repr(brain.weights())


@pytest.mark.parametrize("profile", sorted(PROFILE_PARAMETERS))
def test_probe_sequence_of_a_seed_is_the_reference_implementations(
        profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = list(decisions(profile, seed=11))
    use_references(monkeypatch)
    reference = list(decisions(profile, seed=11))
    assert fast == reference
    if profile in SCANNING:
        assert sum(" Probe(" in line for line in fast) >= 20  # it did probe


CROWD = tuple(f"10.0.{2 + i % 2}.{1 + 7 * i % 250}" for i in range(60)) + tuple(
    f"10.0.1.{3 + 11 * i % 250}" for i in range(20)) + tuple(
    f"172.16.{i % 4}.{9 + 13 * i % 240}" for i in range(20))
"""Live hosts its host sees over the run (its own /23, another /24, another /22)."""


def crowded_decisions(profile: str, seed: int) -> Iterator[str]:
    """``decisions`` with a hundred neighbours and peers arriving over 90 s, so the planner
    has many hosts to weigh: some answer, some refuse, some signal defence."""
    brain = Brain(VIEW, profile, {}, seed=seed, start=0.0)
    now, arrived = 0.0, 0
    while now < 90.0:
        while arrived < len(CROWD) and arrived < 2 + now * 1.5:
            address = CROWD[arrived]
            (brain.see_neighbour if arrived % 3 else brain.see_peer)(address)
            arrived += 1
        plan = brain.plan(now)
        for probe in plan.probes:
            outcome = outcome_for(probe.target, probe.vuln, now)
            signals = brain.observe(Observation(probe, outcome, now + 0.05))
            yield f"{now:.6f} {probe!r} {outcome} {signals}"
        yield f"plan {plan.wake_at:.6f}"
        now = max(plan.wake_at, now + 1e-6)
    yield repr(brain.weights())


@pytest.mark.parametrize(("profile", "planned"), [("adaptive", 1), ("planner", 100)])
@pytest.mark.parametrize("seed", [3, 17])
def test_planner_search_decides_as_the_reference_among_many_hosts(
        profile: str, planned: int, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The adaptive brain weighs the planned arm's pick before every probe (its tie-break
    draws from the brain's generator); the planner profile sends little else."""
    fast = list(crowded_decisions(profile, seed))
    use_references(monkeypatch)
    reference = list(crowded_decisions(profile, seed))
    assert fast == reference
    assert sum(" Probe(" in line for line in fast) >= 30
    assert sum("tactic='planned'" in line for line in fast) >= planned


def test_address_space_round_trips_every_address() -> None:
    space, reference = AddressSpace(CIDRS), ReferenceAddressSpace(CIDRS)
    assert space.total == reference.total == 254 + 510 + 2 + 1 + 1022
    assert space.ranges == reference.ranges
    for index in range(space.total):
        address = space.at(index)
        assert address == reference.at(index)
        assert space.index_of(address) == index
        assert space.at(index + space.total) == address  # indices wrap
    for outside in ("10.0.1.0", "10.0.1.255", "10.0.3.255", "192.0.2.1", "10.9.1.2",
                    "0.0.0.0", "255.255.255.255"):
        assert space.index_of(outside) is None


@pytest.mark.parametrize("text", ["10.0.1.010", "10.0.1", "10.0.1.1.1", "10.0.1.256", "",
                                  "10.0.1.x", "10.0.1.\u0661", " 10.0.1.1", "10.0.1.+1"])
def test_address_space_rejects_what_ipaddress_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        ReferenceAddressSpace(CIDRS).index_of(text)
    with pytest.raises(ValueError):
        AddressSpace(CIDRS).index_of(text)
