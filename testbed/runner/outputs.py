"""A run's files: what the runner keeps in the state directory while it runs, and how the run's
records become its output folder (collected, scored, reported).

Owns:
- the runner's files in the state directory: ``manifest.json`` (``testbed.results.Manifest``,
  written when the deployment exists and again at the outbreak's start) and ``runner.json``
  (``RunnerState``: the runner's pid, the output folder, and a heartbeat: the last moment it was
  watching), which is how ``testbed down`` finds and salvages a run whose runner was killed;
- ``collect``: the run's records copied out of the state directory into the output folder
  (merged ground truth, agents' logs, alerts, actions, the final manifest);
- ``score_run_dir`` and ``write_outputs``: labels (``labels.csv``/``.parquet``, one row per
  flow), the scorer, report.html, then results.json
  (last: its presence marks a finished run);
- ``remove_state``: removing the state directory once the deployment is gone.

The runner (``testbed.runner.run``) and the salvage of crashed runs (``testbed.runner.salvage``)
share all of it, so a salvaged run looks like an interrupted one.

Must not touch: kernel objects (backends own them) or anything outside the run's state directory
and output folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from testbed.backends.ledger import LEDGER_FILE
from testbed.files import write_json_atomically, write_text_atomically
from testbed.model.load_scenario import Scenario
from testbed.results import Manifest, Results
from testbed.runner.labels import write_labels
from testbed.scoring import RunRecords, load_run_records, score
from testbed.truth import merge_host_events

__all__ = [
    "FLOWS_FILE",
    "MANIFEST_FILE",
    "RESULTS_FILE",
    "RUNNER_FILE",
    "RunnerState",
    "collect",
    "read_runner_state",
    "remove_state",
    "score_run_dir",
    "write_outputs",
    "write_runner_state",
    "write_state_manifest",
]

MANIFEST_FILE = "manifest.json"
RESULTS_FILE = "results.json"
FLOWS_FILE = "flows.jsonl"
"""EVE ``flow`` records of the run, written by the live sensor into the output folder."""
RUNNER_FILE = "runner.json"
RECORD_FILES = ("alerts.jsonl", "actions.jsonl")


class RunnerState(BaseModel):
    """``runner.json`` in the state directory: who runs the run, where its outputs go, and
    when it last watched (``alive_mono``, the run's clock; rewritten about every second)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    pid: int
    out_dir: str
    alive_mono: float | None = None


def write_state_manifest(state_dir: Path, manifest: Manifest) -> None:
    write_json_atomically(Path(state_dir) / MANIFEST_FILE, manifest.model_dump(mode="json"))


def write_runner_state(state_dir: Path, state: RunnerState) -> None:
    write_json_atomically(Path(state_dir) / RUNNER_FILE, state.model_dump(mode="json"))


def read_runner_state(state_dir: Path) -> RunnerState | None:
    """The runner's record of a run, or None (not a runner's run, or unreadable)."""
    try:
        return RunnerState.model_validate_json((Path(state_dir) / RUNNER_FILE).read_bytes())
    except (OSError, ValidationError):
        return None


def collect(state_dir: Path, run_dir: Path, manifest: Manifest) -> None:
    """Copy the run's records out of the state directory before it is removed: the agents'
    ground truth merged in time order, their logs (per host, or per group of multiplexed
    hosts), alerts, actions, and ``manifest``."""
    state_dir, run_dir = Path(state_dir), Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    merge_host_events(state_dir, run_dir)
    hosts_dir = state_dir / "hosts"
    if hosts_dir.is_dir():
        for directory in sorted(hosts_dir.iterdir()):
            log = directory / "agent.log"
            if log.is_file() and log.stat().st_size:
                (run_dir / "logs").mkdir(exist_ok=True)
                shutil.copyfile(log, run_dir / "logs" / f"{directory.name}.log")
    # Multiplexed agents (netns default) log per process group, not per host.
    for log in sorted((state_dir / "agents").glob("group-*.log")):
        if log.is_file() and log.stat().st_size:
            (run_dir / "logs").mkdir(exist_ok=True)
            shutil.copyfile(log, run_dir / "logs" / log.name)
    for name in RECORD_FILES:
        source = state_dir / name
        if source.is_file():
            shutil.copyfile(source, run_dir / name)
        else:
            (run_dir / name).write_text("", encoding="utf-8")
    write_json_atomically(run_dir / MANIFEST_FILE, manifest.model_dump(mode="json"))


def score_run_dir(run_dir: Path, scenario: Scenario, *, stop_reason: str,
                  timings: dict[str, float]) -> tuple[Results, RunRecords]:
    """Score a collected run, writing its labels first (one row per flow: from the pcaps when
    the scenario kept them, else from the live sensor's ``flows.jsonl``)."""
    records = load_run_records(run_dir, scenario.topology)
    labelled_flows = None
    if (run_dir / "pcap").is_dir() or (run_dir / FLOWS_FILE).is_file():
        labelled_flows = write_labels(run_dir, records.events, scenario.topology)
    results = score(records, stop_reason=stop_reason, timings=timings,
                    labelled_flows=labelled_flows)
    return results, records


def write_outputs(run_dir: Path, results: Results, records: RunRecords, *,
                  report: bool) -> Path | None:
    """Write ``report.html`` (when asked), then ``results.json``; returns the report's path."""
    report_path = None
    if report:
        from testbed.report import write_report  # heavy (plotting): only when a report is due

        report_path = write_report(run_dir / "report.html", results, records)
    write_text_atomically(run_dir / RESULTS_FILE, results.to_json())
    return report_path


def remove_state(state_dir: Path, run_name: str) -> None:
    """After a clean teardown, remove what the runner and agents left in the run's state
    directory (agent configs hold the run's secret); outputs were copied to the run directory.
    A failed teardown keeps it: its ledger lets ``testbed down`` finish the job."""
    state_dir = Path(state_dir)
    if state_dir.name != run_name or not state_dir.is_dir():
        return
    if (state_dir / LEDGER_FILE).exists():
        return  # the backend did not finish: leave its ledger in place
    shutil.rmtree(state_dir, ignore_errors=True)
