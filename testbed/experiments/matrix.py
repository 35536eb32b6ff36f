"""A matrix: the ordered, pure cells of one experiment and where their scenarios come from.

Owns: ``Matrix`` (name, title, cells, baseline, fingerprint) and ``bench_matrix`` (a loaded
bench file, optionally on another backend, as a matrix). The fingerprint hashes everything a
cell's result depends on (bench and scenario specs, topologies, backend, cell list), so a resumed
experiment can refuse an output directory written by a different one.
Must not: run cells, or derive a bench cell's scenario other than by
``testbed.bench.derive_scenario``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.bench import BenchCell, LoadedBench, derive_scenario, with_backend
from testbed.experiments.cells import CellJob, ScenarioSource
from testbed.model.load_scenario import Scenario

__all__ = ["BenchSource", "Matrix", "bench_matrix", "file_digest", "fingerprint_of"]


@dataclass(frozen=True)
class Matrix:
    """Every cell of one experiment, in a fixed order (rows and leaderboards follow it)."""

    name: str
    title: str
    source: ScenarioSource
    jobs: tuple[CellJob, ...]
    baseline: str | None
    fingerprint: str


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes ("" when it is not a file, e.g. a generated topology)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def fingerprint_of(*parts: Any) -> str:
    """A short stable hash of JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class BenchSource:
    """Cells of a bench file: each scenario is the bench's derivation of its base scenario."""

    bench: LoadedBench

    def scenario(self, cell: BenchCell) -> Scenario:
        return derive_scenario(self.bench, cell)


def bench_matrix(bench: LoadedBench, backend: str | None = None) -> Matrix:
    """The bench's cells (``LoadedBench.cells`` order) as a matrix, every cell on ``backend``
    when given (else the bench's backend, else each scenario's)."""
    if backend is not None:
        bench = with_backend(bench, backend)
    jobs = tuple(
        CellJob(index, cell, bench.spec.backend or bench.scenarios[cell.scenario].spec.backend)
        for index, cell in enumerate(bench.cells()))
    fingerprint = fingerprint_of(
        bench.spec.model_dump(mode="json"),
        {name: (scenario.spec.model_dump(mode="json"), file_digest(scenario.topology_path))
         for name, scenario in sorted(bench.scenarios.items())},
        [(job.key, job.backend) for job in jobs])
    return Matrix(name=bench.spec.name, title=f"bench {bench.spec.name}",
                  source=BenchSource(bench), jobs=jobs, baseline=bench.spec.baseline,
                  fingerprint=fingerprint)
