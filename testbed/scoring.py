"""The scorer: what the defence saw and did, compared with ground truth, as ``Results``.

Owns: every metric of a run (defined in ``docs/metrics.md``), one function per metric, and the
containment grade. Containment over time is ``testbed.containment.ContainmentTimeline`` (the
runner's live stop check uses the same object); what an action does is ``testbed.actions``;
ground truth is read and interpreted by ``testbed.truth``.

Pure: ``score(records, ...)`` is a function of the records (ground-truth events, alerts, actions,
the topology, the manifest's facts) with no I/O, so it is tested on synthetic ground truth; it
returns a frozen ``Results`` that nothing edits afterwards (the runner passes the stop reason,
phase timings and labelled-flow count in). ``load_run_records(run_dir)`` is the only function here
that reads files. The scorer never feeds back into detection.

Times in the records are on the run's clock (``mono``: CLOCK_MONOTONIC seconds, or virtual
seconds in the simulator); results are seconds since ``t0``.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from testbed.actions import ActionRecord, parse_action_records
from testbed.containment import ContainmentTimeline
from testbed.errors import RunError
from testbed.eve import alert_detector, alert_source_host, alert_time
from testbed.model.spec import Tier
from testbed.model.topology import Host, Topology
from testbed.records import read_json_lines
from testbed.results import (
    METRIC_FIELDS,
    RESULTS_VERSION,
    Collateral,
    CrownJewelLoss,
    DetectorRow,
    Grade,
    HostTime,
    Infection,
    LaunchPadEscape,
    Manifest,
    OneTenSixty,
    ProbesBeforeDetection,
    Results,
    RunInfo,
    Safety,
)
from testbed.stats import median
from testbed.truth import event_time, infection_times, probe_times_by_host, read_events, woken_hosts

__all__ = [
    "GRADE_BANDS",
    "METRIC_KEYS",
    "Accusation",
    "Outbreak",
    "RunRecords",
    "alert_host",
    "collateral",
    "containment_grade",
    "crown_jewels_infected",
    "detector_row",
    "detector_rows",
    "first_true_alerts",
    "infected_by_tier",
    "infections",
    "launch_pad_escape",
    "load_manifest",
    "load_run_records",
    "one_ten_sixty",
    "outbreak",
    "probes_before_detection",
    "run_info",
    "safety",
    "score",
    "time_to_containment",
    "time_to_first_detection",
    "value_loss",
]

METRIC_KEYS: tuple[str, ...] = METRIC_FIELDS
"""Top-level metrics every ``results.json`` carries (tests check them all)."""

GRADE_BANDS: tuple[tuple[float, str], ...] = ((90.0, "A"), (80.0, "B"), (70.0, "C"), (60.0, "D"))
"""Lowest score of each letter; below the last one the grade is F."""

DETECT_LIMIT_S = 60.0  # 1-10-60: detect within 1 minute
CONTAIN_LIMIT_S = 3600.0  # 1-10-60: contain within 60 minutes
TIERS: tuple[str, ...] = tuple(t.value for t in Tier)
_LATE_EVENT_SLACK_S = 1e-9  # ground truth logged at the very moment of the end still counts


@dataclass(frozen=True)
class RunRecords:
    """Everything the scorer needs, already read from disk (or made up in a test)."""

    topology: Topology
    t0: float  # start of the outbreak, on the run's clock
    end: float  # when the run stopped (stop requested)
    events: Sequence[Mapping[str, Any]] = ()  # GroundTruthEvent shapes
    alerts: Sequence[Mapping[str, Any]] = ()  # AlertRecord shapes (EVE; version 1 read too)
    actions: Sequence[ActionRecord] = ()
    patient_zero: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()  # configured detectors: each gets a row, alerts or not
    egress_counters: Mapping[str, int] | None = None  # None: the backend could not tell
    sensor_stats: Mapping[str, int] = field(default_factory=dict)
    manifest: Manifest | None = None  # scenario, seed, backend ... (None in synthetic tests)


# ---- reading ---------------------------------------------------------------------------------

def load_manifest(path: Path) -> Manifest:
    """A run's ``manifest.json``, typed; ``RunError`` when it is missing or malformed."""
    if not path.is_file():
        raise RunError(f"{path.parent} has no manifest.json: not a run directory")
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (pydantic.ValidationError, OSError) as err:
        raise RunError(f"{path} is not a valid run manifest: {err}") from err


