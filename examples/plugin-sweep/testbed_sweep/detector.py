"""``sweep``: a source that opens first contacts to many addresses of one /24 in a short window.

A plug-in imports only the plug-in API, ``detectors.base``.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from detectors.base import Alert, ConnEvent, Detector


class SweepDetector(Detector):
    """Flags a source whose first contacts reach ``threshold`` (default 8) distinct addresses
    of one /24 within ``window_s`` seconds (default 5.0), once per source.

    A simplified horizontal-scan rule in the manner of Snort's sfPortscan "portsweep".
    """

    NAME = "sweep"
    PARAMETERS: ClassVar[dict[str, Any]] = {"threshold": 8, "window_s": 5.0}
    REFERENCES = ("Snort sfPortscan, portsweep detection (Snort 2 manual, README.sfportscan).",)
    KINDS: ClassVar[frozenset[str]] = frozenset({"first-contact"})
    SIGNATURE_ID = 9200001

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._recent: dict[tuple[str, str], deque[tuple[float, str]]] = {}
        self._flagged: set[str] = set()

    def observe(self, event: ConnEvent) -> list[Alert]:
        if event.src in self._flagged:
            return []
        subnet = event.dst.rsplit(".", 1)[0]
        recent = self._recent.setdefault((event.src, subnet), deque())
        recent.append((event.time, event.dst))
        while recent and event.time - recent[0][0] > float(self.params["window_s"]):
            recent.popleft()
        addresses = {address for _, address in recent}
        if len(addresses) < int(self.params["threshold"]):
            return []
        self._flagged.add(event.src)
        return [self.make_alert(event.time, event.src,
                                f"sweep: {len(addresses)} addresses of {subnet}.0/24 within "
                                f"{self.params['window_s']:g} s",
                                dest_ip=event.dst, dest_port=event.dport, proto=event.proto,
                                evidence={"subnet": f"{subnet}.0/24",
                                          "addresses": len(addresses)})]
