"""The scalable containment check (policy classes) against the per-pair reference: on every
shipped topology (routers, host firewalls), for random infections, quarantines, releases and
blocks, ``contained`` is "no exposure" as ``exposures`` (decide_flow on every pair) finds it,
and the incremental timeline judges every moment as a replay from scratch does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from testbed.actions import ActionRecord, apply_action
from testbed.containment import ContainmentTimeline, PolicyClasses, ReachabilityOracle
from testbed.errors import TestbedError
from testbed.model import Topology, load_topology
from testbed.policy import Block, ContainmentState

REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))


def random_block(topology: Topology, rng: random.Random) -> Block:
    names = sorted(topology.hosts)
    segments = [str(s.cidr) for s in topology.segments.values()]
    destination = rng.choice(["any", rng.choice(names), rng.choice(segments)])
    port = rng.choice([None, 445, 22, 80])
    return Block(source=rng.choice(["any", rng.choice(names), rng.choice(segments)]),
                 destination=destination, port=port, proto=rng.choice(["any", "tcp", "udp"]))


@pytest.mark.parametrize("path", TOPOLOGIES, ids=[p.stem for p in TOPOLOGIES])
def test_contained_agrees_with_every_pair_decided_by_the_policy(path: Path) -> None:
    topology = load_topology(path)
    names = sorted(topology.hosts)
    oracle = ReachabilityOracle(topology)
    rng = random.Random(path.stem)
    outcomes = set()
    for round_ in range(60 if len(names) < 100 else 12):
        infected = rng.sample(names, rng.randint(1, max(1, len(names) // 3)))
        quarantined = set(infected) if round_ % 4 == 0 else set()  # surely contained
        state = ContainmentState(quarantined=quarantined | set(rng.sample(names, 3)),
                                 blocks=[random_block(topology, rng)
                                         for _ in range(rng.choice([0, 0, 1, 2]))])
        expected = oracle.exposures(infected, state) == []
        assert oracle.contained(infected, state) is expected, (infected, state)
        origin = infected[:1]
        others = [h.name for h in topology.hosts.values() if h.susceptible
                  and h.name not in origin]
        assert oracle.burned_out(infected, origin) is (
            bool(others) and set(others) <= set(infected))
        outcomes.add(expected)
    assert outcomes == {True, False}  # both verdicts exercised


def reference_status(oracle: ReachabilityOracle, infected: dict[str, float],
                     state: ContainmentState, origin: set[str]) -> str:
    """The definition, decided pair by pair."""
    topology = oracle.topology
    if not infected:
        return "dormant"
    others = [h.name for h in topology.hosts.values() if h.susceptible and h.name not in origin]
    if others and set(others) <= set(infected):
        return "burned-out"
    return "contained" if oracle.exposures(infected, state) == [] else "spreading"


@pytest.mark.parametrize("path", TOPOLOGIES, ids=[p.stem for p in TOPOLOGIES])
def test_incremental_timeline_judges_each_moment_as_a_full_replay(path: Path) -> None:
    topology = load_topology(path)
    names = sorted(topology.hosts)
    rng = random.Random(f"timeline/{path.stem}")
    origin = {names[0]}
    timeline = ContainmentTimeline(topology, patient_zero=origin)
    changes: list[tuple[float, object]] = [(0.0, names[0])]
    for step in range(1, 40 if len(names) < 100 else 15):
        when = float(step)
        roll = rng.random()
        if roll < 0.5:
            changes.append((when, rng.choice(names)))
        else:
            kind = rng.choice(["quarantine", "release", "block", "unblock"])
            if kind in ("block", "unblock"):
                block = random_block(topology, rng)
                params = {"source": block.source, "destination": block.destination,
                          "port": block.port, "proto": block.proto}
                target = block.source
            else:
                params, target = {}, rng.choice(names)
            changes.append((when, ActionRecord(mono=when, action=kind, target=target,  # type: ignore[arg-type]
                                               params=params, ok=rng.random() > 0.1)))
    state = ContainmentState()
    infected: dict[str, float] = {}
    peak = 0
    reference = ReachabilityOracle(topology)
    for when, change in changes:
        if isinstance(change, str):
            timeline.infect(change, when)
            infected.setdefault(change, when)
        else:
            assert isinstance(change, ActionRecord)
            timeline.act(change)
            apply_action(state, change)
        timeline.advance(when)
        peak = max(peak, len(set(infected) - state.quarantined))
        assert timeline.status == reference_status(reference, infected, state, origin), when
        assert timeline.peak == peak


def partition(classes: PolicyClasses) -> set[tuple[tuple[str, ...], str, tuple[object, ...], int]]:
    """Each class as (its hosts, its representative, its vulnerable ports, its susceptible
    count): independent of how the classes are numbered."""
    members: dict[int, list[str]] = {}
    for host, cls in zip(classes.hosts, classes.of, strict=True):
        members.setdefault(cls, []).append(host.name)
    return {(tuple(names), classes.representative[cls].name, classes.ports[cls],
             classes.susceptible_in[cls]) for cls, names in members.items()}


@pytest.mark.parametrize("path", TOPOLOGIES, ids=[p.stem for p in TOPOLOGIES])
def test_refined_classes_are_the_classes_built_with_the_blocks(path: Path) -> None:
    topology = load_topology(path)
    names = sorted(topology.hosts)
    rng = random.Random(f"refined/{path.stem}")
    unblocked = PolicyClasses(topology)
    split = False
    for round_ in range(40):
        blocks = [random_block(topology, rng) for _ in range(rng.choice([1, 2, 3]))]
        if round_ % 2:  # what a defender does most: block one host's every outbound flow
            blocks.append(Block(source=rng.choice(names)))
        built, refined = PolicyClasses(topology, blocks), unblocked.refined(blocks)
        assert partition(refined) == partition(built), blocks
        assert refined.blocks == built.blocks and len(refined) == len(built)
        split = split or len(refined) > len(unblocked)
        classes = range(len(built))
        verdicts = {(built.representative[s].name, built.representative[t].name):
                    built.can_infect(s, t) for s in classes for t in classes}
        assert verdicts == {(refined.representative[s].name, refined.representative[t].name):
                            refined.can_infect(s, t) for s in classes for t in classes}
    assert split  # some blocks split classes
    with pytest.raises(TestbedError):
        built.refined([])


@pytest.mark.parametrize("path", TOPOLOGIES, ids=[p.stem for p in TOPOLOGIES])
def test_contained_under_hosts_cut_off_agrees_with_every_pair(path: Path) -> None:
    """Blocks that each stop every flow from one host (what a learning defender's block is)
    take the oracle's shortcut (those hosts are no sources); the verdict is still the
    pair-by-pair one."""
    topology = load_topology(path)
    names = sorted(topology.hosts)
    oracle = ReachabilityOracle(topology)
    rng = random.Random(f"cut-off/{path.stem}")
    outcomes = set()
    for _ in range(60 if len(names) < 100 else 12):
        infected = rng.sample(names, rng.randint(1, max(1, len(names) // 3)))
        cut_off = rng.sample(infected, rng.randint(0, len(infected))) + rng.sample(names, 2)
        state = ContainmentState(quarantined=set(rng.sample(names, rng.choice([0, 2]))),
                                 blocks=[Block(source=name) for name in cut_off])
        expected = oracle.exposures(infected, state) == []
        assert oracle.contained(infected, state) is expected, (infected, state)
        outcomes.add(expected)
    assert outcomes == {True, False}
