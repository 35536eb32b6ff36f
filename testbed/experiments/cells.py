"""One cell of an experiment: a pure function of its inputs (the cell's scenario and seed) that
runs once and returns a small, picklable ``CellOutcome`` (the leaderboard row, or the error).

Owns: ``CellJob`` (what a worker needs to run one cell), ``CellOutcome``, ``execute_cell`` (the
function every engine calls, in this process or as a Ray task) and ``run_cell_scenario`` (the
one place choosing between the simulator and the emulation runner).
Must not: talk to an engine, write anything outside the cell's own run directory, or let an
ordinary error escape (it becomes the outcome's ``error``; only KeyboardInterrupt/SystemExit
propagate).
"""

from __future__ import annotations

import io
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pydantic

from testbed.bench import BenchCell, BenchRow, cell_row
from testbed.errors import TestbedError
from testbed.model.load_scenario import Scenario
from testbed.results import Results

__all__ = ["CellJob", "CellOutcome", "ExperimentError", "ScenarioSource", "execute_cell",
           "run_cell_scenario"]


class ExperimentError(TestbedError):
    """An experiment cannot run as asked (engine, cluster or output directory)."""

SIMULATED_BACKEND = "sim"


class ScenarioSource(Protocol):
    """Derives a cell's scenario (picklable: it travels to Ray workers once per experiment)."""

    def scenario(self, cell: BenchCell) -> Scenario: ...


@dataclass(frozen=True)
class CellJob:
    """One cell: its position in the matrix, its labels and seed, and its backend."""

    index: int
    cell: BenchCell
    backend: str

    @property
    def key(self) -> str:
        """Stable name of the cell (the store's key): scenario/set/profile/seed-N."""
        cell = self.cell
        return f"{cell.scenario}/{cell.detector_set}/{cell.profile}/seed-{cell.seed}"

    @property
    def emulated(self) -> bool:
        """Whether the cell deploys a real (namespaces/containers) network."""
        return self.backend != SIMULATED_BACKEND


@dataclass(frozen=True)
class CellOutcome:
    """What came back from one cell: its row, or the error that stopped it."""

    index: int
    key: str
    row: BenchRow | None
    error: str | None
    seconds: float
    reused: bool = False


def run_cell_scenario(scenario: Scenario, run_dir: Path) -> Results:
    """Run ``scenario`` once into ``run_dir``. Sim cells call the simulator directly (cheaper
    than the runner's front door, which matters at 10,000 cells); the rest go through
    ``testbed.runner.run_scenario``."""
    if scenario.spec.backend == SIMULATED_BACKEND:
        from testbed.sim.run import run_simulation

        results, _directory = run_simulation(scenario, scenario.spec.seed, run_dir,
                                             scenario.spec.duration_s)
        return Results.model_validate(results)
    from testbed.runner import run_scenario

    return run_scenario(scenario, out_dir=run_dir, live=False, stream=io.StringIO()).results


def _finished_results(path: Path) -> Results | None:
    """The cell's results when an earlier attempt finished them (and their shape is current)."""
    try:
        results = Results.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, pydantic.ValidationError):
        return None
    return None if results.run.interrupted else results


def execute_cell(source: ScenarioSource, job: CellJob, out_root: str) -> CellOutcome:
    """Run one cell into ``<out_root>/runs/...`` (or reuse its finished results there).

    An interrupted earlier attempt's partial directory is removed first. Any error becomes the
    outcome's ``error`` (type, message and the innermost frame) so that it is listed, not lost.
    """
    started = time.perf_counter()
    directory = job.cell.directory(Path(out_root))
    try:
        results = _finished_results(directory / "results.json")
        reused = results is not None
        if results is None:
            if directory.exists():
                shutil.rmtree(directory)
            results = run_cell_scenario(source.scenario(job.cell), directory)
        return CellOutcome(job.index, job.key, cell_row(job.cell, results), None,
                           time.perf_counter() - started, reused)
    except Exception as error:
        frames = traceback.extract_tb(error.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        return CellOutcome(job.index, job.key, None,
                           f"{type(error).__name__}: {error}{where}",
                           time.perf_counter() - started)
