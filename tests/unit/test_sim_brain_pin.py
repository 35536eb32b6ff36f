"""The Brain's decisions for a seed do not depend on how ``AddressSpace`` and
``Brain.see_peer`` are computed: the simulator's speed work on them (issue 11: addresses formatted
and parsed as dotted quads, CIDRs parsed once, a peer already on the hit list not parsed again)
must leave every profile's probe sequence unchanged.

Differential: every profile is driven twice for 60 s with the same seed, through an environment
that mixes every outcome, over several CIDRs (a /31 and a /32 among them: the edge cases of
``AddressSpace``), with peers and neighbours seen before and during the run (inside and outside
the topology, its own address, a network and a broadcast address) -- once as it is, once with
the reference implementations below (the code before the speed work, kept here verbatim) --
and the two sequences of probes, outcomes, signals and learned weights must be equal."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from testbed.agent import brain as brain_module
from testbed.agent.brain import PROFILE_PARAMETERS, AddressSpace, Brain, Observation, WormView
from testbed.agent.config import ExploitSpec

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
    monkeypatch.setattr(brain_module, "AddressSpace", ReferenceAddressSpace)
    monkeypatch.setattr(Brain, "see_peer", reference_see_peer)
    reference = list(decisions(profile, seed=11))
    assert fast == reference
    if profile in SCANNING:
        assert sum(" Probe(" in line for line in fast) >= 20  # it did probe


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
