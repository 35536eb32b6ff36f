"""Helpers shared by test_experiments.py and test_experiments_ray.py (not a test module).

Ray workers unpickle ``FailingSource`` by value (the Ray test registers this module), since they
cannot import the tests folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from testbed.bench import BenchCell
from testbed.experiments.cells import ScenarioSource
from testbed.model.load_scenario import Scenario

REPO = Path(__file__).resolve().parents[2]

SMALL_BENCH = """
name: small-sim
scenarios: [{scenario}]
detector_sets:
  none: []
  trw: [trw]
profiles: [classic, adaptive]
seeds: 2
duration_s: 10
backend: sim
"""


def small_bench(tmp_path: Path) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(SMALL_BENCH.format(scenario=REPO / "scenarios" / "smb-flat.yaml"))
    return path


@dataclasses.dataclass(frozen=True)
class FailingSource:
    """Derives scenarios as ``inner`` does, but the cell with seed ``bad_seed`` fails."""

    inner: ScenarioSource
    bad_seed: int

    def scenario(self, cell: BenchCell) -> Scenario:
        if cell.seed == self.bad_seed and cell.detector_set == "trw":
            raise RuntimeError("synthetic failure of one cell")
        return self.inner.scenario(cell)
