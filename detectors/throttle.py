"""Virus throttle: a working set of recent destinations and a delay queue; alarm on its growth.

Owns: the ``throttle`` detector (the network-side emulation of a host's throttle: it only
measures the queue a throttle would build, it delays nothing). Never reads ground truth.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

from detectors.base import Alert, ConnEvent, Detector

__all__ = ["ThrottleDetector"]


class _HostThrottle:
    __slots__ = ("next_release", "peak", "queue", "working_set")

    def __init__(self) -> None:
        self.working_set: OrderedDict[str, None] = OrderedDict()
        self.queue: OrderedDict[str, float] = OrderedDict()
        self.next_release = 0.0
        self.peak = 0


class ThrottleDetector(Detector):
    """Virus throttle (Williamson, ACSAC 2002; Twycross & Williamson, USENIX Security 2003).

    Each source has a working set of its ``working_set`` (default 5, unverified) most recent
    destinations. A connection attempt (TCP SYN, UDP that answers nothing, ICMP echo, or an ARP
    request -- on a shared segment the kernel asks ARP before the SYN) to a destination outside
    the set joins a delay queue, released at ``release_per_s`` (default 1 per second, the
    paper's) into the working set, evicting the least recently used entry. Normal hosts keep
    the queue near empty; a scanning worm makes it grow. The alarm fires when the queue holds
    ``queue_alarm`` destinations (default 10: a testbed choice, not a figure from the papers).
    """

    NAME = "throttle"
    PARAMETERS: ClassVar[dict[str, Any]] = {"working_set": 5, "release_per_s": 1.0,
                                            "queue_alarm": 10}
    REFERENCES = ("Williamson. Throttling Viruses: Restricting propagation to defeat malicious "
                  "mobile code. ACSAC 2002.",
                  "Twycross, Williamson. Implementing and testing a virus throttle. USENIX "
                  "Security 2003.")
    KINDS = frozenset({"syn", "udp", "icmp-echo", "arp-request"})
    SIGNATURE_ID = 9100002

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._size = int(self.params["working_set"])
        rate = float(self.params["release_per_s"])
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._alarm = int(self.params["queue_alarm"])
        self.require(self._size >= 1 and self._alarm >= 1 and self._interval > 0,
                     "working_set and queue_alarm must be >= 1, release_per_s > 0")
        self._hosts: dict[str, _HostThrottle] = {}
        self._udp_flows: set[tuple[str, int, str, int]] = set()
        self._flagged: set[str] = set()

    def observe(self, event: ConnEvent) -> list[Alert]:
        if event.kind == "udp":
            if (event.dst, event.dport, event.src, event.sport) in self._udp_flows:
                return []  # an answer, not a new connection
            if len(self._udp_flows) < 1_000_000:
                self._udp_flows.add((event.src, event.sport, event.dst, event.dport))
        src = event.src
        if src in self._flagged or src in self.context.infrastructure:
            return []
        state = self._hosts.get(src)
        if state is None:
            state = self._hosts[src] = _HostThrottle()
        now = event.time
        self._release(state, now)
        dst = event.dst
        if dst in state.working_set:
            state.working_set.move_to_end(dst)
            return []
        if dst in state.queue:
            return []
        if not state.queue:
            state.next_release = now + self._interval
        state.queue[dst] = now
        length = len(state.queue)
        state.peak = max(state.peak, length)
        if length >= self._alarm:
            self._flagged.add(src)
            return [self.make_alert(
                now, src, f"throttle: delay queue grew to {length} destinations",
                dest_ip=dst, dest_port=event.dport, proto=event.proto,
                evidence={"queue_length": length, "working_set": list(state.working_set),
                          "queued": list(state.queue)[:20]})]
        return []

    def _release(self, state: _HostThrottle, now: float) -> None:
        queue, working_set = state.queue, state.working_set
        while queue and state.next_release <= now:
            destination, _ = queue.popitem(last=False)
            working_set[destination] = None
            working_set.move_to_end(destination)
            while len(working_set) > self._size:
                working_set.popitem(last=False)
            state.next_release += self._interval
