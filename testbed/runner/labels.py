"""Labels: one ground-truth row per flow of a run (``labels.csv`` and ``labels.parquet``).

Owns: joining a run's flows with the agents' ground truth, so that every run doubles as a
labelled data set that other tools join by Community ID (Suricata, Zeek, Elastic write the same
ID). The flows come from the run's pcaps when it kept them (``testbed.sensor.flows_from_pcaps``:
all segments merged, a routed attempt is one flow) and otherwise from the live sensor's
``flows.jsonl``. Runs after the run, offline: nothing here reaches detectors.

Join: a flow belongs to the agent's attempt from its source to its destination and port (any port
for an ARP-only flow; any source for a router's ARP, which resolves the target of an attempt it
routes) whose time span (``start_mono`` .. ``mono``, on the wall clock) holds the flow's start,
give or take ``JOIN_WINDOW_S``; the nearest one wins.

Labels: ``worm-probe`` (a worm's scan, ATT&CK T1046), ``worm-exploit`` (a worm's exploitation
attempt: T1210, T1021 ...), ``worm-interleave`` (a benign-looking connection a worm interleaves to
evade failure counting), ``benign`` (a user), ``backup``, ``scanner`` (the IT scanner), and
``unlabelled`` (no agent claims it: router traffic, answers to nothing, retransmissions).
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.community_id import flow_community_id
from testbed.eve import flow_id, parse_eve_timestamp
from testbed.model.topology import Topology
from testbed.records import read_json_lines

__all__ = ["LABELS", "LABEL_COLUMNS", "LABEL_VERSION", "LabelledFlow", "label_of", "read_flows",
           "write_labels"]

LABEL_VERSION = 2
"""Version of a label row: 1 was one row per attempt per capture; 2 is one row per flow."""
LABELS = ("worm-probe", "worm-exploit", "worm-interleave", "benign", "backup", "scanner",
          "unlabelled")
LABEL_COLUMNS = ("label_version", "flow_id", "community_id", "start", "end", "duration",
                 "src_ip", "src_port", "dest_ip", "dest_port", "proto", "pkts_toserver",
                 "pkts_toclient", "bytes_toserver", "bytes_toclient", "state", "outcome", "label",
                 "technique", "src_host", "dest_host", "generation", "in_iface")
JOIN_WINDOW_S = 1.0
SCAN_TECHNIQUE = "T1046"


def label_of(event: Mapping[str, Any]) -> str | None:
    """The label of the flows a ground-truth event accounts for (None: it accounts for none)."""
    kind = event.get("type")
    if kind == "probe":
        if event.get("tactic") == "interleave":
            return "worm-interleave"
        return "worm-probe" if event.get("technique") == SCAN_TECHNIQUE else "worm-exploit"
    if kind == "benign-request":
        role = event.get("role", "user")
        return {"user": "benign", "backup": "backup", "scanner": "scanner"}.get(str(role), "benign")
    return None


@dataclass(frozen=True)
class LabelledFlow:
    """A flow as labels see it (epoch times), from a pcap's ``Flow`` or an EVE flow record."""

    src_ip: str
    src_port: int
    dest_ip: str
    dest_port: int
    proto: str
    start: float
    end: float
    pkts_toserver: int
    pkts_toclient: int
    bytes_toserver: int
    bytes_toclient: int
    state: str
    outcome: str
    in_iface: str

    @property
    def community_id(self) -> str:
        return flow_community_id(self.proto, self.src_ip, self.dest_ip, self.src_port,
                                 self.dest_port)


_OUTCOME_OF_STATE = {"established": "success", "closed": "refused", "new": "unanswered"}


def read_flows(run_dir: Path) -> list[LabelledFlow]:
    """A run's flows: from its pcaps if it kept them (complete), else its ``flows.jsonl``."""
    pcaps = sorted((Path(run_dir) / "pcap").glob("*.pcap"))
    if pcaps:
        from testbed.sensor import flows_from_pcaps

        return [LabelledFlow(f.src, f.sport, f.dst, f.dport, f.proto, f.start, f.end,
                             f.pkts_toserver, f.pkts_toclient, f.bytes_toserver,
                             f.bytes_toclient, f.state, f.outcome, f.tap)
                for f in flows_from_pcaps(pcaps)]
    flows = []
    for record in read_json_lines(Path(run_dir) / "flows.jsonl"):
        info = record.get("flow") or {}
        state = str(info.get("state", "new"))
        flows.append(LabelledFlow(
            str(record.get("src_ip", "")), int(record.get("src_port") or 0),
            str(record.get("dest_ip", "")), int(record.get("dest_port") or 0),
            str(record.get("proto", "")), parse_eve_timestamp(str(info["start"])),
            parse_eve_timestamp(str(info["end"])), int(info.get("pkts_toserver", 0)),
            int(info.get("pkts_toclient", 0)), int(info.get("bytes_toserver", 0)),
            int(info.get("bytes_toclient", 0)), state, _OUTCOME_OF_STATE.get(state, ""),
            str(record.get("in_iface", ""))))
    return flows


