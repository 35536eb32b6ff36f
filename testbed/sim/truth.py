"""Ground truth of a simulated run, written as the agents write it.

Owns: stamping ``testbed.records.GroundTruthEvent`` records with virtual ``mono`` (and ``wall`` =
the run's epoch start plus ``mono``), resolving ``target_host`` from the address book as
``testbed.agent.events.EventLog`` does (present, possibly null, whenever ``target`` is), and
appending them, in time order, to the run directory's ``events.jsonl`` in the runner's collected
form (one JSON object a line, keys sorted).
Must not: be read by the simulated sensor, detectors or responder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, Protocol

from testbed.records import EVENT_TYPES

__all__ = ["AddressBook", "TruthLog"]


class AddressBook(Protocol):
    """address -> host name (None for an address no host uses)."""

    def get(self, address: str, /) -> str | None: ...

_BATCH = 4096


class TruthLog:
    """Append-only ``events.jsonl`` writer; use as a context manager."""

    def __init__(self, path: Path, *, wall_base: float, address_book: AddressBook) -> None:
        self.path = Path(path)
        self.wall_base = wall_base
        self._book = address_book
        self._handle: IO[str] = open(self.path, "w", encoding="utf-8")
        self._buffer: list[str] = []
        self.counts: dict[str, int] = {}

    def emit(self, host: str, event_type: str, mono: float, **fields: Any) -> None:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        record: dict[str, Any] = {"wall": self.wall_base + mono, "mono": mono, "host": host,
                                  "type": event_type}
        target = fields.get("target")
        if target is not None and "target_host" not in fields:
            record["target_host"] = self._book.get(target)
        record.update((key, value) for key, value in fields.items() if value is not None)
        self._buffer.append(json.dumps(record, sort_keys=True))
        self.counts[event_type] = self.counts.get(event_type, 0) + 1
        if len(self._buffer) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._handle.write("\n".join(self._buffer) + "\n")
            self._buffer.clear()

    def close(self) -> None:
        self.flush()
        self._handle.close()

    def __enter__(self) -> TruthLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
