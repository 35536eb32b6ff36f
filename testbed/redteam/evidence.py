"""Why the defence missed the worm: each detector's alerts set against what the worm did.

Owns: ``worm_behaviour`` (from one run's ground truth, through ``testbed.truth``: per infected
host its first contacts, the failed ones, its widest failed fan-out on one port and on the ports
of one host), ``detector_thresholds`` (the numbers a classic scan detector must see, from the
scenario's parameters over the detector's defaults: TRW's failed first contacts with no success,
fan-out's hosts per port and ports per host) and ``detector_evidence`` (per detector, over a
worm's runs: how often and when it alerted, how many hosts had fallen by then, which infected
hosts it never named, and the worm's largest figure against the detector's threshold).
The red team is the attacker's side and may read ground truth; detectors never do.
Must not: score runs or run anything.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from testbed.model.load_scenario import Scenario
from testbed.results import Results
from testbed.truth import probe_time, read_events

__all__ = ["DetectorEvidence", "WormBehaviour", "detector_evidence", "detector_thresholds",
           "worm_behaviour"]

_FAILED = frozenset({"refused", "timeout", "prohibited", "unreachable"})


@dataclass(frozen=True)
class WormBehaviour:
    """What the worm did in one run, per its busiest host (the maxima a detector would see)."""

    probes: int
    first_contacts: int  # summed over infected hosts
    failed_first_contacts: int  # summed over infected hosts
    max_failed_first_contacts: int  # of one host
    max_successful_first_contacts: int  # of one host
    max_failed_hosts_one_port: int  # distinct hosts one host failed to reach on one port
    max_failed_ports_one_host: int  # distinct ports of one target one host failed to reach


def worm_behaviour(run_dir: Path) -> WormBehaviour:
    """The worm's contact statistics in one run (from its ``events.jsonl``)."""
    probes = sorted((e for e in read_events(run_dir) if e.get("type") == "probe"),
                    key=probe_time)
    first_seen: set[tuple[str, str]] = set()
    failed_first: dict[str, int] = defaultdict(int)
    good_first: dict[str, int] = defaultdict(int)
    failed_by_port: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    failed_by_target: dict[tuple[str, str], set[tuple[str, int]]] = defaultdict(set)
    for probe in probes:
        source, target = str(probe.get("host")), str(probe.get("target"))
        failed = probe.get("outcome") in _FAILED
        if (source, target) not in first_seen:
            first_seen.add((source, target))
            if failed:
                failed_first[source] += 1
            else:
                good_first[source] += 1
        if failed:
            port, proto = int(probe.get("port", 0)), str(probe.get("proto", ""))
            failed_by_port[(source, proto, port)].add(target)
            failed_by_target[(source, target)].add((proto, port))
    return WormBehaviour(
        probes=len(probes), first_contacts=len(first_seen),
        failed_first_contacts=sum(failed_first.values()),
        max_failed_first_contacts=max(failed_first.values(), default=0),
        max_successful_first_contacts=max(good_first.values(), default=0),
        max_failed_hosts_one_port=max((len(v) for v in failed_by_port.values()), default=0),
        max_failed_ports_one_host=max((len(v) for v in failed_by_target.values()), default=0))


def _trw_failures_needed(params: dict[str, Any]) -> int | None:
    """Failed first contacts (and no success) after which TRW flags a source."""
    try:
        theta0, theta1 = float(params["theta0"]), float(params["theta1"])
        eta1 = float(params["p_detect"]) / float(params["p_false"])
        up = (1.0 - theta1) / (1.0 - theta0)
        return max(1, math.ceil(math.log(eta1) / math.log(up) - 1e-9))
    except (KeyError, ValueError, ZeroDivisionError):
        return None


