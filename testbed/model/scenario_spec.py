"""The scenario file format: the outbreak, the defence and the run. Source of the scenario schema.

Owns: keys, types, defaults and descriptions of a scenario YAML. Cross-references (hosts exist in
the topology, worm profiles exist) are checked in ``testbed.model.load_scenario``; detector names
and parameters through the ``DetectorCatalog`` it is given (``testbed.detection.load_scenario``
passes the registry), so the model never imports the plug-in registry.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from testbed.model.spec import Name, NameList, PortList

__all__ = [
    "BackupSpec",
    "BenignSpec",
    "DetectorSpec",
    "ExerciseSpec",
    "MonitoringSpec",
    "ObjectiveSpec",
    "OutputsSpec",
    "ResponseRuleSpec",
    "ResponseSpec",
    "ScannerSpec",
    "ScenarioSpec",
    "StopSpec",
    "UserSpec",
    "WormSpec",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WormSpec(_Strict):
    """The mock worm: which profile, where it starts, how fast."""

    profile: str = Field("classic", description="Worm profile: classic, local-preference, "
                                                "hitlist, stealth, recon, mimic, planner, "
                                                "adaptive; see `testbed profiles`.")
    patient_zero: NameList = Field(description="Host(s) where the outbreak starts, usually "
                                               "launch pads.")
    start_s: float = Field(2.0, ge=0, le=3600,
                           description="Seconds after the run starts when patient zero wakes.")
    rate: float | None = Field(None, gt=0, le=1000,
                               description="Probes per second per infected host (overrides the "
                                           "profile's rate).")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Profile parameters; see `testbed profiles`.")


class UserSpec(_Strict):
    """Benign users on ``hosts`` using services on ``targets`` at human rates."""

    hosts: NameList = Field(description="Hosts or groups whose users are active.")
    targets: NameList = Field(description="Hosts or groups they use.")
    services: list[str] | None = Field(None, description="Service kinds they use; default all "
                                                         "the targets offer.")
    per_minute: float = Field(2.0, gt=0, le=600, description="Requests per minute per user.")


class BackupSpec(_Strict):
    """A backup server that contacts every host on schedule (a classic false-positive trap)."""

    host: Name
    every_s: float = Field(60.0, gt=0, le=86400)
    targets: NameList = Field(["any"], description="Hosts, groups or segments; default all.")


class ScannerSpec(_Strict):
    """An IT vulnerability scanner sweeping segments on schedule (another false-positive trap)."""

    host: Name
    segments: NameList = Field(description="Segments it sweeps.")
    every_s: float = Field(120.0, gt=0, le=86400)
    ports: PortList | None = Field(None, description="Ports it probes; default common ports.")


class BenignSpec(_Strict):
    users: list[UserSpec] = Field(default_factory=list)
    backup: BackupSpec | None = None
    scanner: ScannerSpec | None = None


class DetectorSpec(_Strict):
    name: str = Field(description="A registered detector; see `testbed detectors`.")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Overrides of the detector's documented defaults.")


class ResponseRuleSpec(_Strict):
    """On an alert from one of ``on``, apply ``action`` to the alert's source after ``delay_s``."""

    on: NameList = Field(["any"], description="Detector names, or 'any'.")
    action: Literal["quarantine", "block", "rate-limit"] = "quarantine"
    delay_s: float = Field(0.0, ge=0, le=3600,
                           description="Reaction delay: 0 for automation, minutes for a human.")
    min_severity: int = Field(1, ge=1, le=3, description="Ignore alerts below this severity "
                                                         "(1 high .. 3 low, as in Suricata).")
    rate_per_s: float = Field(1.0, gt=0, le=1000, description="For rate-limit: new flows per s.")


class ResponseSpec(_Strict):
    automation: bool = Field(True, description="false: only manual actions (`testbed "
                                               "quarantine RUN HOST`) contain the outbreak.")
    rules: list[ResponseRuleSpec] = Field(default_factory=list)
    policy: str | None = Field(
        None, description="A trained defender policy file (.npz, written by "
                          "benchmarks/train_defender.py; a relative path is relative to the "
                          "scenario file) that decides the containment instead of the rules: every "
                          "decision interval it reads the alerts and containment state and "
                          "quarantines, releases or blocks hosts (docs/gym.md).")

    @property
    def acts_on_alerts(self) -> bool:
        """Whether anything contains by itself: automation on, with rules or a policy."""
        return self.automation and bool(self.rules or self.policy)


