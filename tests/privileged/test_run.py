"""`testbed run` for real: the flagship scenario end to end, manual defence, Ctrl-C, and
`kill -9` of the runner followed by `testbed down --all` (which salvages the run).

Each test uses its own TESTBED_STATE_DIR and output directory, and checks that the run leaves
nothing behind: no namespace of the run (as its ledger listed them), no agent process, no state.
Runs are short (the flagship stops once contained, bounded by --duration 30).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from testbed.scoring import METRIC_KEYS

NETNS_DIR = Path("/run/netns")


def run_env(state_dir: Path) -> dict[str, str]:
    return {**os.environ, "TESTBED_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"}


def agent_processes(state_dir: Path) -> list[str]:
    """Command lines of agent processes whose config lives under ``state_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = b" ".join(argv).decode(errors="replace")
        if "testbed.agent" in line and str(state_dir) in line:
            found.append(line)
    return found


def ledger_namespaces(state_dir: Path) -> list[str]:
    names: list[str] = []
    for ledger in state_dir.glob("*/ledger.json"):
        data = json.loads(ledger.read_text())
        names += list(data.get("objects", {}).get("namespaces", []))
    return names


def outbreak_started(state_dir: Path) -> bool:
    """The runner wrote its manifest with t0 (agents ready, sensor on): the run is mid-run."""
    for path in state_dir.glob("*/manifest.json"):
        try:
            if json.loads(path.read_text()).get("t0_mono") is not None:
                return True
        except ValueError:  # replaced atomically, but be lenient with a foreign writer
            continue
    return False


def heartbeat_after_wake(run_state: Path) -> bool:
    """The runner watched beyond patient zero's wake (so the salvaged run includes it)."""
    try:
        alive = json.loads((run_state / "runner.json").read_text()).get("alive_mono")
    except (OSError, ValueError):
        return False
    wakes = [json.loads(line)["mono"] for path in run_state.glob("hosts/*/events.jsonl")
             for line in path.read_text().splitlines()
             if line.endswith("}") and '"wake"' in line]
    return alive is not None and bool(wakes) and alive > min(wakes)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_flagship_run_scores_every_metric(tmp_path: Path, repo_root: Path,
                                          check_run_directory: Any) -> None:
    state_dir, out = tmp_path / "state", tmp_path / "out"
    state_dir.mkdir()
    completed = subprocess.run(
        [sys.executable, "-m", "testbed", "run",
         str(repo_root / "scenarios/basement-launchpad.yaml"),
         "--duration", "30", "--no-live", "--json", "--out", str(out)],
        env=run_env(state_dir), capture_output=True, timeout=150, check=False)
    assert completed.returncode == 0, completed.stderr.decode()[-3000:]
    printed = json.loads(completed.stdout)
    results: Any = check_run_directory(out)
    assert printed == results
    assert set(METRIC_KEYS) <= set(results)
    assert results["safety"]["egress_packets"] == 0
    assert results["grade"]["letter"] in "ABCDF"
    assert results["infected_total"] >= 1  # patient zero at least
    assert results["run"]["patient_zero"] == ["basement-laptop"]
    for name in ("events.jsonl", "alerts.jsonl", "actions.jsonl", "manifest.json", "report.html"):
        assert (out / name).is_file(), name
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "wake" and e["host"] == "basement-laptop" for e in events)
    assert "<svg" in (out / "report.html").read_text()
    # nothing left behind
    assert list(state_dir.iterdir()) == []
    assert agent_processes(state_dir) == []


