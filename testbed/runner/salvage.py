"""Nothing lost after a crash: ``testbed down`` salvages the records of a run whose runner died.

When ``testbed run`` is killed (``kill -9``, OOM, a closed terminal without SIGHUP handling), its
ground truth, alerts and actions stay behind in the run's state directory (under /run: gone at
reboot). ``down`` removes the run's kernel objects as always, and with this module also carries
the records into the run's output folder, scored as an interrupted run, exactly as the runner
would have at Ctrl-C: the same ``collect``, scorer and report (``testbed.runner.outputs``).

How it finds what to do: the runner keeps ``runner.json`` (its pid, the output folder and a
heartbeat: the last moment it was watching) and ``manifest.json`` in the state directory. The
salvaged run ends at the heartbeat: what the worm did after the runner died, with no defence
watching, is not scored.

Two steps around the backend's ``destroy``: ``plan_salvage`` before (it still reads the egress
counters from the live deployment), ``Salvage.finish`` after (every agent is gone, so the records
are complete).

Must not touch: runs whose runner is alive (that runner collects its own records), output folders
that already hold results, or kernel objects (the backend removes those).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from testbed.backends import get_backend
from testbed.backends.ledger import pid_alive, run_directory
from testbed.errors import RunError, TestbedError
from testbed.results import Manifest
from testbed.runner.outputs import (
    MANIFEST_FILE,
    RESULTS_FILE,
    RunnerState,
    collect,
    read_runner_state,
    remove_state,
    score_run_dir,
    write_outputs,
)
from testbed.scoring import load_manifest

__all__ = ["SALVAGE_STOP_REASON", "Salvage", "plan_salvage", "runner_alive"]

SALVAGE_STOP_REASON = "salvaged after the runner died"


def runner_alive(pid: int) -> bool:
    """Whether the process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    if not pid_alive(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # cannot tell: assume alive, and leave its records to it
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@dataclass(frozen=True)
class Salvage:
    """What ``down`` does with a dead runner's records once the run's objects are removed."""

    run_name: str
    state_dir: Path
    runner: RunnerState
    manifest: Manifest | None  # None: unreadable
    egress_counters: dict[str, int] | None
    egress_error: str | None

    @property
    def out_dir(self) -> Path:
        return Path(self.runner.out_dir)

    def finish(self) -> str | None:
        """Collect, score and report the run into its output folder, then remove the state
        directory (if the backend removed its ledger). Returns what to tell the user (None when
        there was nothing to say); raises ``TestbedError``/``OSError`` when salvage failed
        (the state directory is then kept)."""
        if (self.out_dir / RESULTS_FILE).exists():  # the runner got that far itself
            remove_state(self.state_dir, self.run_name)
            return None
        if self.manifest is None or self.manifest.t0_mono is None:
            remove_state(self.state_dir, self.run_name)
            with contextlib.suppress(OSError):
                self.out_dir.rmdir()  # only if empty: nothing ran
            return f"run {self.run_name!r} had not started its outbreak: nothing to salvage"
        t0 = self.manifest.t0_mono
        end = max(t0, self.runner.alive_mono if self.runner.alive_mono is not None else t0)
        manifest = self.manifest.model_copy(update={
            "end_mono": end, "interrupted": True, "stop_reason": SALVAGE_STOP_REASON,
            "egress_counters": self.egress_counters, "egress_error": self.egress_error,
            "error": "the runner died (killed, or crashed) before it collected the run"})
        collect(self.state_dir, self.out_dir, manifest)
        try:
            from testbed.detection import load_scenario

            scenario = load_scenario(manifest.scenario_path)
            results, records = score_run_dir(self.out_dir, scenario,
                                             stop_reason=SALVAGE_STOP_REASON, timings={})
            write_outputs(self.out_dir, results, records, report=scenario.spec.outputs.report)
        finally:
            remove_state(self.state_dir, self.run_name)  # the records are in the output folder
        return (f"salvaged run {self.run_name!r} (runner died; interrupted, partial results) "
                f"into {self.out_dir}")


def plan_salvage(run_name: str, backend: str | None) -> Salvage | None:
    """Before ``destroy``: the salvage of ``run_name`` if it was started by ``testbed run``
    whose runner is dead; None otherwise (a ``testbed up`` run, a live runner, no state)."""
    try:
        state_dir = run_directory(run_name)
    except TestbedError:
        return None
    runner = read_runner_state(state_dir)
    if runner is None or runner_alive(runner.pid):
        return None
    manifest: Manifest | None
    try:
        manifest = load_manifest(state_dir / MANIFEST_FILE)
    except RunError:
        manifest = None
    counters: dict[str, int] | None = None
    error: str | None = None
    if backend is not None and manifest is not None and manifest.t0_mono is not None:
        try:
            counters = dict(get_backend(backend).attach(run_name).egress_counters())
        except (ImportError, TestbedError, OSError) as err:  # scored as "unknown"
            error = str(err)
    return Salvage(run_name=run_name, state_dir=state_dir, runner=runner, manifest=manifest,
                   egress_counters=counters, egress_error=error)
