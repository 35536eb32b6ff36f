"""Credit-based connection rate limiting: first contacts cost credits, successes earn them.

Owns: the ``cbcrl`` detector (it alarms where a CB-CRL would start blocking; it blocks
nothing itself). Never reads ground truth.
"""

from __future__ import annotations

from typing import Any, ClassVar

from detectors.base import Alert, ConnEvent, Detector

__all__ = ["CreditBasedDetector"]


class CreditBasedDetector(Detector):
    """Credit-based connection rate limiting (Schechter, Jung, Berger, RAID 2004).

    Every source starts with ``initial_credits`` (default 10), pays ``cost`` (default 1) for
    each first-contact attempt as it starts and earns ``reward`` (default 2) when a first
    contact succeeds (constants unverified, from memory of the paper). A source whose balance
    reaches zero would be blocked from further first contacts: that is the alarm. A scanner
    whose contacts all fail runs dry after ``initial_credits`` attempts; a client whose
    contacts mostly succeed gains credit.
    """

    NAME = "cbcrl"
    PARAMETERS: ClassVar[dict[str, Any]] = {"initial_credits": 10, "cost": 1, "reward": 2}
    REFERENCES = ("Schechter, Jung, Berger. Fast Detection of Scanning Worm Infections. "
                  "RAID 2004.",)
    KINDS = frozenset({"first-contact", "outcome"})
    SIGNATURE_ID = 9100003

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._initial = float(self.params["initial_credits"])
        self._cost = float(self.params["cost"])
        self._reward = float(self.params["reward"])
        self.require(self._initial > 0 and self._cost > 0, "initial_credits and cost must be > 0")
        self._credits: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._flagged: set[str] = set()

    def observe(self, event: ConnEvent) -> list[Alert]:
        src = event.src
        if src in self._flagged or src in self.context.infrastructure:
            return []
        if event.kind == "outcome":
            if event.first and event.outcome == "success":
                self._credits[src] = self._credits.get(src, self._initial) + self._reward
            return []
        balance = self._credits.get(src, self._initial) - self._cost
        self._credits[src] = balance
        attempts = self._attempts[src] = self._attempts.get(src, 0) + 1
        if balance <= 0:
            self._flagged.add(src)
            return [self.make_alert(
                event.time, src, f"CB-CRL: out of credits after {attempts} first contacts",
                dest_ip=event.dst, dest_port=event.dport, proto=event.proto,
                evidence={"balance": balance, "first_contacts": attempts})]
        return []
