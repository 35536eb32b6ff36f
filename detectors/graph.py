"""Graph novelty: connection edges never seen while the network behaved normally.

Owns: the ``graph`` detector. Learns the communication graph during a warm-up, then flags sources
that open many edges it never saw. Never reads ground truth.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

from detectors.base import Alert, ConnEvent, Detector

__all__ = ["GraphNoveltyDetector"]


class GraphNoveltyDetector(Detector):
    """Communication-graph novelty (after GrIDS, Staniford-Chen et al. 1996, and the
    graph-based worm detection line of work; parameters are testbed choices).

    During the first ``warmup_s`` seconds of traffic (default 30) every attempted edge
    (source, destination, protocol, port) joins the baseline. Afterwards, a source that opens
    ``threshold`` (default 5) distinct edges absent from the baseline within ``window_s``
    (default 60 s) is flagged, once, at severity 2 (novelty alone is weak evidence; raise a
    response rule's ``min_severity`` to 2 to act on it). Benign users who keep to their usual
    services never open new edges; a worm's scan opens nothing but new ones.
    """

    NAME = "graph"
    PARAMETERS: ClassVar[dict[str, Any]] = {"warmup_s": 30.0, "threshold": 5, "window_s": 60.0}
    REFERENCES = ("Staniford-Chen et al. GrIDS: A Graph Based Intrusion Detection System for "
                  "Large Networks. NISSC 1996.",)
    KINDS = frozenset({"outcome"})
    SIGNATURE_ID = 9100007
    CATEGORY = "Potentially Bad Traffic"
    SEVERITY = 2

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._warmup = float(self.params["warmup_s"])
        self._threshold = int(self.params["threshold"])
        self._window = float(self.params["window_s"])
        self.require(self._threshold >= 1 and self._window > 0 and self._warmup >= 0,
                     "threshold must be >= 1, window_s > 0, warmup_s >= 0")
        self._start: float | None = None
        self._baseline: set[tuple[str, str, str, int]] = set()
        self._novel: dict[str, OrderedDict[tuple[str, str, int], float]] = {}
        self._flagged: set[str] = set()

    def observe(self, event: ConnEvent) -> list[Alert]:
        now = event.time
        if self._start is None:
            self._start = now
        src = event.src
        edge = (src, event.dst, event.proto, event.dport)
        if now - self._start < self._warmup:
            self._baseline.add(edge)
            return []
        if edge in self._baseline or src in self._flagged or src in self.context.infrastructure:
            return []
        novel = self._novel.get(src)
        if novel is None:
            novel = self._novel[src] = OrderedDict()
        novel[edge[1:]] = now
        novel.move_to_end(edge[1:])
        horizon = now - self._window
        while novel and next(iter(novel.values())) < horizon:
            novel.popitem(last=False)
        if len(novel) >= self._threshold:
            self._flagged.add(src)
            return [self.make_alert(
                now, src, f"graph: {len(novel)} never-seen connection edges within "
                          f"{self._window:g} s",
                dest_ip=event.dst, dest_port=event.dport, proto=event.proto,
                evidence={"novel_edges": [f"{d}:{p}/{proto}" for d, proto, p in novel][-10:],
                          "baseline_edges": len(self._baseline)})]
        return []
