"""The fast path's semantics are the Brain's, for each profile it runs (classic,
local-preference, hitlist, stealth): its policy tables are decide_flow's, pair by pair, on every
shipped topology; the local-preference sweep and the hit-list queue pick, address by address,
the targets the Brain picks; hit-list defence signals are the engine's; and, at distribution
level, on a small flat network and on the routed, firewalled hospital, over many seeds, the
mean infected curve of the fast path (``testbed.sim.fastpath``) matches the event engine
driving one real ``Brain`` per host.

Margins: at every second of the outbreak the two mean curves differ by at most max(6 hosts,
4 standard errors of the difference of means) -- 6 hosts is 4 % of the 149 hosts there are to
infect; 4 standard errors keep a false alarm below 1e-4 per time point. Seed to seed the
outbreak's start wanders (4 standard errors reach 57 hosts mid-outbreak), so the curves are also
compared aligned at each run's tenth infection, every 0.5 s for 6 s, within max(4 hosts,
4 standard errors) (measured on 2026-11-30: 4 standard errors 1-19 hosts, observed gaps at most
1.3 hosts; local-preference, whose sweeps make the outbreak faster and less variable: the same
margins hold, largest observed gap 7 hosts against 4 standard errors of 52). The mean number
infected at the end agrees within 3 % of the susceptible hosts."""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from testbed.agent.brain import Brain, Observation, WormView
from testbed.model.generate import generate_topology, topology_yaml
from testbed.model.load_scenario import Scenario, load_scenario
from testbed.model.scenario_spec import BenignSpec
from testbed.policy import decide_flow
from testbed.sim.engine import Simulation
from testbed.sim.fastpath import (
    FAST_PROFILES,
    AddressGrid,
    _flow_tables,
    _HitListTargets,
    _SweepTargets,
    fast_path_refusal,
    vulnerability_table,
)
from testbed.sim.generate import flat_topology, scenario_for
from testbed.sim.timing import load_timing

REPO = Path(__file__).resolve().parents[2]

HOSTS, VULNERABLE_FRACTION, DURATION, SEEDS = 1000, 0.15, 14.0, 12
TIMES = [float(t) for t in range(1, int(DURATION) + 1)]
ALIGN = 9  # the tenth infection: curves aligned there compare growth without the early wander
SINCE_TENTH = [0.5 * step for step in range(1, 13)]


def curve(times: list[float], at: list[float], origin: float = 0.0) -> list[int]:
    return [sum(1 for when in times if when <= origin + t) for t in at]


def assert_close(runs: dict[bool, list[list[int]]], at: list[float], floor: float) -> None:
    for index, t in enumerate(at):
        events = [counts[index] for counts in runs[False]]
        fast = [counts[index] for counts in runs[True]]
        error = ((statistics.variance(events) + statistics.variance(fast)) / SEEDS) ** 0.5
        gap = abs(statistics.mean(fast) - statistics.mean(events))
        assert gap <= max(floor, 4 * error), (t, statistics.mean(events), statistics.mean(fast))


def infection_times(scenario: Scenario, out: Path, *, fast: bool, seed: int,
                    duration: float) -> list[float]:
    """Sorted infection times of one simulated run, on the fast path or the event engine."""
    out.mkdir()
    simulation = Simulation(scenario, seed=seed, timing=load_timing(), run_dir=out,
                            duration=duration, wall_base=0.0, run_name="t",
                            record_probes=False, fast_path=fast)
    simulation.run()
    assert simulation.mode == (f"fast-{scenario.spec.worm.profile}" if fast else "events")
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return sorted(e["mono"] for e in events if e["type"] == "infection")


FLAT_PARAMS: dict[str, dict[str, object]] = {
    "classic": {}, "local-preference": {},
    # a uniform fallback at twice the rate: half its slots go to hit-list pairs (each live
    # host without the service answers refused, joins the hit list and is tried again), so
    # the outbreak runs its course in the same window
    "hitlist": {"fallback": "uniform", "rate": 10.0}}


