"""Offline detection: a capture file through the sensor's parser into a detector set.

Owns: ``run_offline`` (what ``testbed detect`` and the detector tests run). Must not touch:
ground truth; the capture file is only read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from detectors.base import Alert, SensorContext
from testbed.detection.detector_set import DEFAULT_DETECTORS, DetectorSet
from testbed.model.scenario_spec import DetectorSpec
from testbed.sensor import events_from_pcap

__all__ = ["run_offline"]

PROGRESS_EVERY = 10_000
"""Events between two ``progress`` calls."""


def run_offline(pcap: Path, names: Sequence[str] | None = None, *,
                specs: Sequence[DetectorSpec] | None = None,
                context: SensorContext | None = None, seed: int = 0,
                progress: Callable[[int], object] | None = None) -> list[Alert]:
    """Every alert the detectors raise over a capture file, in time order.

    ``progress(events_so_far)`` is called every 10 000 events when given.
    """
    context = replace(context or SensorContext(), pcap=Path(pcap), taps=())
    if specs is None:
        specs = [DetectorSpec(name=n) for n in (names or DEFAULT_DETECTORS)]
    alerts: list[Alert] = []
    with DetectorSet.from_specs(specs, context, seed=seed) as detectors:
        last_tick = None
        for count, event in enumerate(events_from_pcap(pcap), 1):
            alerts += detectors.observe(event)
            if last_tick is None or event.time - last_tick >= 1.0:
                alerts += detectors.tick(event.time)
                last_tick = event.time
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(count)
        alerts += detectors.close()
    alerts.sort(key=lambda a: a.time)
    return alerts
