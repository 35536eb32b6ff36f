"""The typed records of a run: its manifest (``manifest.json``) and its results (``results.json``).

Owns:
- ``Manifest``: what the runner knew about a run (scenario, backend, seed, clocks, how it ended,
  egress counters, sensor statistics), written by the runner, read by the scorer and ``down``'s
  salvage.
- ``Results`` and its parts: every metric of a run, made once by ``testbed.scoring.score`` and
  never edited afterwards (frozen). ``RESULTS_VERSION`` is the version of its JSON shape; every
  field carries the description published in ``testbed schema results``; ``docs/metrics.md``
  defines each metric (a unit test checks that every field is documented there).
- ``headline(results)``: the few lines a person reads at the end of ``testbed run``;
  ``summarize(results)``: median and IQR of the headline numbers over repetitions.

Must not: compute metrics (``testbed.scoring`` does), read ground truth (``testbed.truth``) or run
anything. Pure data plus text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from testbed.stats import Spread, spread

__all__ = [
    "METRIC_FIELDS",
    "RESULTS_VERSION",
    "Clock",
    "Collateral",
    "CrownJewelLoss",
    "DetectorRow",
    "Grade",
    "HostTime",
    "Infection",
    "LaunchPadEscape",
    "Manifest",
    "OneTenSixty",
    "ProbesBeforeDetection",
    "Results",
    "RunInfo",
    "Safety",
    "Summary",
    "headline",
    "summarize",
]

RESULTS_VERSION: Literal[2] = 2
"""Version of ``results.json``'s shape. 2: typed (``Results``); ``run`` always carries every key
(``null`` when unknown); ``stop_reason``, ``timings_s``, ``labelled_flows`` are set by the
scorer."""

Clock = Literal["monotonic", "virtual"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---- the manifest ------------------------------------------------------------------------------

class Manifest(_Record):
    """``manifest.json``: what the runner knew about a run. Written at the outbreak's start into
    the state directory (``t0_*`` set, the end unknown) and again, complete, into the run
    directory when the run is collected."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Adaptive-worm testbed manifest")

    scenario: str = Field(description="Scenario name.")
    scenario_path: str = Field(description="Scenario file the run was made from.")
    topology_path: str = Field(description="Topology file of the scenario.")
    run_name: str = Field(description="Unique run name (state directory, namespaces, ledger).")
    backend: str = Field(description="Backend that deployed the run: netns, docker, sim ...")
    seed: int = Field(description="Seed of the run (agents, worm, detectors).")
    duration_s: float = Field(description="Time limit of the run, in seconds of its clock.")
    worm_profile: str = Field(description="Worm profile name.")
    patient_zero: tuple[str, ...] = Field(description="Host(s) the runner woke.")
    detectors: tuple[str, ...] = Field(default=(), description="Configured detectors.")
    automation: bool = Field(default=True,
                             description="Whether automatic response was on (false: manual).")
    clock: Clock = Field(default="monotonic",
                         description="Clock of every ``mono`` in the run's records: "
                                     "CLOCK_MONOTONIC seconds, or the simulator's virtual "
                                     "seconds.")
    t0_mono: float | None = Field(default=None,
                                  description="Start of the outbreak (sensor and detectors "
                                              "running), on the run's clock; null before.")
    t0_wall: float | None = Field(default=None, description="The same moment, epoch seconds.")
    state_dir: str | None = Field(default=None, description="The run's state directory.")
    end_mono: float | None = Field(default=None,
                                   description="When the stop was requested, on the run's "
                                               "clock; null while running.")
    wall_duration_s: float | None = Field(default=None,
                                          description="Wall-clock seconds the outbreak took "
                                                      "(virtual-clock runs).")
    interrupted: bool = Field(default=False,
                              description="Ctrl-C, SIGTERM, or a crashed run salvaged by "
                                          "`testbed down`.")
    stop_reason: str = Field(default="", description="Why the run stopped (see results).")
    error: str | None = Field(default=None, description="The failure that ended the run.")
    egress_counters: dict[str, int] | None = Field(
        default=None, description="Host -> packets the egress guards dropped; null if the "
                                  "backend could not tell.")
    egress_error: str | None = Field(default=None,
                                     description="Why egress counters could not be read.")
    sensor_stats: dict[str, int] = Field(default_factory=dict,
                                         description="Sensor counters: packets, kernel_drops, "
                                                     "duplicates, events.")


