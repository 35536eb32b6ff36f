"""The live sensor: AF_PACKET sockets on every tap, a kernel BPF filter, a reader thread.

Owns: opening a packet socket per tap inside the tap's network namespace (the fabric namespace
holding the segment bridges), the classic-BPF filter that keeps only what detectors need (ARP,
ICMP, UDP, TCP SYN/RST/PSH) trimmed to ``snaplen`` bytes, promiscuous membership (a bridge only
hands forwarded frames to its own packet sockets when promiscuous), the reader loop (parse ->
dedup -> contact tracking -> flow table), the kernel's drop counters (PACKET_STATISTICS), optional
per-segment pcaps, and ``flow_log`` (EVE ``flow`` records of what it saw, written on close).

Must not touch: the deployment (it only listens) and ground truth.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from detectors.base import ConnEvent
from testbed.errors import BackendError, PrivilegeError
from testbed.eve import DEFAULT_SENSOR
from testbed.kernel import entered, named_netns_path
from testbed.sensor.contacts import DEFAULT_CONTACT_TIMEOUT_S, ContactTracker, Deduplicator
from testbed.sensor.flows import FlowTable, ip_length
from testbed.sensor.offline import PcapSink
from testbed.sensor.parse import parse_ethernet
from testbed.taps import Tap

__all__ = ["DETECTION_FILTER", "RingGeometry", "Sensor", "bpf_program", "open_tap_socket"]

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
ETH_P_ALL = 3

# `tcpdump -dd -s SNAPLEN 'arp or (ip and (icmp or udp or
#     (tcp[tcpflags] & (tcp-syn|tcp-rst|tcp-push) != 0)))'`, Ethernet; the two final `ret`s
# are (snaplen, 0). Pure ACKs and FINs never reach user space: no detector needs them.
DETECTION_FILTER: tuple[tuple[int, int, int, int], ...] = (
    (0x28, 0, 0, 0x0000000C),
    (0x15, 10, 0, 0x00000806),
    (0x15, 0, 10, 0x00000800),
    (0x30, 0, 0, 0x00000017),
    (0x15, 7, 0, 0x00000001),
    (0x15, 6, 0, 0x00000011),
    (0x15, 0, 6, 0x00000006),
    (0x28, 0, 0, 0x00000014),
    (0x45, 4, 0, 0x00001FFF),
    (0xB1, 0, 0, 0x0000000E),
    (0x50, 0, 0, 0x0000001B),
    (0x45, 0, 1, 0x0000000E),
    (0x06, 0, 0, -1),  # ret snaplen
    (0x06, 0, 0, 0x00000000),
)
FULL_SNAPLEN = 65535


def bpf_program(snaplen: int, *, everything: bool = False) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; ``everything`` keeps all frames whole."""
    if everything:
        return [(0x06, 0, 0, FULL_SNAPLEN)]
    return [(c, jt, jf, snaplen if k == -1 else k) for c, jt, jf, k in DETECTION_FILTER]


