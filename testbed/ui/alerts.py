"""An alert as the defender's dashboard shows it, read from ``alerts.jsonl`` in either shape.

Owns: ``read_alert`` and ``AlertView``, the one place the dashboard interprets an alert record.
Two shapes are accepted, so the dashboard reads old runs and new ones alike:

- the testbed's first shape: ``detector``, ``mono``, ``host`` (the accused source's name) and
  ``evidence`` at the top level, next to Suricata's EVE keys;
- Suricata EVE proper (``testbed.eve``'s version 2): the detector-specific data under
  ``alert.metadata`` (``detector``, ``mono``, ``src_host``, ``evidence``; Suricata's own
  metadata values are lists of strings, so one-element lists are unwrapped), ``host`` naming the
  *sensor*, and the accused host being the owner of ``src_ip``.

The accused host is therefore always the inventory's owner of ``src_ip`` when the topology knows
the address, and only otherwise the record's own ``host``.

Must not touch: ground truth. An alert is what a detector concluded, nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["AlertView", "read_alert"]


@dataclass(frozen=True)
class AlertView:
    """What the alert queue shows of one alert (``time_s`` relative to the run's t0)."""

    time_s: float | None
    detector: str
    src_ip: str
    accused: str | None  # the source's host name
    dest_ip: str
    dest_port: int
    severity: int
    signature: str
    sensor: str | None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"time_s": None if self.time_s is None else round(self.time_s, 3),
                "detector": self.detector, "src_ip": self.src_ip, "accused": self.accused,
                "dest_ip": self.dest_ip, "dest_port": self.dest_port,
                "severity": self.severity, "signature": self.signature, "sensor": self.sensor,
                "evidence": self.evidence}


def _unwrap(value: Any) -> Any:
    """EVE metadata holds lists of strings; a one-element list stands for its element."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _number(value: Any) -> float | None:
    value = _unwrap(value)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _evidence(value: Any) -> dict[str, Any]:
    value = _unwrap(value)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {"text": value}
    return dict(value) if isinstance(value, Mapping) else {}


def read_alert(record: Mapping[str, Any], *, inventory: Mapping[str, str],
               t0_mono: float | None, t0_wall: float | None) -> AlertView | None:
    """The dashboard's view of one ``alerts.jsonl`` record, or None if it is not an alert.

    ``inventory`` maps addresses to host names (the topology's, as a sensor knows it); the
    record's time is its ``mono`` (testbed clock) when present, else its EVE ``timestamp``
    against the run's ``t0_wall``."""
    if record.get("event_type", "alert") != "alert":
        return None
    eve = record.get("alert")
    eve = eve if isinstance(eve, Mapping) else {}
    metadata = eve.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    detector = record.get("detector") or _unwrap(metadata.get("detector")) or "unknown"
    src_ip = str(record.get("src_ip", ""))

    mono = _number(record.get("mono", metadata.get("mono")))
    time_s: float | None = None
    if mono is not None and t0_mono is not None:
        time_s = mono - t0_mono
    elif t0_wall is not None and isinstance(record.get("timestamp"), str):
        try:
            time_s = datetime.fromisoformat(record["timestamp"]).timestamp() - t0_wall
        except ValueError:
            time_s = None

    accused = inventory.get(src_ip) or _unwrap(metadata.get("src_host"))
    sensor = _unwrap(metadata.get("sensor")) if metadata else None
    if "metadata" in eve:  # EVE proper: ``host`` is the sensor that saw it
        sensor = sensor or record.get("host")
    elif accused is None:  # first shape: ``host`` is the accused source
        accused = record.get("host")
    evidence = _evidence(record["evidence"]) if "evidence" in record else \
        _evidence(metadata.get("evidence"))
    return AlertView(
        time_s=time_s, detector=str(detector), src_ip=src_ip,
        accused=str(accused) if accused else None, dest_ip=str(record.get("dest_ip", "")),
        dest_port=int(record.get("dest_port") or 0),
        severity=int(eve.get("severity", 3) or 3),
        signature=str(eve.get("signature", "")),
        sensor=str(sensor) if sensor else None, evidence=evidence)
