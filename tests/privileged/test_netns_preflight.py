"""A sim-sized topology on netns fails before anything exists: no namespace is made, no ledger
written, no process started; the error names the limit and the estimate (issue 11, bad input)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testbed.backends import get_backend
from testbed.backends.fabric import lifecycle
from testbed.backends.ledger import Ledger, list_ledgers
from testbed.backends.netns import NetnsRuntime
from testbed.backends.preflight import CapacityError
from testbed.cli.main import main
from testbed.model import load_topology

HOSTS = 100_000  # far beyond what any machine emulates, small enough to load in seconds


@pytest.fixture()
def huge_topology(tmp_path: Path) -> Path:
    path = tmp_path / "huge.yaml"
    assert main(["generate", "flat", "--hosts", str(HOSTS), "--out", str(path)]) == 0
    return path


def test_deploy_refuses_before_any_namespace_ledger_or_process(
        huge_topology: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def forbidden(what: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            made.append(what)
            raise AssertionError(f"{what} called for a topology that cannot fit")
        return record

    monkeypatch.setattr(lifecycle, "create_named_netns", forbidden("create_named_netns"))
    monkeypatch.setattr(Ledger, "create", forbidden("Ledger.create"))
    monkeypatch.setattr(lifecycle, "unique_prefix", forbidden("unique_prefix"))
    monkeypatch.setattr(subprocess, "Popen", forbidden("subprocess.Popen"))
    topology = load_topology(huge_topology)
    with pytest.raises(CapacityError) as caught:
        get_backend("netns").deploy(topology, "huge-run")
    message = str(caught.value)
    per_host = NetnsRuntime().multiplexed_host_memory_mib  # the default agent layout's figure
    assert f"needs about {HOSTS} hosts x {per_host:g} MiB" in message
    assert "netns holds at most ~" in message and "hint: use --backend sim" in message
    assert made == []
    assert list(state_dir.iterdir()) == [] and list_ledgers() == []


def test_testbed_up_refuses_and_leaves_nothing(huge_topology: Path, state_dir: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "testbed", "up", str(huge_topology),
                             "--name", "huge-up", "-q"], capture_output=True, text=True,
                            env={**os.environ, "TESTBED_STATE_DIR": str(state_dir)},
                            timeout=300, check=False)
    assert result.returncode == 3, result.stderr
    assert f"topology 'flat-{HOSTS}' needs about {HOSTS} hosts" in result.stderr
    assert "hint: use --backend sim" in result.stderr
    assert list(state_dir.iterdir()) == []  # no ledger: nothing was recorded, so none made
