"""Community ID v1 flow hashing (https://github.com/corelight/community-id-spec).

Owns: the one function that turns a flow's 5-tuple into the string Suricata, Zeek, Wireshark,
Arkime and Elastic write as ``community_id``, so that the testbed's alerts, flows and labels join
each other and other tools' records by a string comparison. Standard library only.

Must not touch: anything but its arguments (pure functions).

The hash: SHA-1 over seed (2 bytes) . lower endpoint address . higher address . protocol (1 byte)
. 0 (1 byte) . lower port . higher port (2 bytes each, network order; no ports for protocols
without them), endpoints ordered so that the smaller address (then port) comes first, base64,
prefixed ``1:``. ICMP types and codes map to "ports" as Zeek does (an echo request and its reply
share one ID; one-way messages keep their direction).

Beyond the spec: an ARP-only contact (a scan of an unused address on a shared segment: the kernel
never sends the IP packet) has no IP flow; the spec allows "another non-colliding value" there,
and the testbed uses the port-less hash with protocol number 0 (never seen on its wire), so that
such an alert and its label row still join.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct

__all__ = ["PROTOCOL_NUMBERS", "community_id", "community_id_icmp", "flow_community_id"]

PROTOCOL_NUMBERS = {"ICMP": 1, "TCP": 6, "UDP": 17, "ICMP6": 58, "IPV6-ICMP": 58, "SCTP": 132,
                    "ARP": 0}
"""Protocol names as the sensor and EVE write them -> IP protocol numbers (ARP: see above)."""

_PORTED = frozenset({6, 17, 132, 1, 58})
_ICMP4_COUNTERPART = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_COUNTERPART = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131,
                      131: 130, 139: 140, 140: 139, 144: 145, 145: 144}


def _packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def _hash(seed: int, src: bytes, dst: bytes, proto: int, ports: tuple[int, int] | None,
          *, one_way: bool = False, base64_digest: bool = True) -> str:
    if ports is None:
        if dst < src:
            src, dst = dst, src
        tail = b""
    else:
        sport, dport = ports
        if not one_way and (dst, dport) < (src, sport):
            src, dst, sport, dport = dst, src, dport, sport
        tail = struct.pack("!HH", sport, dport)
    digest = hashlib.sha1(struct.pack("!H", seed) + src + dst + struct.pack("BB", proto, 0)
                          + tail)
    if base64_digest:
        return "1:" + base64.b64encode(digest.digest()).decode("ascii")
    return "1:" + digest.hexdigest()


def community_id(proto: int, src: str, dst: str, sport: int | None = None,
                 dport: int | None = None, *, seed: int = 0, base64_digest: bool = True) -> str:
    """The Community ID of a flow; ``proto`` is the IP protocol number. TCP, UDP and SCTP hash
    their ports; ICMP and ICMPv6 take ``sport``/``dport`` as type/code (see
    ``community_id_icmp``); other protocols ignore ports."""
    if proto in (1, 58):
        return community_id_icmp(src, dst, sport or 0, dport or 0, ipv6=proto == 58, seed=seed,
                                 base64_digest=base64_digest)
    ports = (sport or 0, dport or 0) if proto in _PORTED else None
    return _hash(seed, _packed(src), _packed(dst), proto, ports, base64_digest=base64_digest)


def community_id_icmp(src: str, dst: str, icmp_type: int, icmp_code: int, *, ipv6: bool = False,
                      seed: int = 0, base64_digest: bool = True) -> str:
    """The Community ID of an ICMP (or ICMPv6) message, by Zeek's type/code to port mapping."""
    counterpart = (_ICMP6_COUNTERPART if ipv6 else _ICMP4_COUNTERPART).get(icmp_type)
    ports = (icmp_type, icmp_code if counterpart is None else counterpart)
    return _hash(seed, _packed(src), _packed(dst), 58 if ipv6 else 1, ports,
                 one_way=counterpart is None, base64_digest=base64_digest)


def flow_community_id(proto: str, src: str, dst: str, sport: int = 0, dport: int = 0) -> str:
    """The Community ID of a flow as the sensor names it (``proto`` "TCP", "UDP", "ICMP",
    "ARP"). An ICMP flow of the sensor is an echo exchange (type 8), so that an echo request
    and its reply share the ID; "" for an unknown protocol name or address."""
    number = PROTOCOL_NUMBERS.get(proto.upper())
    try:
        if number is None:
            return ""
        if number == 1:
            return community_id_icmp(src, dst, 8, 0)
        if number == 0:
            return _hash(0, _packed(src), _packed(dst), 0, None)
        return community_id(number, src, dst, sport, dport)
    except ValueError:
        return ""
