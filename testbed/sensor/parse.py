"""Frame parsing on the sensor's fast path: raw bytes -> (dedup key, ConnEvent) with ``struct``.

Owns: decoding Ethernet / Linux cooked / raw-IP frames into the raw event kinds of
``detectors.base`` (SYN, SYN-ACK, RST, TCP data, UDP, ICMP echo and errors, ARP), and the key
that identifies one packet however many taps saw it. Scapy's per-packet dissection is about two
orders of magnitude slower (benchmarks/sensor.py measures both), so this module parses headers by
hand and builds nothing it does not need.

Must not touch: sockets, files, clocks. Pure functions over bytes.
"""

from __future__ import annotations

import struct
from socket import inet_ntoa

from detectors.base import ConnEvent

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_RAW",
    "PAYLOAD_BYTES",
    "parse_ethernet",
    "parse_frame",
    "parse_ipv4",
]

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_ALT = 228  # LINKTYPE_IPV4
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
PAYLOAD_BYTES = 128
"""How many payload bytes of a TCP segment or UDP datagram an event carries (for signatures)."""

_PORTS = struct.Struct("!HH")
_U16 = struct.Struct("!H")
_ICMP_PROHIBITED_CODES = frozenset({9, 10, 13})
_PROTO_NAMES = {6: "TCP", 17: "UDP", 1: "ICMP"}

Parsed = tuple[bytes, ConnEvent] | None


_IPV4 = struct.Struct("!BxHxxBxxBxx4s4s")  # version/IHL, total length, frag high, proto, addrs
_new_event = tuple.__new__  # ConnEvent(...) without NamedTuple.__new__'s Python frame: per packet
_names: dict[bytes, str] = {}


def _name(packed: bytes) -> str:
    """Dotted quad of a packed address, cached (a network has few addresses; bounded anyway)."""
    name = _names.get(packed)
    if name is None:
        name = inet_ntoa(packed)
        if len(_names) < 1 << 20:
            _names[packed] = name
    return name


def parse_ipv4(frame: bytes, offset: int, time: float, tap: str) -> Parsed:
    """Parse an IPv4 packet starting at ``offset``; None for what no detector needs."""
    if len(frame) < offset + 20:
        return None
    version_ihl, total, frag_high, proto, src4, dst4 = _IPV4.unpack_from(frame, offset)
    if version_ihl >> 4 != 4:
        return None
    if frag_high & 0x1F or frame[offset + 7]:
        return None  # a non-first fragment carries no L4 header
    l4 = offset + (version_ihl & 0x0F) * 4
    end = offset + total
    if end > len(frame):
        end = len(frame)
    # The key (IP id, addresses, options, first 24 bytes of L4) ignores TTL, the header checksum
    # and L2: the same packet routed across several taps keeps it.
    key = frame[offset + 4:offset + 6] + frame[offset + 12:min(l4 + 24, end)]
    if proto == 6:
        if end < l4 + 14:
            return None
        flags = frame[l4 + 13]
        sport, dport = _PORTS.unpack_from(frame, l4)
        if flags & 0x04:
            return key, _new_event(ConnEvent, (time, "rst", _name(src4), _name(dst4), sport,
                                               dport, "TCP", "", False, b"", tap))
        if flags & 0x02:
            return key, _new_event(ConnEvent, (time, "syn-ack" if flags & 0x10 else "syn",
                                               _name(src4), _name(dst4), sport, dport, "TCP",
                                               "", False, b"", tap))
        data = l4 + (frame[l4 + 12] >> 4) * 4
        if data < end:
            return key, _new_event(ConnEvent, (time, "data", _name(src4), _name(dst4), sport,
                                               dport, "TCP", "", False,
                                               frame[data:min(end, data + PAYLOAD_BYTES)], tap))
        return None
    if proto == 17:
        if end < l4 + 8:
            return None
        sport, dport = _PORTS.unpack_from(frame, l4)
        return key, _new_event(ConnEvent, (time, "udp", _name(src4), _name(dst4), sport, dport,
                                           "UDP", "", False,
                                           frame[l4 + 8:min(end, l4 + 8 + PAYLOAD_BYTES)], tap))
    if proto == 1:
        if end < l4 + 8:
            return None
        icmp_type = frame[l4]
        if icmp_type == 8:
            return key, ConnEvent(time, "icmp-echo", _name(src4), _name(dst4), 0, 0, "ICMP",
                                  tap=tap)
        if icmp_type == 0:
            return key, ConnEvent(time, "icmp-echo-reply", _name(src4), _name(dst4), 0, 0,
                                  "ICMP", tap=tap)
        if icmp_type == 3:
            return _icmp_error(frame, l4, end, frame[l4 + 1], key, time, tap)
        return None
    return None