@pytest.mark.parametrize("profile", [p for p in FAST_PROFILES if p in FLAT_PARAMS])
def test_mean_infected_curve_of_the_fast_path_is_the_brains(profile: str,
                                                             tmp_path: Path) -> None:
    topology = flat_topology(HOSTS, vulnerable_fraction=VULNERABLE_FRACTION, seed=5)
    susceptible = sum(1 for h in topology.hosts.values() if h.susceptible) - 1
    scenario = scenario_for(topology, {
        "duration_s": DURATION, "seed": 1, "stop": {"when": []},
        "worm": {"profile": profile, "patient_zero": ["h0"], "start_s": 0,
                 "params": FLAT_PARAMS[profile]}})
    runs = {fast: [infection_times(scenario, tmp_path / f"{fast}-{seed}", fast=fast, seed=seed,
                                   duration=DURATION) for seed in range(1, SEEDS + 1)]
            for fast in (False, True)}
    assert_close({fast: [curve(times, TIMES) for times in runs[fast]] for fast in runs},
                 TIMES, 6.0)
    aligned = {fast: [curve(times, SINCE_TENTH, times[ALIGN]) for times in runs[fast]]
               for fast in runs}
    assert_close(aligned, SINCE_TENTH, 4.0)
    final = [statistics.mean(len(times) for times in runs[fast]) for fast in (False, True)]
    assert min(final) >= 0.9 * susceptible  # the outbreak ran its course in the window
    assert abs(final[0] - final[1]) <= 0.03 * susceptible


def test_stealth_outbreak_on_the_fast_path_is_the_brains(tmp_path: Path) -> None:
    """stealth below one probe per second (jitter 0.2, so that its rate cap cannot bind):
    interleaved connections to known-good services, hit list, its own segment swept; half the
    hosts vulnerable so that it spreads in two minutes. Mean infected every 20 s within
    max(3 hosts, 4 standard errors); mean probes (interleaved ones included) within 5 %."""
    topology = flat_topology(HOSTS, vulnerable_fraction=0.5, seed=5)
    scenario = scenario_for(topology, {
        "duration_s": 120, "seed": 1, "stop": {"when": []},
        "worm": {"profile": "stealth", "patient_zero": ["h0"], "start_s": 0,
                 "params": {"jitter": 0.2, "rate": 0.99}}})
    at = [20.0 * step for step in range(1, 7)]
    runs: dict[bool, list[list[int]]] = {}
    probes: dict[bool, list[int]] = {}
    for fast in (False, True):
        runs[fast], probes[fast] = [], []
        for seed in range(1, SEEDS + 1):
            out = tmp_path / f"{fast}-{seed}"
            out.mkdir()
            simulation = Simulation(scenario, seed=seed, timing=load_timing(), run_dir=out,
                                    duration=120.0, wall_base=0.0, run_name="t",
                                    record_probes=False, fast_path=fast)
            probes[fast].append(int(simulation.run().counters["probes"]))
            assert simulation.mode == ("fast-stealth" if fast else "events")
            events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
            runs[fast].append(curve(sorted(e["mono"] for e in events
                                           if e["type"] == "infection"), at))
    assert_close(runs, at, 3.0)
    assert statistics.mean(counts[-1] for counts in runs[False]) >= 20  # it did spread
    events_probes, fast_probes = statistics.mean(probes[False]), statistics.mean(probes[True])
    assert abs(fast_probes - events_probes) <= 0.05 * events_probes, (events_probes,
                                                                       fast_probes)


SHIPPED = sorted(p for p in (REPO / "scenarios").glob("*.yaml")
                 if "topology" in (yaml.safe_load(p.read_text()) or {}))


