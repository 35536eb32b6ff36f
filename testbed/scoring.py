"""The scorer: what the defence saw and did, compared with ground truth, as ``results.json``.

Owns: every metric of a run (defined in ``docs/metrics.md``), the replay of containment actions
into ``policy.ContainmentState`` over time, the "contained" test shared with the runner's stop
condition, and the containment grade.

Pure: ``score(records)`` is a function of the records (ground-truth events, alerts, actions, the
topology and the run's start ``t0``), with no I/O, so it is tested on synthetic ground truth.
``load_run_records(run_dir)`` is the only function here that reads files. The scorer is the one
place (with the runner's live view) allowed to read ground truth; it never feeds back into
detection.

Times in the records are CLOCK_MONOTONIC seconds (``mono``); results are seconds since ``t0``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.errors import RunError
from testbed.model.spec import Tier
from testbed.model.topology import Host, Topology
from testbed.policy import Block, ContainmentState, decide_flow
from testbed.records import parse_json_lines

__all__ = [
    "GRADE_BANDS",
    "METRIC_KEYS",
    "ReachabilityOracle",
    "RunRecords",
    "action_effective_time",
    "alert_host",
    "apply_action",
    "containment_grade",
    "infection_times",
    "load_run_records",
    "read_jsonl",
    "replay_containment",
    "score",
]

RESULTS_VERSION = 1

METRIC_KEYS: tuple[str, ...] = (
    "time_to_first_detection_s",
    "time_to_containment_s",
    "contained",
    "last_infection_s",
    "infected_total",
    "infected_by_tier",
    "peak_infected",
    "launch_pad_escape",
    "crown_jewels_infected",
    "value_weighted_loss",
    "value_loss_fraction",
    "probes_before_detection",
    "detectors",
    "collateral",
    "safety",
    "one_ten_sixty",
    "grade",
)
"""Top-level keys every ``results.json`` carries (tests check them all)."""

GRADE_BANDS: tuple[tuple[float, str], ...] = ((90.0, "A"), (80.0, "B"), (70.0, "C"), (60.0, "D"))
"""Lowest score of each letter; below the last one the grade is F."""

DETECT_LIMIT_S = 60.0  # 1-10-60: detect within 1 minute
CONTAIN_LIMIT_S = 3600.0  # 1-10-60: contain within 60 minutes
TIERS: tuple[str, ...] = tuple(t.value for t in Tier)


@dataclass(frozen=True)
class RunRecords:
    """Everything the scorer needs, already read from disk (or made up in a test)."""

    topology: Topology
    t0: float  # monotonic seconds at the run's start
    end: float  # monotonic seconds when the run stopped (stop requested)
    events: Sequence[Mapping[str, Any]] = ()  # GroundTruthEvent shapes
    alerts: Sequence[Mapping[str, Any]] = ()  # AlertRecord shapes
    actions: Sequence[Mapping[str, Any]] = ()  # ActionRecord shapes
    patient_zero: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()  # configured detectors: each gets a row, alerts or not
    egress_counters: Mapping[str, int] | None = None  # None: the backend could not tell
    sensor_stats: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)  # scenario, seed, backend ...


# ---- reading ---------------------------------------------------------------------------------

def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn last line (writer killed mid-write) is skipped."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as stream:
        return parse_json_lines(stream)


def load_run_records(run_dir: Path, topology: Topology) -> RunRecords:
    """Read a finished run's output directory (manifest.json, events/alerts/actions.jsonl)."""
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise RunError(f"{run_dir} has no manifest.json: not a run directory")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return RunRecords(
        topology=topology,
        t0=float(manifest["t0_mono"]),
        end=float(manifest.get("end_mono", manifest["t0_mono"])),
        events=sorted(read_jsonl(run_dir / "events.jsonl"), key=_mono),
        alerts=read_jsonl(run_dir / "alerts.jsonl"),
        actions=read_jsonl(run_dir / "actions.jsonl"),
        patient_zero=tuple(manifest.get("patient_zero", ())),
        detectors=tuple(manifest.get("detectors", ())),
        egress_counters=manifest.get("egress_counters"),
        sensor_stats=manifest.get("sensor_stats", {}),
        metadata={k: manifest[k] for k in ("scenario", "seed", "backend", "run_name",
                                           "worm_profile", "interrupted") if k in manifest},
    )


