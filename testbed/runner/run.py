"""One run of a scenario, phase by phase: prepare, deploy, start agents, start the defence,
watch, stop, collect, tear down, score, report (``Run``; ``run_scenario`` is its one-call form).

Owns: the order of the phases and the cleanup that follows them on every path (success, error,
Ctrl-C, SIGTERM; a second Ctrl-C while cleaning up is deferred, not obeyed), the run's manifest
(written to the state directory when the deployment exists, naming the output folder so that
``testbed down`` can salvage a run whose runner was killed; completed at the outbreak's start and
at the end), the heartbeat that tells a salvage when the runner last watched, and ``RunResult``.

The wall: ground truth is read here only through ``Outbreak`` (live view, stop conditions) and
the scorer. Detectors see sensor events only; the responder sees alerts and, when it is a
policy trained on first contacts, the same sensor events (never ground truth).

Must not touch: other runs' state, anything outside the deployment it made.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from detectors.base import Alert, SensorContext
from testbed.actions import ActionLog
from testbed.backends import get_backend
from testbed.backends.base import Deployment
from testbed.detection import AlertLog, DetectorSet
from testbed.errors import RunError
from testbed.live import LiveStatus, LiveView
from testbed.model.load_scenario import Scenario
from testbed.model.spec import Tier
from testbed.response import Responder, check_policy
from testbed.results import Manifest, Results
from testbed.runner.agent_configs import write_agent_configs
from testbed.runner.agents import AgentFleet
from testbed.runner.outbreak import Outbreak
from testbed.runner.outputs import (
    FLOWS_FILE,
    RunnerState,
    collect,
    remove_state,
    score_run_dir,
    write_outputs,
    write_runner_state,
    write_state_manifest,
)
from testbed.runner.signals import interrupts_deferred, sigterm_as_interrupt
from testbed.scoring import RunRecords
from testbed.sensor import Sensor

__all__ = ["Run", "RunResult", "default_out_dir", "run_repetitions", "run_scenario"]

HEARTBEAT_EVERY_S = 1.0
SENSOR_STATS_EVERY_S = 1.0
SENSOR_POLL_S = 0.05


@dataclass(frozen=True)
class RunResult:
    """What one run produced."""

    run_name: str
    run_dir: Path
    results: Results
    report: Path | None
    interrupted: bool = False
    stop_reason: str = ""
    wall_s: float = 0.0  # whole run, deploy to teardown and report
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds


@dataclass
class Defence:
    """What watches and answers the outbreak: sensor, detectors and their alert log, the
    responder (None without automation) and its action log; and the runner's own ``Outbreak``
    (ground truth, for the live view and stop conditions only)."""

    sensor: Sensor
    detectors: DetectorSet
    alert_log: AlertLog
    action_log: ActionLog
    responder: Responder | None
    outbreak: Outbreak


@dataclass
class FinalCounters:
    """Read while the deployment still exists, at the end of the run."""

    egress_counters: dict[str, int] | None = None  # None: the backend could not tell
    egress_error: str | None = None
    sensor_stats: dict[str, Any] = field(default_factory=dict)


def default_out_dir(scenario: Scenario, *, seed: int | None = None) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = f"-seed{seed}" if seed is not None else ""
    return Path("runs") / f"{scenario.name}-{stamp}{suffix}"


def new_run_name(scenario: Scenario) -> str:
    return f"{scenario.name[:20].rstrip('-')}-{secrets.token_hex(3)}"


class Run:
    """One run of ``scenario``. ``execute()`` runs every phase and returns the ``RunResult``.

    Phases are methods, called in order by ``execute``; each that makes something keeps it on
    the instance (``deployment``, ``agents``, ``defence``) so that the cleanup finds whatever
    exists when a phase fails or is interrupted.
    """

    def __init__(self, scenario: Scenario, *, backend: str | None = None,
                 seed: int | None = None, out_dir: Path | None = None,
                 duration: float | None = None, live: bool = True,
                 stream: TextIO | None = None) -> None:
        spec = scenario.spec
        self.scenario = scenario
        self.seed = spec.seed if seed is None else seed
        self.duration = float(spec.duration_s if duration is None else duration)
        self.backend_name = backend or spec.backend
        self.run_dir = Path(out_dir) if out_dir is not None else default_out_dir(scenario)
        self.run_name = new_run_name(scenario)
        topology = scenario.topology
        self.status = LiveStatus(
            scenario=scenario.name, run_name=self.run_name, duration_s=self.duration,
            hosts_by_tier={tier.value: len(topology.hosts_of_tier(tier)) for tier in Tier})
        self.view = LiveView(self.status, live=live, stream=stream)
        self.timings: dict[str, float] = {}
        self.stop_reason = ""
        self.interrupted = False
        self.failure: BaseException | None = None
        self.t0: float | None = None
        self.t0_wall: float | None = None
        self.end: float | None = None
        self.counters = FinalCounters()
        # the parts, made by the phases (None until their phase ran)
        self.deployment: Deployment | None = None
        self.agents: AgentFleet | None = None
        self.defence: Defence | None = None
        self._stack = contextlib.ExitStack()
        self._created_run_dir = False

    # ---- the whole run -------------------------------------------------------------------------
    def execute(self) -> RunResult:
        """Run every phase; clean up on every path.

        Raises ``KeyboardInterrupt`` after cleaning up (and writing partial results) when
        interrupted; ``RunError``/``BackendError`` when something failed (also after cleaning
        up)."""
        started = time.monotonic()
        self.prepare()
        with self.view, sigterm_as_interrupt():
            try:
                deployment = self.deploy()
                agents = self.start_agents(deployment)
                defence = self.start_defence(deployment)
                self.watch(agents, defence)
            except KeyboardInterrupt:
                self.interrupted = True
                self.stop_reason = "interrupted"
                self.view.say("interrupted: stopping agents and tearing down")
            except BaseException as err:  # cleaned up below, then re-raised
                self.failure = err
            finally:
                self.clean_up()
        if self.t0 is None and self._created_run_dir and self.run_dir.is_dir() \
                and not any(self.run_dir.iterdir()):
            self.run_dir.rmdir()  # nothing ran: leave no empty output directory behind
        if self.failure is not None:
            raise self.failure
        if self.t0 is None:
            if self.interrupted:
                raise KeyboardInterrupt
            raise RunError("the run ended before it started")  # pragma: no cover - defensive
        phase_start = time.monotonic()
        # An interrupted run still owes its partial results: a second, impatient Ctrl-C during
        # scoring must not lose them (an uninterrupted run's scoring stays interruptible).
        with interrupts_deferred(self.view.say) if self.interrupted else contextlib.nullcontext():
            results, records = self.score()
            report = self.report(results, records)
        self.timings["score_report_s"] = time.monotonic() - phase_start
        outcome = RunResult(run_name=self.run_name, run_dir=self.run_dir, results=results,
                            report=report, interrupted=self.interrupted,
                            stop_reason=self.stop_reason, wall_s=time.monotonic() - started,
                            timings=dict(self.timings))
        if self.interrupted:
            self.view.say(f"partial results written to {self.run_dir}")
            raise KeyboardInterrupt
        return outcome

    # ---- phases --------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check what can be checked before anything exists (a policy responder's file fits the
        scenario), then claim the output directory (refusing one that holds a run's results)."""
        if (self.run_dir / "results.json").exists():
            raise RunError(f"{self.run_dir} already holds a run's results; choose another --out")
        spec = self.scenario.spec
        check_policy(spec.response, self.scenario.topology,
                     [detector.name for detector in spec.detectors])
        self._created_run_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def deploy(self) -> Deployment:
        """Build the network; from here on the state directory holds the run's manifest."""
        self._phase("deploying")
        phase_start = time.monotonic()

        def progress(stage: str, done: int, total: int) -> None:
            self._phase(f"deploying: {stage} {done}/{total}")

        backend = get_backend(self.backend_name)
        deployment = self._stack.enter_context(
            backend.deploy(self.scenario.topology, self.run_name, progress=progress))
        self.deployment = deployment
        write_state_manifest(deployment.state_dir, self.manifest())
        self._heartbeat(None)
        self.timings["deploy_s"] = time.monotonic() - phase_start
        return deployment

    def start_agents(self, deployment: Deployment) -> AgentFleet:
        """Write every host's agent config, start the agents, wait until all are ready."""
        self._phase("starting agents")
        phase_start = time.monotonic()
        secret = secrets.token_bytes(32)  # per run, never written outside the state dir
        configs = write_agent_configs(self.scenario, deployment.state_dir, seed=self.seed,
                                      secret=secret, ttl_s=self.duration + 60.0)
        agents = self.agents = AgentFleet(deployment, deployment.state_dir)
        agents.start(configs)
        agents.wait_ready()
        self.timings["agents_s"] = time.monotonic() - phase_start
        return agents

    def start_defence(self, deployment: Deployment) -> Defence:
        """Sensor on the monitored segments' taps, detectors, the responder, the outbreak view."""
        self._phase("starting sensor and detectors")
        spec, state_dir = self.scenario.spec, deployment.state_dir
        monitored = self.scenario.monitored_segments()
        taps = [tap for tap in deployment.taps() if tap.segment in monitored]
        pcap_dir = self.run_dir / "pcap" if spec.outputs.pcap else None
        sensor_name = f"{deployment.run_name}-sensor"  # EVE ``host`` of alerts and flows
        sensor = self._stack.enter_context(Sensor(taps, pcap_dir=pcap_dir,
                                                  flow_log=self.run_dir / FLOWS_FILE,
                                                  sensor_name=sensor_name))
        context = SensorContext.from_topology(self.scenario.topology, taps=taps,
                                              workdir=state_dir / "detectors")
        detectors = self._stack.enter_context(DetectorSet.from_specs(spec.detectors, context,
                                                                     seed=self.seed))
        detectors.start()
        alert_log = self._stack.enter_context(AlertLog(state_dir / "alerts.jsonl",
                                                       sensor=sensor_name))
        action_log = ActionLog(state_dir / "actions.jsonl")
        action_log.path.touch()
        responder = (Responder(spec.response, deployment, action_log)
                     if spec.response.acts_on_alerts else None)
        self.defence = Defence(sensor=sensor, detectors=detectors, alert_log=alert_log,
                               action_log=action_log, responder=responder,
                               outbreak=Outbreak(self.scenario, state_dir))
        return self.defence

    def watch(self, agents: AgentFleet, defence: Defence) -> None:
        """The outbreak: take t0, wake patient zero, feed detectors and the responder, follow
        ground truth, until a stop condition has held for the grace period or time is up."""
        spec, status, view, outbreak = self.scenario.spec, self.status, self.view, \
            defence.outbreak
        state_dir = agents.state_dir
        t0 = self.t0 = time.monotonic()
        self.t0_wall = time.time()
        write_state_manifest(state_dir, self.manifest())
        self._heartbeat(t0)
        self._phase("running")
        wake_at, deadline = t0 + spec.worm.start_s, t0 + self.duration
        # The wake file names the moment, and goes out now: the agents read it at their next
        # control poll and wake patient zero at that moment, not at the poll's phase after it.
        agents.wake(outbreak.patient_zero, at_monotonic=wake_at)
        woken, announced = False, set[str]()
        stop_at: float | None = None
        stop_reason = "time limit"
        next_stats = next_heartbeat = 0.0
        while True:
            now = time.monotonic()
            if not woken and now >= wake_at:
                woken = True
                view.say(f"patient zero woke: {', '.join(outbreak.patient_zero)}")
            events = defence.sensor.poll(SENSOR_POLL_S)
            if events and defence.responder is not None:
                defence.responder.observe(events)  # a policy responder folds in first contacts
            alerts = defence.detectors.observe_many(events) if events else []
            now = time.monotonic()
            alerts += defence.detectors.tick(now)
            if alerts:
                self._on_alerts(alerts, defence)
            if defence.responder is not None:
                defence.responder.tick(now)
            status.elapsed_s = now - t0
            self._follow(outbreak, now, announced)
            if now >= next_stats:
                next_stats = now + SENSOR_STATS_EVERY_S
                stats = defence.sensor.stats()
                status.sensor = {"packets": stats.get("packets", 0),
                                 "kernel_drops": stats.get("kernel_drops", 0)}
            if now >= next_heartbeat:
                next_heartbeat = now + HEARTBEAT_EVERY_S
                self._heartbeat(now)
            reasons = outbreak.stop_reasons()
            if reasons and stop_at is None:
                stop_at = now + spec.stop.grace_s
                stop_reason = reasons[0]
                status.stop_reason = f"{stop_reason} (in {spec.stop.grace_s:g}s)"
            elif not reasons and stop_at is not None:
                # The condition must hold until the grace period ends: a release right after
                # containment re-opens the run rather than ending it as contained.
                stop_at, stop_reason = None, "time limit"
                status.stop_reason = ""
            view.refresh()
            if stop_at is not None and now >= stop_at:
                break
            if now >= deadline:
                stop_reason = "time limit"
                break
        self.end = time.monotonic()
        self.stop_reason = stop_reason
        closing = defence.detectors.close()
        defence.alert_log.write(closing)
        _count_alerts(closing, status.alerts_by_detector)

    def stop(self) -> None:
        """Stop the agents; read the egress counters and sensor statistics while the deployment
        still exists."""
        if self.agents is not None:
            self.agents.stop()
        if self.deployment is not None:
            try:
                self.counters.egress_counters = dict(self.deployment.egress_counters())
            except Exception as err:  # the run is still scored; egress becomes "unknown"
                self.counters.egress_counters = None
                self.counters.egress_error = str(err)
        if self.defence is not None:
            with contextlib.suppress(Exception):
                stats = self.defence.sensor.stats()
                self.counters.sensor_stats = {
                    key: stats[key] for key in ("packets", "kernel_drops", "duplicates",
                                                "events") if key in stats}

    def collect(self) -> None:
        """Copy the run's records out of the state directory into the output directory."""
        if self.deployment is not None:
            collect(self.deployment.state_dir, self.run_dir, self.manifest())

    def teardown(self) -> None:
        """Close sensor, detectors, alert log, then the deployment; after a clean teardown,
        remove the state directory (a failed one keeps its ledger for ``testbed down``)."""
        try:
            self._stack.close()
        except Exception as err:  # report, but keep the first failure
            self.failure = self.failure or err
        else:
            if self.deployment is not None:
                remove_state(self.deployment.state_dir, self.run_name)

    def clean_up(self) -> None:
        """Stop, collect and tear down, whatever exists; Ctrl-C and SIGTERM wait meanwhile."""
        self.end = self.end if self.end is not None else time.monotonic()
        self.status.phase = "cleaning up"
        self.status.stop_reason = self.stop_reason
        self.view.refresh()
        with interrupts_deferred(self.view.say):
            cleanup_start = time.monotonic()
            if self.deployment is not None:
                self.stop()
                try:
                    self.collect()
                except OSError as err:
                    self.view.say(f"collecting outputs failed: {err}")
            self.teardown()
            self.timings["teardown_s"] = time.monotonic() - cleanup_start

    def score(self) -> tuple[Results, RunRecords]:
        """Score the collected records; the results are final (nothing edits them after)."""
        timings = {key: round(value, 3) for key, value in self.timings.items()}
        return score_run_dir(self.run_dir, self.scenario, stop_reason=self.stop_reason,
                             timings=timings)

    def report(self, results: Results, records: RunRecords) -> Path | None:
        """Write report.html (if the scenario asks for it), then results.json."""
        return write_outputs(self.run_dir, results, records,
                             report=self.scenario.spec.outputs.report)

    # ---- records -------------------------------------------------------------------------------
    def manifest(self) -> Manifest:
        """What this run is, as known so far (``t0_mono`` once the outbreak started, the end
        and counters once it stopped)."""
        spec, scenario = self.scenario.spec, self.scenario
        return Manifest(
            scenario=scenario.name, scenario_path=str(Path(scenario.path).resolve()),
            topology_path=str(Path(scenario.topology_path).resolve()),
            run_name=self.run_name, backend=self.backend_name, seed=self.seed,
            duration_s=self.duration, worm_profile=spec.worm.profile,
            patient_zero=tuple(scenario.patient_zero()),
            detectors=tuple(detector.name for detector in spec.detectors),
            automation=spec.response.automation,
            state_dir=str(self.deployment.state_dir) if self.deployment is not None else None,
            t0_mono=self.t0, t0_wall=self.t0_wall,
            end_mono=self.end, interrupted=self.interrupted, stop_reason=self.stop_reason,
            error=str(self.failure) if self.failure is not None else None,
            egress_counters=self.counters.egress_counters,
            egress_error=self.counters.egress_error, sensor_stats=self.counters.sensor_stats,
        )

    # ---- helpers -------------------------------------------------------------------------------
    def _heartbeat(self, now: float | None) -> None:
        """Tell a later salvage where the outputs go and until when this runner watched."""
        if self.deployment is not None:
            write_runner_state(self.deployment.state_dir, RunnerState(
                pid=os.getpid(), out_dir=str(self.run_dir.resolve()), alive_mono=now))

    def _phase(self, phase: str) -> None:
        self.status.phase = phase
        self.view.refresh()

    def _follow(self, outbreak: Outbreak, now: float, announced: set[str]) -> None:
        """Read what the outbreak did; show it, and say its milestones once."""
        for host in outbreak.poll(now):
            if outbreak.escaped(host) and "escape" not in announced:
                announced.add("escape")
                self.view.say(f"launch-pad escape: {host} infected")
        self.status.infected_by_tier = outbreak.infected_by_tier()
        self.status.actions_by_kind = dict(outbreak.actions_by_kind)
        self.status.contained = {"contained": True, "spreading": False}.get(outbreak.status)
        if outbreak.status == "contained" and "contained" not in announced:
            announced.add("contained")
            self.view.say("contained: no infected host can reach a susceptible service")

    def _on_alerts(self, alerts: list[Alert], defence: Defence) -> None:
        defence.alert_log.write(alerts)
        if not self.status.alerts_by_detector:
            self.view.say(f"first alert: {alerts[0].detector} on "
                          f"{alerts[0].host or alerts[0].src_ip}")
        _count_alerts(alerts, self.status.alerts_by_detector)
        if defence.responder is not None:
            for alert in alerts:
                defence.responder.handle(alert)


