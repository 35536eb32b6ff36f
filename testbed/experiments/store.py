"""The on-disk record of an experiment, so that an interrupted one resumes.

Owns: ``experiment.json`` (name, fingerprint and size of the matrix the directory belongs to)
and ``cells.jsonl`` (one line per finished or failed cell, appended by the driver in one write
each, so a crash loses at most the line being written). The last line of a key wins: a failed
cell that succeeds on a rerun is finished.
Must not: run cells or decide what to rerun beyond "finished or not".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pydantic

from testbed.bench import BenchRow
from testbed.errors import TestbedError
from testbed.experiments.cells import CellOutcome, ExperimentError

__all__ = ["CellStore", "StoreMismatchError"]


class StoreMismatchError(ExperimentError):
    """The output directory holds cells of a different experiment."""


class CellStore:
    """Finished and failed cells of one experiment directory (a context manager: the ledger
    file stays open for appends while the experiment runs)."""

    def __init__(self, directory: Path, name: str, fingerprint: str, cells: int) -> None:
        self.directory = directory
        self.finished: dict[str, BenchRow] = {}
        self.failed: dict[str, str] = {}
        directory.mkdir(parents=True, exist_ok=True)
        identity = {"name": name, "fingerprint": fingerprint, "cells": cells}
        marker = directory / "experiment.json"
        if marker.exists():
            recorded = json.loads(marker.read_text(encoding="utf-8"))
            if recorded.get("fingerprint") != fingerprint:
                raise StoreMismatchError(
                    f"{directory} holds cells of another experiment ({recorded.get('name')!r}, "
                    f"fingerprint {recorded.get('fingerprint')}; this one is {fingerprint}): "
                    "its inputs changed since; choose another --out")
        else:
            marker.write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")
        self.ledger_path = directory / "cells.jsonl"
        self._load()
        self._ledger: Any = None

    def _load(self) -> None:
        if not self.ledger_path.exists():
            return
        for line in self.ledger_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                row = (BenchRow.model_validate(record["row"]) if record.get("row") is not None
                       else None)
            except (ValueError, KeyError, pydantic.ValidationError):
                continue  # a line cut by a crash: that cell simply runs again
            key = record["key"]
            if row is not None:
                self.finished[key] = row
                self.failed.pop(key, None)
            else:
                self.finished.pop(key, None)
                self.failed[key] = str(record.get("error"))

    def __enter__(self) -> CellStore:
        self._ledger = open(self.ledger_path, "a", encoding="utf-8")  # closed in __exit__
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def record(self, outcome: CellOutcome) -> None:
        """Append one cell's outcome (one write of one line, flushed)."""
        line = json.dumps({"index": outcome.index, "key": outcome.key,
                           "row": outcome.row.model_dump(mode="json") if outcome.row else None,
                           "error": outcome.error, "seconds": round(outcome.seconds, 4)})
        if self._ledger is None:
            raise TestbedError("CellStore.record outside its with-block")
        self._ledger.write(line + "\n")
        self._ledger.flush()
        if outcome.row is not None:
            self.finished[outcome.key] = outcome.row
            self.failed.pop(outcome.key, None)
        else:
            self.failed[outcome.key] = str(outcome.error)

    def sync(self) -> None:
        """Make the appended lines durable (called at the end and on interruption)."""
        if self._ledger is not None:
            self._ledger.flush()
            os.fsync(self._ledger.fileno())
