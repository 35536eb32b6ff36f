"""Fan-out of failed connections: Zeek ``scan.zeek``'s address-scan and port-scan thresholds.

Owns: the ``fanout`` detector. Reads ``outcome`` events; never ground truth.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

from detectors.base import Alert, ConnEvent, Detector

__all__ = ["FanoutDetector"]


class FanoutDetector(Detector):
    """Address and port scans by failed-connection fan-out (Zeek's ``policy/misc/scan.zeek``).

    Address scan: one source with failed attempts (refused, unreachable, prohibited,
    unanswered, unanswered ARP) to ``address_threshold`` distinct hosts on one port within
    ``window_s`` (defaults 25 hosts, 300 s: Zeek's ``addr_scan_threshold`` and
    ``addr_scan_interval``). Port scan: failed attempts to ``port_threshold`` distinct ports of
    one host within ``window_s`` (default 15: Zeek's ``port_scan_threshold``). Windows slide
    (Zeek uses 5-minute SumStats epochs). Unanswered ARP requests count as an address scan on
    port 0. One alert per source and scan type.
    """

    NAME = "fanout"
    PARAMETERS: ClassVar[dict[str, Any]] = {"address_threshold": 25, "port_threshold": 15,
                                            "window_s": 300.0}
    REFERENCES = ("Zeek scan.zeek (policy/misc/scan.zeek): addr_scan_threshold 25, "
                  "port_scan_threshold 15, intervals 5 min.",)
    KINDS = frozenset({"outcome"})
    SIGNATURE_ID = 9100004

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._address_threshold = int(self.params["address_threshold"])
        self._port_threshold = int(self.params["port_threshold"])
        self._window = float(self.params["window_s"])
        self.require(min(self._address_threshold, self._port_threshold) >= 1
                     and self._window > 0, "thresholds must be >= 1 and window_s > 0")
        # (src, proto, port) -> destinations; (src, dst) -> ports; each name -> last failure time
        self._by_port: dict[tuple[str, str, int], OrderedDict[str, float]] = {}
        self._by_host: dict[tuple[str, str], OrderedDict[tuple[str, int], float]] = {}
        self._flagged: set[tuple[str, str]] = set()

    def observe(self, event: ConnEvent) -> list[Alert]:
        if event.outcome == "success" or event.src in self.context.infrastructure:
            return []
        alerts: list[Alert] = []
        src, now = event.src, event.time
        if (src, "address") not in self._flagged:
            hosts = self._recent(self._by_port, (src, event.proto, event.dport), event.dst, now)
            if len(hosts) >= self._address_threshold:
                self._flagged.add((src, "address"))
                alerts.append(self.make_alert(
                    now, src, f"address scan: failed {event.proto}/{event.dport} attempts to "
                              f"{len(hosts)} hosts within {self._window:g} s",
                    dest_port=event.dport, proto=event.proto,
                    evidence={"scan": "address", "hosts": len(hosts), "port": event.dport,
                              "sample": list(hosts)[-10:]}))
        if (src, "port") not in self._flagged and event.proto in ("TCP", "UDP"):
            ports = self._recent(self._by_host, (src, event.dst), (event.proto, event.dport), now)
            if len(ports) >= self._port_threshold:
                self._flagged.add((src, "port"))
                alerts.append(self.make_alert(
                    now, src, f"port scan: failed attempts to {len(ports)} ports of "
                              f"{event.dst} within {self._window:g} s",
                    dest_ip=event.dst, proto=event.proto,
                    evidence={"scan": "port", "ports": len(ports),
                              "sample": [p for _, p in list(ports)[-10:]]}))
        return alerts

    def _recent(self, table: dict[Any, OrderedDict[Any, float]], key: Any, item: Any,
                now: float) -> OrderedDict[Any, float]:
        entries = table.get(key)
        if entries is None:
            entries = table[key] = OrderedDict()
        entries[item] = now
        entries.move_to_end(item)
        horizon = now - self._window
        while entries:
            oldest = next(iter(entries.values()))
            if oldest >= horizon:
                break
            entries.popitem(last=False)
        return entries
