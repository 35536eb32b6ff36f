"""Role reversal: a host that turns on the hosts that talked to it.

Owns: the ``reversal`` detector. Reads ``outcome`` events; never ground truth.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

from detectors.base import Alert, ConnEvent, Detector

__all__ = ["RoleReversalDetector"]


class RoleReversalDetector(Detector):
    """A server turned client toward its own clients (after Ellis, Aiken, Attwood, Tenaglia,
    "A Behavioral Approach to Worm Detection", WORM 2004: "changing a server into a client").

    A host that has only answered a client (the client's connection succeeded) and then makes
    its own first contact to that client, on any port, within ``window_s`` (default 600 s) of
    the client's contact, reverses the roles. Benign clients and servers keep theirs: a printer
    does not call the PCs that print, a file server does not call its users. A worm whose
    targets come from passive discovery (the hosts that contacted it: hit lists, ``stealth``,
    ``recon``, ``planner``) does exactly that, with no failed contact and no dark address for
    TRW, fan-out or darknet to see. A source is flagged, once, after ``threshold`` (default 1)
    distinct reversed clients within ``window_s``.
    Known weakness: a host whose clients were unseen (outside the monitored segments) or a
    worm that only contacts hosts that never talked to it.
    """

    NAME = "reversal"
    PARAMETERS: ClassVar[dict[str, Any]] = {"threshold": 1, "window_s": 600.0}
    REFERENCES = ("Ellis, Aiken, Attwood, Tenaglia. A Behavioral Approach to Worm Detection. "
                  "ACM WORM 2004 (server-into-client behaviour).",)
    KINDS = frozenset({"outcome"})
    SIGNATURE_ID = 9100009
    _MEMORY = 65536  # bound on remembered (server, client) pairs

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._threshold = int(self.params["threshold"])
        self._window = float(self.params["window_s"])
        self.require(self._threshold >= 1 and self._window > 0,
                     "threshold must be >= 1 and window_s > 0")
        # (server, client) -> when the client's contact to the server succeeded
        self._served: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._initiated: set[tuple[str, str]] = set()  # (source, destination) contacts seen
        self._reversed: dict[str, OrderedDict[str, float]] = {}
        self._flagged: set[str] = set()

    def observe(self, event: ConnEvent) -> list[Alert]:
        src, dst, now = event.src, event.dst, event.time
        if src in self.context.infrastructure or dst in self.context.infrastructure:
            return []
        pair = (src, dst)
        initiated_before = pair in self._initiated
        self._initiated.add(pair)
        if event.outcome == "success" and not initiated_before and \
                (dst, src) not in self._initiated:
            self._served[(dst, src)] = now
            self._served.move_to_end((dst, src))
            while len(self._served) > self._MEMORY:
                self._served.popitem(last=False)
        if initiated_before or src in self._flagged:
            return []
        served_at = self._served.get(pair)
        if served_at is None or now - served_at > self._window:
            return []
        reversed_clients = self._reversed.setdefault(src, OrderedDict())
        reversed_clients[dst] = now
        horizon = now - self._window
        while reversed_clients and next(iter(reversed_clients.values())) < horizon:
            reversed_clients.popitem(last=False)
        if len(reversed_clients) < self._threshold:
            return []
        self._flagged.add(src)
        return [self.make_alert(
            now, src, f"role reversal: contacted {len(reversed_clients)} host(s) that were its "
                      f"clients (last {dst}, {now - served_at:.1f} s after it served it)",
            dest_ip=dst, dest_port=event.dport, proto=event.proto,
            evidence={"clients_contacted": list(reversed_clients)[-10:],
                      "served_s_before": round(now - served_at, 3)})]