class StopSpec(_Strict):
    when: list[Literal["contained", "all-infected", "crown-jewel-infected"]] = Field(
        ["contained", "all-infected"],
        description="Stop early when any of these holds; the duration always bounds the run.")
    grace_s: float = Field(3.0, ge=0, le=600, description=(
        "Keep running this long after a stop condition holds; the run stops only if the "
        "condition still holds then (a release that re-opens a path cancels the stop)."))


class MonitoringSpec(_Strict):
    """Where the sensors listen. Real networks rarely watch everything: a home LAN is dark."""

    segments: NameList = Field(["any"], description="Segments whose traffic the sensors (and so "
                                                    "the detectors) see; 'any' for all.")


class OutputsSpec(_Strict):
    pcap: bool = Field(False, description="Write a pcap per segment and labels.csv.")
    report: bool = Field(True, description="Write report.html.")


ObjectiveMetric = Literal["infected_total", "crown_jewels_infected", "launch_pad_escape",
                          "benign_hosts_quarantined", "time_to_containment_s", "grade_score"]


class ObjectiveSpec(_Strict):
    """One goal of an exercise, checked against the run's results in the debrief."""

    text: str = Field(description="The goal as the students read it.")
    metric: ObjectiveMetric | None = Field(
        None, description="Result that decides it (crown_jewels_infected and launch_pad_escape "
                          "count hosts); omitted: judged by the instructor in the debrief.")
    at_most: float | None = Field(None, ge=0, description="Met when the metric is at most this.")
    at_least: float | None = Field(None, ge=0,
                                   description="Met when the metric is at least this.")


class ExerciseSpec(_Strict):
    """A scenario played by people: students or a team defend by hand from the dashboard
    (`testbed ui`); automation is off. The debrief at the end shows the grade, the objectives
    and what would have changed the grade."""

    title: str = Field(description="Shown at the top of the dashboard.")
    briefing: str = Field("", description="What the defenders are told before the run.")
    objectives: list[ObjectiveSpec] = Field(default_factory=list)
    hints: list[str] = Field(default_factory=list,
                             description="Revealed one at a time, on request; the debrief "
                                         "counts how many were used.")
    truth_view: Literal["after-run", "live", "never"] = Field(
        "after-run", description="When the truth view (infections, curve, score) opens: after "
                                 "the run (debrief), live (an instructor's screen), never.")
    debrief: list[str] = Field(default_factory=list,
                               description="Lessons shown with the grade at the end.")


class ScenarioSpec(_Strict):
    """An outbreak on a topology, the defence, and how to run it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              title="Adaptive-worm testbed scenario")

    name: Name
    description: str = ""
    topology: str = Field(description="Path to the topology file, relative to this file.")
    backend: Literal["netns", "docker", "sim"] = Field(
        "netns", description="netns or docker: emulated in real time; sim: simulated in virtual "
                             "time (docs/sim.md), for large topologies and many seeds.")
    duration_s: float = Field(120.0, gt=0, le=86400, description="Hard time limit of one run.")
    seed: int = Field(1, ge=0, le=2**32 - 1)
    repetitions: int = Field(1, ge=1, le=1000, description="Runs with seeds seed, seed+1, ...")
    worm: WormSpec
    benign: BenignSpec = Field(default_factory=BenignSpec)
    detectors: list[DetectorSpec] = Field(default_factory=list)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    response: ResponseSpec = Field(default_factory=ResponseSpec)
    stop: StopSpec = Field(default_factory=StopSpec)
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)
    exercise: ExerciseSpec | None = Field(
        None, description="Makes the scenario an exercise for people at the dashboard.")

    @model_validator(mode="after")
    def _exercise_is_played_by_hand(self) -> ScenarioSpec:
        if self.exercise is not None and self.response.automation:
            raise ValueError("an exercise is defended by hand: set response.automation: false")
        return self
