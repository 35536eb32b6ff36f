"""The sensor's parser, deduplication and contact tracker, driven by generated frames and pcaps."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.l2 import ARP, Ether
from scapy.utils import PcapNgWriter, wrpcap

from detectors.base import ConnEvent
from testbed.errors import InputError
from testbed.sensor import ContactTracker, Deduplicator, events_from_pcap
from testbed.sensor.capture import DETECTION_FILTER, bpf_program
from testbed.sensor.parse import LINKTYPE_RAW, parse_ethernet, parse_frame
from testbed.sensor.synth import TrafficBuilder


def kinds(frame: bytes) -> tuple[str, str, str, int, int, str, str] | None:
    parsed = parse_ethernet(frame, 1.0, "t")
    if parsed is None:
        return None
    e = parsed[1]
    return e.kind, e.src, e.dst, e.sport, e.dport, e.proto, e.outcome


A, B = "10.0.0.1", "10.0.0.2"


def test_parser_kinds() -> None:
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    assert kinds(bytes(eth / IP(src=A, dst=B) / TCP(sport=1, dport=2, flags="S"))) == (
        "syn", A, B, 1, 2, "TCP", "")
    synack = kinds(bytes(eth / IP(src=B, dst=A) / TCP(sport=2, dport=1, flags="SA")))
    assert synack is not None and synack[0] == "syn-ack"
    assert kinds(bytes(eth / IP(src=B, dst=A) / TCP(flags="RA")))[0] == "rst"  # type: ignore[index]
    assert kinds(bytes(eth / IP(src=A, dst=B) / TCP(flags="A"))) is None  # pure ACK
    data = parse_ethernet(bytes(eth / IP(src=A, dst=B) / TCP(flags="PA") / (b"x" * 300)), 1.0)
    assert data is not None and data[1].kind == "data" and data[1].payload == b"x" * 128
    assert kinds(bytes(eth / IP(src=A, dst=B) / UDP(sport=5, dport=53)))[:5] == (  # type: ignore[index]
        "udp", A, B, 5, 53)
    assert kinds(bytes(eth / IP(src=A, dst=B) / ICMP(type=8)))[0] == "icmp-echo"  # type: ignore[index]
    assert kinds(bytes(eth / IP(src=B, dst=A) / ICMP(type=0)))[0] == "icmp-echo-reply"  # type: ignore[index]
    prohibited = eth / IP(src="10.0.0.254", dst=A) / ICMP(type=3, code=13) / IPerror(
        src=A, dst=B) / UDPerror(sport=7, dport=161)
    assert kinds(bytes(prohibited)) == ("icmp-prohibited", A, B, 7, 161, "UDP", "prohibited")
    port_unreachable = eth / IP(src=B, dst=A) / ICMP(type=3, code=3) / IPerror(
        src=A, dst=B) / UDPerror(sport=7, dport=161)
    assert kinds(bytes(port_unreachable))[-1] == "refused"  # type: ignore[index]
    request = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, psrc=A, pdst=B)
    assert kinds(bytes(request))[:3] == ("arp-request", A, B)  # type: ignore[index]
    reply = Ether() / ARP(op=2, psrc=B, pdst=A)
    assert kinds(bytes(reply))[:3] == ("arp-reply", B, A)  # type: ignore[index]
    assert kinds(bytes(Ether() / ARP(op=1, psrc=A, pdst=A))) is None  # gratuitous
    assert kinds(bytes(eth / IP(src=A, dst=B, frag=10) / b"frag")) is None
    assert kinds(b"\x00" * 10) is None
    assert kinds(bytes(eth)[:12] + b"\x86\xdd" + b"\x00" * 60) is None  # IPv6: not parsed


def test_parser_survives_truncated_and_random_frames() -> None:
    import random

    rng = random.Random(5)
    full = bytes(Ether() / IP(src=A, dst=B) / TCP(flags="S"))
    for cut in range(len(full)):
        parse_ethernet(full[:cut], 0.0)
    for _ in range(2000):
        frame = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 90)))
        parse_ethernet(frame, 0.0)
        parse_ethernet(full[:14] + frame, 0.0)


def test_the_same_packet_on_several_taps_counts_once() -> None:
    ip = IP(src=A, dst="10.0.1.9", id=77, ttl=64) / TCP(sport=1000, dport=445, flags="S", seq=9)
    on_source_bridge = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:fe") / ip)
    routed = ip.copy()
    routed.ttl = 63
    routed.chksum = None
    on_far_bridge = bytes(Ether(src="02:00:00:00:01:fe", dst="02:00:00:00:01:09") / routed)
    dedup = Deduplicator(0.5)
    first = parse_ethernet(on_source_bridge, 10.0, "segment:lan")
    second = parse_ethernet(on_far_bridge, 10.001, "router:fw:dmz")
    assert first is not None and second is not None and first[0] == second[0]
    assert not dedup.seen(first[0], 10.0)
    assert dedup.seen(second[0], 10.001)
    assert dedup.duplicates == 1
    # A retransmission a second later is a new packet again (outside the window).
    assert not dedup.seen(first[0], 11.2)


def feed(tracker: ContactTracker, *events: ConnEvent) -> list[ConnEvent]:
    out: list[ConnEvent] = []
    for event in events:
        out += tracker.expire(event.time)
        out += tracker.feed(event)
    return out


def outcomes(events: list[ConnEvent]) -> list[tuple[str, str, int, str, bool]]:
    return [(e.src, e.dst, e.dport, e.outcome, e.first) for e in events if e.kind == "outcome"]


def test_contact_outcomes() -> None:
    tracker = ContactTracker(timeout_s=1.0)
    out = feed(
        tracker,
        ConnEvent(0.0, "syn", A, B, 1000, 80),
        ConnEvent(0.1, "syn", A, B, 1000, 80),  # retransmission: same attempt
        ConnEvent(0.2, "syn-ack", B, A, 80, 1000),
        ConnEvent(0.3, "syn", A, B, 1001, 22),  # second attempt, same pair: not first
        ConnEvent(0.31, "rst", B, A, 22, 1001),
        ConnEvent(0.4, "udp", A, "10.0.0.3", 5000, 53, "UDP"),
        ConnEvent(0.41, "udp", "10.0.0.3", A, 53, 5000, "UDP"),  # the answer
        ConnEvent(0.5, "icmp-echo", A, "10.0.0.4", proto="ICMP"),
        ConnEvent(0.6, "icmp-prohibited", A, "10.0.0.4", proto="ICMP", outcome="prohibited"),
        ConnEvent(0.7, "syn", A, "10.0.0.5", 1002, 445),
        ConnEvent(5.0, "syn", "10.0.0.9", B, 1, 80),  # advances the clock past the timeout
    )
    assert outcomes(out) == [
        (A, B, 80, "success", True),
        (A, B, 22, "refused", False),
        (A, "10.0.0.3", 53, "success", True),
        (A, "10.0.0.4", 0, "prohibited", True),
        (A, "10.0.0.5", 445, "unanswered", True),
    ]
    firsts = [(e.src, e.dst) for e in out if e.kind == "first-contact"]
    assert firsts == [(A, B), (A, "10.0.0.3"), (A, "10.0.0.4"), (A, "10.0.0.5"),
                      ("10.0.0.9", B)]
    assert all(e.first for e in out if e.kind == "first-contact")


def test_arp_attempts() -> None:
    tracker = ContactTracker(timeout_s=1.0)
    out = feed(
        tracker,
        # Live neighbour: ARP, reply, then the SYN is the same first contact.
        ConnEvent(0.0, "arp-request", A, B, proto="ARP"),
        ConnEvent(0.001, "arp-reply", B, A, proto="ARP"),
        ConnEvent(0.002, "syn", A, B, 1000, 445),
        ConnEvent(0.003, "rst", B, A, 445, 1000),
        # Dead neighbour: ARP only.
        ConnEvent(0.1, "arp-request", A, "10.0.0.50", proto="ARP"),
        # A neighbour that answers ARP but is never sent anything (e.g. a router resolving).
        ConnEvent(0.2, "arp-request", A, "10.0.0.6", proto="ARP"),
        ConnEvent(0.201, "arp-reply", "10.0.0.6", A, proto="ARP"),
        # B asking for A after A contacted B: an answer path, not a contact.
        ConnEvent(0.3, "arp-request", B, A, proto="ARP"),
        ConnEvent(3.0, "syn", "10.0.0.9", B, 1, 80),
    )
    assert outcomes(out) == [
        (A, B, 445, "refused", True),
        (A, "10.0.0.50", 0, "unanswered", True),
        (A, "10.0.0.6", 0, "success", True),
    ]
    assert [e.dst for e in out if e.kind == "first-contact" and e.src == A] == [
        B, "10.0.0.50", "10.0.0.6"]


def test_pcap_end_flushes_open_attempts_as_unanswered(tmp_path: Path) -> None:
    traffic = TrafficBuilder().tcp(A, B, 445, "unanswered")
    events = list(events_from_pcap(traffic.write(tmp_path / "x.pcap")))
    assert outcomes(events) == [(A, B, 445, "unanswered", True)]


def test_pcapng_raw_ip_and_cooked_captures(tmp_path: Path) -> None:
    syn = IP(src=A, dst=B) / TCP(sport=1, dport=2, flags="S")
    synack = IP(src=B, dst=A) / TCP(sport=2, dport=1, flags="SA")
    packets = [Ether() / syn, Ether() / synack]
    for p, t in zip(packets, (100.0, 100.5), strict=True):
        p.time = t
    writer = PcapNgWriter(str(tmp_path / "x.pcapng"))
    for p in packets:
        writer.write(p)
    writer.close()
    events = list(events_from_pcap(tmp_path / "x.pcapng"))
    assert outcomes(events) == [(A, B, 2, "success", True)]
    assert events[0].time == pytest.approx(100.0)
    raw = [syn, synack]
    for packet, t in zip(raw, (5.0, 5.1), strict=True):
        packet.time = t
    wrpcap(str(tmp_path / "raw.pcap"), raw, linktype=LINKTYPE_RAW)
    assert outcomes(list(events_from_pcap(tmp_path / "raw.pcap"))) == [
        (A, B, 2, "success", True)]
    assert parse_frame(bytes(syn), LINKTYPE_RAW, 0.0) is not None


def test_bad_capture_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such capture file"):
        list(events_from_pcap(tmp_path / "missing.pcap"))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture at all")
    with pytest.raises(InputError, match="not a readable pcap"):
        list(events_from_pcap(junk))


def test_bpf_program_keeps_snaplen_and_has_the_tcpdump_shape() -> None:
    program = bpf_program(200)
    assert len(program) == len(DETECTION_FILTER) == 14
    assert program[-2] == (0x06, 0, 0, 200) and program[-1] == (0x06, 0, 0, 0)
    assert bpf_program(200, everything=True) == [(0x06, 0, 0, 65535)]
