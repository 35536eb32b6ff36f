"""Shapes of the JSON-lines records that cross layers: ground truth and alerts; reading JSON lines.

Standard library only (the agent imports it). Times: ``wall`` is epoch seconds (time.time()),
``mono`` is CLOCK_MONOTONIC seconds (time.monotonic()), shared by every process on the machine,
so the scorer aligns agents, sensors and responders on it. Results report seconds since the run's
start (``t0`` in the run manifest).

Who writes what (the wall between ground truth and detection):
- agents write ground truth to ``<state_dir>/hosts/<host>/events.jsonl`` (GroundTruthEvent);
  ``testbed.truth`` is its only reader (for the scorer, the report and the runner), never
  detectors or responders;
- detectors emit alerts (Alert, Suricata EVE records: ``testbed.eve``) to ``alerts.jsonl``;
- responders and manual commands write ``actions.jsonl`` (typed: ``testbed.actions.ActionRecord``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypedDict

__all__ = ["EVENT_TYPES", "PROBE_OUTCOMES", "AlertRecord", "GroundTruthEvent",
           "parse_json_lines", "read_json_lines"]

EVENT_TYPES = ("wake", "probe", "infection", "benign-request", "defence-signal",
               "token-rejected", "stop", "listen", "refused-destination")
"""``type`` of a ground-truth event."""

PROBE_OUTCOMES = ("infected", "not-vulnerable", "rejected", "refused", "timeout", "prohibited",
                  "unreachable", "ok")
"""``outcome`` of a probe: infected (token accepted), not-vulnerable (service answered but is
patched or lacks the vulnerability), rejected (token refused), refused (TCP RST), timeout,
prohibited (ICMP admin prohibited), unreachable (ICMP host/net unreachable or no route), ok
(a benign-looking interleaved connection succeeded)."""


EVENTS_VERSION = 1
"""``event_version`` every ground-truth event carries; bumped when the shape changes."""


class GroundTruthEvent(TypedDict, total=False):
    event_version: int  # EVENTS_VERSION of the writer
    wall: float
    mono: float
    host: str  # the host whose agent wrote it
    type: str  # one of EVENT_TYPES
    technique: str  # MITRE ATT&CK id it imitates, e.g. T1046 (scan), T1210 (exploit), T1021
    # probe / benign-request / defence-signal
    target: str  # IPv4 address
    target_host: str | None  # resolved host name when the address is a host
    port: int
    proto: str
    service: str
    vuln: str
    tactic: str  # e.g. "uniform", "sequential", "local", "hitlist", "interleave"
    encoding: str  # "plain" or "encoded"
    outcome: str  # PROBE_OUTCOMES for probes; "ok"/"failed" for benign requests
    start_mono: float  # probes: when the attempt began (``mono`` is when its outcome was known)
    role: str  # benign: "user", "backup", "scanner"
    # infection
    source: str  # address or host that infected it
    parent: str  # host name of the parent
    generation: int
    weights: dict[str, float]  # inherited tactic weights (numbers only)
    # token-rejected
    reason: str  # "forged", "replay", "wrong-target", "patched", "malformed"
    signal: str  # defence signal kind
    detail: dict[str, Any]


class AlertRecord(TypedDict, total=False):
    """A Suricata EVE ``alert`` record (``testbed.eve`` builds and reads it; version 2)."""

    timestamp: str  # EVE: ISO 8601 with microseconds and a +0000 zone
    flow_id: int  # derived from community_id: the same in the flow's records
    in_iface: str  # the tap that saw it, else the sensor's name
    event_type: Literal["alert"]
    src_ip: str
    src_port: int
    dest_ip: str
    dest_port: int
    proto: str  # "TCP", "UDP", "ICMP", "ARP"
    community_id: str  # Community ID v1 of the flow (testbed.community_id)
    host: str  # EVE: the sensor's name
    alert: dict[str, Any]  # action, gid, signature_id, rev, signature, category, severity,
    # metadata: {alert_version, detector, mono, src_host, evidence}


def parse_json_lines(lines: Iterable[str | bytes]) -> list[dict[str, Any]]:
    """The records among ``lines``; blank lines and torn ones (a writer killed mid-line) are
    skipped, since every writer of these files appends whole lines."""
    records = []
    for line in lines:
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (none if it does not exist; a torn last line, from a
    writer killed mid-write, is skipped)."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as stream:
        return parse_json_lines(stream)
