"""From packets to contacts: deduplication across taps and each attempt's outcome.

Owns: ``Deduplicator`` (one packet seen on several taps -- a routed packet crosses its segment's
bridge, two router interfaces and the far bridge -- counts once) and ``ContactTracker``, which
turns raw events into the derived ``first-contact`` and ``outcome`` events of ``detectors.base``:

- an attempt is a TCP SYN, a UDP datagram that answers nothing, an ICMP echo, or an ARP request
  from a source for an address it never contacted (on a shared segment a scan of dead addresses
  is only ARP: the kernel never sends the SYN);
- it succeeds on a SYN-ACK, a UDP answer or an echo reply; fails as ``refused`` (RST, ICMP port
  unreachable), ``unreachable`` / ``prohibited`` (ICMP), or ``unanswered`` when nothing came back
  within ``timeout_s``; an ARP request that got a reply but no packet followed counts as success;
- ``first`` marks the attempt that was the source's first contact with that destination.

Used by both the live sensor and ``events_from_pcap``, so online and offline agree.
Must not touch: sockets or clocks (the caller passes the time).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from detectors.base import ConnEvent

__all__ = ["DEFAULT_CONTACT_TIMEOUT_S", "ContactTracker", "Deduplicator"]

_new_event = tuple.__new__  # ConnEvent(...) without NamedTuple.__new__'s Python frame
DEFAULT_CONTACT_TIMEOUT_S = 1.0
"""An attempt with no answer after this long is ``unanswered``. A live host on the testbed answers
within milliseconds; Linux itself gives up ARP after 3 s, which would only delay detection."""


class Deduplicator:
    """Remembers packet keys for ``window_s`` seconds (two rotating generations, O(1) prune)."""

    __slots__ = ("_current", "_previous", "_rotate_at", "duplicates", "window_s")

    def __init__(self, window_s: float = 0.5) -> None:
        self.window_s = window_s
        self._current: set[bytes] = set()
        self._previous: set[bytes] = set()
        self._rotate_at: float | None = None
        self.duplicates = 0

    def seen(self, key: bytes, now: float) -> bool:
        """True if ``key`` was seen within the window (the caller drops the packet)."""
        if self._rotate_at is None:
            self._rotate_at = now + self.window_s
        elif now >= self._rotate_at:
            self._previous = self._current if now < self._rotate_at + self.window_s else set()
            self._current = set()
            self._rotate_at = now + self.window_s
        if key in self._current or key in self._previous:
            self.duplicates += 1
            return True
        self._current.add(key)
        return False


class _Attempt:
    __slots__ = ("answered", "done", "dport", "dst", "first", "proto", "sport", "src", "start")

    def __init__(self, start: float, src: str, dst: str, sport: int, dport: int, proto: str,
                 first: bool) -> None:
        self.start, self.src, self.dst = start, src, dst
        self.sport, self.dport, self.proto, self.first = sport, dport, proto, first
        self.done = False
        self.answered = False  # ARP attempts: the destination replied


class ContactTracker:
    """Feeds on deduplicated raw events; returns derived events (see the module docstring)."""

    def __init__(self, timeout_s: float = DEFAULT_CONTACT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._pending: dict[tuple[str, str, str, int], _Attempt] = {}
        self._arp_pending: dict[tuple[str, str], _Attempt] = {}
        self._contacted: set[tuple[str, str]] = set()
        self._udp_flows: set[tuple[str, int, str, int]] = set()
        self._deadlines: deque[tuple[float, _Attempt]] = deque()
        self._handlers: dict[str, Callable[[ConnEvent], list[ConnEvent]]] = {
            "syn": self._syn, "syn-ack": self._syn_ack, "rst": self._rst, "udp": self._udp,
            "icmp-echo": self._echo, "icmp-echo-reply": self._echo_reply,
            "icmp-unreachable": self._icmp_error, "icmp-prohibited": self._icmp_error,
            "arp-request": self._arp_request, "arp-reply": self._arp_reply,
        }

    def feed(self, event: ConnEvent) -> list[ConnEvent]:
        handler = self._handlers.get(event.kind)
        return handler(event) if handler is not None else []

    def _syn(self, event: ConnEvent) -> list[ConnEvent]:
        return self._attempt(event, "TCP", event.dport)

    def _syn_ack(self, event: ConnEvent) -> list[ConnEvent]:
        return self._resolve((event.dst, event.src, "TCP", event.sport), "success", event.time)

    def _rst(self, event: ConnEvent) -> list[ConnEvent]:
        return self._resolve((event.dst, event.src, "TCP", event.sport), "refused", event.time)

    def _udp(self, event: ConnEvent) -> list[ConnEvent]:
        if (event.dst, event.dport, event.src, event.sport) in self._udp_flows:
            return self._resolve((event.dst, event.src, "UDP", event.sport), "success",
                                 event.time)
        if len(self._udp_flows) < 1_000_000:
            self._udp_flows.add((event.src, event.sport, event.dst, event.dport))
        return self._attempt(event, "UDP", event.dport)

    def _echo(self, event: ConnEvent) -> list[ConnEvent]:
        return self._attempt(event, "ICMP", 0)

    def _echo_reply(self, event: ConnEvent) -> list[ConnEvent]:
        return self._resolve((event.dst, event.src, "ICMP", 0), "success", event.time)

    def _icmp_error(self, event: ConnEvent) -> list[ConnEvent]:
        return self._resolve((event.src, event.dst, event.proto, event.dport), event.outcome,
                             event.time)

    def _arp_reply(self, event: ConnEvent) -> list[ConnEvent]:
        attempt = self._arp_pending.get((event.dst, event.src))
        if attempt is not None:
            attempt.answered = True
        return []

    def _attempt(self, event: ConnEvent, proto: str, dport: int) -> list[ConnEvent]:
        key = (event.src, event.dst, proto, dport)
        if key in self._pending:
            return []  # a retransmission of an attempt still in flight
        pair = (event.src, event.dst)
        derived: list[ConnEvent] = []
        arp = self._arp_pending.pop(pair, None)
        if arp is not None:
            arp.done = True  # the ARP exchange was the start of this very attempt
            first = arp.first
        else:
            first = pair not in self._contacted
            if first:
                self._contacted.add(pair)
                derived.append(_new_event(ConnEvent, (event.time, "first-contact", event.src,
                                                      event.dst, event.sport, dport, proto, "",
                                                      True, b"", "")))
        attempt = _Attempt(event.time, event.src, event.dst, event.sport, dport, proto, first)
        self._pending[key] = attempt
        self._deadlines.append((event.time + self.timeout_s, attempt))
        return derived

    def _arp_request(self, event: ConnEvent) -> list[ConnEvent]:
        pair = (event.src, event.dst)
        if pair in self._contacted or (event.dst, event.src) in self._contacted:
            return []  # a cache refresh, or a host answering someone who contacted it
        self._contacted.add(pair)
        attempt = _Attempt(event.time, event.src, event.dst, 0, 0, "ARP", True)
        self._arp_pending[pair] = attempt
        self._deadlines.append((event.time + self.timeout_s, attempt))
        return [ConnEvent(event.time, "first-contact", event.src, event.dst, 0, 0, "ARP",
                          first=True)]

    def _resolve(self, key: tuple[str, str, str, int], outcome: str,
                 now: float) -> list[ConnEvent]:
        attempt = self._pending.pop(key, None)
        if attempt is None:
            return []
        attempt.done = True
        return [self._outcome(attempt, outcome, now)]

    @staticmethod
    def _outcome(attempt: _Attempt, outcome: str, now: float) -> ConnEvent:
        return _new_event(ConnEvent, (now, "outcome", attempt.src, attempt.dst, attempt.sport,
                                      attempt.dport, attempt.proto, outcome, attempt.first, b"",
                                      ""))

    def expire(self, now: float) -> list[ConnEvent]:
        """Attempts whose time is up: ``unanswered`` (or ``success`` for answered ARP)."""
        derived: list[ConnEvent] = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, attempt = deadlines.popleft()
            if attempt.done:
                continue
            derived.append(self._finish(attempt, deadline))
        return derived

    def flush(self, now: float) -> list[ConnEvent]:
        """End of input: everything still pending was never answered in what we saw."""
        derived: list[ConnEvent] = []
        while self._deadlines:
            deadline, attempt = self._deadlines.popleft()
            if not attempt.done:
                derived.append(self._finish(attempt, min(deadline, max(now, attempt.start))))
        return derived

    def _finish(self, attempt: _Attempt, when: float) -> ConnEvent:
        attempt.done = True
        if attempt.proto == "ARP":
            self._arp_pending.pop((attempt.src, attempt.dst), None)
            return self._outcome(attempt, "success" if attempt.answered else "unanswered", when)
        key = (attempt.src, attempt.dst, attempt.proto, attempt.dport)
        if self._pending.get(key) is attempt:
            del self._pending[key]
        return self._outcome(attempt, "unanswered", when)

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._arp_pending)