# ---- the results -------------------------------------------------------------------------------

class RunInfo(_Record):
    """``run``: facts about the run rather than the outbreak."""

    scenario: str | None = Field(default=None, description="Scenario name (manifest).")
    seed: int | None = Field(default=None, description="Seed (manifest).")
    backend: str | None = Field(default=None, description="Backend (manifest).")
    run_name: str | None = Field(default=None, description="Run name (manifest).")
    worm_profile: str | None = Field(default=None, description="Worm profile (manifest).")
    interrupted: bool = Field(default=False,
                              description="The run was interrupted; results are partial.")
    topology: str = Field(description="Topology name.")
    duration_s: float = Field(description="From t0 to the end of the run (stop requested).")
    hosts_total: int = Field(description="Hosts in the topology.")
    hosts_by_tier: dict[str, int] = Field(description="Hosts per tier (every tier listed).")
    susceptible_total: int = Field(description="Hosts with an unpatched mock vulnerability.")
    patient_zero: list[str] = Field(description="Patient-zero host(s).")
    first_probe_s: float | None = Field(description="Patient zero's first probe, s since t0 "
                                                    "(origin of the outbreak clock).")
    alerts_total: int = Field(description="Records in alerts.jsonl.")
    actions_total: int = Field(description="Records in actions.jsonl.")
    sensor: dict[str, int] = Field(default_factory=dict,
                                   description="Sensor counters: packets, kernel_drops, "
                                               "duplicates, events.")
    stop_reason: str = Field(default="", description="time limit, contained, all-infected, "
                                                     "crown-jewel-infected or interrupted.")
    timings_s: dict[str, float] = Field(default_factory=dict,
                                        description="Wall seconds of the runner's phases.")
    labelled_flows: int | None = Field(default=None,
                                       description="Rows written to labels.csv (one per flow).")


class LaunchPadEscape(_Record):
    escaped: bool = Field(description="A host outside the launch-pad tier was infected.")
    time_s: float | None = Field(description="When, s since t0.")
    host: str | None = Field(description="The first such host.")
    tier: str | None = Field(description="Its tier.")


class HostTime(_Record):
    host: str = Field(description="Host name.")
    time_s: float | None = Field(description="When, s since t0.")


class CrownJewelLoss(HostTime):
    """A crown-jewel host that fell."""


class Infection(_Record):
    host: str = Field(description="Infected host.")
    tier: str = Field(description="Its tier.")
    time_s: float | None = Field(description="When it was infected (patient zero: woken), "
                                             "s since t0.")
    patient_zero: bool = Field(description="It was patient zero.")
    parent: str | None = Field(description="The host that infected it (null: patient zero).")


class ProbesBeforeDetection(_Record):
    per_host: dict[str, int] = Field(description="Per alerted infected host: probes it began "
                                                 "before its first true alert.")
    median: float | None = Field(description="Median of per_host.")


class DetectorRow(_Record):
    """One detector's host-level confusion (``detectors.<name>``; ``any``: all together)."""

    alerts: int = Field(description="Alerts it raised.")
    unattributed_alerts: int = Field(description="Alerts whose source is no host.")
    true_positive_hosts: list[str] = Field(description="Infected hosts it alerted on at or "
                                                       "after their infection.")
    false_positive_hosts: list[str] = Field(description="Hosts alerted on while not infected.")
    false_negative_hosts: list[str] = Field(description="Infected hosts never alerted on after "
                                                        "their infection.")
    tp: int = Field(description="len(true_positive_hosts).")
    fp: int = Field(description="len(false_positive_hosts).")
    fn: int = Field(description="len(false_negative_hosts).")
    precision: float | None = Field(description="tp / (tp + fp); null without attributed "
                                                "alerts.")
    recall: float | None = Field(description="tp / (tp + fn); null when nothing was infected.")
    median_detection_latency_s: float | None = Field(
        description="Median over TP hosts of first alert minus the host's first probe after "
                    "infection.")
    median_latency_from_infection_s: float | None = Field(
        description="Median over TP hosts of first alert minus infection.")
    first_alert_s: float | None = Field(description="Its first alert, s since t0.")


