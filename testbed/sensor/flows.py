"""Flows: the contact tracker's attempts with packet and byte counts, as EVE ``flow`` records.

Owns: ``FlowTable``, fed by the same deduplicated raw events as the contact tracker (with each
packet's IP length) and by the tracker's ``outcome`` events, and the ``Flow`` it closes: 5-tuple
oriented from the initiator, Community ID, start and end, packets and bytes each way, EVE state
(``new``: never answered, ``established``: answered, ``closed``: reset or refused) and the
tracker's outcome. An ARP-only attempt (a scan of an unused address on a shared segment: the
kernel never sends the IP packet) is a flow with protocol ``ARP``.

What is counted: the packets the sensor parses (SYN, SYN-ACK, RST, TCP segments with payload,
UDP, ICMP echo and errors, ARP requests); pure ACKs and FINs are not (the live sensor's kernel
filter drops them), so byte counts are payload-bearing traffic plus handshakes.

Used by the live sensor and by ``flows_from_pcaps``, so online and offline agree. Must not
touch: sockets, files or clocks (the caller passes the time).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from detectors.base import ConnEvent
from testbed.community_id import flow_community_id
from testbed.eve import DEFAULT_SENSOR, flow_record

__all__ = ["DEFAULT_FLOW_IDLE_S", "Flow", "FlowTable", "ip_length"]

DEFAULT_FLOW_IDLE_S = 30.0
"""A flow with no packet for this long is finished (a reset one after ``CLOSED_LINGER_S``)."""
CLOSED_LINGER_S = 2.0
_U16 = struct.Struct("!H")
_ARP_BYTES = 28

Key = tuple[str, str, int, str, int]  # proto, src, sport, dst, dport


@dataclass(slots=True)
class Flow:
    """One flow, oriented from its initiator (``src``) to its responder (``dst``)."""

    proto: str
    src: str
    sport: int
    dst: str
    dport: int
    start: float  # the sensor's clock
    end: float
    pkts_toserver: int = 0
    pkts_toclient: int = 0
    bytes_toserver: int = 0
    bytes_toclient: int = 0
    state: str = "new"
    outcome: str = ""  # the contact tracker's: success, refused, unreachable, ...
    tap: str = ""
    reason: str = "timeout"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def community_id(self) -> str:
        return flow_community_id(self.proto, self.src, self.dst, self.sport, self.dport)

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def to_record(self, *, clock_offset: float = 0.0, sensor: str = DEFAULT_SENSOR
                  ) -> dict[str, Any]:
        """The EVE ``flow`` record; ``clock_offset`` maps the sensor's clock to epoch."""
        return flow_record(community_id=self.community_id, src_ip=self.src,
                           src_port=self.sport, dest_ip=self.dst, dest_port=self.dport,
                           proto=self.proto, start=self.start + clock_offset,
                           end=self.end + clock_offset, pkts_toserver=self.pkts_toserver,
                           pkts_toclient=self.pkts_toclient,
                           bytes_toserver=self.bytes_toserver,
                           bytes_toclient=self.bytes_toclient, state=self.state,
                           reason=self.reason, sensor=sensor, in_iface=self.tap)


def ip_length(frame: bytes, offset: int) -> int:
    """The IPv4 total length of the packet at ``offset`` (the frame may be truncated)."""
    if len(frame) < offset + 4:
        return len(frame) - offset
    return int(_U16.unpack_from(frame, offset + 2)[0])


_OPENERS = frozenset({"syn", "udp", "icmp-echo"})
_TO_SERVER_REVERSED = frozenset({"syn-ack"})


