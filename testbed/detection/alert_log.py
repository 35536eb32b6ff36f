"""The alert log: detectors' alerts appended to ``alerts.jsonl`` as Suricata EVE JSON lines.

Owns: the file format of a run's alert log (one ``Alert.to_record()`` a line, sorted keys; EVE
``host`` is the sensor's name) and its lifecycle. Must not touch: ground truth, or anything that
acts on alerts (the responder).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from detectors.base import Alert
from testbed.eve import DEFAULT_SENSOR

__all__ = ["AlertLog"]


class AlertLog:
    """Appends alerts to ``alerts.jsonl`` as EVE-style records (one JSON object a line)."""

    def __init__(self, path: Path, *, clock_offset: float | None = None,
                 sensor: str = DEFAULT_SENSOR) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.clock_offset = clock_offset
        self.sensor = sensor  # EVE ``host``
        self._handle: IO[str] = open(path, "a", encoding="utf-8")
        self.count = 0

    def write(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self._handle.write(json.dumps(alert.to_record(clock_offset=self.clock_offset,
                                                          sensor=self.sensor),
                                          sort_keys=True) + "\n")
            self.count += 1
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> AlertLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
