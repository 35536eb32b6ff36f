"""Rehearsal by hand: a person acts as the defender on a live run from another terminal.

Owns: applying a manual quarantine / release / block / unblock to a run through
``get_backend(...).attach(run)`` and ``testbed.actions.execute_action``, which logs it, applied or
failed, with cause ``{"manual": user}`` to the run's ``actions.jsonl``, where the runner's live
view and the scorer treat it exactly like an automatic action.

Must not touch: runs other than the one named, or the log other than by appending.
"""

from __future__ import annotations

import getpass
import os

from testbed.actions import Action, ActionKind, ActionLog, ActionRecord, execute_action
from testbed.backends import get_backend
from testbed.backends.ledger import backend_of_run

__all__ = ["MANUAL_ACTIONS", "manual_action", "manual_user"]

MANUAL_ACTIONS: tuple[ActionKind, ...] = ("quarantine", "release", "block", "unblock")


def manual_user() -> str:
    """Who acts: the user behind sudo if any, else the login name."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid-{os.getuid()}"


def manual_action(run_name: str, action: Action, *, backend: str | None = None,
                  user: str | None = None) -> ActionRecord:
    """Carry out ``action`` on the live run ``run_name`` and log it to the run's action log.

    Raises the backend's error after logging a failed record (``ok: false``)."""
    if action.kind not in MANUAL_ACTIONS:
        raise ValueError(f"not a manual action: {action.kind!r}")
    deployment = get_backend(backend or backend_of_run(run_name)).attach(run_name)
    return execute_action(deployment, action, cause={"manual": user or manual_user()},
                          log=ActionLog(deployment.state_dir / "actions.jsonl"))
