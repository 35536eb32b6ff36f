"""Suricata EVE JSON: the shape of the testbed's alert and flow records, and how to read them.

Owns: EVE timestamps (``2026-11-30T05:25:34.294099+0000``), the ``flow_id`` derived from a flow's
Community ID, building an EVE ``alert`` record (``alert_record``, what ``Alert.to_record`` and the
alert log write) and an EVE ``flow`` record (``flow_record``, what ``flows.jsonl`` holds), and the
accessors every reader of ``alerts.jsonl`` uses (``alert_time``, ``alert_detector``,
``alert_source_host``), which read both the current record (version 2) and the older one
(version 1: testbed keys ``mono``, ``detector``, ``host``, ``evidence`` at the top level).

Every record validates against Suricata's own JSON Schema for EVE (``etc/schema.json``): the
top level holds only EVE keys; what is the testbed's own goes under ``alert.metadata``
(``alert_version``, ``detector``, ``mono``: the run's clock, ``src_host``: the accused source's
host name, ``evidence``). ``host`` is the sensor's name, as in EVE.

Standard library only (plug-ins reach it through ``detectors.base``). Must not touch: files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from testbed.community_id import flow_community_id

__all__ = [
    "ALERT_VERSION",
    "DEFAULT_SENSOR",
    "alert_detector",
    "alert_record",
    "alert_source_host",
    "alert_time",
    "alert_version",
    "eve_timestamp",
    "flow_id",
    "flow_record",
    "parse_eve_timestamp",
    "upgrade_alert",
]

ALERT_VERSION = 2
"""Version of the alert record: 1 had testbed keys at the top level, 2 is EVE-valid."""
DEFAULT_SENSOR = "testbed-sensor"
"""EVE ``host`` when the caller names no sensor."""
_FLOW_ID_BITS = 52  # below 2**53: exact in every JSON reader, JavaScript's included


def eve_timestamp(epoch: float) -> str:
    """EVE's timestamp: local ISO 8601 with microseconds and a ``+0000``-style zone (UTC here)."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f%z")


def parse_eve_timestamp(text: str) -> float:
    """Epoch seconds of an EVE timestamp (``+0000`` or ``+00:00`` zones)."""
    return datetime.strptime(text.replace("+00:00", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z"
                             ).timestamp()


def flow_id(community_id: str) -> int:
    """A stable EVE ``flow_id`` for a flow: the Community ID's hash folded to 52 bits (Suricata's
    own flow_id is a per-process hash; this one is the same in every record of the flow)."""
    digest = hashlib.sha1(community_id.encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - _FLOW_ID_BITS)


def alert_record(*, epoch: float, mono: float, detector: str, src_ip: str, src_port: int,
                 dest_ip: str, dest_port: int, proto: str, signature: str, signature_id: int,
                 category: str, severity: int, src_host: str | None,
                 evidence: Mapping[str, Any], sensor: str = DEFAULT_SENSOR,
                 in_iface: str = "") -> dict[str, Any]:
    """An EVE ``alert`` record (see the module docstring for where the testbed's keys go)."""
    proto = proto or "IP"
    community = flow_community_id(proto, src_ip, dest_ip, src_port, dest_port) if dest_ip else ""
    return {
        "timestamp": eve_timestamp(epoch),
        "flow_id": flow_id(community or f"{src_ip}>{proto}"),
        "in_iface": in_iface or sensor,
        "event_type": "alert",
        "src_ip": src_ip,
        "src_port": src_port,
        "dest_ip": dest_ip,
        "dest_port": dest_port,
        "proto": proto,
        "community_id": community,
        "host": sensor,
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": signature_id,
            "rev": 1,
            "signature": signature,
            "category": category,
            "severity": severity,
            "metadata": {
                "alert_version": ALERT_VERSION,
                "detector": detector,
                "mono": mono,
                "src_host": src_host,
                "evidence": dict(evidence),
            },
        },
    }


def flow_record(*, community_id: str, src_ip: str, src_port: int, dest_ip: str, dest_port: int,
                proto: str, start: float, end: float, pkts_toserver: int, pkts_toclient: int,
                bytes_toserver: int, bytes_toclient: int, state: str, reason: str,
                sensor: str = DEFAULT_SENSOR, in_iface: str = "") -> dict[str, Any]:
    """An EVE ``flow`` record (``event_type: flow``); ``start``/``end`` are epoch seconds."""
    return {
        "timestamp": eve_timestamp(end),
        "flow_id": flow_id(community_id or f"{src_ip}>{dest_ip}/{proto}"),
        "in_iface": in_iface or sensor,
        "event_type": "flow",
        "src_ip": src_ip,
        "src_port": src_port,
        "dest_ip": dest_ip,
        "dest_port": dest_port,
        "proto": proto,
        "community_id": community_id,
        "host": sensor,
        "flow": {
            "pkts_toserver": pkts_toserver,
            "pkts_toclient": pkts_toclient,
            "bytes_toserver": bytes_toserver,
            "bytes_toclient": bytes_toclient,
            "start": eve_timestamp(start),
            "end": eve_timestamp(end),
            "age": int(max(0.0, end - start)),
            "state": state,
            "reason": reason,
            "alerted": False,
        },
    }


# ---- reading alerts, either version -----------------------------------------------------------

def _metadata(record: Mapping[str, Any]) -> Mapping[str, Any]:
    alert = record.get("alert")
    metadata = alert.get("metadata") if isinstance(alert, Mapping) else None
    return metadata if isinstance(metadata, Mapping) else {}


def alert_version(record: Mapping[str, Any]) -> int:
    return int(_metadata(record).get("alert_version", 1))


def alert_time(record: Mapping[str, Any], default: float = 0.0) -> float:
    """The alert's time on the run's clock (``mono``)."""
    metadata = _metadata(record)
    value = metadata.get("mono", record.get("mono"))
    return default if value is None else float(value)


def alert_detector(record: Mapping[str, Any]) -> str:
    metadata = _metadata(record)
    value = metadata.get("detector", record.get("detector"))
    return str(value) if value is not None else "unknown"


def alert_source_host(record: Mapping[str, Any]) -> str | None:
    """The accused source's host name if the sensor's inventory knew it (version 2: metadata
    ``src_host``; version 1: top-level ``host``, which EVE uses for the sensor since)."""
    if alert_version(record) >= 2:
        value = _metadata(record).get("src_host")
    else:
        value = record.get("host")
    return value if isinstance(value, str) else None


def upgrade_alert(record: Mapping[str, Any], *, sensor: str = DEFAULT_SENSOR) -> dict[str, Any]:
    """A version-1 alert record (testbed keys at the top level, ``host`` = the source's host)
    rewritten as the EVE-valid version 2; a version-2 record is returned as a copy."""
    if alert_version(record) >= 2:
        return dict(record)
    info = dict(record.get("alert") or {})
    epoch = parse_eve_timestamp(str(record["timestamp"]))
    return alert_record(
        epoch=epoch, mono=alert_time(record), detector=alert_detector(record),
        src_ip=str(record.get("src_ip", "")), src_port=int(record.get("src_port") or 0),
        dest_ip=str(record.get("dest_ip", "")), dest_port=int(record.get("dest_port") or 0),
        proto=str(record.get("proto", "")), signature=str(info.get("signature", "")),
        signature_id=int(info.get("signature_id", 0)), category=str(info.get("category", "")),
        severity=int(info.get("severity", 3)), src_host=alert_source_host(record),
        evidence=dict(record.get("evidence") or {}), sensor=sensor)