class FlowTable:
    """Feeds on raw events (``packet``) and the tracker's outcomes (``outcome``); finished
    flows accumulate in ``finished`` (``expire`` and ``flush`` move them there)."""

    def __init__(self, idle_s: float = DEFAULT_FLOW_IDLE_S) -> None:
        self.idle_s = idle_s
        self._open: dict[Key, Flow] = {}
        self._arp: dict[tuple[str, str], Flow] = {}
        self.finished: list[Flow] = []

    def packet(self, event: ConnEvent, length: int) -> None:
        kind = event.kind
        if kind == "arp-request":
            pair = (event.src, event.dst)
            flow = self._arp.get(pair)
            if flow is None:
                self._arp[pair] = Flow("ARP", event.src, 0, event.dst, 0, event.time,
                                       event.time, 1, 0, _ARP_BYTES, 0, tap=event.tap)
            else:
                flow.end, flow.pkts_toserver = event.time, flow.pkts_toserver + 1
                flow.bytes_toserver += _ARP_BYTES
            return
        if kind == "arp-reply":
            flow = self._arp.get((event.dst, event.src))
            if flow is not None:
                flow.end, flow.pkts_toclient = event.time, flow.pkts_toclient + 1
                flow.bytes_toclient += _ARP_BYTES
                flow.state = "established"
            return
        if kind in ("icmp-unreachable", "icmp-prohibited"):
            # Reported for the flow it quotes: an answer to that flow's initiator.
            flow = self._open.get((event.proto, event.src, event.sport, event.dst, event.dport))
            if flow is not None:
                flow.end, flow.pkts_toclient = event.time, flow.pkts_toclient + 1
                flow.bytes_toclient += length
                flow.state = "closed"
            return
        key: Key = (event.proto, event.src, event.sport, event.dst, event.dport)
        reverse: Key = (event.proto, event.dst, event.dport, event.src, event.sport)
        flow = self._open.get(key)
        if flow is not None:
            if kind == "syn" and flow.state == "closed":
                self._finish(key, flow)  # the same ports again after a reset: a new flow
                flow = None
            else:
                flow.end, flow.pkts_toserver = event.time, flow.pkts_toserver + 1
                flow.bytes_toserver += length
        if flow is None:
            flow = self._open.get(reverse)
            if flow is not None:
                flow.end, flow.pkts_toclient = event.time, flow.pkts_toclient + 1
                flow.bytes_toclient += length
                if flow.state == "new":
                    flow.state = "established"
            else:
                if kind in _TO_SERVER_REVERSED:  # mid-stream: the SYN was missed
                    key = reverse
                    flow = Flow(event.proto, event.dst, event.dport, event.src, event.sport,
                                event.time, event.time, 0, 1, 0, length, "established",
                                tap=event.tap)
                else:
                    flow = Flow(event.proto, event.src, event.sport, event.dst, event.dport,
                                event.time, event.time, 1, 0, length, 0, tap=event.tap)
                self._open[key] = flow
                self._arp.pop((flow.src, flow.dst), None)  # its ARP was part of this attempt
        if kind == "rst":
            flow.state = "closed"
            flow.reason = "shutdown"

    def outcome(self, event: ConnEvent) -> None:
        """The tracker resolved an attempt: its outcome goes on the flow (ARP-only attempts
        become flows here)."""
        if event.proto == "ARP":
            flow = self._arp.pop((event.src, event.dst), None)
            if flow is not None:
                flow.outcome = event.outcome
                self.finished.append(flow)
            return
        sport = event.sport if event.proto != "ICMP" else 0
        flow = self._open.get((event.proto, event.src, sport, event.dst, event.dport))
        if flow is not None and not flow.outcome:
            flow.outcome = event.outcome

    def expire(self, now: float) -> None:
        """Finish flows idle for ``idle_s`` (reset ones after a short linger)."""
        for key, flow in list(self._open.items()):
            idle = now - flow.end
            if idle >= self.idle_s or (flow.state == "closed" and idle >= CLOSED_LINGER_S):
                self._finish(key, flow)
        for pair, flow in list(self._arp.items()):
            if now - flow.end >= self.idle_s:
                del self._arp[pair]  # an answered ARP that no packet followed: not a flow

    def flush(self) -> list[Flow]:
        """End of input: every open flow is finished; returns all finished flows by start."""
        for key, flow in list(self._open.items()):
            self._finish(key, flow)
        self._arp.clear()
        self.finished.sort(key=lambda f: (f.start, f.src, f.sport, f.dst, f.dport))
        return self.finished

    def _finish(self, key: Key, flow: Flow) -> None:
        del self._open[key]
        if not flow.outcome:
            flow.outcome = "success" if flow.pkts_toclient else "unanswered"
        self.finished.append(flow)

    def __len__(self) -> int:
        return len(self._open) + len(self._arp)
