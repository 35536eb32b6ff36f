"""Docker tier: the flagship scenario end to end on the docker backend (agents in containers).

The agents run inside the containers (`docker exec`, source mounted read-only) and write ground
truth to the run directory, which is mounted into every container: out of band, never over the
emulated network. The run must leave no container, namespace or state behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from testbed.backends.docker.containers import LABEL_STATE_ROOT
from testbed.scoring import METRIC_KEYS


def test_flagship_runs_on_docker(client, tmp_path: Path, repo_root: Path,  # type: ignore[no-untyped-def]
                                 check_run_directory: Any) -> None:
    state_dir, out = tmp_path / "state", tmp_path / "out"
    state_dir.mkdir()
    completed = subprocess.run(
        [sys.executable, "-m", "testbed", "run",
         str(repo_root / "scenarios/basement-launchpad.yaml"), "--backend", "docker",
         "--seed", "7", "--duration", "30", "--no-live", "--json", "--out", str(out)],
        env={**os.environ, "TESTBED_STATE_DIR": str(state_dir)}, capture_output=True,
        timeout=240, check=False)
    assert completed.returncode == 0, completed.stderr.decode()[-3000:]
    results: Any = check_run_directory(out)
    assert json.loads(completed.stdout) == results
    assert results["run"]["backend"] == "docker"
    assert set(METRIC_KEYS) <= set(results)
    assert results["safety"]["egress_packets"] == 0
    assert results["run"]["patient_zero"] == ["basement-laptop"]
    assert results["infected_total"] >= 1
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "wake" and e["host"] == "basement-laptop" for e in events)
    # nothing left behind: no state, no container of this state root
    assert list(state_dir.iterdir()) == []
    root = str(state_dir.resolve())
    assert client.api.containers(all=True, filters={"label": f"{LABEL_STATE_ROOT}={root}"}) == []