class _Attempts:
    """Ground-truth attempts by (source address, target, port), sorted by start (wall clock)."""

    def __init__(self, events: Iterable[Mapping[str, Any]], topology: Topology) -> None:
        rows: dict[tuple[str, str, int], list[tuple[float, float, Mapping[str, Any]]]] = {}
        for event in events:
            host = topology.hosts.get(str(event.get("host")))
            if label_of(event) is None or host is None or "target" not in event \
                    or "wall" not in event:
                continue
            end = float(event["wall"])
            start = end - max(0.0, float(event.get("mono", 0.0)) - float(
                event.get("start_mono", event.get("mono", 0.0))))
            key = (str(host.ip), str(event["target"]), int(event.get("port") or 0))
            rows.setdefault(key, []).append((start, end, event))
        self._rows = {key: sorted(items, key=lambda item: item[0]) for key, items in rows.items()}
        self._starts = {key: [item[0] for item in items] for key, items in self._rows.items()}
        self._by_pair: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
        self._by_target: dict[str, list[tuple[str, str, int]]] = {}
        for key in self._rows:
            self._by_pair.setdefault((key[0], key[1]), []).append(key)
            self._by_target.setdefault(key[1], []).append(key)
        self._hosts = {str(host.ip) for host in topology.hosts.values()}

    def claim(self, flow: LabelledFlow) -> Mapping[str, Any] | None:
        keys: Sequence[tuple[str, str, int]]
        if flow.proto != "ARP":
            keys = [(flow.src_ip, flow.dest_ip, flow.dest_port)]
        elif flow.src_ip in self._hosts:
            keys = self._by_pair.get((flow.src_ip, flow.dest_ip), [])
        else:  # a router resolving the target of an attempt it routes: that attempt's ARP
            keys = self._by_target.get(flow.dest_ip, [])
        best: tuple[float, Mapping[str, Any]] | None = None
        for key in keys:
            rows, starts = self._rows.get(key), self._starts.get(key)
            if not rows or starts is None:
                continue
            at = bisect.bisect_right(starts, flow.start + JOIN_WINDOW_S)
            for index in range(max(0, at - 8), at):
                start, end, event = rows[index]
                if start - JOIN_WINDOW_S <= flow.start <= end + JOIN_WINDOW_S:
                    distance = abs(flow.start - start)
                    if best is None or distance < best[0]:
                        best = (distance, event)
        return best[1] if best is not None else None


def label_rows(flows: Iterable[LabelledFlow], events: Iterable[Mapping[str, Any]],
               topology: Topology) -> list[dict[str, Any]]:
    """One label row (LABEL_COLUMNS) per flow."""
    attempts = _Attempts(events, topology)
    names = {str(h.ip): name for name, h in topology.hosts.items()}
    rows = []
    for flow in flows:
        event = attempts.claim(flow)
        community = flow.community_id
        rows.append({
            "label_version": LABEL_VERSION,
            "flow_id": flow_id(community or f"{flow.src_ip}>{flow.dest_ip}/{flow.proto}"),
            "community_id": community,
            "start": round(flow.start, 6), "end": round(flow.end, 6),
            "duration": round(max(0.0, flow.end - flow.start), 6),
            "src_ip": flow.src_ip, "src_port": flow.src_port, "dest_ip": flow.dest_ip,
            "dest_port": flow.dest_port, "proto": flow.proto,
            "pkts_toserver": flow.pkts_toserver, "pkts_toclient": flow.pkts_toclient,
            "bytes_toserver": flow.bytes_toserver, "bytes_toclient": flow.bytes_toclient,
            "state": flow.state, "outcome": flow.outcome,
            "label": (label_of(event) if event is not None else None) or "unlabelled",
            "technique": str(event.get("technique") or "") if event is not None else "",
            "src_host": names.get(flow.src_ip, ""), "dest_host": names.get(flow.dest_ip, ""),
            "generation": (int(event["generation"]) if event is not None
                           and event.get("generation") is not None else -1),
            "in_iface": flow.in_iface,
        })
    return rows


def write_labels(run_dir: Path, events: Iterable[Mapping[str, Any]], topology: Topology, *,
                 parquet: bool = True) -> int:
    """Write ``labels.csv`` (and ``labels.parquet`` with pandas and pyarrow) in ``run_dir``,
    one row per flow of the run; returns the number of rows (0: the run has no flows)."""
    run_dir = Path(run_dir)
    rows = label_rows(read_flows(run_dir), events, topology)
    with (run_dir / "labels.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=LABEL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    if parquet:
        try:
            import pandas
        except ImportError:  # pandas is a dependency; a stripped install still gets the CSV
            return len(rows)
        frame = pandas.DataFrame(rows, columns=list(LABEL_COLUMNS))
        frame.to_parquet(run_dir / "labels.parquet", index=False)
    return len(rows)