def classic_only(path: Path, rate: float | None = None, profile: str = "classic",
                 params: dict[str, object] | None = None) -> Scenario:
    """The scenario's topology and patient zero with a classic (or ``profile``) worm, nothing
    watching or answering, no benign traffic, no stop conditions: the fast path's domain."""
    scenario = load_scenario(path)
    spec = scenario.spec
    worm = spec.worm.model_copy(update={"profile": profile, "rate": None, "params": {
        **({} if rate is None else {"rate": rate}), **(params or {})}})
    return replace(scenario, spec=spec.model_copy(update={
        "worm": worm, "detectors": [], "benign": BenignSpec(),
        "stop": spec.stop.model_copy(update={"when": []}),
        "response": spec.response.model_copy(update={"rules": []})}))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_fast_path_policy_tables_are_decide_flow(path: Path, tmp_path: Path) -> None:
    """Routers and host firewalls on the fast path: for every (source, vulnerable target,
    exploit) the per-class verdict is decide_flow's for that very pair (campus: a sample)."""
    scenario = classic_only(path)
    simulation = Simulation(scenario, seed=1, timing=load_timing(), run_dir=tmp_path,
                            duration=1.0, wall_base=0.0, run_name="t", record_probes=False)
    assert fast_path_refusal(simulation) is None
    table, exploits = vulnerability_table(simulation)
    allowed, _, class_of = _flow_tables(simulation, exploits)
    assert allowed is not None
    hosts = simulation.hosts
    pairs = [(s, t, e) for s in range(len(hosts)) for t in range(len(hosts)) if s != t
             for e in range(len(exploits)) if table[t, e] == 2]  # VULNERABLE
    pairs = random.Random(path.stem).sample(pairs, min(len(pairs), 4000))
    verdicts = set()
    for source, target, exploit in pairs:
        _, _, port, proto = exploits[exploit]
        expected = decide_flow(scenario.topology, hosts[source], hosts[target].ip, port,
                               proto).allowed
        assert bool(allowed[class_of[source], class_of[target], exploit]) is expected, (
            hosts[source].name, hosts[target].name, port)
        verdicts.add(expected)
    assert True in verdicts
    if path.stem in ("smb-segmented", "hospital"):
        assert verdicts == {True, False}  # segmented: the policy both allows and denies


ROUTED_PARAMS: dict[str, dict[str, object]] = {
    "classic": {"rate": 15.0}, "local-preference": {"rate": 15.0}, "hitlist": {"rate": 15.0},
    "stealth": {"rate": 0.99, "jitter": 0.2}}  # stealth: below 1/s, its rate cap not binding


@pytest.mark.parametrize("profile", FAST_PROFILES)
def test_routed_outbreak_on_the_fast_path_is_the_brains(profile: str, tmp_path: Path) -> None:
    """The hospital (routers, host firewalls): mean infected per second over 16 seeds within
    max(1.5 hosts, 4 standard errors of the difference), as on the flat network. For
    local-preference its /24 segments are swept several times over in 60 s, so the brains'
    passing over their own victims matters here (observed: largest gap 1.75 hosts against 4
    standard errors of 11.9, 1.0 against 2.5 after the first wrap)."""
    scenario = classic_only(REPO / "scenarios" / "hospital.yaml", profile=profile,
                            params=ROUTED_PARAMS[profile])
    runs: dict[bool, list[list[int]]] = {}
    at = [float(t) for t in range(5, 61, 5)]
    for fast in (False, True):
        runs[fast] = [curve(infection_times(scenario, tmp_path / f"{fast}-{seed}", fast=fast,
                                            seed=seed, duration=60.0), at)
                      for seed in range(1, 17)]
    for index, t in enumerate(at):
        events_at = [counts[index] for counts in runs[False]]
        fast_at = [counts[index] for counts in runs[True]]
        error = ((statistics.variance(events_at) + statistics.variance(fast_at)) / 16) ** 0.5
        gap = abs(statistics.mean(fast_at) - statistics.mean(events_at))
        assert gap <= max(1.5, 4 * error), (t, statistics.mean(events_at),
                                             statistics.mean(fast_at))
    assert statistics.mean(counts[-1] for counts in runs[False]) >= 1  # it did spread