def load_run_records(run_dir: Path, topology: Topology) -> RunRecords:
    """Read a collected run's output directory (manifest.json, events/alerts/actions.jsonl)."""
    manifest = load_manifest(Path(run_dir) / "manifest.json")
    if manifest.t0_mono is None:
        raise RunError(f"{run_dir}: the run never started its outbreak (no t0 in manifest.json)")
    return RunRecords(
        topology=topology,
        t0=manifest.t0_mono,
        end=manifest.end_mono if manifest.end_mono is not None else manifest.t0_mono,
        events=read_events(run_dir),
        alerts=read_json_lines(run_dir / "alerts.jsonl"),
        actions=parse_action_records(read_json_lines(run_dir / "actions.jsonl")),
        patient_zero=manifest.patient_zero,
        detectors=manifest.detectors,
        egress_counters=manifest.egress_counters,
        sensor_stats=manifest.sensor_stats,
        manifest=manifest,
    )


def alert_host(alert: Mapping[str, Any], topology: Topology) -> str | None:
    """The host an alert accuses: the source host named in ``alert.metadata`` (or, in version-1
    records, the top-level ``host``; in EVE that key is the sensor's name), else the owner of
    ``src_ip``."""
    host = alert_source_host(alert)
    if host is not None and host in topology.hosts:
        return host
    try:
        owner = topology.host_by_ip.get(ipaddress.IPv4Address(str(alert.get("src_ip", ""))))
    except ValueError:
        return None
    return owner.name if owner else None


# ---- the facts every metric starts from --------------------------------------------------------

@dataclass(frozen=True)
class Accusation:
    """One alert, reduced to what the metrics need."""

    when: float
    detector: str
    host: str | None  # None: unattributed (a router, an unknown address)


@dataclass(frozen=True)
class Outbreak:
    """What happened, from ground truth and the defence's records, before any metric."""

    records: RunRecords
    events: Sequence[Mapping[str, Any]]  # ground truth up to the end, in time order
    infected_at: Mapping[str, float]  # host -> when it was infected (patient zero: woken)
    patient_zero: frozenset[str]
    probes_by_host: Mapping[str, Sequence[float]]  # host -> probe start times, sorted
    first_probe: float | None
    origin: float | None  # clock of detection and containment: the first probe, else infection
    accusations: Sequence[Accusation]  # alerts in time order
    timeline: ContainmentTimeline  # advanced to the end

    def rel(self, mono: float | None) -> float | None:
        """Seconds since t0, rounded to the millisecond."""
        return None if mono is None else round(mono - self.records.t0, 3)

    def since_origin(self, mono: float | None) -> float | None:
        if mono is None or self.origin is None:
            return None
        return round(max(0.0, mono - self.origin), 3)


def outbreak(records: RunRecords) -> Outbreak:
    """The facts of a run: infections, probes, alerts and the containment timeline."""
    topology = records.topology
    events = sorted((e for e in records.events
                     if event_time(e) <= records.end + _LATE_EVENT_SLACK_S), key=event_time)
    infected_at = {h: t for h, t in infection_times(events).items() if h in topology.hosts}
    patient_zero = frozenset(records.patient_zero) or frozenset(woken_hosts(events))
    probes_by_host = probe_times_by_host(events, topology.hosts)
    first_probe = min((times[0] for times in probes_by_host.values()), default=None)
    first_infection = min(infected_at.values(), default=None)
    accusations = [Accusation(alert_time(a), alert_detector(a), alert_host(a, topology))
                   for a in sorted(records.alerts, key=alert_time)]
    timeline = ContainmentTimeline(topology, patient_zero)
    for host, when in infected_at.items():
        timeline.infect(host, when)
    for action in records.actions:
        if action.effective_at <= records.end:
            timeline.act(action)
    timeline.advance(math.inf)  # everything fed is due: the filters above drew the line
    return Outbreak(records=records, events=events, infected_at=infected_at,
                    patient_zero=patient_zero, probes_by_host=probes_by_host,
                    first_probe=first_probe,
                    origin=first_probe if first_probe is not None else first_infection,
                    accusations=accusations, timeline=timeline)


def first_true_alerts(facts: Outbreak, detector: str | None = None) -> dict[str, float]:
    """Host -> its first alert at or after its infection (by ``detector``, or any)."""
    first: dict[str, float] = {}
    for accusation in facts.accusations:
        host = accusation.host
        if host is None or (detector is not None and accusation.detector != detector):
            continue
        if host in facts.infected_at and accusation.when >= facts.infected_at[host] \
                and host not in first:
            first[host] = accusation.when
    return first