def _count_alerts(alerts: list[Alert], counts: dict[str, int]) -> dict[str, int]:
    for alert in alerts:
        counts[alert.detector] = counts.get(alert.detector, 0) + 1
    return counts


def run_scenario(scenario: Scenario, *, backend: str | None = None, seed: int | None = None,
                 out_dir: Path | None = None, duration: float | None = None, live: bool = True,
                 stream: TextIO | None = None) -> RunResult:
    """Run ``scenario`` once and return its scored results (also written to ``out_dir``).

    A simulated backend (``sim``: ``Backend.simulated``) hands the scenario to the simulator,
    which writes the same run directory in virtual time (``testbed.runner.simulated``).

    Raises ``KeyboardInterrupt`` after cleaning up (and writing partial results) when
    interrupted; ``RunError``/``BackendError`` when something failed (also after cleaning up).
    """
    if get_backend(backend or scenario.spec.backend).simulated:
        from testbed.runner.simulated import simulate_scenario

        return simulate_scenario(scenario, seed=seed, out_dir=out_dir, duration=duration,
                                 live=live, stream=stream)
    return Run(scenario, backend=backend, seed=seed, out_dir=out_dir, duration=duration,
               live=live, stream=stream).execute()


def run_repetitions(scenario: Scenario, *, repetitions: int | None = None,
                    out_dir: Path | None = None, seed: int | None = None,
                    **options: Any) -> list[RunResult]:
    """Runs with seeds seed, seed+1, ...; each in ``<out_dir>/seed-<n>`` when more than one."""
    count = scenario.spec.repetitions if repetitions is None else repetitions
    first = scenario.spec.seed if seed is None else seed
    base = out_dir if out_dir is not None else default_out_dir(scenario)
    results = []
    for index in range(count):
        run_seed = first + index
        target = base if count == 1 else base / f"seed-{run_seed}"
        results.append(run_scenario(scenario, seed=run_seed, out_dir=target, **options))
    return results

