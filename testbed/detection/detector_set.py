"""A set of configured detectors fed by one event stream.

Owns: building detectors from scenario specs (``DetectorSet.from_specs``), dispatching each
event only to the detectors whose ``KINDS`` want it, dropping router noise, tying each alert to
the flow of the event that raised it (``attributed``), and the default set.
Must not touch: ground truth, the deployment (responders act; detectors only speak).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from types import TracebackType

from detectors.base import KINDS, Alert, ConnEvent, Detector, SensorContext
from detectors.registry import DETECTORS
from testbed.errors import DetectorError
from testbed.model.scenario_spec import DetectorSpec

__all__ = ["DEFAULT_DETECTORS", "DetectorSet", "attributed"]

DEFAULT_DETECTORS: tuple[str, ...] = ("trw", "throttle", "cbcrl", "fanout", "darknet",
                                      "signature", "graph")
"""The built-ins that run on connection events (``suricata`` runs its own capture)."""

Observe = Callable[[ConnEvent], list[Alert]]


def attributed(alerts: list[Alert], event: ConnEvent) -> list[Alert]:
    """Alerts raised by ``event``, tied to its flow: an alert about the event's connection that
    left the source port (or the tap) out gets the event's, so that its Community ID is the
    flow's and it joins ``flows.jsonl`` and the labels (as a Suricata alert belongs to the flow
    of the packet that fired it). Alerts about something else are kept as they are."""
    out: list[Alert] = []
    for alert in alerts:
        if alert.src_ip == event.src and alert.dest_ip == event.dst \
                and alert.dest_port == event.dport and alert.proto == event.proto \
                and (not alert.src_port or not alert.in_iface):
            alert = replace(alert, src_port=alert.src_port or event.sport,
                            in_iface=alert.in_iface or event.tap)
        out.append(alert)
    return out


class DetectorSet:
    """Several detectors behind the single-detector contract; a context manager (closes)."""

    def __init__(self, detectors: Sequence[Detector], context: SensorContext) -> None:
        self.detectors = list(detectors)
        self.context = context
        self._by_kind: dict[str, list[Observe]] = {kind: [] for kind in KINDS}
        for detector in self.detectors:
            for kind in detector.KINDS:
                self._by_kind[kind].append(detector.observe)
        self.closed = False

    @classmethod
    def from_specs(cls, specs: Iterable[DetectorSpec], context: SensorContext, *,
                   seed: int = 0) -> DetectorSet:
        detectors: list[Detector] = []
        names: set[str] = set()
        for spec in specs:
            if spec.name in names:
                raise DetectorError(f"detector {spec.name!r} is listed twice")
            names.add(spec.name)
            detector_class = DETECTORS.get(spec.name)
            detector = detector_class(context, **spec.params)
            detector.reset(seed)
            detectors.append(detector)
        return cls(detectors, context)

    @classmethod
    def from_names(cls, names: Iterable[str], context: SensorContext, *,
                   seed: int = 0) -> DetectorSet:
        return cls.from_specs([DetectorSpec(name=n) for n in names], context, seed=seed)

    def __enter__(self) -> DetectorSet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if not self.closed:
            self.close()

    def start(self) -> None:
        """Start detectors that run their own capture (Suricata) and wait until they listen.

        Optional: they otherwise start at the first ``tick``.
        """
        for detector in self.detectors:
            start = getattr(detector, "start", None)
            if callable(start):
                start()

    def reset(self, seed: int) -> None:
        for detector in self.detectors:
            detector.reset(seed)

    def observe(self, event: ConnEvent) -> list[Alert]:
        if event.src in self.context.infrastructure:
            return []  # router ARP and forwarding noise is not a host's behaviour
        alerts: list[Alert] = []
        for observe in self._by_kind.get(event.kind, ()):
            produced = observe(event)
            if produced:
                alerts += attributed(produced, event)
        return alerts

    def observe_many(self, events: Iterable[ConnEvent]) -> list[Alert]:
        alerts: list[Alert] = []
        infrastructure, by_kind = self.context.infrastructure, self._by_kind
        for event in events:
            if event.src in infrastructure:
                continue
            for observe in by_kind.get(event.kind, ()):
                produced = observe(event)
                if produced:
                    alerts += attributed(produced, event)
        return alerts

    def tick(self, now: float) -> list[Alert]:
        alerts: list[Alert] = []
        for detector in self.detectors:
            alerts += detector.tick(now)
        return alerts

    def close(self) -> list[Alert]:
        self.closed = True
        alerts: list[Alert] = []
        errors: list[str] = []
        for detector in self.detectors:
            try:
                alerts += detector.close()
            except Exception as err:  # close every detector even when one fails
                errors.append(f"{detector.NAME}: {err}")
        if errors:
            raise DetectorError("closing detectors failed: " + "; ".join(errors))
        return alerts
