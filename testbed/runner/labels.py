"""``labels.csv``: a ground-truth label for every connection attempt the sensor captured.

Owns: joining the flows read back from the run's pcaps (``testbed.sensor.events_from_pcap``) with
the agents' ground truth by (source, destination, port, time), so that a run doubles as a
labelled data set. Runs after the run, offline: nothing here reaches detectors.

Labels: ``worm`` (a probe of an infected host), ``worm-interleave`` (a benign-looking connection
a worm interleaves to evade failure counting), ``benign`` (a user), ``backup``, ``scanner`` (the IT
scanner), ``unlabelled`` (no agent claims it: ARP noise, router traffic, retransmissions).
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from testbed.model.topology import Topology

__all__ = ["LABEL_COLUMNS", "label_of", "write_labels"]

LABEL_COLUMNS = ("time", "segment", "src", "dst", "sport", "dport", "proto", "outcome",
                 "label", "src_host", "dst_host")
JOIN_WINDOW_S = 1.0  # an agent logs its attempt within this of the packet's capture time


def label_of(event: Mapping[str, Any]) -> str | None:
    kind = event.get("type")
    if kind == "probe":
        return "worm-interleave" if event.get("tactic") == "interleave" else "worm"
    if kind == "benign-request":
        role = event.get("role", "user")
        return {"user": "benign", "backup": "backup", "scanner": "scanner"}.get(str(role), "benign")
    return None


def _index(events: Iterable[Mapping[str, Any]], topology: Topology
           ) -> dict[tuple[str, str, int], tuple[list[float], list[str]]]:
    index: dict[tuple[str, str, int], list[tuple[float, str]]] = {}
    for event in events:
        label = label_of(event)
        host = topology.hosts.get(str(event.get("host")))
        if label is None or host is None or "target" not in event or "wall" not in event:
            continue
        key = (str(host.ip), str(event["target"]), int(event.get("port") or 0))
        index.setdefault(key, []).append((float(event["wall"]), label))
    return {key: ([t for t, _ in sorted(rows)], [label for _, label in sorted(rows)])
            for key, rows in index.items()}


def write_labels(pcap_dir: Path, events: Iterable[Mapping[str, Any]], topology: Topology,
                 out: Path) -> int:
    """Write ``out`` (CSV, LABEL_COLUMNS) for every attempt in ``pcap_dir/*.pcap``; rows written."""
    from testbed.sensor import events_from_pcap

    index = _index(events, topology)
    names = {str(h.ip): name for name, h in topology.hosts.items()}
    rows = 0
    with out.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(LABEL_COLUMNS)
        for pcap in sorted(pcap_dir.glob("*.pcap")):
            for flow in events_from_pcap(pcap):
                if flow.kind != "outcome":
                    continue
                label = "unlabelled"
                times_labels = index.get((flow.src, flow.dst, flow.dport))
                if times_labels is not None:
                    times, labels = times_labels
                    at = bisect.bisect_left(times, flow.time)
                    best = min((i for i in (at - 1, at) if 0 <= i < len(times)),
                               key=lambda i: abs(times[i] - flow.time), default=None)
                    if best is not None and abs(times[best] - flow.time) <= JOIN_WINDOW_S:
                        label = labels[best]
                writer.writerow((f"{flow.time:.6f}", pcap.stem, flow.src, flow.dst, flow.sport,
                                 flow.dport, flow.proto, flow.outcome, label,
                                 names.get(flow.src, ""), names.get(flow.dst, "")))
                rows += 1
    return rows