def _icmp_error(frame: bytes, l4: int, end: int, code: int, key: bytes, time: float,
                tap: str) -> Parsed:
    """An ICMP destination-unreachable, reported for the flow it quotes."""
    inner = l4 + 8
    if end < inner + 20 or frame[inner] >> 4 != 4:
        return None
    inner_l4 = inner + (frame[inner] & 0x0F) * 4
    inner_proto = frame[inner + 9]
    sport = dport = 0
    if inner_proto in (6, 17) and end >= inner_l4 + 4:
        sport, dport = _PORTS.unpack_from(frame, inner_l4)
    if code in _ICMP_PROHIBITED_CODES:
        kind, outcome = "icmp-prohibited", "prohibited"
    else:
        kind, outcome = "icmp-unreachable", "refused" if code == 3 else "unreachable"
    return key, ConnEvent(time, kind, inet_ntoa(frame[inner + 12:inner + 16]),
                          inet_ntoa(frame[inner + 16:inner + 20]), sport, dport,
                          _PROTO_NAMES.get(inner_proto, str(inner_proto)), outcome=outcome,
                          tap=tap)


def _arp(frame: bytes, offset: int, time: float, tap: str) -> Parsed:
    if len(frame) < offset + 28:
        return None
    # Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if frame[offset:offset + 6] != b"\x00\x01\x08\x00\x06\x04":
        return None
    op = frame[offset + 7]
    sender = frame[offset + 14:offset + 18]
    target = frame[offset + 24:offset + 28]
    if sender == target or sender == b"\x00\x00\x00\x00":
        return None  # gratuitous ARP or an address-conflict probe: no contact
    key = frame[offset:offset + 28]
    if op == 1:
        return key, ConnEvent(time, "arp-request", inet_ntoa(sender), inet_ntoa(target),
                              0, 0, "ARP", tap=tap)
    if op == 2:
        return key, ConnEvent(time, "arp-reply", inet_ntoa(sender), inet_ntoa(target),
                              0, 0, "ARP", tap=tap)
    return None


def parse_ethernet(frame: bytes, time: float, tap: str = "") -> Parsed:
    """Parse an Ethernet II frame (with at most one 802.1Q tag)."""
    if len(frame) < 14:
        return None
    ethertype = _U16.unpack_from(frame, 12)[0]
    offset = 14
    if ethertype == 0x8100 and len(frame) >= 18:
        ethertype = _U16.unpack_from(frame, 16)[0]
        offset = 18
    if ethertype == 0x0800:
        return parse_ipv4(frame, offset, time, tap)
    if ethertype == 0x0806:
        return _arp(frame, offset, time, tap)
    return None


def parse_frame(frame: bytes, linktype: int, time: float, tap: str = "") -> Parsed:
    """Parse a frame of any supported pcap link type (Ethernet, raw IPv4, Linux cooked)."""
    if linktype == LINKTYPE_ETHERNET:
        return parse_ethernet(frame, time, tap)
    if linktype in (LINKTYPE_RAW, LINKTYPE_RAW_ALT):
        return parse_ipv4(frame, 0, time, tap)
    if linktype == LINKTYPE_LINUX_SLL and len(frame) >= 16:
        ethertype, offset = _U16.unpack_from(frame, 14)[0], 16
    elif linktype == LINKTYPE_LINUX_SLL2 and len(frame) >= 20:
        ethertype, offset = _U16.unpack_from(frame, 0)[0], 20
    else:
        return None
    if ethertype == 0x0800:
        return parse_ipv4(frame, offset, time, tap)
    if ethertype == 0x0806:
        return _arp(frame, offset, time, tap)
    return None