@pytest.mark.parametrize("local_bias", [1.0, 0.0])
def test_local_preference_sweep_picks_the_brains_targets(local_bias: float,
                                                          tmp_path: Path) -> None:
    """With ``local_bias`` 1 (own segment only) or 0 (whole space only, from the Brain's own
    random start) the sweep has no other randomness: slot by slot, the fast path aims at the
    Brain's very target, passing over its own address and the victims it has seen infected
    (laps of a /24, a run of 10 victims: a slot where 8 in a row are passed over sends
    nothing on both sides)."""
    topology = flat_topology(20, vulnerable_fraction=0.0, seed=1)  # 10.0.0.0/24, h0-h19
    scenario = scenario_for(topology, {"duration_s": 1, "seed": 1, "stop": {"when": []},
                                       "worm": {"profile": "local-preference",
                                                "patient_zero": ["h0"], "start_s": 0}})
    simulation = Simulation(scenario, seed=1, timing=load_timing(), run_dir=tmp_path,
                            duration=1.0, wall_base=0.0, run_name="t", record_probes=False)
    config = simulation.configs["h3"]
    grid = AddressGrid(simulation, config.cidrs)
    victims = set(range(5, 15))  # accept every exploit: infected or already

    def accepted(source: np.ndarray, target: np.ndarray, exploit: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(target, list(victims)))

    params = {**config.worm.params, "local_bias": local_bias}
    brain = Brain(WormView(config.address, config.segment_cidr, config.cidrs,
                           config.worm.arsenal), "local-preference", params, seed=7, start=0.0)
    sweep = _SweepTargets(grid, np.random.default_rng(1), len(config.worm.arsenal), params,
                          accepted)
    worm = simulation.names.index("h3")
    sweep.wake(worm)
    sweep.sequential[worm] = brain._sequential_index  # the one draw the two do not share
    host_of = {str(host.ip): index for index, host in enumerate(simulation.hosts)}
    brain_targets: list[tuple[int, ...]] = []  # per slot: the host aimed at, -1 a dead address
    fast_targets: list[tuple[int, ...]] = []
    for _ in range(700):  # 2.7 laps of the /24
        now = brain.next_slot_at
        probes = brain.plan(now).probes
        for probe in probes:
            brain.observe(Observation(probe, "infected" if host_of.get(probe.target) in victims
                                      else "unreachable", now))
        brain_targets.append(tuple(host_of.get(p.target, -1) for p in probes))
        _, _, target, _ = sweep.pick([(np.array([worm]), np.array([now]))])
        fast_targets.append(tuple(int(t) for t in target))
    assert fast_targets == brain_targets
    assert () in brain_targets  # a slot passed over 8 victims in a row
    assert -1 in {t for slot in brain_targets for t in slot}  # it swept past the hosts
    assert sum(1 for slot in brain_targets if slot == (worm + 1,)) >= 2  # laps


