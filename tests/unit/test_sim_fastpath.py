"""The fast path's semantics are the classic Brain's: its policy tables are decide_flow's,
pair by pair, on every shipped topology; and, at distribution level, on a small flat
network, over many seeds, the mean infected curve of the vectorised path
(``testbed.sim.fastpath``) matches the event engine driving one real ``Brain`` per host.

Margins: at every second of the outbreak the two mean curves differ by at most max(6 hosts,
4 standard errors of the difference of means) -- 6 hosts is 4 % of the 149 hosts there are to
infect; 4 standard errors keep a false alarm below 1e-4 per time point. Seed to seed the
outbreak's start wanders (4 standard errors reach 57 hosts mid-outbreak), so the curves are also
compared aligned at each run's tenth infection, every 0.5 s for 6 s, within max(4 hosts,
4 standard errors) (measured on 2026-11-30: 4 standard errors 1-19 hosts, observed gaps at most
1.3 hosts). The mean number infected at the end agrees within 3 % of the susceptible hosts."""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.model.load_scenario import Scenario, load_scenario
from testbed.model.scenario_spec import BenignSpec
from testbed.policy import decide_flow
from testbed.sim.engine import Simulation
from testbed.sim.fastpath import _flow_tables, _vulnerability_table, fast_path_refusal
from testbed.sim.generate import flat_topology
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


def test_mean_infected_curve_of_the_fast_path_is_the_brains(classic_outbreak: Any) -> None:
    susceptible = sum(1 for h in flat_topology(HOSTS, vulnerable_fraction=VULNERABLE_FRACTION,
                                               seed=5).hosts.values() if h.susceptible) - 1
    runs = {fast: [classic_outbreak(fast, seed, hosts=HOSTS,
                                     vulnerable_fraction=VULNERABLE_FRACTION,
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


SHIPPED = sorted(p for p in (REPO / "scenarios").glob("*.yaml")
                 if "topology" in (yaml.safe_load(p.read_text()) or {}))


def classic_only(path: Path, rate: float | None = None) -> Scenario:
    """The scenario's topology and patient zero with a classic worm, nothing watching or
    answering, no benign traffic, no stop conditions: the fast path's domain."""
    scenario = load_scenario(path)
    spec = scenario.spec
    worm = spec.worm.model_copy(update={"profile": "classic", "rate": None,
                                        "params": {} if rate is None else {"rate": rate}})
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
    table, exploits = _vulnerability_table(simulation)
    allowed, _, class_of = _flow_tables(simulation, exploits)
    assert allowed is not None
    hosts = simulation.hosts
    pairs = [(s, t, e) for s in range(len(hosts)) for t in range(len(hosts)) if s != t
             for e in range(len(exploits)) if table[t, e] == 2]  # _VULNERABLE
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


def test_routed_outbreak_on_the_fast_path_is_the_brains(tmp_path: Path) -> None:
    """The hospital (routers, host firewalls): mean infected per second over 16 seeds within
    max(1.5 hosts, 4 standard errors of the difference), as on the flat network."""
    scenario = classic_only(REPO / "scenarios" / "hospital.yaml", rate=15.0)
    runs: dict[bool, list[list[int]]] = {}
    at = [float(t) for t in range(5, 61, 5)]
    for fast in (False, True):
        runs[fast] = []
        for seed in range(1, 17):
            out = tmp_path / f"{fast}-{seed}"
            out.mkdir()
            simulation = Simulation(scenario, seed=seed, timing=load_timing(), run_dir=out,
                                    duration=60.0, wall_base=0.0, run_name="t",
                                    record_probes=False, fast_path=fast)
            simulation.run()
            assert simulation.mode == ("fast-classic" if fast else "events")
            events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
            times = sorted(e["mono"] for e in events if e["type"] == "infection")
            runs[fast].append(curve(times, at))
    for index, t in enumerate(at):
        events_at = [counts[index] for counts in runs[False]]
        fast_at = [counts[index] for counts in runs[True]]
        error = ((statistics.variance(events_at) + statistics.variance(fast_at)) / 16) ** 0.5
        gap = abs(statistics.mean(fast_at) - statistics.mean(events_at))
        assert gap <= max(1.5, 4 * error), (t, statistics.mean(events_at),
                                             statistics.mean(fast_at))
    assert statistics.mean(counts[-1] for counts in runs[False]) >= 1  # it did spread
