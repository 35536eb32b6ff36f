"""Offline mode: the same parser and contact tracker over a capture file.

Owns: ``events_from_pcap(path)`` (pcap and pcapng, Ethernet / raw IPv4 / Linux cooked link
types; times are the capture's epoch timestamps) and the per-segment pcap writer the live sensor
uses. Must not touch: the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detectors.base import ConnEvent
from testbed.errors import Diagnostic, InputError
from testbed.sensor.contacts import DEFAULT_CONTACT_TIMEOUT_S, ContactTracker, Deduplicator
from testbed.sensor.parse import LINKTYPE_ETHERNET, parse_frame

__all__ = ["PcapSink", "events_from_pcap"]


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


def events_from_pcap(path: str | Path, *,
                     contact_timeout_s: float = DEFAULT_CONTACT_TIMEOUT_S,
                     dedup_window_s: float = 0.5) -> Iterator[ConnEvent]:
    """Every connection event in a capture, raw and derived, in time order.

    Attempts still open at the end of the capture are reported ``unanswered``: nothing in the
    capture answered them.
    """
    path = Path(path)
    reader = _open_reader(path)
    tracker = ContactTracker(contact_timeout_s)
    dedup = Deduplicator(dedup_window_s)
    default_linktype = getattr(reader, "linktype", None) or LINKTYPE_ETHERNET
    divisor = 1e9 if getattr(reader, "nano", False) else 1e6
    now = 0.0
    try:
        for frame, meta in reader:
            if hasattr(meta, "tshigh"):  # pcapng
                now = ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
                linktype = meta.linktype
            else:
                now = meta.sec + meta.usec / divisor
                linktype = default_linktype
            if tracker._deadlines:
                yield from tracker.expire(now)
            parsed = parse_frame(frame, linktype, now)
            if parsed is None:
                continue
            key, event = parsed
            if dedup.seen(key, now):
                continue
            yield event
            yield from tracker.feed(event)
    except (EOFError, ValueError) as err:
        raise InputError(Diagnostic(str(path), 0, 0, f"corrupt capture: {err}",
                                    hint="the file may be truncated")) from None
    finally:
        reader.close()
    yield from tracker.flush(now)


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