class _NoTruth:
    def emit(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("no defence signal on an open flat network")


@pytest.mark.parametrize(("profile", "fallback"), [("hitlist", "local"),
                                                   ("hitlist", "sequential"),
                                                   ("stealth", "local")])
def test_hitlist_picks_the_brains_targets(profile: str, fallback: str, tmp_path: Path) -> None:
    """Slot by slot, the hit-list fast path aims at the Brain's very target when both learn the
    same outcomes: refused hosts join the hit list and are tried again, connected ones are
    judged, victims are passed over, and peers (noted before and after the wake) are tried in
    the order they came. With the ``local`` or ``sequential`` fallback nothing else is random
    (the sequential start is the one draw they do not share: both start at the first address).
    stealth (its fallback is ``local``) without interleaving works the same queue."""
    params = {"fallback": fallback} if profile == "hitlist" else {"interleave": 0.0}
    topology = flat_topology(40, vulnerable_fraction=0.3, seed=1)  # a /24: most of it dead
    scenario = scenario_for(topology, {"duration_s": 1, "seed": 1, "stop": {"when": []},
                                       "worm": {"profile": profile, "patient_zero": ["h3"],
                                                "start_s": 0, "params": params}})
    simulation = Simulation(scenario, seed=1, timing=load_timing(), run_dir=tmp_path,
                            duration=1.0, wall_base=0.0, run_name="t", record_probes=False)
    config = simulation.configs["h3"]
    table, _ = vulnerability_table(simulation)
    table[::3, 0] = 0  # every third host without the service (every host runs it here)
    grid = AddressGrid(simulation, config.cidrs)
    fast = _HitListTargets(grid, np.random.default_rng(1), 1, config.worm.params,
                           lambda *_: np.zeros(0, dtype=np.int64), simulation=simulation,
                           truth=_NoTruth(), table=table)  # type: ignore[arg-type]
    brain = Brain(WormView(config.address, config.segment_cidr, config.cidrs,
                           config.worm.arsenal), profile, config.worm.params, seed=7,
                  start=0.0)
    host_of = {str(host.ip): index for index, host in enumerate(simulation.hosts)}
    worm = host_of[config.address]
    outcome_of = {0: "refused", 1: "not-vulnerable", 2: "infected"}  # the table's codes
    assert {0, 1, 2} <= set(table[:, 0].tolist())  # every kind of answer occurs
    # a peer before the wake, and one at step 40 that the fallback has not reached by then
    early = host_of[str(topology.hosts["h30"].ip)]
    late = host_of[str(topology.hosts["h2" if fallback == "local" else "h39"].ip)]
    fast._note_peer(worm, early)  # connected to its host before the worm woke
    fast.wake(worm)
    brain._sequential_index = 0  # the one draw they do not share: both from the first host
    fast.worms[worm].sequential = 0
    brain.see_peer(str(simulation.hosts[early].ip))  # Simulation._wake replays its peers
    brain_slots: list[tuple[str, int]] = []
    fast_slots: list[tuple[str, int]] = []
    for step in range(150):
        if step == 40:  # a peer after the wake
            brain.see_peer(str(simulation.hosts[late].ip))
            fast._note_peer(worm, late)
        now = brain.next_slot_at
        for probe in brain.plan(now).probes:
            target = host_of.get(probe.target, -1)
            answer = "unreachable" if target < 0 else outcome_of[int(table[target, 0])]
            brain.observe(Observation(probe, answer, now))
            brain_slots.append((probe.tactic, target))
        source, _, target_array, _ = fast.pick([(np.array([worm]), np.array([now]))])
        tactic = "hitlist" if fast.worms[worm].hitlist or source.size == 0 else fallback
        fast_slots.extend((tactic, int(t)) for t in target_array)
    hitlist_brain = [target for tactic, target in brain_slots if tactic == "hitlist"]
    assert len(hitlist_brain) >= 5 and early in hitlist_brain and late in hitlist_brain
    assert [target for _, target in fast_slots] == [target for _, target in brain_slots]
    assert -1 in {target for _, target in brain_slots}  # it scanned dead addresses too


def generated_enterprise(tmp_path: Path, hosts: int, params: dict[str, object],
                         duration: float) -> Scenario:
    """``testbed generate enterprise`` (routers, a core firewall, trusted servers), a hitlist
    worm from the launch-pad laptop."""
    (tmp_path / "enterprise.yaml").write_text(topology_yaml(generate_topology(
        "enterprise", hosts, seed=1, vulnerable=0.15)), encoding="utf-8")
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump({
        "name": "enterprise", "topology": "enterprise.yaml", "duration_s": duration, "seed": 1,
        "stop": {"when": []}, "worm": {"profile": "hitlist", "patient_zero": ["laptop"],
                                       "start_s": 0, "params": params}}), encoding="utf-8")
    return load_scenario(tmp_path / "scenario.yaml")


