"""Run a scenario end to end: deploy, start agents and defence, wake patient zero, watch, stop,
collect, score, report, tear down.

Owns: the order of a run and its cleanup (always: on success, error, Ctrl-C or SIGTERM; a second
Ctrl-C while cleaning up is deferred, not obeyed), the run directory's outputs (``manifest.json``,
``events.jsonl``, ``alerts.jsonl``, ``actions.jsonl``, ``results.json``, ``report.html``, optional
``pcap/`` and ``labels.csv``), the stop conditions, and repetitions over seeds.

The wall: the runner reads ground truth (agents' event logs) only for its live view, its stop
conditions and the scorer. Detectors see sensor events only; the responder sees alerts only.

Must not touch: other runs' state, anything outside the deployment it made.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from testbed.errors import RunError
from testbed.live import LiveStatus, LiveView
from testbed.model.load_scenario import Scenario
from testbed.model.spec import Tier
from testbed.runner.tail import JsonlTail, MultiTail
from testbed.scoring import (
    ReachabilityOracle,
    apply_action,
    load_run_records,
    read_jsonl,
    score,
)

__all__ = [
    "RunResult",
    "default_out_dir",
    "headline",
    "run_repetitions",
    "run_scenario",
]

READY_TIMEOUT_S = 30.0
AGENT_STOP_GRACE_S = 3.0
STOP_CHECK_EVERY_S = 0.25


@dataclass(frozen=True)
class RunResult:
    """What one run produced."""

    run_name: str
    run_dir: Path
    results: dict[str, Any]
    report: Path | None
    interrupted: bool = False
    stop_reason: str = ""
    wall_s: float = 0.0  # whole run, deploy to teardown and report
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds


def default_out_dir(scenario: Scenario, *, seed: int | None = None) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = f"-seed{seed}" if seed is not None else ""
    return Path("runs") / f"{scenario.name}-{stamp}{suffix}"


def _run_name(scenario: Scenario) -> str:
    return f"{scenario.name[:20].rstrip('-')}-{secrets.token_hex(3)}"


# ---- signals ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM during the run cleans up exactly like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _interrupts_deferred(say: Callable[[str], None]) -> Iterator[list[int]]:
    """While cleaning up, Ctrl-C and SIGTERM are noted but do not interrupt the cleanup."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        say("still cleaning up, please wait (nothing is left behind)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ---- the run ---------------------------------------------------------------------------------

@dataclass
class _Parts:
    """What exists so far, for the cleanup to find (filled in as the run starts)."""

    deployment: Any = None
    sensor: Any = None
    state_dir: Path | None = None
    configs: dict[str, Path] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


class _Outbreak:
    """The runner's own view of ground truth and containment, for live view and stop checks."""

    def __init__(self, scenario: Scenario, state_dir: Path) -> None:
        self.topology = scenario.topology
        self.patient_zero = scenario.patient_zero()
        self.truth = MultiTail(state_dir / "hosts", "events.jsonl")
        self.actions = JsonlTail(state_dir / "actions.jsonl")
        self.oracle = ReachabilityOracle(self.topology)
        from testbed.policy import ContainmentState

        self.state = ContainmentState()
        self.pending_actions: list[dict[str, Any]] = []
        self.infected: dict[str, float] = {}
        self.actions_by_kind: dict[str, int] = {}
        self.dirty = True

    def poll(self, now: float) -> list[str]:
        """Read new ground truth and actions; returns newly infected hosts."""
        fresh = []
        for event in self.truth.poll():
            host = str(event.get("host"))
            if event.get("type") in ("infection", "wake") and host in self.topology.hosts:
                if host not in self.infected:
                    self.infected[host] = float(event.get("mono", now))
                    fresh.append(host)
                    self.dirty = True
        for action in self.actions.poll():
            kind = str(action.get("action", "?"))
            self.actions_by_kind[kind] = self.actions_by_kind.get(kind, 0) + 1
            self.pending_actions.append(action)
        from testbed.scoring import action_effective_time

        due = [a for a in self.pending_actions if action_effective_time(a) <= now]
        if due:
            self.pending_actions = [a for a in self.pending_actions if a not in due]
            for action in sorted(due, key=action_effective_time):
                apply_action(self.state, action)
            self.dirty = True
        return fresh

    def infected_by_tier(self) -> dict[str, int]:
        counts = {tier.value: 0 for tier in Tier}
        for host in self.infected:
            counts[self.topology.hosts[host].tier.value] += 1
        return counts

    def status(self) -> str:
        """"contained", "burned-out", "spreading", or "dormant" (nothing infected yet)."""
        if not self.infected:
            return "dormant"
        if self.oracle.burned_out(self.infected, self.patient_zero):
            return "burned-out"
        return "contained" if self.oracle.contained(self.infected, self.state) else "spreading"


