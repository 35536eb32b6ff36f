"""Darknet and decoys: contacts to addresses nobody uses betray a scanner.

Owns: the ``darknet`` detector. Needs the operator's address inventory (``SensorContext``);
without one (a bare pcap) it stays silent. Never reads ground truth.
"""

from __future__ import annotations

from typing import Any, ClassVar

from detectors.base import Alert, ConnEvent, Detector

__all__ = ["DarknetDetector"]


class DarknetDetector(Detector):
    """Darknet / network telescope monitoring with decoy addresses (honeypot-style tripwires).

    A first contact to an address inside the topology's networks that no host or router uses
    (and that is not a network or broadcast address), or to a planted decoy, is suspicious: no
    legitimate service lives there. A source is flagged once it contacts ``threshold`` distinct
    dark addresses (default 1; a testbed choice: nothing legitimate touches them here, though an
    IT vulnerability scanner will -- a false-positive trap by design). Decoy hits are always
    severity 1; ``decoys_only`` (default false) ignores unused addresses that are not decoys.
    """

    NAME = "darknet"
    PARAMETERS: ClassVar[dict[str, Any]] = {"threshold": 1, "decoys_only": False}
    REFERENCES = ("Moore, Shannon, Voelker, Savage. Network Telescopes. CAIDA TR 2004.",
                  "Spitzner. Honeypots: Tracking Hackers. 2002 (decoy addresses).")
    KINDS = frozenset({"first-contact"})
    SIGNATURE_ID = 9100005

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._threshold = int(self.params["threshold"])
        self._decoys_only = bool(self.params["decoys_only"])
        self.require(self._threshold >= 1, "threshold must be >= 1")
        self._dark: dict[str, set[str]] = {}
        self._flagged: set[str] = set()
        self._verdicts: dict[str, str] = {}  # address -> "", "unused", "decoy"

    def _classify(self, address: str) -> str:
        verdict = self._verdicts.get(address)
        if verdict is None:
            context = self.context
            if address in context.decoys:
                verdict = "decoy"
            elif (not self._decoys_only and context.cidrs and address not in context.inventory
                  and context.inside(address) and not context.is_special(address)):
                verdict = "unused"
            else:
                verdict = ""
            self._verdicts[address] = verdict
        return verdict

    def observe(self, event: ConnEvent) -> list[Alert]:
        src = event.src
        if src in self._flagged or src in self.context.infrastructure:
            return []
        verdict = self._classify(event.dst)
        if not verdict:
            return []
        dark = self._dark.setdefault(src, set())
        dark.add(event.dst)
        if len(dark) >= self._threshold:
            self._flagged.add(src)
            return [self.make_alert(
                event.time, src, f"darknet: contact to {verdict} address {event.dst}",
                dest_ip=event.dst, dest_port=event.dport, proto=event.proto,
                evidence={"dark_addresses": sorted(dark), "kind": verdict})]
        return []