class Collateral(_Record):
    benign_hosts_quarantined: int = Field(description="Hosts quarantined while not infected.")
    benign_quarantines: list[HostTime] = Field(description="Those hosts, with times.")
    benign_requests: int = Field(description="Requests of benign users, backups, scanners.")
    benign_requests_failed: int = Field(description="Those whose outcome was not ok.")
    benign_failure_fraction: float | None = Field(description="Failed / all benign requests.")


class Safety(_Record):
    egress_packets: int | None = Field(description="Packets dropped heading outside the "
                                                   "topology; must be 0; null: unknown.")
    egress_by_host: dict[str, int] = Field(description="Non-zero egress counters per host.")
    forged_tokens_rejected: int = Field(description="Token rejections with reason forged.")
    tokens_rejected_by_reason: dict[str, int] = Field(description="Token rejections per reason.")
    refused_destinations: int = Field(description="Destinations the agents' guards refused.")


class OneTenSixty(_Record):
    detect_within_1_min: bool = Field(description="time_to_first_detection_s <= 60 (true when "
                                                  "nothing was infected).")
    investigate_within_10_min: bool | None = Field(default=None,
                                                   description="Always null: no investigation "
                                                               "step.")
    contain_within_60_min: bool = Field(description="time_to_containment_s <= 3600.")
    held: bool = Field(description="Both measured steps held.")


class Grade(_Record):
    letter: Literal["A", "B", "C", "D", "F"] = Field(description="A >= 90, B >= 80, C >= 70, "
                                                                 "D >= 60, else F.")
    score: float = Field(description="0..100: 100 minus penalties, capped.")
    penalties: dict[str, float] = Field(description="Points lost, per reason.")
    caps: list[str] = Field(description="Caps applied (crown jewel, egress).")


class Results(_Record):
    """``results.json``: every metric of one run (definitions in docs/metrics.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Adaptive-worm testbed results")

    results_version: Literal[2] = Field(default=RESULTS_VERSION,
                                        description="Version of this file's shape.")
    run: RunInfo = Field(description="Facts about the run rather than the outbreak.")
    time_to_first_detection_s: float | None = Field(
        description="From the origin (patient zero's first probe) to the first true alert; "
                    "null if no infected host was alerted on.")
    time_to_containment_s: float | None = Field(
        description="From the origin to the moment the outbreak became contained and stayed so; "
                    "0 when nothing was infected; null when not contained.")
    contained: bool = Field(description="No infected, unquarantined host can reach a "
                                        "susceptible uninfected host at the end.")
    contained_at_s: float | None = Field(description="When it became contained, s since t0.")
    first_detection_at_s: float | None = Field(description="The first true alert, s since t0.")
    last_infection_s: float | None = Field(description="The last infection, s since t0.")
    infected_total: int = Field(description="Hosts infected, patient zero included.")
    infected_by_tier: dict[str, int] = Field(description="infected_total per tier.")
    peak_infected: int = Field(description="Most hosts infected and not quarantined at once.")
    launch_pad_escape: LaunchPadEscape = Field(description="The first infection outside the "
                                                           "launch pads.")
    crown_jewels_infected: list[CrownJewelLoss] = Field(description="Crown jewels that fell.")
    value_weighted_loss: float = Field(description="Value of infected hosts but patient zero.")
    value_at_risk: float = Field(description="Value of every host but patient zero.")
    value_loss_fraction: float | None = Field(description="value_weighted_loss / value_at_risk.")
    probes_before_detection: ProbesBeforeDetection = Field(
        description="Probes each alerted infected host began before its first true alert.")
    detectors: dict[str, DetectorRow] = Field(description="Per configured detector, and any.")
    collateral: Collateral = Field(description="What the defence broke.")
    safety: Safety = Field(description="Egress and token checks.")
    one_ten_sixty: OneTenSixty = Field(description="Detect in 1 min, contain in 60.")
    infections: list[Infection] = Field(description="Every infected host in time order.")
    grade: Grade = Field(description="The containment grade.")

    def to_json(self) -> str:
        """``results.json``'s text."""
        return self.model_dump_json(indent=2) + "\n"


