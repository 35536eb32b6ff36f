"""Rehearsal by hand: a person acts as the defender on a live run from another terminal.

Owns: applying a manual quarantine / release / block / unblock to a run through
``get_backend(...).attach(run)`` and logging it, applied or failed, as an ``ActionRecord`` with
cause ``{"manual": user}`` to the run's ``actions.jsonl``, where the runner's live view and the
scorer treat it exactly like an automatic action.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from pathlib import Path
from typing import Any

from testbed.backends.base import state_root
from testbed.errors import RunNotFoundError, TestbedError
from testbed.records import ActionRecord

__all__ = ["MANUAL_ACTIONS", "backend_of_run", "manual_action", "manual_user"]

MANUAL_ACTIONS = ("quarantine", "release", "block", "unblock")


def manual_user() -> str:
    """Who acts: the user behind sudo if any, else the login name."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid-{os.getuid()}"


def backend_of_run(run_name: str) -> str:
    """The backend that deployed ``run_name``, from the runner's manifest or the ledger."""
    directory = state_root() / run_name
    if not directory.is_dir():
        raise RunNotFoundError(f"no run named {run_name!r} under {state_root()} "
                               "(see `testbed status`; set TESTBED_STATE_DIR if it lives "
                               "elsewhere)")
    for name in ("manifest.json", "ledger.json"):
        try:
            data = json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("backend"), str):
            return str(data["backend"])
    return "netns"


def manual_action(run_name: str, action: str, target: str, *, destination: str = "any",
                  port: int | None = None, proto: str = "any", backend: str | None = None,
                  user: str | None = None) -> ActionRecord:
    """Apply ``action`` to ``target`` (a host; the source for blocks) on a live run and log it.

    Raises the backend's error after logging a failed record (``ok: false``)."""
    if action not in MANUAL_ACTIONS:
        raise ValueError(f"unknown manual action {action!r}")
    from testbed.backends import get_backend

    backend_name = backend or backend_of_run(run_name)
    deployment = get_backend(backend_name).attach(run_name)
    params: dict[str, Any] = {}
    if action in ("block", "unblock"):
        params = {"source": target, "destination": destination, "port": port, "proto": proto}
    record: ActionRecord = {
        "mono": time.monotonic(), "wall": time.time(), "action": action,  # type: ignore[typeddict-item]
        "target": target, "params": params, "cause": {"manual": user or manual_user()},
    }
    try:
        if action == "quarantine":
            timing = deployment.quarantine(target)
        elif action == "release":
            timing = deployment.release(target)
        elif action == "block":
            timing = deployment.block(target, destination, port, proto)
        else:
            timing = deployment.unblock(target, destination, port, proto)
    except TestbedError as err:
        record["ok"], record["error"] = False, str(err)
        record["enforced_s"] = time.monotonic() - record["mono"]
        _append(Path(deployment.state_dir) / "actions.jsonl", record)
        raise
    record["ok"], record["enforced_s"] = True, timing.seconds
    _append(Path(deployment.state_dir) / "actions.jsonl", record)
    return record


def _append(path: Path, record: ActionRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # one write of one line with O_APPEND: lines of concurrent writers never interleave
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)
