"""Out-of-band control of a run's agents, for the engine (runner, CLI, tests): files in the run's
state directory, never the emulated network.

Owns: ``wake`` (a host's dormant worm wakes as patient zero, at a moment the file names),
``stop_all`` (every agent of the run ends within about a quarter second) and ``wait_ready``
(which agents have their services up).
Standard library only. File layout: ``testbed.agent.config``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from testbed.agent.config import control_dir, ready_path, stop_path, wake_path

__all__ = ["clear", "ready_info", "stop_all", "wait_ready", "wake", "wake_moment"]


def _touch(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    temporary.write_text(content)
    os.replace(temporary, path)


def wake(state_dir: str | Path, host: str, at_monotonic: float | None = None) -> None:
    """Wake ``host``'s dormant worm (generation 0, as patient zero). Idempotent.

    ``at_monotonic`` (``time.monotonic()``; CLOCK_MONOTONIC is one clock for every namespace and
    container of the machine) names the moment: written ahead of time, the agent sees the file at
    its next control poll and wakes at that moment, not at whatever phase its poll has. Without
    it the worm wakes at the next poll (up to ``CONTROL_POLL_S`` late)."""
    _touch(wake_path(Path(state_dir), host),
           json.dumps({"wall": time.time(), "at_monotonic": at_monotonic}))


def wake_moment(path: Path) -> float | None:
    """The moment a wake file names (``time.monotonic()``), or None: at once."""
    try:
        moment = json.loads(path.read_text()).get("at_monotonic")
    except (OSError, ValueError, AttributeError):
        return None
    return float(moment) if isinstance(moment, int | float) else None


def stop_all(state_dir: str | Path) -> None:
    """Ask every agent of the run to stop (they poll the stop file). Idempotent."""
    _touch(stop_path(Path(state_dir)), json.dumps({"wall": time.time()}))


def clear(state_dir: str | Path) -> None:
    """Remove the stop and wake files (before starting agents of a fresh run in the same dir)."""
    directory = control_dir(Path(state_dir))
    for path in [directory / "stop", *(directory / "wake").glob("*")]:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def ready_info(state_dir: str | Path, host: str) -> dict[str, Any] | None:
    """The agent's ready file (pid, bound services) or None if it is not ready."""
    try:
        data = json.loads(ready_path(Path(state_dir), host).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def wait_ready(state_dir: str | Path, hosts: list[str], timeout: float) -> list[str]:
    """Wait until every host's agent is ready or ``timeout`` passes; returns the hosts not ready."""
    state = Path(state_dir)
    waiting = list(hosts)
    deadline = time.monotonic() + timeout
    while True:
        waiting = [host for host in waiting if not ready_path(state, host).exists()]
        if not waiting or time.monotonic() >= deadline:
            return waiting
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