METRIC_FIELDS: tuple[str, ...] = tuple(name for name in Results.model_fields
                                       if name not in ("results_version", "run"))
"""Top-level metrics of ``results.json`` (every one defined in docs/metrics.md)."""


# ---- text for people ---------------------------------------------------------------------------

def _seconds(value: float | None) -> str:
    if value is None:
        return "never"
    return f"{1000 * value:.0f} ms" if value < 1 else f"{value:.2f} s"


def headline(results: Results, report: Path | None = None) -> str:
    """The few lines a person reads at the end of ``testbed run`` (and ``make demo``)."""
    escape, grade = results.launch_pad_escape, results.grade
    tiers = ", ".join(f"{t} {n}" for t, n in results.infected_by_tier.items() if n) or "none"
    lines = [
        f"grade {grade.letter} (score {grade.score}/100)",
        f"time to first detection  {_seconds(results.time_to_first_detection_s)}",
        f"time to containment      {_seconds(results.time_to_containment_s)}"
        + ("" if results.contained else "  (not contained)"),
        f"infected                 {results.infected_total}/{results.run.hosts_total}"
        f" ({tiers}), peak {results.peak_infected}",
        "launch-pad escape        "
        + (f"yes, {escape.host} at {_seconds(escape.time_s)}" if escape.escaped else "no"),
        "crown jewels lost        "
        + (", ".join(f"{c.host} at {_seconds(c.time_s)}" for c in results.crown_jewels_infected)
           or "none"),
        f"value lost               {results.value_weighted_loss:g}"
        f" of {results.value_at_risk:g} at risk",
        f"benign hosts quarantined {results.collateral.benign_hosts_quarantined}",
        f"egress packets           {results.safety.egress_packets}",
    ]
    if results.run.stop_reason:
        lines.append(f"stopped because          {results.run.stop_reason}")
    if report is not None:
        lines.append(f"report                   {report}")
    return "\n".join(lines)


class Summary(_Record):
    """Median and IQR of the headline numbers over repetitions (``testbed run --repetitions``).
    Iterating yields ``(name, Spread)`` pairs."""

    time_to_first_detection_s: Spread
    time_to_containment_s: Spread
    infected_total: Spread
    value_weighted_loss: Spread
    peak_infected: Spread
    grade_score: Spread
    contained_fraction: Spread = Field(description="median: the fraction of runs contained.")


def summarize(results: Sequence[Results]) -> Summary:
    """Median and interquartile range of the headline numbers over repetitions."""
    def over(values: Sequence[float | int | None]) -> Spread:
        return spread(float(v) for v in values if v is not None)

    return Summary(
        time_to_first_detection_s=over([r.time_to_first_detection_s for r in results]),
        time_to_containment_s=over([r.time_to_containment_s for r in results]),
        infected_total=over([r.infected_total for r in results]),
        value_weighted_loss=over([r.value_weighted_loss for r in results]),
        peak_infected=over([r.peak_infected for r in results]),
        grade_score=over([r.grade.score for r in results]),
        contained_fraction=Spread(
            median=sum(1 for r in results if r.contained) / len(results) if results else None,
            iqr=None, n=len(results)),
    )
