"""The simulated sensor: packets on monitored segments become the ConnEvents the live sensor
would hand the detectors.

Owns: which packets a sensor sees (those crossing a monitored segment; one event per packet
however many monitored segments it crosses, stamped with the first one's tap, as the live
``Deduplicator`` does), ordering them in virtual time, and the sensor counters.
Reuses, does not re-implement: ``testbed.sensor.contacts.ContactTracker`` derives the
``first-contact`` and ``outcome`` events from the raw ones exactly as on live captures, and
``testbed.sensor.parse.PAYLOAD_BYTES`` bounds payloads as the parser does.
Must not: see ground truth -- it only gets packets from ``testbed.sim.network``.

Raw kinds are emitted only when some configured detector (or the contact tracker) uses them:
``data`` events exist only if a detector's ``KINDS`` asks for them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from detectors.base import ConnEvent
from testbed.sensor.contacts import DEFAULT_CONTACT_TIMEOUT_S, ContactTracker
from testbed.sensor.parse import PAYLOAD_BYTES

__all__ = ["SimSensor"]

_new_event = tuple.__new__


class SimSensor:
    """Taps on ``monitored`` segments. ``packet(...)`` is a ``testbed.sim.network.PacketSink``."""

    def __init__(self, monitored: Iterable[str], *, want_data: bool,
                 contact_timeout_s: float = DEFAULT_CONTACT_TIMEOUT_S) -> None:
        self.monitored = frozenset(monitored)
        self.want_data = want_data
        self.tracker = ContactTracker(contact_timeout_s)
        self._queue: list[tuple[float, int, ConnEvent]] = []
        self._sequence = 0
        self._taps: dict[tuple[str, ...], tuple[str | None, int]] = {}
        self.packets = 0
        self.duplicates = 0
        self.events = 0

    def _tap(self, segments: tuple[str, ...]) -> tuple[str | None, int]:
        found = self._taps.get(segments)
        if found is None:
            seen = [s for s in segments if s in self.monitored]
            found = (f"segment:{seen[0]}" if seen else None, len(seen))
            self._taps[segments] = found
        return found

    def packet(self, time: float, kind: str, src: str, dst: str, sport: int, dport: int,
               proto: str, segments: tuple[str, ...], outcome: str = "",
               payload: bytes = b"") -> None:
        found = self._taps.get(segments)
        tap, copies = found if found is not None else self._tap(segments)
        if tap is None or (kind == "data" and not self.want_data):
            return
        self.packets += copies
        self.duplicates += copies - 1
        self._sequence += 1
        event = _new_event(ConnEvent, (time, kind, src, dst, sport, dport, proto, outcome, False,
                                       payload[:PAYLOAD_BYTES] if payload else b"", tap))
        heapq.heappush(self._queue, (time, self._sequence, event))

    def next_time(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def drain(self, until: float) -> list[ConnEvent]:
        """Raw and derived events up to ``until``, in time order (derived ones follow the
        packet that caused them; attempts time out at their deadline)."""
        queue, tracker = self._queue, self.tracker
        # ``expire(t)`` does nothing before the first deadline (they are in time order), so it
        # is called only from then on: most drains (every detector tick) find nothing to do.
        # ContactTracker has no public accessor for its deadlines yet.
        deadlines = tracker._deadlines
        if (not queue or queue[0][0] > until) and (not deadlines or deadlines[0][0] > until):
            return []
        out: list[ConnEvent] = []
        feed, expire, pop = tracker.feed, tracker.expire, heapq.heappop
        while queue and queue[0][0] <= until:
            time, _, event = pop(queue)
            if deadlines and deadlines[0][0] <= time:
                out.extend(expire(time))
            out.append(event)
            if event.kind != "data":
                out.extend(feed(event))
        if deadlines and deadlines[0][0] <= until:
            out.extend(expire(until))
        self.events += len(out)
        return out

    def flush(self, now: float) -> list[ConnEvent]:
        """End of the run: everything queued up to ``now``, then attempts still pending."""
        out = self.drain(now)
        self._queue.clear()
        return out

    def stats(self) -> dict[str, int]:
        return {"packets": self.packets, "kernel_drops": 0, "duplicates": self.duplicates,
                "events": self.events}