def _attach_filter(sock: socket.socket, program: Sequence[tuple[int, int, int, int]]) -> None:
    code = b"".join(struct.pack("HBBI", c, jt, jf, k) for c, jt, jf, k in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


TPACKET_V3 = 2
PACKET_VERSION = 10
PACKET_RX_RING = 5
TP_STATUS_USER = 1
_BLOCK_HEADER = struct.Struct("II")  # tpacket_hdr_v1: block_status (+8), num_pkts (+12)
_PACKET_HEADER = struct.Struct("IIIII4xH")  # next_offset, sec, nsec, snaplen, len, .., mac


class RingGeometry:
    """A TPACKET_V3 receive ring: ``blocks`` blocks of ``block_size`` bytes, retired to user
    space when full or after ``retire_ms`` milliseconds (the most a packet waits)."""

    def __init__(self, block_size: int = 1 << 18, blocks: int = 32, retire_ms: int = 10) -> None:
        self.block_size, self.blocks, self.retire_ms = block_size, blocks, retire_ms


def open_tap_socket(interface: str, *, snaplen: int = 256, everything: bool = False,
                    buffer_bytes: int = 32 << 20, promiscuous: bool = True,
                    ring: RingGeometry | None = None) -> tuple[socket.socket, mmap.mmap | None]:
    """A filtered, non-blocking packet socket on ``interface`` in the current namespace, with a
    mapped TPACKET_V3 ring when ``ring`` is given (None: plain ``recv`` with ``buffer_bytes``)."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing yet
    except PermissionError:
        raise PrivilegeError("packet capture needs root (CAP_NET_RAW)") from None
    mapped: mmap.mmap | None = None
    try:
        _attach_filter(sock, bpf_program(snaplen, everything=everything))
        if ring is not None:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            frames = ring.block_size * ring.blocks // 2048
            request = struct.pack("7I", ring.block_size, ring.blocks, 2048, frames,
                                  ring.retire_ms, 0, 0)
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
            mapped = mmap.mmap(sock.fileno(), ring.block_size * ring.blocks, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE)
        else:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        sock.bind((interface, ETH_P_ALL))
        if promiscuous:
            index = socket.if_nametoindex(interface)
            membership = struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, membership)
        sock.setblocking(False)
    except OSError as err:
        if mapped is not None:
            mapped.close()
        sock.close()
        raise BackendError(f"cannot capture on interface {interface!r}: {err}") from None
    return sock, mapped


class _TapReader:
    __slots__ = ("block", "drops", "name", "packets", "ring", "ring_geometry", "segment", "sock",
                 "write_pcap")

    def __init__(self, name: str, segment: str, sock: socket.socket, ring: mmap.mmap | None,
                 geometry: RingGeometry | None, write_pcap: bool) -> None:
        self.name, self.segment, self.sock, self.write_pcap = name, segment, sock, write_pcap
        self.ring, self.ring_geometry = ring, geometry
        self.block = 0
        self.packets = 0
        self.drops = 0


class Sensor:
    """Listens on every tap; ``poll()`` hands out ConnEvents (raw and derived), in time order.

    Use as a context manager. The reader runs in a background thread so that the kernel keeps
    being drained while detectors work. By default it reads with ``recv`` from a
    ``buffer_bytes`` socket buffer; ``ring=RingGeometry()`` maps a TPACKET_V3 ring per tap
    instead (no system call per packet, kernel timestamps), which measured no faster here
    (benchmarks/sensor.py --modes ring,recv). ``stats()`` reports packets read,
    the kernel's drops (PACKET_STATISTICS, summed over taps) and duplicates removed.
    """

    def __init__(self, taps: Sequence[Tap], *, pcap_dir: Path | None = None,
                 contact_timeout_s: float = DEFAULT_CONTACT_TIMEOUT_S, snaplen: int = 256,
                 ring: RingGeometry | None = None, buffer_bytes: int = 32 << 20,
                 dedup_window_s: float = 0.5, flow_log: Path | None = None,
                 sensor_name: str = DEFAULT_SENSOR) -> None:
        if not taps:
            raise BackendError("the sensor needs at least one tap")
        self.taps = list(taps)
        self.pcap_dir = pcap_dir
        self.snaplen = snaplen
        self.ring = ring
        self.buffer_bytes = buffer_bytes
        self._tracker = ContactTracker(contact_timeout_s)
        self._dedup = Deduplicator(dedup_window_s)
        self._flows = FlowTable() if flow_log is not None else None
        self.flow_log = flow_log
        self.sensor_name = sensor_name
        self._wall_offset = time.time() - time.monotonic()
        self._readers: list[_TapReader] = []
        self._queue: queue.SimpleQueue[list[ConnEvent]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sink = PcapSink(pcap_dir) if pcap_dir is not None else None
        self._error: BaseException | None = None
        self.events = 0

    # ---- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Sensor:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        pcap_writer_for: dict[str, str] = {}
        if self._sink is not None:
            # One writer per segment: its bridge if it has one (sees every frame), else a tap.
            for tap in sorted(self.taps, key=lambda t: t.kind != "segment"):
                pcap_writer_for.setdefault(tap.segment, tap.name)
        try:
            for tap in self.taps:
                writes = pcap_writer_for.get(tap.segment) == tap.name
                with (entered(named_netns_path(tap.netns)) if tap.netns is not None
                      else contextlib.nullcontext()):
                    sock, mapped = open_tap_socket(
                        tap.interface, snaplen=self.snaplen, everything=writes,
                        buffer_bytes=self.buffer_bytes, ring=self.ring)
                self._readers.append(_TapReader(tap.name, tap.segment, sock, mapped, self.ring,
                                                writes))
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._run, name="testbed-sensor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._collect_kernel_stats()
        for reader in self._readers:
            if reader.ring is not None and not reader.ring.closed:
                reader.ring.close()
            reader.sock.close()  # counters stay readable in stats()
        if self._sink is not None:
            self._sink.close()
        self._write_flows()

    def _write_flows(self) -> None:
        """``flow_log``: every flow seen, as EVE ``flow`` records (JSON lines, by start)."""
        if self._flows is None or self.flow_log is None:
            return
        flows, self._flows = self._flows.flush(), None
        self.flow_log.parent.mkdir(parents=True, exist_ok=True)
        with self.flow_log.open("w", encoding="utf-8") as stream:
            for flow in flows:
                stream.write(json.dumps(flow.to_record(clock_offset=self._wall_offset,
                                                       sensor=self.sensor_name),
                                        sort_keys=True) + "\n")

    # ---- consumer side -----------------------------------------------------------------------
    def poll(self, timeout: float | None = 0.0) -> list[ConnEvent]:
        """Events available now, waiting up to ``timeout`` seconds for the first batch."""
        events: list[ConnEvent] = []
        try:
            events.extend(self._queue.get(timeout=timeout) if timeout else
                          self._queue.get_nowait())
        except queue.Empty:
            pass
        while True:
            try:
                events.extend(self._queue.get_nowait())
            except queue.Empty:
                break
        if self._error is not None and not events:
            error, self._error = self._error, None
            raise BackendError(f"the sensor's reader failed: {error}")
        return events

    def stats(self) -> dict[str, Any]:
        self._collect_kernel_stats()
        with self._lock:
            return {
                "packets": sum(r.packets for r in self._readers),
                "kernel_drops": sum(r.drops for r in self._readers),
                "duplicates": self._dedup.duplicates,
                "events": self.events,
                "pending_contacts": self._tracker.pending,
                "per_tap": {r.name: {"packets": r.packets, "kernel_drops": r.drops}
                            for r in self._readers},
            }

    def _collect_kernel_stats(self) -> None:
        with self._lock:
            for reader in self._readers:
                if reader.sock.fileno() < 0:
                    continue
                size = 12 if reader.ring is not None else 8  # tpacket_stats_v3 / tpacket_stats
                try:
                    raw = reader.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, size)
                except OSError:
                    continue
                # Reading resets the kernel's counters: accumulate.
                reader.drops += struct.unpack_from("II", raw)[1]

    # ---- reader thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as err:  # surfaced by poll(): a thread cannot raise to its owner
            self._error = err

    def _loop(self) -> None:
        poller = select.epoll()
        by_fd = {reader.sock.fileno(): reader for reader in self._readers}
        for fd in by_fd:
            poller.register(fd, select.EPOLLIN)
        tracker, dedup, sink, flows = self._tracker, self._dedup, self._sink, self._flows
        seen, feed, expire = dedup.seen, tracker.feed, tracker.expire
        monotonic = time.monotonic
        wall_offset = self._wall_offset
        next_stats = monotonic() + 0.5
        unpack_packet, unpack_block = _PACKET_HEADER.unpack_from, _BLOCK_HEADER.unpack_from
        pack_status = struct.Struct("I").pack_into
        batch: list[ConnEvent] = []
        append, extend = batch.append, batch.extend

        def process(reader: _TapReader, frame: bytes, now: float) -> None:
            if reader.write_pcap and sink is not None:
                sink.write(reader.segment, frame, now + wall_offset, len(frame))
            parsed = parse_ethernet(frame, now, reader.name)
            if parsed is None or seen(parsed[0], now):
                return
            event = parsed[1]
            append(event)
            if flows is not None:
                flows.packet(event, ip_length(frame, 18 if frame[12:14] == b"\x81\x00" else 14))
            if event.kind != "data":
                derived = feed(event)
                if derived:
                    extend(derived)
                    if flows is not None:
                        for item in derived:
                            if item.kind == "outcome":
                                flows.outcome(item)

        try:
            while not self._stop.is_set():
                ready = poller.poll(0.05)
                for fd, _mask in ready:
                    reader = by_fd[fd]
                    ring = reader.ring
                    if ring is None:
                        recv = reader.sock.recv
                        for _ in range(4096):
                            try:
                                frame = recv(FULL_SNAPLEN)
                            except BlockingIOError:
                                break
                            reader.packets += 1
                            process(reader, frame, monotonic())
                        continue
                    geometry = reader.ring_geometry
                    assert geometry is not None
                    # Blocks the kernel handed over, in order, until one is still its own.
                    for _ in range(geometry.blocks):
                        base = reader.block * geometry.block_size
                        status, count = unpack_block(ring, base + 8)
                        if not status & TP_STATUS_USER:
                            break
                        offset = base + _BLOCK_HEADER.unpack_from(ring, base + 16)[0]
                        for _ in range(count):
                            following, sec, nsec, snaplen, _length, mac = unpack_packet(
                                ring, offset)
                            start = offset + mac
                            process(reader, ring[start:start + snaplen],
                                    sec + nsec * 1e-9 - wall_offset)
                            offset += following
                        reader.packets += count
                        pack_status(ring, base + 8, 0)  # give the block back to the kernel
                        reader.block = (reader.block + 1) % geometry.blocks
                now = monotonic()
                expired = expire(now)
                if expired:
                    extend(expired)
                    if flows is not None:
                        for item in expired:
                            if item.kind == "outcome":
                                flows.outcome(item)
                if batch:
                    self.events += len(batch)
                    self._queue.put(batch[:])
                    batch.clear()
                if now >= next_stats:
                    self._collect_kernel_stats()
                    next_stats = now + 0.5
                    if flows is not None:
                        flows.expire(now)
        finally:
            poller.close()