@pytest.mark.parametrize("kind", ["prohibited", "vanished"])
def test_hitlist_defence_signals_are_the_engines(kind: str, tmp_path: Path) -> None:
    """The defence signals the fast path writes (ground truth) are the engine's, over 4 seeds:
    ``prohibited`` per probe within 10 % (the hospital's guest wifi has no route: uniform scans
    there fail at once); ``vanished`` in total within max(3, 10 %) (on the generated enterprise
    a trusted server's pair the firewall drops times out after another of its pairs answered:
    learnt when the worm gives up, not when it sends, or there is no signal at all)."""
    if kind == "prohibited":
        scenario = classic_only(REPO / "scenarios" / "hospital.yaml", profile="hitlist",
                                params={"rate": 10.0, "fallback": "uniform"})
    else:
        scenario = generated_enterprise(tmp_path, 500, {"rate": 10.0}, 30.0)
    signals: dict[bool, int] = {}
    probes: dict[bool, int] = {}
    for fast in (False, True):
        signals[fast], probes[fast] = 0, 0
        for seed in range(1, 5):
            out = tmp_path / f"{fast}-{seed}"
            out.mkdir()
            simulation = Simulation(scenario, seed=seed, timing=load_timing(), run_dir=out,
                                    duration=30.0, wall_base=0.0, run_name="t",
                                    record_probes=False, fast_path=fast)
            probes[fast] += int(simulation.run().counters["probes"])
            assert simulation.mode == ("fast-hitlist" if fast else "events")
            signals[fast] += sum(1 for line in (out / "events.jsonl").read_text().splitlines()
                                 if json.loads(line).get("signal") == kind)
    assert signals[False] >= 10, signals  # the case does exercise it
    if kind == "prohibited":
        ratio = [signals[fast] / probes[fast] for fast in (False, True)]
        assert abs(ratio[1] - ratio[0]) <= 0.1 * ratio[0], (signals, probes)
    else:
        assert abs(signals[True] - signals[False]) <= max(3, 0.1 * signals[False]), signals


def test_hitlist_with_benign_traffic_stays_on_the_event_engine(tmp_path: Path) -> None:
    """Benign users' and backups' connections feed the hit lists in event order."""
    scenario = load_scenario(REPO / "scenarios" / "smb-flat.yaml")
    spec = scenario.spec
    scenario = replace(scenario, spec=spec.model_copy(update={
        "worm": spec.worm.model_copy(update={"profile": "hitlist", "rate": None,
                                             "params": {}}),
        "detectors": [], "stop": spec.stop.model_copy(update={"when": []}),
        "response": spec.response.model_copy(update={"rules": []})}))
    simulation = Simulation(scenario, seed=1, timing=load_timing(), run_dir=tmp_path,
                            duration=1.0, wall_base=0.0, run_name="t", record_probes=False)
    assert "benign traffic" in (fast_path_refusal(simulation) or "")


def test_stealth_at_its_default_jitter_stays_on_the_event_engine(tmp_path: Path) -> None:
    """Its default jitter (0.5) lets the runtime's rate cap shape its gaps."""
    simulation = Simulation(classic_only(REPO / "scenarios" / "hospital.yaml",
                                         profile="stealth"),
                            seed=1, timing=load_timing(), run_dir=tmp_path, duration=1.0,
                            wall_base=0.0, run_name="t", record_probes=False)
    assert "jitter" in (fast_path_refusal(simulation) or "")


@pytest.mark.parametrize("profile", ["adaptive", "planner"])
def test_profiles_with_per_worm_state_stay_on_the_event_engine(profile: str,
                                                                tmp_path: Path) -> None:
    simulation = Simulation(classic_only(REPO / "scenarios" / "hospital.yaml", profile=profile),
                            seed=1, timing=load_timing(), run_dir=tmp_path, duration=1.0,
                            wall_base=0.0, run_name="t", record_probes=False)
    assert "per-worm state" in (fast_path_refusal(simulation) or "")
