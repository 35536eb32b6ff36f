"""The experiment driver: skip what is on disk, run the rest on an engine, record every outcome
as it arrives, and write the leaderboard plus the list of failed cells.

Owns: ``run_experiment`` and ``ExperimentOutcome``; the files ``failed.json`` and the "Failed
cells" section appended to ``leaderboard.md`` (a failed cell is listed, never a silent hole).
Must not: compute statistics (``testbed.bench.write_leaderboard``) or run a cell itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from testbed.bench import BenchRow, write_leaderboard
from testbed.experiments.cells import (
    CellJob,
    CellOutcome,
    ExperimentError,
    ScenarioSource,
)
from testbed.experiments.matrix import Matrix
from testbed.experiments.progress import ProgressBar
from testbed.experiments.store import CellStore

__all__ = ["Engine", "ExperimentError", "ExperimentOutcome", "run_experiment"]


class Engine(Protocol):
    name: str

    def run(self, source: ScenarioSource, jobs: list[CellJob], out_root: Path,
            on_outcome: Callable[[CellOutcome], None]) -> None: ...


@dataclass(frozen=True)
class ExperimentOutcome:
    """Rows of the finished cells (in matrix order), failed cells with their errors, files."""

    rows: list[BenchRow]
    failed: dict[str, str]
    paths: dict[str, Path]
    ran: int  # cells run this time (the others were on disk already)
    total: int


def _write_failures(out_dir: Path, failed: dict[str, str],
                    paths: dict[str, Path]) -> None:
    failures_path = out_dir / "failed.json"
    failures_path.write_text(json.dumps(failed, indent=2) + "\n", encoding="utf-8")
    paths["failed"] = failures_path
    if failed:
        lines = ["", f"## Failed cells ({len(failed)}): not in the table above", ""]
        lines += [f"- `{key}`: {error}" for key, error in failed.items()]
        with open(paths["markdown"], "a", encoding="utf-8") as markdown:
            markdown.write("\n".join(lines) + "\n")


def run_experiment(matrix: Matrix, out_dir: Path, engine: Engine, *,
                   progress: ProgressBar | None = None,
                   on_outcome: Callable[[CellOutcome], None] | None = None
                   ) -> ExperimentOutcome:
    """Run every cell of ``matrix`` not yet finished in ``out_dir`` on ``engine``.

    Finished cells are kept in ``out_dir`` (``CellStore``), so rerunning after an interruption
    continues; failed cells are retried. KeyboardInterrupt propagates after the ledger is synced
    (the engine has already stopped its workers)."""
    with CellStore(out_dir, matrix.name, matrix.fingerprint, len(matrix.jobs)) as store:
        todo = [job for job in matrix.jobs if job.key not in store.finished]
        if progress is not None:
            progress.already_done = progress.done = len(matrix.jobs) - len(todo)
            progress.total = len(matrix.jobs)

        def handle(outcome: CellOutcome) -> None:
            store.record(outcome)
            if progress is not None:
                progress.advance(failed=outcome.row is None)
            if on_outcome is not None:
                on_outcome(outcome)

        try:
            engine.run(matrix.source, todo, out_dir, handle)
        finally:
            store.sync()
            if progress is not None:
                progress.draw(final=True)
        keys = {job.key for job in matrix.jobs}
        rows = [store.finished[job.key] for job in matrix.jobs if job.key in store.finished]
        failed = {key: error for key, error in store.failed.items() if key in keys}
    paths = write_leaderboard(out_dir, rows, matrix.title, matrix.baseline)
    _write_failures(out_dir, failed, paths)
    return ExperimentOutcome(rows=rows, failed=failed, paths=paths, ran=len(todo),
                             total=len(matrix.jobs))
