"""Ground truth: the agent's append-only JSON-lines log (``hosts/<host>/events.jsonl``).

Owns: stamping each event (wall and monotonic time, host, resolved target host) and writing it
promptly but in batches: lines are buffered and flushed within ``flush_interval`` seconds, at
once for rare, important events (wake, infection, stop), and on close.
Must not: be read by detectors or responders; only the scorer and the live view read it.
Record shapes: ``testbed.records.GroundTruthEvent``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testbed.records import EVENT_TYPES, EVENTS_VERSION

__all__ = ["TECHNIQUES", "EventLog"]

TECHNIQUES = {
    "scan": "T1046",  # network service discovery
    "exploit": "T1210",  # exploitation of remote services
    "valid-credentials": "T1021",  # remote services with credentials (trusts, hit list)
    "tool-transfer": "T1570",  # lateral tool transfer: imitated by the token alone
}
_URGENT = {"wake", "infection", "stop", "listen"}
_BATCH_LINES = 256


class EventLog:
    """Buffered JSON-lines writer. ``schedule(delay, callback)`` arranges a later flush."""

    def __init__(self, path: Path, host: str, address_book: dict[str, str] | None = None, *,
                 schedule: Callable[[float, Callable[[], None]], object] | None = None,
                 flush_interval: float = 0.2) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.host = host
        self._book = address_book or {}
        self._descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._buffer: list[str] = []
        self._schedule = schedule
        self._flush_interval = flush_interval
        self._flush_pending = False
        self.counts: dict[str, int] = {}

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        record: dict[str, Any] = {"event_version": EVENTS_VERSION, "wall": time.time(),
                                  "mono": time.monotonic(), "host": self.host,
                                  "type": event_type}
        target = fields.get("target")
        if target is not None and "target_host" not in fields:
            record["target_host"] = self._book.get(target)
        record.update((key, value) for key, value in fields.items() if value is not None)
        self._buffer.append(json.dumps(record, separators=(",", ":")))
        self.counts[event_type] = self.counts.get(event_type, 0) + 1
        if event_type in _URGENT or len(self._buffer) >= _BATCH_LINES or self._schedule is None:
            self.flush()
        elif not self._flush_pending:
            self._flush_pending = True
            self._schedule(self._flush_interval, self.flush)
        return record

    def flush(self) -> None:
        self._flush_pending = False
        if not self._buffer or self._descriptor < 0:
            return
        data = ("\n".join(self._buffer) + "\n").encode("utf-8")
        self._buffer.clear()
        view = memoryview(data)
        while view:
            written = os.write(self._descriptor, view)
            view = view[written:]

    def close(self) -> None:
        self.flush()
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1