def _mono(record: Mapping[str, Any]) -> float:
    return float(record.get("mono", 0.0))


def _probe_time(event: Mapping[str, Any]) -> float:
    """When a probe began: agents log a probe when its outcome is known (after a connect
    timeout, seconds later), with its start in ``start_mono``."""
    return float(event.get("start_mono", event.get("mono", 0.0)))


# ---- ground truth ----------------------------------------------------------------------------

def infection_times(events: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Host -> monotonic time it became infected: its first ``infection`` event, or for patient
    zero (woken by the runner rather than infected) its first ``wake`` event."""
    times: dict[str, float] = {}
    for event in events:
        if event.get("type") in ("infection", "wake") and "host" in event:
            host, when = event["host"], _mono(event)
            if host not in times or when < times[host]:
                times[host] = when
    return times


def alert_host(alert: Mapping[str, Any], topology: Topology) -> str | None:
    """The host an alert accuses: its ``host`` key, else the owner of ``src_ip``."""
    host = alert.get("host")
    if isinstance(host, str) and host in topology.hosts:
        return host
    try:
        owner = topology.host_by_ip.get(ipaddress.IPv4Address(str(alert.get("src_ip", ""))))
    except ValueError:
        return None
    return owner.name if owner else None


# ---- containment replay ----------------------------------------------------------------------

def action_effective_time(action: Mapping[str, Any]) -> float:
    """When an action took effect: logged time plus the measured time to enforcement."""
    return _mono(action) + max(0.0, float(action.get("enforced_s") or 0.0))


def _block_of(action: Mapping[str, Any]) -> Block:
    params = action.get("params") or {}
    port = params.get("port")
    return Block(source=str(params.get("source", action.get("target", "any"))),
                 destination=str(params.get("destination", "any")),
                 port=int(port) if port is not None else None,
                 proto=str(params.get("proto", "any")))


def apply_action(state: ContainmentState, action: Mapping[str, Any]) -> None:
    """Apply one logged action to ``state`` (failed actions change nothing)."""
    if action.get("ok") is False:
        return
    kind, target = action.get("action"), str(action.get("target", ""))
    if kind == "quarantine":
        state.quarantined.add(target)
    elif kind == "release":
        state.quarantined.discard(target)
    elif kind == "block":
        block = _block_of(action)
        if block not in state.blocks:
            state.blocks.append(block)
    elif kind == "unblock":
        block = _block_of(action)
        state.blocks = [b for b in state.blocks if b != block]
    elif kind == "rate-limit":
        params = action.get("params") or {}
        state.rate_limited[target] = float(params.get("per_second", params.get("rate", 0.0)))


def replay_containment(actions: Iterable[Mapping[str, Any]],
                       until: float | None = None) -> ContainmentState:
    """The containment enforced at monotonic time ``until`` (default: after every action)."""
    state = ContainmentState()
    for action in sorted(actions, key=action_effective_time):
        if until is not None and action_effective_time(action) > until:
            break
        apply_action(state, action)
    return state


class ReachabilityOracle:
    """Answers "can an infected host still infect anyone?" under policy plus containment.

    Uses ``policy.decide_flow`` (the reference semantics). The topology's own verdict for a
    (source, target, service) triple never changes during a run, so it is cached; only flows the
    topology allows are re-decided under the current containment state.
    """

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._base: dict[tuple[str, str, int, str], bool] = {}
        self._targets = [h for h in topology.hosts.values() if h.susceptible]

    def _allowed(self, source: Host, target: Host, port: int, proto: str,
                 state: ContainmentState) -> bool:
        key = (source.name, target.name, port, proto)
        base = self._base.get(key)
        if base is None:
            base = decide_flow(self.topology, source, target.ip, port, proto).allowed
            self._base[key] = base
        if not base:
            return False
        if not state.quarantined and not state.blocks:
            return True
        return decide_flow(self.topology, source, target.ip, port, proto, state).allowed

    def can_infect(self, source: str, target: str, state: ContainmentState) -> bool:
        source_host, target_host = self.topology.hosts[source], self.topology.hosts[target]
        return any(self._allowed(source_host, target_host, service.port, service.proto, state)
                   for service in target_host.vulnerable_services())

    def exposures(self, infected: Iterable[str], state: ContainmentState
                  ) -> list[tuple[str, str]]:
        """(infected source, susceptible target) pairs still open; empty when contained."""
        infected_set = set(infected)
        open_pairs = []
        for source in sorted(infected_set - state.quarantined):
            if source not in self.topology.hosts:
                continue
            for target in self._targets:
                if target.name in infected_set:
                    continue
                if self.can_infect(source, target.name, state):
                    open_pairs.append((source, target.name))
        return open_pairs

    def burned_out(self, infected: Iterable[str], patient_zero: Iterable[str]) -> bool:
        """Every susceptible host (besides patient zero) fell: nothing was left to protect, so
        the outbreak ran its course rather than being contained."""
        infected_set, origin = set(infected), set(patient_zero)
        others = [t.name for t in self._targets if t.name not in origin]
        return bool(others) and all(name in infected_set for name in others)

    def contained(self, infected: Iterable[str], state: ContainmentState) -> bool:
        infected_set = set(infected)
        for source in sorted(infected_set - state.quarantined):
            if source not in self.topology.hosts:
                continue
            for target in self._targets:
                if target.name not in infected_set and self.can_infect(source, target.name,
                                                                       state):
                    return False
        return True


# ---- the score -------------------------------------------------------------------------------

def _rel(mono: float | None, t0: float) -> float | None:
    return None if mono is None else round(mono - t0, 3)


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def score(records: RunRecords) -> dict[str, Any]:
    """Every metric of one run as a JSON-ready dict (see ``docs/metrics.md``)."""
    topology, t0 = records.topology, records.t0
    events = sorted((e for e in records.events if _mono(e) <= records.end + 1e-9), key=_mono)
    infected_at = {h: t for h, t in infection_times(events).items() if h in topology.hosts}
    patient_zero = set(records.patient_zero) or {
        e["host"] for e in events if e.get("type") == "wake" and "host" in e}
    probes_by_host: dict[str, list[float]] = {}
    for event in events:
        if event.get("type") == "probe" and event.get("host") in topology.hosts:
            probes_by_host.setdefault(event["host"], []).append(_probe_time(event))
    for times in probes_by_host.values():
        times.sort()

    first_probe = min((times[0] for times in probes_by_host.values()), default=None)
    first_infection = min(infected_at.values(), default=None)
    origin = first_probe if first_probe is not None else first_infection  # clock of containment

    # alerts: per host the first alert at/after its infection (true positive) per detector
    alerts = sorted(records.alerts, key=_mono)
    accused: list[tuple[float, str, str | None]] = [
        (_mono(a), str(a.get("detector", "unknown")), alert_host(a, topology)) for a in alerts]

    # containment and peak, by replaying infections and actions in time order
    actions = sorted((a for a in records.actions if action_effective_time(a) <= records.end),
                     key=action_effective_time)
    oracle = ReachabilityOracle(topology)
    changes: list[tuple[float, int, Any]] = [(t, 0, h) for h, t in infected_at.items()]
    changes += [(action_effective_time(a), 1, a) for a in actions]
    changes.sort(key=lambda change: (change[0], change[1]))
    state = ContainmentState()
    infected_now: set[str] = set()
    contained_since: float | None = None
    peak = 0
    quarantined_at: dict[str, float] = {}
    index = 0
    while index < len(changes):
        moment = changes[index][0]
        while index < len(changes) and changes[index][0] == moment:
            _, kind, payload = changes[index]
            if kind == 0:
                infected_now.add(payload)
            else:
                apply_action(state, payload)
                if payload.get("action") == "quarantine" and payload.get("ok") is not False:
                    quarantined_at.setdefault(str(payload.get("target")), moment)
            index += 1
        peak = max(peak, len(infected_now - state.quarantined))
        if not infected_now:
            continue
        if oracle.contained(infected_now, state) and not oracle.burned_out(infected_now,
                                                                           patient_zero):
            if contained_since is None:
                contained_since = moment
        else:
            contained_since = None
    contained = bool(infected_at) and contained_since is not None
    if not infected_at:
        time_to_containment: float | None = 0.0
    elif contained_since is not None and origin is not None:
        time_to_containment = round(max(0.0, contained_since - origin), 3)
    else:
        time_to_containment = None

    # detection
    detector_names = list(dict.fromkeys([*records.detectors, *(d for _, d, _ in accused)]))
    first_tp_alert: dict[str, float] = {}  # host -> first alert (any detector) after infection
    for when, _detector, host in accused:
        if host in infected_at and when >= infected_at[host] and host not in first_tp_alert:
            first_tp_alert[host] = when
    first_detection = min(first_tp_alert.values(), default=None)
    time_to_first_detection = (None if first_detection is None or origin is None
                               else round(max(0.0, first_detection - origin), 3))

    def reference_time(host: str) -> float:
        """A host's first probe after infection (what a sensor can see), else its infection."""
        after = [t for t in probes_by_host.get(host, []) if t >= infected_at[host]]
        return after[0] if after else infected_at[host]

    probes_before = {host: sum(1 for t in probes_by_host.get(host, []) if t < when)
                     for host, when in sorted(first_tp_alert.items())}

    detector_rows: dict[str, dict[str, Any]] = {}
    for name in [*detector_names, "any"]:
        mine = [(w, h) for w, d, h in accused if name == "any" or d == name]
        first_after: dict[str, float] = {}
        alerted: set[str] = set()
        unattributed = 0
        for when, host in mine:
            if host is None:
                unattributed += 1
                continue
            alerted.add(host)
            if host in infected_at and when >= infected_at[host] and host not in first_after:
                first_after[host] = when
        true_positive = sorted(first_after)
        false_positive = sorted(alerted - set(first_after))
        false_negative = sorted(set(infected_at) - set(first_after))
        latencies = [first_after[h] - reference_time(h) for h in true_positive]
        from_infection = [first_after[h] - infected_at[h] for h in true_positive]
        detector_rows[name] = {
            "alerts": len(mine),
            "unattributed_alerts": unattributed,
            "true_positive_hosts": true_positive,
            "false_positive_hosts": false_positive,
            "false_negative_hosts": false_negative,
            "tp": len(true_positive), "fp": len(false_positive), "fn": len(false_negative),
            "precision": _ratio(len(true_positive), len(true_positive) + len(false_positive)),
            "recall": _ratio(len(true_positive), len(true_positive) + len(false_negative)),
            "median_detection_latency_s": _median([max(0.0, x) for x in latencies]),
            "median_latency_from_infection_s": _median(from_infection),
            "first_alert_s": _rel(mine[0][0], t0) if mine else None,
        }

    # outcome
    by_tier = {tier: 0 for tier in TIERS}
    total_by_tier = {tier: 0 for tier in TIERS}
    for each in topology.hosts.values():
        total_by_tier[_tier(each)] += 1
    infections = []
    for host, when in sorted(infected_at.items(), key=lambda item: item[1]):
        tier = _tier(topology.hosts[host])
        by_tier[tier] += 1
        parent = next((e.get("parent") for e in events
                       if e.get("type") == "infection" and e.get("host") == host), None)
        infections.append({"host": host, "tier": tier, "time_s": _rel(when, t0),
                           "patient_zero": host in patient_zero, "parent": parent})
    escape = next((i for i in infections if i["tier"] != Tier.LAUNCH_PAD.value), None)
    crown = [{"host": i["host"], "time_s": i["time_s"]} for i in infections
             if i["tier"] == Tier.CROWN_JEWEL.value]
    at_risk = [h for h in topology.hosts.values() if h.name not in patient_zero]
    value_at_risk = sum(h.value for h in at_risk)
    loss = sum(topology.hosts[h].value for h in infected_at if h not in patient_zero)

    # collateral
    # a host quarantined before it was infected (or never infected) was benign at that moment
    benign_quarantined = [
        {"host": h, "time_s": _rel(when, t0)} for h, when in sorted(quarantined_at.items())
        if h in topology.hosts and (h not in infected_at or when < infected_at[h])]
    benign_requests = [e for e in events if e.get("type") == "benign-request"]
    benign_failed = [e for e in benign_requests if e.get("outcome") not in ("ok", None)]

    # safety
    rejected = [e for e in events if e.get("type") == "token-rejected"]
    reasons: dict[str, int] = {}
    for event in rejected:
        reason = str(event.get("reason", "unknown"))
        reasons[reason] = reasons.get(reason, 0) + 1
    egress = (None if records.egress_counters is None
              else int(sum(records.egress_counters.values())))

    detected_in_time = (True if not infected_at else
                        time_to_first_detection is not None
                        and time_to_first_detection <= DETECT_LIMIT_S)
    contained_in_time = time_to_containment is not None and time_to_containment <= CONTAIN_LIMIT_S

    results: dict[str, Any] = {
        "results_version": RESULTS_VERSION,
        "run": {
            **dict(records.metadata),
            "topology": topology.name,
            "duration_s": round(records.end - t0, 3),
            "hosts_total": len(topology.hosts),
            "hosts_by_tier": total_by_tier,
            "susceptible_total": sum(1 for h in topology.hosts.values() if h.susceptible),
            "patient_zero": sorted(patient_zero),
            "first_probe_s": _rel(first_probe, t0),
            "alerts_total": len(alerts),
            "actions_total": len(records.actions),
            "sensor": dict(records.sensor_stats),
        },
        "time_to_first_detection_s": time_to_first_detection,
        "time_to_containment_s": time_to_containment,
        "contained": contained or not infected_at,
        "contained_at_s": _rel(contained_since, t0) if contained else None,
        "first_detection_at_s": _rel(first_detection, t0),
        "last_infection_s": _rel(max(infected_at.values(), default=None), t0),
        "infected_total": len(infected_at),
        "infected_by_tier": by_tier,
        "peak_infected": peak,
        "launch_pad_escape": {"escaped": escape is not None,
                              "time_s": escape["time_s"] if escape else None,
                              "host": escape["host"] if escape else None,
                              "tier": escape["tier"] if escape else None},
        "crown_jewels_infected": crown,
        "value_weighted_loss": round(loss, 3),
        "value_at_risk": round(value_at_risk, 3),
        "value_loss_fraction": _ratio_float(loss, value_at_risk),
        "probes_before_detection": {"per_host": probes_before,
                                    "median": _median(list(probes_before.values()))},
        "detectors": detector_rows,
        "collateral": {
            "benign_hosts_quarantined": len(benign_quarantined),
            "benign_quarantines": benign_quarantined,
            "benign_requests": len(benign_requests),
            "benign_requests_failed": len(benign_failed),
            "benign_failure_fraction": _ratio(len(benign_failed), len(benign_requests)),
        },
        "safety": {
            "egress_packets": egress,
            "egress_by_host": {h: n for h, n in sorted((records.egress_counters or {}).items())
                               if n},
            "forged_tokens_rejected": reasons.get("forged", 0),
            "tokens_rejected_by_reason": dict(sorted(reasons.items())),
            "refused_destinations": sum(1 for e in events
                                        if e.get("type") == "refused-destination"),
        },
        "one_ten_sixty": {"detect_within_1_min": detected_in_time,
                          "investigate_within_10_min": None,
                          "contain_within_60_min": contained_in_time,
                          "held": detected_in_time and contained_in_time},
        "infections": infections,
    }
    results["grade"] = containment_grade(results)
    return results


def _ratio_float(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _tier(host: Host) -> str:
    return str(host.tier.value if isinstance(host.tier, Tier) else host.tier)


def containment_grade(results: Mapping[str, Any]) -> dict[str, Any]:
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
    penalties: dict[str, float] = {}
    penalties["value_loss"] = 40.0 * float(results.get("value_loss_fraction") or 0.0)
    if results["launch_pad_escape"]["escaped"]:
        penalties["launch_pad_escape"] = 10.0
    contain_s = results.get("time_to_containment_s")
    if contain_s is None:
        penalties["not_contained"] = 25.0
    else:
        penalties["containment_time"] = 15.0 * min(
            1.0, math.log10(1.0 + float(contain_s)) / math.log10(1.0 + CONTAIN_LIMIT_S))
    collateral = results["collateral"]
    if collateral["benign_hosts_quarantined"]:
        penalties["benign_quarantined"] = min(15.0, 5.0 * collateral["benign_hosts_quarantined"])
    if collateral["benign_failure_fraction"]:
        penalties["benign_failures"] = 10.0 * float(collateral["benign_failure_fraction"])
    points = max(0.0, 100.0 - sum(penalties.values()))
    caps = []
    if results["crown_jewels_infected"]:
        points = min(points, 69.0)
        caps.append("crown jewel infected: at best D")
    letter = next((band for low, band in GRADE_BANDS if points >= low), "F")
    egress = results["safety"].get("egress_packets")
    if egress:
        letter = "F"
        caps.append("packets tried to leave the testbed: run invalid")
    return {"letter": letter, "score": round(points, 1),
            "penalties": {k: round(v, 2) for k, v in penalties.items() if v},
            "caps": caps}