# ---- one function per metric -------------------------------------------------------------------

def time_to_first_detection(facts: Outbreak) -> tuple[float | None, float | None]:
    """(first true alert on the run's clock, seconds from the origin to it)."""
    first = min(first_true_alerts(facts).values(), default=None)
    return first, facts.since_origin(first)


def time_to_containment(facts: Outbreak) -> tuple[bool, float | None, float | None]:
    """(contained, since when on the run's clock, seconds from the origin). Nothing infected is
    trivially contained in 0 s; an outbreak that burned out or still spreads is not."""
    if not facts.infected_at:
        return True, None, 0.0
    since = facts.timeline.contained_since
    if since is None:
        return False, None, None
    return True, since, facts.since_origin(since)


def _tier(host: Host) -> str:
    return str(host.tier.value if isinstance(host.tier, Tier) else host.tier)


def infections(facts: Outbreak) -> list[Infection]:
    """Every infected host in time order, with its parent."""
    parents: dict[str, str | None] = {}
    for event in facts.events:
        if event.get("type") == "infection" and event.get("host") in facts.infected_at:
            parents.setdefault(str(event["host"]), event.get("parent"))
    topology = facts.records.topology
    return [Infection(host=host, tier=_tier(topology.hosts[host]), time_s=facts.rel(when),
                      patient_zero=host in facts.patient_zero, parent=parents.get(host))
            for host, when in sorted(facts.infected_at.items(), key=lambda item: item[1])]


def infected_by_tier(facts: Outbreak) -> dict[str, int]:
    """Infected hosts per tier, every tier listed."""
    counts = {tier: 0 for tier in TIERS}
    for host in facts.infected_at:
        counts[_tier(facts.records.topology.hosts[host])] += 1
    return counts


def launch_pad_escape(infected: Sequence[Infection]) -> LaunchPadEscape:
    """The first infection of a host outside the launch-pad tier."""
    escape = next((i for i in infected if i.tier != Tier.LAUNCH_PAD.value), None)
    if escape is None:
        return LaunchPadEscape(escaped=False, time_s=None, host=None, tier=None)
    return LaunchPadEscape(escaped=True, time_s=escape.time_s, host=escape.host, tier=escape.tier)


def crown_jewels_infected(infected: Sequence[Infection]) -> list[CrownJewelLoss]:
    return [CrownJewelLoss(host=i.host, time_s=i.time_s) for i in infected
            if i.tier == Tier.CROWN_JEWEL.value]


def value_loss(facts: Outbreak) -> tuple[float, float, float | None]:
    """(value lost beyond patient zero, value at risk, their ratio)."""
    topology = facts.records.topology
    at_risk = sum(h.value for h in topology.hosts.values() if h.name not in facts.patient_zero)
    loss = sum(topology.hosts[h].value for h in facts.infected_at if h not in facts.patient_zero)
    fraction = round(loss / at_risk, 4) if at_risk else None
    return round(loss, 3), round(at_risk, 3), fraction


def probes_before_detection(facts: Outbreak) -> ProbesBeforeDetection:
    """Per alerted infected host, the probes it began before its first true alert."""
    per_host = {host: sum(1 for t in facts.probes_by_host.get(host, ()) if t < when)
                for host, when in sorted(first_true_alerts(facts).items())}
    return ProbesBeforeDetection(per_host=per_host, median=median(per_host.values(), 3))


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _reference_time(facts: Outbreak, host: str) -> float:
    """A host's first probe after infection (what a sensor can see), else its infection."""
    infected = facts.infected_at[host]
    return next((t for t in facts.probes_by_host.get(host, ()) if t >= infected), infected)


def detector_row(facts: Outbreak, detector: str | None) -> DetectorRow:
    """Host-level confusion of one detector (``None``: all detectors together)."""
    mine = [a for a in facts.accusations if detector is None or a.detector == detector]
    first_after = first_true_alerts(facts, detector)
    alerted = {a.host for a in mine if a.host is not None}
    true_positive = sorted(first_after)
    false_positive = sorted(alerted - set(first_after))
    false_negative = sorted(set(facts.infected_at) - set(first_after))
    latencies = [max(0.0, first_after[h] - _reference_time(facts, h)) for h in true_positive]
    from_infection = [first_after[h] - facts.infected_at[h] for h in true_positive]
    return DetectorRow(
        alerts=len(mine), unattributed_alerts=sum(1 for a in mine if a.host is None),
        true_positive_hosts=true_positive, false_positive_hosts=false_positive,
        false_negative_hosts=false_negative,
        tp=len(true_positive), fp=len(false_positive), fn=len(false_negative),
        precision=_ratio(len(true_positive), len(true_positive) + len(false_positive)),
        recall=_ratio(len(true_positive), len(true_positive) + len(false_negative)),
        median_detection_latency_s=median(latencies, 3),
        median_latency_from_infection_s=median(from_infection, 3),
        first_alert_s=facts.rel(mine[0].when) if mine else None)


