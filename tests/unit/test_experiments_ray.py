"""The Ray engine: one embedded Ray session for the whole module (start-up costs seconds).

Under CI=true Ray must be installed (`make test` installs the ``[ray]`` extra): a missing Ray
fails here instead of skipping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import experiments_support
import pytest
from experiments_support import FailingSource, small_bench
from extras_support import require_extra

from testbed.bench import leaderboard, load_bench
from testbed.experiments import LocalEngine, RayEngine, bench_matrix, run_experiment
from testbed.experiments.engines import EMULATION_RESOURCE, can_emulate

require_extra("ray")


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[RayEngine]:
    import ray

    # workers cannot import the tests folder: ship the helpers' classes by value
    ray.cloudpickle.register_pickle_by_value(experiments_support)
    with RayEngine(num_cpus=2) as engine:
        yield engine


def test_embedded_ray_binds_loopback_and_advertises_emulation_only_when_able(
        ray_engine: RayEngine) -> None:
    import ray

    nodes = [node for node in ray.nodes() if node["Alive"]]
    assert [node["NodeManagerAddress"] for node in nodes] == ["127.0.0.1"]
    advertised = ray.cluster_resources().get(EMULATION_RESOURCE, 0)
    assert advertised == (1 if can_emulate() else 0)
    assert "embedded, 127.0.0.1" in ray_engine.describe()


def test_local_and_ray_give_the_same_leaderboard(tmp_path: Path,
                                                 ray_engine: RayEngine) -> None:
    matrix = bench_matrix(load_bench(small_bench(tmp_path)))
    local = run_experiment(matrix, tmp_path / "local", LocalEngine())
    on_ray = run_experiment(matrix, tmp_path / "ray", ray_engine)
    assert on_ray.ran == len(matrix.jobs) and not on_ray.failed
    assert on_ray.rows == local.rows  # matrix order, whatever order the tasks finished in
    assert leaderboard(on_ray.rows) == leaderboard(local.rows)
    assert (tmp_path / "ray" / "leaderboard.md").read_text() == (
        tmp_path / "local" / "leaderboard.md").read_text()


def test_a_failing_cell_on_ray_is_listed_and_resume_retries_it(
        tmp_path: Path, ray_engine: RayEngine) -> None:
    matrix = bench_matrix(load_bench(small_bench(tmp_path)))
    bad_seed = matrix.jobs[0].cell.seed
    failing = dataclasses.replace(matrix, source=FailingSource(matrix.source, bad_seed))
    outcome = run_experiment(failing, tmp_path / "out", ray_engine)
    assert len(outcome.failed) == 2 and len(outcome.rows) == 6
    assert all("synthetic failure of one cell" in e for e in outcome.failed.values())
    healed = run_experiment(matrix, tmp_path / "out", ray_engine)
    assert healed.ran == 2 and not healed.failed and len(healed.rows) == 8

