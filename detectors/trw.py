"""Threshold Random Walk: a sequential hypothesis test on first-contact outcomes.

Owns: the ``trw`` detector. Reads only ``outcome`` events the sensor derives; never ground truth.
"""

from __future__ import annotations

from typing import Any, ClassVar

from detectors.base import Alert, ConnEvent, Detector

__all__ = ["TRWDetector"]


class TRWDetector(Detector):
    """Threshold Random Walk (Jung, Paxson, Berger, Balakrishnan, IEEE S&P 2004).

    For each source, the first contact with each destination is a Bernoulli trial: it succeeds
    with probability ``theta0`` for a benign host and ``theta1`` for a scanner. The likelihood
    ratio starts at 1 and is multiplied by ``theta1/theta0`` on a success and by
    ``(1-theta1)/(1-theta0)`` on a failure (refused, unreachable, prohibited, unanswered, or an
    ARP request nobody answered). It flags the source as a scanner once the ratio reaches
    ``eta1 = p_detect / p_false`` and accepts it as benign at ``eta0 = (1-p_detect)/(1-p_false)``;
    after a benign decision the walk restarts, so a host that turns into a scanner later is
    still caught (online use, as in Weaver et al. 2004).

    Defaults (the paper's): ``theta0`` 0.8, ``theta1`` 0.2, ``p_detect`` 0.99, ``p_false`` 0.01,
    so eta1 = 99 and eta0 ~ 0.0101: a source whose first contacts all fail is flagged at its
    4th failure (4^4 = 256 >= 99 > 64 = 4^3). ``count_arp`` (default true) counts unanswered ARP
    requests as failed first contacts: on a shared segment a scan of dead addresses is only ARP.
    Known weakness (Mell & Harang, IEEE CNS 2013): interleaving successful connections evades it.
    """

    NAME = "trw"
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "theta0": 0.8, "theta1": 0.2, "p_detect": 0.99, "p_false": 0.01, "count_arp": True,
    }
    REFERENCES = ("Jung, Paxson, Berger, Balakrishnan. Fast Portscan Detection Using Sequential "
                  "Hypothesis Testing. IEEE S&P 2004.",)
    KINDS = frozenset({"outcome"})
    SIGNATURE_ID = 9100001

    def reset(self, seed: int) -> None:
        super().reset(seed)
        p = self.params
        theta0, theta1 = float(p["theta0"]), float(p["theta1"])
        self.require(0.0 < theta1 < theta0 < 1.0, "needs 0 < theta1 < theta0 < 1")
        self.require(0.0 < float(p["p_false"]) < float(p["p_detect"]) < 1.0,
                     "needs 0 < p_false < p_detect < 1")
        self._up = (1.0 - theta1) / (1.0 - theta0)
        self._down = theta1 / theta0
        self._eta1 = float(p["p_detect"]) / float(p["p_false"])
        self._eta0 = (1.0 - float(p["p_detect"])) / (1.0 - float(p["p_false"]))
        self._count_arp = bool(p["count_arp"])
        self._ratio: dict[str, float] = {}
        self._counts: dict[str, list[int]] = {}  # src -> [successes, failures]
        self._flagged: set[str] = set()

    def observe(self, event: ConnEvent) -> list[Alert]:
        if not event.first or event.kind != "outcome":
            return []
        src = event.src
        if src in self._flagged or src in self.context.infrastructure:
            return []
        if event.proto == "ARP" and not self._count_arp:
            return []
        counts = self._counts.get(src)
        if counts is None:
            counts = self._counts[src] = [0, 0]
        ratio = self._ratio.get(src, 1.0)
        if event.outcome == "success":
            counts[0] += 1
            ratio *= self._down
        else:
            counts[1] += 1
            ratio *= self._up
        if ratio >= self._eta1 * (1.0 - 1e-9):
            self._flagged.add(src)
            self._ratio.pop(src, None)
            return [self.make_alert(
                event.time, src,
                f"TRW: scanner ({counts[1]} failed, {counts[0]} successful first contacts)",
                dest_ip=event.dst, dest_port=event.dport, proto=event.proto,
                evidence={"likelihood_ratio": round(ratio, 3), "eta1": self._eta1,
                          "failures": counts[1], "successes": counts[0],
                          "last_outcome": event.outcome})]
        if ratio <= self._eta0:
            ratio = 1.0  # accepted as benign: restart the walk
        self._ratio[src] = ratio
        return []