def detector_rows(facts: Outbreak) -> dict[str, DetectorRow]:
    """A row per configured detector (alerts or not), per detector that alerted, and ``any``."""
    names = dict.fromkeys([*facts.records.detectors, *(a.detector for a in facts.accusations)])
    rows = {name: detector_row(facts, name) for name in names}
    rows["any"] = detector_row(facts, None)
    return rows


def collateral(facts: Outbreak) -> Collateral:
    """Benign hosts quarantined (never infected, or quarantined before their infection) and
    benign requests that failed."""
    topology = facts.records.topology
    benign_quarantined = [
        HostTime(host=h, time_s=facts.rel(when))
        for h, when in sorted(facts.timeline.quarantined_at.items())
        if h in topology.hosts and (h not in facts.infected_at or when < facts.infected_at[h])]
    requests = [e for e in facts.events if e.get("type") == "benign-request"]
    failed = [e for e in requests if e.get("outcome") not in ("ok", None)]
    return Collateral(benign_hosts_quarantined=len(benign_quarantined),
                      benign_quarantines=benign_quarantined,
                      benign_requests=len(requests), benign_requests_failed=len(failed),
                      benign_failure_fraction=_ratio(len(failed), len(requests)))


def safety(facts: Outbreak) -> Safety:
    """Egress guard counters and the agents' token checks."""
    counters = facts.records.egress_counters
    reasons: dict[str, int] = {}
    for event in facts.events:
        if event.get("type") == "token-rejected":
            reason = str(event.get("reason", "unknown"))
            reasons[reason] = reasons.get(reason, 0) + 1
    return Safety(
        egress_packets=None if counters is None else int(sum(counters.values())),
        egress_by_host={h: n for h, n in sorted((counters or {}).items()) if n},
        forged_tokens_rejected=reasons.get("forged", 0),
        tokens_rejected_by_reason=dict(sorted(reasons.items())),
        refused_destinations=sum(1 for e in facts.events
                                 if e.get("type") == "refused-destination"))


def one_ten_sixty(anything_infected: bool, detect_s: float | None,
                  contain_s: float | None) -> OneTenSixty:
    """Detect within 1 minute (trivially, when nothing was infected), contain within 60."""
    detected = (not anything_infected) or (detect_s is not None and detect_s <= DETECT_LIMIT_S)
    contained = contain_s is not None and contain_s <= CONTAIN_LIMIT_S
    return OneTenSixty(detect_within_1_min=detected, investigate_within_10_min=None,
                       contain_within_60_min=contained, held=detected and contained)


def containment_grade(*, value_loss_fraction: float | None, escaped: bool,
                      time_to_containment_s: float | None, benign_hosts_quarantined: int,
                      benign_failure_fraction: float | None, crown_jewel_fell: bool,
                      egress_packets: int | None) -> Grade:
    """The team's grade, A..F, from a 0..100 score. Formula (also in docs/metrics.md):

    score = 100
            - 40 x value_loss_fraction                     (value lost beyond patient zero)
            - 10 if the worm escaped the launch pads
            - 25 if never contained, else 15 x log10(1 + t_contain) / log10(1 + 3600)
            - 5 per benign host quarantined (at most 15)
            - 10 x fraction of benign requests that failed
    capped at 69 (at best D) when a crown jewel fell; F whenever egress_packets > 0 (the run is
    invalid). Letters: A >= 90, B >= 80, C >= 70, D >= 60, else F.
    """
    penalties: dict[str, float] = {"value_loss": 40.0 * float(value_loss_fraction or 0.0)}
    if escaped:
        penalties["launch_pad_escape"] = 10.0
    if time_to_containment_s is None:
        penalties["not_contained"] = 25.0
    else:
        penalties["containment_time"] = 15.0 * min(
            1.0, math.log10(1.0 + time_to_containment_s) / math.log10(1.0 + CONTAIN_LIMIT_S))
    if benign_hosts_quarantined:
        penalties["benign_quarantined"] = min(15.0, 5.0 * benign_hosts_quarantined)
    if benign_failure_fraction:
        penalties["benign_failures"] = 10.0 * benign_failure_fraction
    points = max(0.0, 100.0 - sum(penalties.values()))
    caps = []
    if crown_jewel_fell:
        points = min(points, 69.0)
        caps.append("crown jewel infected: at best D")
    letter = next((band for low, band in GRADE_BANDS if points >= low), "F")
    if egress_packets:
        letter = "F"
        caps.append("packets tried to leave the testbed: run invalid")
    return Grade.model_validate({"letter": letter, "score": round(points, 1),
                                 "penalties": {k: round(v, 2) for k, v in penalties.items() if v},
                                 "caps": caps})


