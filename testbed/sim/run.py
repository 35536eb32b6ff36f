"""One simulated run, end to end: simulate, write the run directory, score, report.

Owns: the run directory of a simulated run, in the shape an emulated run has (``manifest.json``
with ``backend: sim``, ``clock: virtual``, ``t0_mono``/``end_mono`` in virtual seconds and the
wall time the simulation took; ``events.jsonl``, ``alerts.jsonl``, ``actions.jsonl``,
``results.json`` scored by ``testbed.scoring``, ``report.html`` by ``testbed.report``), plus
``sim.json`` (the timing constants used and the engine's counters).
Must not: deploy anything, or score differently from an emulated run.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.errors import RunError
from testbed.files import write_json_atomically, write_text_atomically
from testbed.model.load_scenario import Scenario
from testbed.results import Results
from testbed.sim.bindings import Manifest, load_run_records, score, write_report
from testbed.sim.engine import SimOutcome, Simulation
from testbed.sim.timing import Timing, load_timing

__all__ = ["SimulatedRun", "claim_run_directory", "complete_run_directory", "manifest_path_text",
           "run_simulation", "sim_manifest", "simulate"]


@dataclass(frozen=True)
class SimulatedRun:
    """What one simulated run produced (the runner turns it into its ``RunResult``)."""

    run_name: str
    run_dir: Path
    results: Results
    report: Path | None
    stop_reason: str
    wall_s: float  # simulate, score and report
    timings: dict[str, float] = field(default_factory=dict)  # phase -> wall seconds


def manifest_path_text(path: Path | str) -> str:
    """A file's absolute path, as an emulated run's manifest has it; a placeholder as it is."""
    return str(Path(path).resolve()) if Path(path).is_file() else str(path)


def sim_manifest(scenario: Scenario, *, run_name: str, seed: int, duration: float,
                 wall_base: float, state_dir: Path | None = None) -> Manifest:
    """The manifest of a simulated run as it starts (virtual clock, t0 = 0); the end fields are
    filled in by ``complete_run_directory``."""
    spec = scenario.spec
    return Manifest(
        scenario=scenario.name, scenario_path=manifest_path_text(scenario.path),
        topology_path=manifest_path_text(scenario.topology_path), run_name=run_name,
        backend="sim", seed=seed, duration_s=duration, worm_profile=spec.worm.profile,
        patient_zero=tuple(scenario.patient_zero()),
        detectors=tuple(d.name for d in spec.detectors), automation=spec.response.automation,
        clock="virtual", t0_mono=0.0, t0_wall=wall_base,
        state_dir=str(state_dir) if state_dir is not None else None)


def complete_run_directory(run_dir: Path, scenario: Scenario, manifest: Manifest, *,
                           outcome: SimOutcome, simulation: Simulation, timing: Timing,
                           simulate_s: float, started: float, interrupted: bool = False,
                           mode: str | None = None) -> SimulatedRun:
    """Finish a simulated run's directory whose records are in place: the final manifest,
    ``sim.json``, then score, report and ``results.json``, exactly as every simulated run does
    (``simulate`` and the dashboard's paced ``simulate_paced`` both end here)."""
    final = manifest.model_copy(update={
        "state_dir": None, "end_mono": outcome.end, "wall_duration_s": round(simulate_s, 6),
        "interrupted": interrupted, "stop_reason": outcome.stop_reason, "egress_counters": {},
        "sensor_stats": outcome.sensor_stats})
    write_json_atomically(run_dir / "manifest.json", final.model_dump(mode="json"))
    write_json_atomically(run_dir / "sim.json", {
        "timing": timing.as_dict(), "mode": mode or simulation.mode, "counters": outcome.counters,
        "record_probes": simulation.record_probes, "virtual_duration_s": outcome.end,
        "wall_duration_s": simulate_s})
    phase = time.perf_counter()
    records = load_run_records(run_dir, scenario.topology)
    results = score(records, stop_reason=outcome.stop_reason,
                    timings={"simulate_s": round(simulate_s, 3)})
    report = (write_report(run_dir / "report.html", results, records)
              if scenario.spec.outputs.report else None)
    write_text_atomically(run_dir / "results.json", results.to_json())
    score_report_s = time.perf_counter() - phase
    return SimulatedRun(run_name=manifest.run_name, run_dir=run_dir, results=results,
                        report=report, stop_reason=outcome.stop_reason,
                        wall_s=time.perf_counter() - started,
                        timings={"simulate_s": simulate_s, "score_report_s": score_report_s})


def default_sim_dir(scenario: Scenario, seed: int) -> Path:
    return Path("runs") / f"{scenario.name}-sim-seed{seed}"


def claim_run_directory(scenario: Scenario, seed: int, out_dir: Path | None, *,
                        mode: str = "") -> tuple[Path, str, bool]:
    """The run directory (``RunError`` when it already holds results), made if missing; the
    run's name (the scenario's, with a digest of scenario, seed and ``mode``); and whether this
    call created the directory."""
    run_dir = Path(out_dir) if out_dir is not None else default_sim_dir(scenario, seed)
    if (run_dir / "results.json").exists():
        raise RunError(f"{run_dir} already holds a run's results; choose another --out")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    key = f"{scenario.name}/{seed}" + (f"/{mode}" if mode else "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:6]
    return run_dir, f"{scenario.name[:20].rstrip('-')}-{digest}", created


def simulate(scenario: Scenario, seed: int | None = None, out_dir: Path | None = None,
             duration: float | None = None, *, timing: Timing | None = None,
             record_probes: bool | None = None, fast_path: bool | None = None) -> SimulatedRun:
    """Simulate ``scenario`` once, score it and write its run directory.

    ``record_probes``: write per-probe and benign records (default: only up to 10,000 hosts).
    ``fast_path``: the fast path of the non-learning worms (``testbed.sim.fastpath``) when it
    applies (None), always (True: a ``RunError`` says why it cannot), or never (False).
    Raises ``RunError`` when the directory already holds results or the scenario needs
    something the simulator cannot model (a packet-reading detector); then a directory this call
    created is removed again, as an emulated run does.
    """
    spec = scenario.spec
    seed = spec.seed if seed is None else seed
    duration = float(spec.duration_s if duration is None else duration)
    timing = timing or load_timing()
    run_dir, run_name, created = claim_run_directory(scenario, seed, out_dir)
    wall_base = time.time()
    started = time.perf_counter()
    try:
        simulation = Simulation(scenario, seed=seed, timing=timing, run_dir=run_dir,
                                duration=duration, wall_base=wall_base, run_name=run_name,
                                record_probes=record_probes, fast_path=fast_path)
        outcome = simulation.run()
    except BaseException:
        if created and run_dir.is_dir() and not any(run_dir.iterdir()):
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # nothing ran: leave no empty output directory behind
        raise
    simulate_s = time.perf_counter() - started
    manifest = sim_manifest(scenario, run_name=run_name, seed=seed, duration=duration,
                            wall_base=wall_base)
    return complete_run_directory(run_dir, scenario, manifest, outcome=outcome,
                                  simulation=simulation, timing=timing, simulate_s=simulate_s,
                                  started=started)


def run_simulation(scenario: Scenario, seed: int | None = None, out_dir: Path | None = None,
                   duration: float | None = None, *, timing: Timing | None = None,
                   record_probes: bool | None = None,
                   fast_path: bool | None = None) -> tuple[dict[str, Any], Path]:
    """``simulate`` for scripts and benchmarks: (results as results.json's dict, run directory)."""
    run = simulate(scenario, seed, out_dir, duration, timing=timing,
                   record_probes=record_probes, fast_path=fast_path)
    return run.results.model_dump(mode="json"), run.run_dir
