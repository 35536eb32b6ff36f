"""Experiments at scale: bench matrices and parameter sweeps run cell by cell on a local engine
(one process) or on Ray (one task per cell, on this machine or a cluster), resumable, with the
leaderboard's statistics.

Owns: turning a bench or a sweep into a ``Matrix`` of pure cells (``matrix``, ``sweep``), the
cell function (``cells``: one run, sim or emulation, to a ``CellOutcome``), the on-disk record of
finished and failed cells (``store``), the engines (``engines``), the progress bar (``progress``)
and the driver tying them together (``run``).
Must not: score runs (``testbed.scoring``), derive a bench cell's scenario differently from
``testbed.bench.derive_scenario``, or compute statistics itself (``testbed.stats`` through
``testbed.bench.leaderboard``).
"""

from testbed.experiments.cells import CellJob, CellOutcome, execute_cell
from testbed.experiments.engines import ENGINES, LocalEngine, RayEngine, can_emulate, make_engine
from testbed.experiments.matrix import BenchSource, Matrix, bench_matrix
from testbed.experiments.run import ExperimentError, ExperimentOutcome, run_experiment
from testbed.experiments.store import CellStore
from testbed.experiments.sweep import SweepSpec, load_sweep, sweep_matrix, sweep_schema

__all__ = [
    "ENGINES",
    "BenchSource",
    "CellJob",
    "CellOutcome",
    "CellStore",
    "ExperimentError",
    "ExperimentOutcome",
    "LocalEngine",
    "Matrix",
    "RayEngine",
    "SweepSpec",
    "bench_matrix",
    "can_emulate",
    "execute_cell",
    "load_sweep",
    "make_engine",
    "run_experiment",
    "sweep_matrix",
    "sweep_schema",
]
