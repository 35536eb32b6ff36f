"""Reduced versions of the simulator's model validations (issue 11, 6): the random constant
spread model's K, Weaver's containment condition at two points, and the planner's R0 verdict on
a few segments. The full tables: ``benchmarks/sim_vs_models.py`` and
``benchmarks/sim_vs_planner.py``, whose functions these tests call (no second implementation).
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _benchmark(name: str) -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def models() -> ModuleType:
    return _benchmark("sim_vs_models")


@pytest.fixture(scope="module")
def planner_bench() -> ModuleType:
    return _benchmark("sim_vs_planner")


def test_logistic_fit_recovers_a_known_rate(models: ModuleType) -> None:
    # Infection times of an exact logistic a(t) = 1 / (1 + e^{-K (t - 5)}), N = 1000, K = 0.7.
    vulnerable, k = 1000, 0.7
    times = tuple(5 + math.log(a / (1 - a)) / k
                  for a in ((i + 2) / vulnerable for i in range(vulnerable - 2)))
    assert models.fit_logistic_rate(times, vulnerable) == pytest.approx(k, rel=1e-6)


@pytest.mark.parametrize(("hosts", "seeds"), [(1_000, 20), (10_000, 1)])
def test_random_constant_spread_rate_within_ten_percent(models: ModuleType, tmp_path: Path,
                                                         hosts: int, seeds: int) -> None:
    row = models.random_constant_spread(hosts, 0.1, 10.0, seeds, tmp_path)
    assert row["mode"] == "fast-classic"
    assert row["fitted_runs"] == seeds
    assert row["k_model"] == pytest.approx(10.0 * row["N"] / row["Omega"])
    assert abs(row["error"]) <= 0.10, row


@pytest.mark.parametrize(("scans", "contained_at_least", "contained_at_most"),
                         [(5, 0.8, 1.0), (30, 0.0, 0.35)])
def test_weaver_containment_on_either_side_of_one(models: ModuleType, tmp_path: Path,
                                                   scans: int, contained_at_least: float,
                                                   contained_at_most: float) -> None:
    # 500 hosts, 10 % vulnerable in a /23: d = 51 / 510 = 0.1, so T d = 0.5 and 3.0.
    hosts, share, seeds = 500, 0.1, 12
    topology_probe = models.flat_scenario(hosts, share, {"duration_s": 1}).topology
    vulnerable, addresses = models.vulnerable_and_addresses(topology_probe)
    cap = math.ceil(models.WEAVER_CONTAINED_SHARE * vulnerable)
    scenario = models.weaver_scenario(hosts, share, scans, 120.0)
    infected = [len(models.simulate(scenario, seed, tmp_path, 120.0).times)
                for seed in range(1, seeds + 1)]
    contained = sum(count < cap for count in infected) / seeds
    assert contained_at_least <= contained <= contained_at_most, (scans, infected)
    reference = models.branching_containment(scans, vulnerable / addresses, cap, trials=4000)
    assert abs(contained - reference) <= 0.3, (contained, reference)


def test_branching_reference_is_certain_below_one_and_small_far_above(
        models: ModuleType) -> None:
    assert models.branching_containment(2, 0.1, 40, trials=2000) > 0.99
    assert models.branching_containment(40, 0.1, 40, trials=2000) < 0.05


@pytest.mark.parametrize(("share", "spreads"), [(0.1, False), (0.5, True)])
def test_planner_r0_verdict_agrees_with_the_sim_on_a_one_exploit_network(
        models: ModuleType, planner_bench: ModuleType, tmp_path: Path, share: float,
        spreads: bool) -> None:
    # One vulnerability (arsenal of one): the planner's R0 is exactly what the sim's worm sees.
    topology = models.flat_topology(200, vulnerable_fraction=share, seed=1)
    rows = planner_bench.topology_rows(topology, "flat", 4, 10, tmp_path)
    (row,) = rows
    assert row["r0_arsenal_weighted"] == pytest.approx(row["r0_planner"])
    assert row["planner_spreads"] is spreads
    assert row["sim_spreads"] is spreads, row


def test_planner_verdict_agrees_on_the_shipped_smb_flat_segments(
        planner_bench: ModuleType, tmp_path: Path) -> None:
    from testbed.model import load_topology

    topology = load_topology(planner_bench.REPO / "topologies" / "smb-flat.yaml")
    rows = planner_bench.topology_rows(topology, "smb-flat", 4, 5, tmp_path)
    assert {row["segment"] for row in rows} == set(topology.segments)
    assert all(row["agree"] for row in rows), rows
