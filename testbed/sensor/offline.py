"""Offline mode: the same parser and contact tracker over a capture file.

Owns: ``events_from_pcap(path)`` and ``flows_from_pcaps(paths)`` (pcap and pcapng, Ethernet /
raw IPv4 / Linux cooked link types; times are the capture's epoch timestamps) and the per-segment
pcap writer the live sensor uses. Must not touch: the network.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from detectors.base import ConnEvent
from testbed.errors import Diagnostic, InputError
from testbed.sensor.contacts import DEFAULT_CONTACT_TIMEOUT_S, ContactTracker, Deduplicator
from testbed.sensor.flows import Flow, FlowTable, ip_length
from testbed.sensor.parse import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    parse_frame,
)

__all__ = ["PcapSink", "events_from_pcap", "flows_from_pcaps"]


def _open_reader(path: Path) -> Any:
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    if not path.is_file():
        raise InputError(Diagnostic(str(path), 0, 0, "no such capture file",
                                    hint="give the path of a .pcap or .pcapng file"))
    try:
        return RawPcapReader(str(path))
    except (Scapy_Exception, OSError, EOFError, ValueError) as err:
        raise InputError(Diagnostic(str(path), 0, 0, f"not a readable pcap/pcapng file: {err}",
                                    hint="tcpdump -w and Wireshark captures work; "
                                         "check the file is complete")) from None


def _frames(path: Path, tap: str = "") -> Iterator[tuple[float, int, bytes, str]]:
    """(time, link type, frame, ``tap``) of every packet of a capture, in file order."""
    reader = _open_reader(path)
    default_linktype = getattr(reader, "linktype", None) or LINKTYPE_ETHERNET
    divisor = 1e9 if getattr(reader, "nano", False) else 1e6
    try:
        for frame, meta in reader:
            if hasattr(meta, "tshigh"):  # pcapng
                yield (((meta.tshigh << 32) | meta.tslow) / meta.tsresol, meta.linktype, frame,
                       tap)
            else:
                yield meta.sec + meta.usec / divisor, default_linktype, frame, tap
    except (EOFError, ValueError) as err:
        raise InputError(Diagnostic(str(path), 0, 0, f"corrupt capture: {err}",
                                    hint="the file may be truncated")) from None
    finally:
        reader.close()


def _ip_offset(frame: bytes, linktype: int) -> int:
    if linktype == LINKTYPE_ETHERNET:
        return 18 if frame[12:14] == b"\x81\x00" else 14
    return {LINKTYPE_LINUX_SLL: 16, LINKTYPE_LINUX_SLL2: 20}.get(linktype, 0)


def _events(frames: Iterable[tuple[float, int, bytes, str]], tracker: ContactTracker,
            dedup: Deduplicator, flows: FlowTable | None) -> Iterator[ConnEvent]:
    now = last_expiry = 0.0
    for now, linktype, frame, tap in frames:
        if tracker._deadlines:
            for derived in tracker.expire(now):
                if flows is not None and derived.kind == "outcome":
                    flows.outcome(derived)
                yield derived
        parsed = parse_frame(frame, linktype, now, tap)
        if parsed is None:
            continue
        key, event = parsed
        if dedup.seen(key, now):
            continue
        yield event
        if flows is not None:
            flows.packet(event, ip_length(frame, _ip_offset(frame, linktype)))
        for derived in tracker.feed(event):
            if flows is not None and derived.kind == "outcome":
                flows.outcome(derived)
            yield derived
        if flows is not None and now - last_expiry >= 1.0:
            flows.expire(now)
            last_expiry = now
    for derived in tracker.flush(now):
        if flows is not None and derived.kind == "outcome":
            flows.outcome(derived)
        yield derived



def events_from_pcap(path: str | Path, *,
                     contact_timeout_s: float = DEFAULT_CONTACT_TIMEOUT_S,
                     dedup_window_s: float = 0.5) -> Iterator[ConnEvent]:
    """Every connection event in a capture, raw and derived, in time order.

    Attempts still open at the end of the capture are reported ``unanswered``: nothing in the
    capture answered them.
    """
    path = Path(path)
    _open_reader(path).close()  # fail on a missing or unreadable file before iterating
    return _events(_frames(path), ContactTracker(contact_timeout_s),
                   Deduplicator(dedup_window_s), None)


def flows_from_pcaps(paths: Iterable[str | Path], *,
                     contact_timeout_s: float = DEFAULT_CONTACT_TIMEOUT_S,
                     dedup_window_s: float = 0.5) -> list[Flow]:
    """The flows of one or several captures of the same network (one per segment), merged in
    time order: a packet routed across segments is in several captures and counts once (the
    deduplicator's key ignores TTL and L2), so a routed attempt is one flow, not one per
    segment."""
    captures = [Path(p) for p in paths]
    for capture in captures:
        _open_reader(capture).close()
    flows = FlowTable()
    # Each capture's name (its segment, for the runner's pcaps) is the flows' ``in_iface``.
    merged = heapq.merge(*(_frames(capture, capture.stem) for capture in captures),
                         key=lambda item: item[0])
    for _event in _events(merged, ContactTracker(contact_timeout_s),
                          Deduplicator(dedup_window_s), flows):
        pass
    return flows.flush()


class PcapSink:
    """One pcap file per segment (scapy's RawPcapWriter), written by the sensor thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._writers: dict[str, Any] = {}

    def write(self, segment: str, frame: bytes, wall: float, wirelen: int) -> None:
        writer = self._writers.get(segment)
        if writer is None:
            from scapy.utils import RawPcapWriter

            self.directory.mkdir(parents=True, exist_ok=True)
            writer = RawPcapWriter(str(self.directory / f"{segment}.pcap"),
                                   linktype=LINKTYPE_ETHERNET, sync=False)
            writer.write_header(None)
            self._writers[segment] = writer
        seconds = int(wall)
        writer.write_packet(frame, sec=seconds, usec=int((wall - seconds) * 1e6),
                            caplen=len(frame), wirelen=max(wirelen, len(frame)))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