def detector_thresholds(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """Each of the scenario's detectors: its effective parameters and, for the classic scan
    detectors, the figure the worm must reach to be flagged (``threshold``: name -> value)."""
    from detectors.registry import detector_parameters

    found: dict[str, dict[str, Any]] = {}
    for detector in scenario.spec.detectors:
        params = {**detector_parameters(detector.name), **detector.params}
        thresholds: dict[str, Any] = {}
        if detector.name == "trw":
            thresholds["failed_first_contacts"] = _trw_failures_needed(params)
        elif detector.name == "fanout":
            thresholds["failed_hosts_one_port"] = params.get("address_threshold")
            thresholds["failed_ports_one_host"] = params.get("port_threshold")
        found[detector.name] = {"params": params, "threshold": thresholds}
    return found


_BEHAVIOUR_OF_THRESHOLD = {
    "failed_first_contacts": ("max_failed_first_contacts",
                              "most failed first contacts by one infected host"),
    "failed_hosts_one_port": ("max_failed_hosts_one_port",
                              "most hosts one infected host failed to reach on one port"),
    "failed_ports_one_host": ("max_failed_ports_one_host",
                              "most ports of one target one infected host failed to reach"),
}


@dataclass(frozen=True)
class DetectorEvidence:
    """One detector against one worm, over that worm's runs."""

    detector: str
    runs: int
    runs_alerted: int
    alerts_median: float
    first_alert_s_median: float | None
    infected_before_first_alert_median: float | None  # runs that alerted
    missed_hosts: dict[str, int]  # infected host never named -> runs
    worm_figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    verdict: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def detector_evidence(scenario: Scenario, run_dirs: Sequence[Path]) -> list[DetectorEvidence]:
    """Every detector of ``scenario`` against the worm of ``run_dirs`` (its runs)."""
    results = [Results.model_validate_json((d / "results.json").read_text(encoding="utf-8"))
               for d in run_dirs]
    behaviours = [worm_behaviour(d) for d in run_dirs]
    evidence = []
    for name, info in detector_thresholds(scenario).items():
        rows = [r.detectors.get(name) for r in results]
        alerted: list[float] = []
        before: list[int] = []
        missed: dict[str, int] = defaultdict(int)
        for result, row in zip(results, rows, strict=True):
            if row is None:
                continue
            if row.first_alert_s is not None:
                alerted.append(row.first_alert_s)
                before.append(sum(1 for i in result.infections
                                  if i.time_s is not None and i.time_s <= row.first_alert_s))
            for host in row.false_negative_hosts:
                missed[host] += 1
        figures = {}
        for threshold_name, threshold in info["threshold"].items():
            attribute, meaning = _BEHAVIOUR_OF_THRESHOLD[threshold_name]
            values = [getattr(b, attribute) for b in behaviours]
            figures[threshold_name] = {"meaning": meaning, "threshold": threshold,
                                       "worm_median": _median(values),
                                       "worm_max": max(values, default=None),
                                       "runs_at_or_above": sum(
                                           1 for v in values
                                           if threshold is not None and v >= threshold)}
        item = DetectorEvidence(
            detector=name, runs=len(results), runs_alerted=len(alerted),
            alerts_median=float(statistics.median([row.alerts if row else 0 for row in rows]))
            if rows else 0.0,
            first_alert_s_median=_median(alerted),
            infected_before_first_alert_median=_median(before),
            missed_hosts=dict(sorted(missed.items(), key=lambda kv: (-kv[1], kv[0]))),
            worm_figures=figures)
        evidence.append(_with_verdict(item))
    return evidence


def _with_verdict(item: DetectorEvidence) -> DetectorEvidence:
    """One sentence: how the detector missed (or did not)."""
    parts = []
    if item.runs_alerted == 0:
        parts.append(f"never alerted in {item.runs} runs")
    else:
        parts.append(f"alerted in {item.runs_alerted}/{item.runs} runs, first at "
                     f"{item.first_alert_s_median:.2f} s (median), when "
                     f"{item.infected_before_first_alert_median:g} hosts had already fallen")
    for figure in item.worm_figures.values():
        if figure["threshold"] is None:
            continue
        parts.append(f"{figure['meaning']}: median {figure['worm_median']:g}, max "
                     f"{figure['worm_max']:g} against its threshold {figure['threshold']:g}")
    if item.missed_hosts:
        parts.append(f"{len(item.missed_hosts)} infected host(s) it never named")
    return replace(item, verdict="; ".join(parts))