def run_info(facts: Outbreak, *, stop_reason: str, timings: Mapping[str, float],
             labelled_flows: int | None) -> RunInfo:
    """Facts about the run: the manifest's names, the topology's sizes, record counts."""
    records, topology = facts.records, facts.records.topology
    manifest = records.manifest
    hosts_by_tier = {tier: 0 for tier in TIERS}
    for each in topology.hosts.values():
        hosts_by_tier[_tier(each)] += 1
    return RunInfo(
        scenario=manifest.scenario if manifest else None,
        seed=manifest.seed if manifest else None,
        backend=manifest.backend if manifest else None,
        run_name=manifest.run_name if manifest else None,
        worm_profile=manifest.worm_profile if manifest else None,
        interrupted=manifest.interrupted if manifest else False,
        topology=topology.name,
        duration_s=round(records.end - records.t0, 3),
        hosts_total=len(topology.hosts),
        hosts_by_tier=hosts_by_tier,
        susceptible_total=sum(1 for h in topology.hosts.values() if h.susceptible),
        patient_zero=sorted(facts.patient_zero),
        first_probe_s=facts.rel(facts.first_probe),
        alerts_total=len(records.alerts),
        actions_total=len(records.actions),
        sensor=dict(records.sensor_stats),
        stop_reason=stop_reason,
        timings_s={k: round(v, 3) for k, v in timings.items()},
        labelled_flows=labelled_flows)


# ---- the score -------------------------------------------------------------------------------

def score(records: RunRecords, *, stop_reason: str | None = None,
          timings: Mapping[str, float] | None = None,
          labelled_flows: int | None = None) -> Results:
    """Every metric of one run (see ``docs/metrics.md``).

    ``stop_reason`` defaults to the manifest's; ``timings`` are the runner's phase durations
    (seconds) and ``labelled_flows`` the rows of ``labels.csv``: facts about the run that the
    records do not hold, passed in so the results are complete when they are made."""
    facts = outbreak(records)
    if stop_reason is None:
        stop_reason = records.manifest.stop_reason if records.manifest else ""
    first_detection, detect_s = time_to_first_detection(facts)
    contained, contained_since, contain_s = time_to_containment(facts)
    infected = infections(facts)
    escape = launch_pad_escape(infected)
    crown = crown_jewels_infected(infected)
    loss, at_risk, loss_fraction = value_loss(facts)
    harm = collateral(facts)
    checks = safety(facts)
    return Results(
        results_version=RESULTS_VERSION,
        run=run_info(facts, stop_reason=stop_reason, timings=timings or {},
                     labelled_flows=labelled_flows),
        time_to_first_detection_s=detect_s,
        time_to_containment_s=contain_s,
        contained=contained,
        contained_at_s=facts.rel(contained_since),
        first_detection_at_s=facts.rel(first_detection),
        last_infection_s=facts.rel(max(facts.infected_at.values(), default=None)),
        infected_total=len(facts.infected_at),
        infected_by_tier=infected_by_tier(facts),
        peak_infected=facts.timeline.peak,
        launch_pad_escape=escape,
        crown_jewels_infected=crown,
        value_weighted_loss=loss,
        value_at_risk=at_risk,
        value_loss_fraction=loss_fraction,
        probes_before_detection=probes_before_detection(facts),
        detectors=detector_rows(facts),
        collateral=harm,
        safety=checks,
        one_ten_sixty=one_ten_sixty(bool(facts.infected_at), detect_s, contain_s),
        infections=infected,
        grade=containment_grade(
            value_loss_fraction=loss_fraction, escaped=escape.escaped,
            time_to_containment_s=contain_s,
            benign_hosts_quarantined=harm.benign_hosts_quarantined,
            benign_failure_fraction=harm.benign_failure_fraction, crown_jewel_fell=bool(crown),
            egress_packets=checks.egress_packets),
    )
