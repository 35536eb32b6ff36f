"""Running red-team worms against a scenario's defence, seed by seed, as experiment cells.

Owns: ``worm_scenario`` (the input scenario with its ``worm`` replaced: profile, parameters,
``rate`` left to the parameters; patient zero and start time kept), ``WormSource`` (the
experiments' ``ScenarioSource`` for labelled worms) and ``run_worms`` (worms x seeds through a
``testbed.experiments`` engine, each finished cell summarised by ``summarize_run``). A cell whose
``results.json`` is already in place is reused by ``execute_cell``, which is what makes an
interrupted evaluation resume.
Must not: decide which worms to run (``testbed.redteam.search`` does) or read ground truth
(``testbed.redteam.evidence`` does, through ``testbed.truth``).
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.bench import BenchCell
from testbed.errors import RunError
from testbed.experiments import CellJob, CellOutcome, LocalEngine, execute_cell
from testbed.experiments.cells import ScenarioSource
from testbed.model.load_scenario import Scenario
from testbed.redteam.objectives import RunSummary, summarize_run
from testbed.redteam.space import WormChoice
from testbed.results import Results

__all__ = ["RED_TEAM_SET", "CellTimeoutError", "WatchdogEngine", "WormSource", "cell_directory",
           "remove_runs", "run_worms", "worm_scenario"]

RED_TEAM_SET = "own"  # the scenario's own detectors and response: the defence under test


def worm_scenario(base: Scenario, worm: WormChoice, *, seed: int | None = None,
                  backend: str | None = None, report: bool = False) -> Scenario:
    """``base`` with ``worm`` fielded (and, when given, another seed and backend)."""
    spec = base.spec
    worm_spec = spec.worm.model_copy(update={"profile": worm.profile,
                                             "params": worm.params_dict, "rate": None})
    update: dict[str, Any] = {"worm": worm_spec, "repetitions": 1,
                              "outputs": spec.outputs.model_copy(update={"report": report})}
    if seed is not None:
        update["seed"] = seed
    if backend is not None:
        update["backend"] = backend
    return dataclasses.replace(base, spec=spec.model_copy(update=update))


@dataclass(frozen=True)
class WormSource:
    """Each cell's scenario: the base scenario with the worm its label names (picklable)."""

    base: Scenario
    worms: Mapping[str, WormChoice]
    backend: str

    def scenario(self, cell: BenchCell) -> Scenario:
        return worm_scenario(self.base, self.worms[cell.profile], seed=cell.seed,
                             backend=self.backend)


class CellTimeoutError(RunError):
    """A cell ran longer than the watchdog allows."""


class WatchdogEngine(LocalEngine):
    """The local engine with a wall-clock limit per cell: a cell still running after
    ``cell_timeout_s`` becomes a failed cell (``CellTimeoutError``) instead of stalling the
    search. The limit is a ``SIGALRM`` timer, so it applies to simulated cells in the main
    thread only (emulated cells, and cells elsewhere, run unguarded as on the plain local
    engine)."""

    name = "local"

    def __init__(self, cell_timeout_s: float | None) -> None:
        self.cell_timeout_s = cell_timeout_s

    def describe(self) -> str:
        limit = (f", {self.cell_timeout_s:g} s per cell at most" if self.cell_timeout_s
                 else "")
        return f"local engine (this process{limit})"

    def run(self, source: ScenarioSource, jobs: Sequence[CellJob], out_root: Path,
            on_outcome: Callable[[CellOutcome], None]) -> None:
        guarded = bool(self.cell_timeout_s) and threading.current_thread() is \
            threading.main_thread()
        limit = float(self.cell_timeout_s or 0)
        for job in jobs:
            if not guarded or job.emulated:  # emulations clean up through their own ledgers
                on_outcome(execute_cell(source, job, str(out_root)))
                continue

            def expire(_signum: int, _frame: Any, key: str = job.key) -> None:
                raise CellTimeoutError(f"{key} still ran after {limit:g} s of wall time")

            previous = signal.signal(signal.SIGALRM, expire)
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                outcome = execute_cell(source, job, str(out_root))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            on_outcome(outcome)


def cell_directory(out_root: Path, base: Scenario, label: str, seed: int) -> Path:
    """Where the run of worm ``label`` with ``seed`` lives under ``out_root``."""
    return BenchCell(base.name, base.path, RED_TEAM_SET, label, seed).directory(out_root)


def run_worms(engine: Any, base: Scenario, worms: Mapping[str, WormChoice], seeds: Sequence[int],
              out_root: Path, *, backend: str,
              on_outcome: Callable[[CellOutcome], None] | None = None
              ) -> dict[str, list[RunSummary]]:
    """Every worm (by label) x seed on ``backend``; returns each label's runs in seed order.

    A failed cell is a ``RunError`` naming the cell and its error (after the other cells ran).
    KeyboardInterrupt propagates (the engine has stopped its workers; finished cells stay on
    disk and are reused by the next call)."""
    jobs = [CellJob(index, BenchCell(base.name, base.path, RED_TEAM_SET, label, seed), backend)
            for index, (label, seed) in enumerate((label, seed) for label in worms
                                                  for seed in seeds)]
    outcomes: dict[str, CellOutcome] = {}

    def handle(outcome: CellOutcome) -> None:
        outcomes[outcome.key] = outcome
        if on_outcome is not None:
            on_outcome(outcome)

    engine.run(WormSource(base, dict(worms), backend), jobs, out_root, handle)
    failed = [outcome for outcome in outcomes.values() if outcome.error is not None]
    if failed:
        raise RunError(f"{len(failed)} run(s) failed, e.g. {failed[0].key}: {failed[0].error}")
    runs: dict[str, list[RunSummary]] = {label: [] for label in worms}
    for job in jobs:
        if job.key not in outcomes:
            raise RunError(f"the engine returned no outcome for {job.key}")
        directory = job.cell.directory(out_root)
        results = Results.model_validate_json(
            (directory / "results.json").read_text(encoding="utf-8"))
        duration = base.spec.duration_s
        runs[job.cell.profile].append(summarize_run(results, duration))
    return runs


def remove_runs(out_root: Path, base: Scenario, label: str) -> None:
    """Drop one worm's run directories (a finished trial keeps only its summaries)."""
    directory = cell_directory(out_root, base, label, 0).parent
    if directory.is_dir():
        shutil.rmtree(directory)