def run_scenario(scenario: Scenario, *, backend: str | None = None, seed: int | None = None,
                 out_dir: Path | None = None, duration: float | None = None, live: bool = True,
                 stream: Any = None) -> RunResult:
    """Run ``scenario`` once and return its scored results (also written to ``out_dir``).

    Raises ``KeyboardInterrupt`` after cleaning up (and writing partial results) when
    interrupted; ``RunError``/``BackendError`` when something failed (also after cleaning up).
    """
    from testbed.agent import control
    from testbed.agent_config import agent_command, write_agent_configs
    from testbed.backends import get_backend

    spec = scenario.spec
    seed = spec.seed if seed is None else seed
    duration = float(spec.duration_s if duration is None else duration)
    backend_name = backend or spec.backend
    run_dir = Path(out_dir) if out_dir is not None else default_out_dir(scenario)
    if (run_dir / "results.json").exists():
        raise RunError(f"{run_dir} already holds a run's results; choose another --out")
    created_run_dir = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    topology = scenario.topology
    run_name = _run_name(scenario)
    hosts_by_tier = {tier.value: len(topology.hosts_of_tier(tier)) for tier in Tier}
    status = LiveStatus(scenario=scenario.name, run_name=run_name, duration_s=duration,
                        hosts_by_tier=hosts_by_tier)
    view = LiveView(status, live=live, stream=stream)
    timings: dict[str, float] = {}
    started = time.monotonic()
    manifest: dict[str, Any] = {
        "scenario": scenario.name, "scenario_path": str(scenario.path),
        "topology_path": str(scenario.topology_path), "run_name": run_name,
        "backend": backend_name, "seed": seed, "duration_s": duration,
        "worm_profile": spec.worm.profile, "patient_zero": scenario.patient_zero(),
        "detectors": [d.name for d in spec.detectors],
        "automation": spec.response.automation,
    }
    interrupted = False
    stop_reason = ""
    failure: BaseException | None = None
    t0: float | None = None
    end: float | None = None
    parts = _Parts()
    stack = contextlib.ExitStack()
    with view, _sigterm_as_interrupt():
        try:
            # -- deploy ------------------------------------------------------------------------
            status.phase = "deploying"
            view.refresh()
            phase_start = time.monotonic()
            backend_impl = get_backend(backend_name)

            def progress(stage: str, done: int, total: int) -> None:
                status.phase = f"deploying: {stage} {done}/{total}"
                view.refresh()

            deployment = stack.enter_context(backend_impl.deploy(topology, run_name,
                                                                 progress=progress))
            parts.deployment = deployment
            state_dir = parts.state_dir = Path(deployment.state_dir)
            timings["deploy_s"] = time.monotonic() - phase_start
            # -- agents ------------------------------------------------------------------------
            status.phase = "starting agents"
            view.refresh()
            phase_start = time.monotonic()
            secret = secrets.token_bytes(32)  # per run, never written outside the state dir
            configs = parts.configs = write_agent_configs(
                scenario, state_dir, seed=seed, secret=secret, ttl_s=duration + 60.0)
            argv_for = getattr(deployment, "agent_argv", None)
            for host, config_path in configs.items():
                log_path = state_dir / "hosts" / host / "agent.log"
                log_path.parent.mkdir(parents=True, exist_ok=True)
                argv = (argv_for(host, config_path) if callable(argv_for)
                        else agent_command(config_path))
                # The agent gets its own copy of the descriptor; closing ours at once keeps the
                # runner's descriptor count flat however many hosts there are.
                with log_path.open("ab") as log:
                    parts.processes.append(deployment.spawn(host, argv, stdout=log.fileno(),
                                                            stderr=log.fileno()))
            not_ready = _wait_ready(control, state_dir, configs, parts.processes)
            if not_ready:
                raise RunError(_not_ready_message(state_dir, not_ready))
            timings["agents_s"] = time.monotonic() - phase_start
            # -- defence -----------------------------------------------------------------------
            status.phase = "starting sensor and detectors"
            view.refresh()
            from detectors.base import SensorContext
            from detectors.pipeline import AlertLog, DetectorSet
            from testbed.sensor import Sensor

            monitored = scenario.monitored_segments()
            taps = [tap for tap in deployment.taps() if tap.segment in monitored]
            pcap_dir = run_dir / "pcap" if spec.outputs.pcap else None
            sensor = parts.sensor = stack.enter_context(Sensor(taps, pcap_dir=pcap_dir))
            context = SensorContext.from_topology(topology, taps=taps,
                                                  workdir=state_dir / "detectors")
            detectors = stack.enter_context(DetectorSet.from_specs(spec.detectors, context,
                                                                   seed=seed))
            detectors.start()
            alert_log = stack.enter_context(AlertLog(state_dir / "alerts.jsonl"))
            actions_path = state_dir / "actions.jsonl"
            actions_path.touch()
            responder = _make_responder(scenario, deployment, actions_path)
            outbreak = _Outbreak(scenario, state_dir)
            # -- outbreak ----------------------------------------------------------------------
            t0 = time.monotonic()
            manifest.update(t0_mono=t0, t0_wall=time.time(), state_dir=str(state_dir))
            _write_json(state_dir / "manifest.json", manifest)
            status.phase = "running"
            stop_reason = _watch(scenario, t0, duration, control, state_dir, sensor, detectors,
                                 alert_log, responder, outbreak, status, view)
            end = time.monotonic()
            closing = detectors.close()
            alert_log.write(closing)
            status.alerts_by_detector = _count_alerts(closing, status.alerts_by_detector)
        except KeyboardInterrupt:
            interrupted = True
            stop_reason = "interrupted"
            view.say("interrupted: stopping agents and tearing down")
        except BaseException as err:  # cleaned up below, then re-raised
            failure = err
        finally:
            end = end if end is not None else time.monotonic()
            status.phase = "cleaning up"
            status.stop_reason = stop_reason
            view.refresh()
            with _interrupts_deferred(view.say):
                cleanup_start = time.monotonic()
                if parts.state_dir is not None:
                    with contextlib.suppress(OSError):
                        control.stop_all(parts.state_dir)
                    _wait_for(parts.processes, AGENT_STOP_GRACE_S)
                    manifest.update(_final_counters(parts))
                    manifest.update(end_mono=end, interrupted=interrupted,
                                    stop_reason=stop_reason)
                    if failure is not None:
                        manifest["error"] = str(failure)
                    try:
                        _collect(parts.state_dir, run_dir, manifest)
                    except OSError as err:
                        view.say(f"collecting outputs failed: {err}")
                try:
                    stack.close()  # sensor, detectors, alert log, then the deployment
                except Exception as err:  # report, but keep the first failure
                    failure = failure or err
                else:
                    _remove_state(parts.state_dir, run_name)
                timings["teardown_s"] = time.monotonic() - cleanup_start
    if t0 is None and created_run_dir and run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()  # nothing ran: leave no empty output directory behind
    if failure is not None:
        raise failure
    if t0 is None:
        if interrupted:
            raise KeyboardInterrupt
        raise RunError("the run ended before it started")  # pragma: no cover - defensive
    # -- score and report -------------------------------------------------------------------------
    phase_start = time.monotonic()
    records = load_run_records(run_dir, topology)
    results = score(records)
    results["run"]["stop_reason"] = stop_reason
    results["run"]["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    if spec.outputs.pcap and (run_dir / "pcap").is_dir():
        from testbed.runner.labels import write_labels

        results["run"]["labelled_flows"] = write_labels(run_dir / "pcap", records.events,
                                                        topology, run_dir / "labels.csv")
    report_path = None
    if spec.outputs.report:
        from testbed.report import write_report

        report_path = write_report(run_dir / "report.html", results, records)
    timings["score_report_s"] = time.monotonic() - phase_start
    results["run"]["timings_s"]["score_report_s"] = round(timings["score_report_s"], 3)
    _write_json(run_dir / "results.json", results)
    outcome = RunResult(run_name=run_name, run_dir=run_dir, results=results, report=report_path,
                        interrupted=interrupted, stop_reason=stop_reason,
                        wall_s=time.monotonic() - started, timings=timings)
    if interrupted:
        view.say(f"partial results written to {run_dir}")
        raise KeyboardInterrupt
    return outcome


def _final_counters(parts: _Parts) -> dict[str, Any]:
    """Egress counters and sensor statistics, read while the deployment still exists."""
    found: dict[str, Any] = {}
    if parts.deployment is not None:
        try:
            found["egress_counters"] = dict(parts.deployment.egress_counters())
        except Exception as err:  # the run is still scored; egress becomes "unknown"
            found["egress_counters"] = None
            found["egress_error"] = str(err)
    if parts.sensor is not None:
        with contextlib.suppress(Exception):
            stats = parts.sensor.stats()
            found["sensor_stats"] = {k: stats[k] for k in ("packets", "kernel_drops",
                                                           "duplicates", "events") if k in stats}
    return found


def _make_responder(scenario: Scenario, deployment: Any, actions_path: Path) -> Any:
    if not scenario.spec.response.automation or not scenario.spec.response.rules:
        return None
    from testbed.response import Responder

    return Responder(scenario.spec.response, deployment, actions_path)


def _count_alerts(alerts: list[Any], counts: dict[str, int]) -> dict[str, int]:
    for alert in alerts:
        counts[alert.detector] = counts.get(alert.detector, 0) + 1
    return counts


def _watch(scenario: Scenario, t0: float, duration: float, control: Any, state_dir: Path,
           sensor: Any, detectors: Any, alert_log: Any, responder: Any, outbreak: _Outbreak,
           status: LiveStatus, view: LiveView) -> str:
    """The main loop; returns why it stopped."""
    spec = scenario.spec
    wake_at = t0 + spec.worm.start_s
    deadline = t0 + duration
    woken = False
    stop_at: float | None = None
    stop_reason = "time limit"
    next_check = 0.0
    next_stats = 0.0
    announced: set[str] = set()
    while True:
        now = time.monotonic()
        if not woken and now >= wake_at:
            for host in outbreak.patient_zero:
                control.wake(state_dir, host)
            woken = True
            view.say(f"patient zero woke: {', '.join(outbreak.patient_zero)}")
        events = sensor.poll(0.05)
        alerts = detectors.observe_many(events) if events else []
        now = time.monotonic()
        alerts += detectors.tick(now)
        if alerts:
            alert_log.write(alerts)
            if not status.alerts_by_detector:
                view.say(f"first alert: {alerts[0].detector} on "
                         f"{alerts[0].host or alerts[0].src_ip}")
            _count_alerts(alerts, status.alerts_by_detector)
            if responder is not None:
                for alert in alerts:
                    responder.handle(alert)
        if responder is not None:
            responder.tick(now)
        fresh = outbreak.poll(now)
        for host in fresh:
            if host not in outbreak.patient_zero and "escape" not in announced and \
                    outbreak.topology.hosts[host].tier != Tier.LAUNCH_PAD:
                announced.add("escape")
                view.say(f"launch-pad escape: {host} infected")
        status.elapsed_s = now - t0
        status.infected_by_tier = outbreak.infected_by_tier()
        status.actions_by_kind = dict(outbreak.actions_by_kind)
        if now >= next_stats:
            next_stats = now + 1.0
            stats = sensor.stats()
            status.sensor = {"packets": stats.get("packets", 0),
                             "kernel_drops": stats.get("kernel_drops", 0)}
        if now >= next_check and outbreak.dirty:
            next_check = now + STOP_CHECK_EVERY_S
            outbreak.dirty = False
            state = outbreak.status()
            status.contained = {"contained": True, "spreading": False}.get(state)
            if state == "contained" and "contained" not in announced:
                announced.add("contained")
                view.say("contained: no infected host can reach a susceptible service")
            condition = {"contained": "contained", "burned-out": "all-infected"}.get(state)
            reasons = []
            if condition in spec.stop.when:
                reasons.append(condition)
            if "crown-jewel-infected" in spec.stop.when and any(
                    outbreak.topology.hosts[h].tier == Tier.CROWN_JEWEL
                    for h in outbreak.infected):
                reasons.append("crown-jewel-infected")
            if reasons and stop_at is None:
                stop_at = now + spec.stop.grace_s
                stop_reason = reasons[0]
                status.stop_reason = f"{stop_reason} (in {spec.stop.grace_s:g}s)"
        view.refresh()
        if stop_at is not None and now >= stop_at:
            return stop_reason
        if now >= deadline:
            return "time limit"


def _wait_for(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1.0)
        if process.poll() is None:
            process.kill()


def _wait_ready(control: Any, state_dir: Path, configs: dict[str, Path],
                processes: list[subprocess.Popen[bytes]]) -> list[str]:
    """Hosts whose agent is not ready; gives up early when agents have already exited."""
    hosts = list(configs)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        hosts = control.wait_ready(state_dir, hosts, 0.5)
        if not hosts or time.monotonic() >= deadline:
            return hosts
        exited = [host for host, process in zip(configs, processes, strict=True)
                  if host in hosts and process.poll() is not None]
        if exited:
            return exited


def _not_ready_message(state_dir: Path, hosts: list[str]) -> str:
    lines = [f"{len(hosts)} agent(s) did not become ready (exited, or not within "
             f"{READY_TIMEOUT_S:g}s): "
             f"{', '.join(hosts[:8])}{' ...' if len(hosts) > 8 else ''}"]
    for host in hosts[:3]:
        log = state_dir / "hosts" / host / "agent.log"
        with contextlib.suppress(OSError):
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            if tail:
                lines.append(f"  {host}: " + "\n    ".join(tail))
    return "\n".join(lines)


def _remove_state(state_dir: Path | None, run_name: str) -> None:
    """After a clean teardown, remove what the runner and agents left in the run's state
    directory (agent configs hold the run's secret); outputs were copied to the run directory.
    A failed teardown keeps it: its ledger lets ``testbed down`` finish the job."""
    if state_dir is None or state_dir.name != run_name or not state_dir.is_dir():
        return
    if (state_dir / "ledger.json").exists():
        return  # the backend did not finish: leave its ledger in place
    shutil.rmtree(state_dir, ignore_errors=True)


def _write_json(path: Path, data: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n",
                         encoding="utf-8")
    temporary.replace(path)


def _collect(state_dir: Path, run_dir: Path, manifest: dict[str, Any]) -> None:
    """Copy the run's records out of the state directory before the backend removes it."""
    events: list[dict[str, Any]] = []
    hosts_dir = state_dir / "hosts"
    if hosts_dir.is_dir():
        for directory in sorted(hosts_dir.iterdir()):
            events.extend(read_jsonl(directory / "events.jsonl"))
            log = directory / "agent.log"
            if log.is_file() and log.stat().st_size:
                (run_dir / "logs").mkdir(exist_ok=True)
                shutil.copyfile(log, run_dir / "logs" / f"{directory.name}.log")
    events.sort(key=lambda e: float(e.get("mono", 0.0)))
    with (run_dir / "events.jsonl").open("w", encoding="utf-8") as stream:
        for event in events:
            stream.write(json.dumps(event, sort_keys=True) + "\n")
    for name in ("alerts.jsonl", "actions.jsonl"):
        source = state_dir / name
        if source.is_file():
            shutil.copyfile(source, run_dir / name)
        else:
            (run_dir / name).write_text("", encoding="utf-8")
    _write_json(run_dir / "manifest.json", manifest)


# ---- repetitions and the headline -------------------------------------------------------------

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


def headline(results: dict[str, Any], report: Path | None = None) -> str:
    """The few lines a person reads at the end of ``testbed run`` (and ``make demo``)."""
    def seconds(value: Any) -> str:
        if value is None:
            return "never"
        return f"{1000 * float(value):.0f} ms" if float(value) < 1 else f"{float(value):.2f} s"

    run = results.get("run", {})
    escape = results["launch_pad_escape"]
    crown = results["crown_jewels_infected"]
    grade = results["grade"]
    tiers = ", ".join(f"{t} {n}" for t, n in results["infected_by_tier"].items() if n) or "none"
    lines = [
        f"grade {grade['letter']} (score {grade['score']}/100)",
        f"time to first detection  {seconds(results['time_to_first_detection_s'])}",
        f"time to containment      {seconds(results['time_to_containment_s'])}"
        + ("" if results["contained"] else "  (not contained)"),
        f"infected                 {results['infected_total']}/{run.get('hosts_total', '?')}"
        f" ({tiers}), peak {results['peak_infected']}",
        "launch-pad escape        "
        + (f"yes, {escape['host']} at {seconds(escape['time_s'])}" if escape["escaped"] else "no"),
        "crown jewels lost        "
        + (", ".join(f"{c['host']} at {seconds(c['time_s'])}" for c in crown) or "none"),
        f"value lost               {results['value_weighted_loss']:g}"
        f" of {results['value_at_risk']:g} at risk",
        f"benign hosts quarantined {results['collateral']['benign_hosts_quarantined']}",
        f"egress packets           {results['safety']['egress_packets']}",
    ]
    if run.get("stop_reason"):
        lines.append(f"stopped because          {run['stop_reason']}")
    if report is not None:
        lines.append(f"report                   {report}")
    return "\n".join(lines)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and interquartile range of the headline numbers over repetitions."""
    def spread(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"median": None, "iqr": None, "n": 0}
        ordered = sorted(values)
        if len(ordered) >= 2:
            quartiles = statistics.quantiles(ordered, n=4, method="inclusive")
            iqr = quartiles[2] - quartiles[0]
        else:
            iqr = 0.0
        return {"median": statistics.median(ordered), "iqr": iqr, "n": len(ordered)}

    keys = ("time_to_first_detection_s", "time_to_containment_s", "infected_total",
            "value_weighted_loss", "peak_infected")
    summary = {key: spread([float(r[key]) for r in results if r.get(key) is not None])
               for key in keys}
    summary["grade_score"] = spread([float(r["grade"]["score"]) for r in results])
    summary["contained_fraction"] = {"median": (sum(1 for r in results if r["contained"])
                                                / len(results)) if results else None}
    return summary