def test_ctrl_c_mid_run_leaves_nothing_behind(tmp_path: Path, repo_root: Path,
                                              check_run_directory: Any) -> None:
    state_dir, out = tmp_path / "state", tmp_path / "out"
    state_dir.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", str(repo_root / "scenarios/smb-flat.yaml"),
         "--duration", "60", "--no-live", "--out", str(out)],
        env=run_env(state_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # mid-run: the runner wrote its manifest (agents ready, sensor on, t0 taken)
        wait_for(lambda: outbreak_started(state_dir), 60, "the run to start")
        namespaces = ledger_namespaces(state_dir)
        run_name = next(state_dir.glob("*/manifest.json")).parent.name
        assert namespaces and all((NETNS_DIR / name).exists() for name in namespaces)
        assert agent_processes(state_dir)
        # the defender acts by hand from another terminal
        manual = subprocess.run(
            [sys.executable, "-m", "testbed", "quarantine", run_name, "fileserver",
             "--user", "drill", "--json"],
            env=run_env(state_dir), capture_output=True, timeout=30, check=False)
        assert manual.returncode == 0, manual.stderr.decode()
        assert json.loads(manual.stdout)["cause"] == {"manual": "drill"}
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)  # an impatient second Ctrl-C must not skip cleanup
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr.decode()[-3000:]
    assert [name for name in namespaces if (NETNS_DIR / name).exists()] == []
    assert agent_processes(state_dir) == []
    assert list(state_dir.iterdir()) == []
    # partial results were kept, the manual action among them
    actions = [json.loads(line) for line in (out / "actions.jsonl").read_text().splitlines()]
    manual_actions = [a for a in actions if a["cause"] == {"manual": "drill"}]
    assert [(a["action"], a["target"], a["ok"]) for a in manual_actions] == [
        ("quarantine", "fileserver", True)]
    results: Any = check_run_directory(out)
    assert results["run"]["interrupted"] is True
    assert results["collateral"]["benign_hosts_quarantined"] >= 1  # the fileserver was clean


def test_down_salvages_a_run_whose_runner_was_killed(tmp_path: Path, repo_root: Path,
                                                     check_run_directory: Any) -> None:
    state_dir, out = tmp_path / "state", tmp_path / "out"
    state_dir.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed", "run", str(repo_root / "scenarios/smb-flat.yaml"),
         "--duration", "30", "--no-live", "--out", str(out)],
        env=run_env(state_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: outbreak_started(state_dir), 60, "the run to start")
        namespaces = ledger_namespaces(state_dir)
        run_name = next(state_dir.glob("*/manifest.json")).parent.name
        # patient zero wakes 3 s after t0: kill the runner once its heartbeat is past the wake
        wait_for(lambda: heartbeat_after_wake(state_dir / run_name), 30, "the wake")
        assert agent_processes(state_dir)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()  # the runner never collected
    assert agent_processes(state_dir)  # its agents outlive it
    down = subprocess.run([sys.executable, "-m", "testbed", "down", "--all"],
                          env=run_env(state_dir), capture_output=True, timeout=120, check=False)
    assert down.returncode == 0, down.stderr.decode()
    assert f"removed run {run_name!r}" in down.stdout.decode()
    assert f"salvaged run {run_name!r}" in down.stdout.decode()
    assert str(out.resolve()) in down.stdout.decode()  # says where
    # nothing left in the kernel or the state directory
    assert namespaces and [name for name in namespaces if (NETNS_DIR / name).exists()] == []
    assert agent_processes(state_dir) == []
    assert list(state_dir.iterdir()) == []
    # a scored, interrupted run in the output folder
    results: Any = check_run_directory(out)
    assert results["run"]["interrupted"] is True
    assert results["run"]["stop_reason"] == "salvaged after the runner died"
    assert results["run"]["run_name"] == run_name
    assert results["infected_total"] >= 1 and results["grade"]["letter"] in "ABCDF"
    assert results["safety"]["egress_packets"] == 0  # read before the deployment went
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "wake" for e in events)
    assert (out / "report.html").is_file() and (out / "actions.jsonl").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["interrupted"] is True and manifest["end_mono"] >= manifest["t0_mono"]
    # a second `down` finds nothing to do and leaves the salvaged run alone
    again = subprocess.run([sys.executable, "-m", "testbed", "down", "--all"],
                           env=run_env(state_dir), capture_output=True, timeout=60, check=False)
    assert again.returncode == 0 and b"no runs to remove" in again.stdout
    assert json.loads((out / "results.json").read_text()) == results


@pytest.mark.parametrize("argv", [["quarantine", "no-such-run", "pc-1"],
                                  ["block", "no-such-run", "pc-1", "--port", "445"]])
def test_manual_action_on_unknown_run_is_a_clear_error(tmp_path: Path, argv: list[str]) -> None:
    completed = subprocess.run([sys.executable, "-m", "testbed", *argv],
                               env=run_env(tmp_path), capture_output=True, timeout=30,
                               check=False)
    assert completed.returncode == 3
    assert b"no run named 'no-such-run'" in completed.stderr
    assert b"Traceback" not in completed.stderr
