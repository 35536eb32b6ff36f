"""Synthetic traffic for tests and benchmarks: scapy-built frames with timestamps, as pcaps.

Owns: ``TrafficBuilder``, which writes the packets of typical exchanges (a TCP connection that
succeeds, is refused, goes unanswered or is prohibited; ARP for live and dead neighbours; UDP;
ping) so that pcap-driven tests exercise the same parser and contact tracker as live capture.
Must not touch: the network (it only writes files or returns bytes).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

__all__ = ["TrafficBuilder", "mac_of", "write_pcap"]

Outcome = Literal["success", "refused", "unanswered", "prohibited", "unreachable"]


def mac_of(address: str) -> str:
    """A stable locally administered MAC for an IPv4 address."""
    octets = [int(part) for part in address.split(".")]
    return "02:00:" + ":".join(f"{o:02x}" for o in octets)


def write_pcap(path: Path, frames: Iterable[tuple[float, bytes]]) -> Path:
    from scapy.utils import RawPcapWriter

    writer = RawPcapWriter(str(path), linktype=1, sync=False)
    writer.write_header(None)
    for when, frame in frames:
        seconds = int(when)
        writer.write_packet(frame, sec=seconds, usec=round((when - seconds) * 1e6),
                            caplen=len(frame), wirelen=len(frame))
    writer.close()
    return path


class TrafficBuilder:
    """Appends timestamped Ethernet frames; ``gap`` is the delay between a packet and its answer.

    ``arp=True`` on an exchange first resolves the destination with ARP, as on a shared segment
    (a dead destination then never sees the SYN: only the unanswered ARP requests remain).
    """

    def __init__(self, start: float = 1_000_000.0, gap: float = 0.001) -> None:
        self.now = start
        self.gap = gap
        self.frames: list[tuple[float, bytes]] = []
        self._ip_id = 1
        self._sport = 40000

    # ---- primitives --------------------------------------------------------------------------
    def wait(self, seconds: float) -> TrafficBuilder:
        self.now += seconds
        return self

    def add(self, frame: bytes, delay: float = 0.0) -> None:
        self.now += delay
        self.frames.append((self.now, frame))

    def _ip(self, src: str, dst: str):  # type: ignore[no-untyped-def]
        from scapy.layers.inet import IP
        from scapy.layers.l2 import Ether

        self._ip_id = (self._ip_id + 7919) % 65536
        return Ether(src=mac_of(src), dst=mac_of(dst)) / IP(src=src, dst=dst, id=self._ip_id)

    def next_port(self) -> int:
        self._sport = 40000 + (self._sport - 39999) % 20000
        return self._sport

    def arp(self, src: str, dst: str, *, answered: bool, tries: int = 1) -> TrafficBuilder:
        from scapy.layers.l2 import ARP, Ether

        for attempt in range(tries):
            self.add(bytes(Ether(src=mac_of(src), dst="ff:ff:ff:ff:ff:ff") /
                           ARP(op=1, hwsrc=mac_of(src), psrc=src, pdst=dst)),
                     1.0 if attempt else 0.0)
        if answered:
            self.add(bytes(Ether(src=mac_of(dst), dst=mac_of(src)) /
                           ARP(op=2, hwsrc=mac_of(dst), psrc=dst, hwdst=mac_of(src), pdst=src)),
                     self.gap)
        return self

    # ---- exchanges ---------------------------------------------------------------------------
    def tcp(self, src: str, dst: str, dport: int, outcome: Outcome = "success", *,
            payload: bytes = b"", arp: bool = False, sport: int | None = None) -> TrafficBuilder:
        from scapy.layers.inet import ICMP, TCP, IPerror, TCPerror
        from scapy.packet import Raw

        if arp:
            self.arp(src, dst, answered=outcome != "unanswered")
            if outcome == "unanswered":
                return self  # the kernel never sends the SYN to a neighbour that is not there
        sport = sport or self.next_port()
        syn = self._ip(src, dst) / TCP(sport=sport, dport=dport, flags="S", seq=1000)
        self.add(bytes(syn), self.gap)
        if outcome == "success":
            self.add(bytes(self._ip(dst, src) / TCP(sport=dport, dport=sport, flags="SA",
                                                    seq=5000, ack=1001)), self.gap)
            self.add(bytes(self._ip(src, dst) / TCP(sport=sport, dport=dport, flags="A",
                                                    seq=1001, ack=5001)), self.gap)
            if payload:
                self.add(bytes(self._ip(src, dst) / TCP(sport=sport, dport=dport, flags="PA",
                                                        seq=1001, ack=5001) / Raw(payload)),
                         self.gap)
        elif outcome == "refused":
            self.add(bytes(self._ip(dst, src) / TCP(sport=dport, dport=sport, flags="RA",
                                                    seq=0, ack=1001)), self.gap)
        elif outcome in ("prohibited", "unreachable"):
            code = 13 if outcome == "prohibited" else 1
            quoted = IPerror(src=src, dst=dst) / TCPerror(sport=sport, dport=dport, flags="S")
            router = ".".join([*src.split(".")[:3], "1"])
            self.add(bytes(self._ip(router, src) / ICMP(type=3, code=code) / quoted), self.gap)
        return self

    def udp(self, src: str, dst: str, dport: int, *, answered: bool = True,
            payload: bytes = b"hello") -> TrafficBuilder:
        from scapy.layers.inet import UDP
        from scapy.packet import Raw

        sport = self.next_port()
        self.add(bytes(self._ip(src, dst) / UDP(sport=sport, dport=dport) / Raw(payload)),
                 self.gap)
        if answered:
            self.add(bytes(self._ip(dst, src) / UDP(sport=dport, dport=sport) / Raw(b"ok")),
                     self.gap)
        return self

    def ping(self, src: str, dst: str, *, answered: bool = True) -> TrafficBuilder:
        from scapy.layers.inet import ICMP

        self.add(bytes(self._ip(src, dst) / ICMP(type=8, id=1, seq=1)), self.gap)
        if answered:
            self.add(bytes(self._ip(dst, src) / ICMP(type=0, id=1, seq=1)), self.gap)
        return self

    def write(self, path: Path) -> Path:
        return write_pcap(path, sorted(self.frames, key=lambda f: f[0]))
