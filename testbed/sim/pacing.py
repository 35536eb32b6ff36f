"""How a paced simulated run and the dashboard talk: the run's virtual clock and the defender's
action requests, as files in the run's state directory (so a dashboard in another process,
``testbed ui``, plays and acts on a run that ``testbed run --backend sim --ui`` started).

Owns:
- ``pace.json`` and :class:`PacedClock`: virtual seconds now = ``virtual_s + rate * (monotonic
  - mono)``, capped at the run's end. The simulation advances to it; the dashboard reads it and
  re-anchors it in ``set_rate`` (x1, x10, 0 to pause), which is the only writer while the run
  goes (the simulation writes it at the start and at the end).
- ``requests/``: a defender's action from the page (``request_action``) waits there until the
  simulation carries it out at its current virtual time and answers with the logged record
  (``pending_requests`` / ``answer_request``, the simulation's side).

Must not touch: ground truth, the scorer or the engine: the dashboard's defender side imports
this module (import contract ``dashboard-truth-view``), so it holds only the standard library
and neutral modules.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.errors import TestbedError
from testbed.files import write_json_atomically

__all__ = ["MAX_RATE", "PACE_FILE", "PacedClock", "PendingRequest", "answer_request",
           "pending_requests", "request_action", "start_pace"]

PACE_FILE = "pace.json"
REQUESTS_DIR = "requests"
MAX_RATE = 1000.0  # x1 and x10 on the page; tests play faster
ANSWER_TIMEOUT_S = 10.0  # the simulation looks for requests about twenty times a second
_ANSWER_POLL_S = 0.02


def start_pace(state_dir: Path, *, rate: float, end_s: float) -> None:
    """The clock at virtual time 0, playing at ``rate`` (written by the simulation)."""
    _write_pace(state_dir, rate=_checked_rate(rate), virtual_s=0.0, end_s=end_s)


def _checked_rate(rate: float) -> float:
    if not math.isfinite(rate) or not 0.0 <= rate <= MAX_RATE:
        raise TestbedError(f"a playback rate is between 0 (paused) and {MAX_RATE:g}, "
                           f"not {rate!r}")
    return float(rate)


def _write_pace(state_dir: Path, *, rate: float, virtual_s: float, end_s: float) -> None:
    write_json_atomically(Path(state_dir) / PACE_FILE,
                          {"rate": rate, "virtual_s": virtual_s, "mono": time.monotonic(),
                           "end_s": end_s})


@dataclass(frozen=True)
class PacedClock:
    """A paced simulated run's clock (a ``testbed.ui.sources.RunClock``): controllable."""

    state_dir: Path
    controllable: bool = True

    def _pace(self) -> dict[str, float] | None:
        try:
            data = json.loads((Path(self.state_dir) / PACE_FILE).read_text(encoding="utf-8"))
            return {key: float(data[key]) for key in ("rate", "virtual_s", "mono", "end_s")}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def rate(self) -> float | None:
        pace = self._pace()
        return None if pace is None else pace["rate"]

    def now_s(self) -> float | None:
        pace = self._pace()
        if pace is None:
            return None
        played = pace["virtual_s"] + pace["rate"] * (time.monotonic() - pace["mono"])
        return min(played, pace["end_s"])

    def set_rate(self, rate: float) -> None:
        rate = _checked_rate(rate)
        pace = self._pace()
        now = self.now_s()
        if pace is None or now is None:
            raise TestbedError("this simulated run has not started its clock yet")
        _write_pace(self.state_dir, rate=rate, virtual_s=now, end_s=pace["end_s"])

    def stop(self, end_s: float) -> None:
        """The run is over at virtual ``end_s`` (written by the simulation)."""
        _write_pace(self.state_dir, rate=0.0, virtual_s=end_s, end_s=end_s)


@dataclass(frozen=True)
class PendingRequest:
    """A defender's action waiting for the simulation: ``action`` is an ``Action``'s JSON."""

    path: Path
    action: dict[str, Any]
    user: str

    def answer(self, answer: dict[str, Any]) -> None:
        answer_request(self, answer)


def request_action(state_dir: Path, action: dict[str, Any], *, user: str,
                   timeout_s: float = ANSWER_TIMEOUT_S) -> dict[str, Any]:
    """Hand ``action`` to the paced simulation and wait for its answer: ``{"record": ...}``
    (the logged ``ActionRecord``'s JSON) or ``{"error": ..., "record": ...}``.

    Raises ``TestbedError`` when the simulation does not answer in time (it has ended)."""
    folder = Path(state_dir) / REQUESTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    request = folder / f"{name}.json"
    write_json_atomically(request, {"action": action, "user": user})
    answer_path = folder / f"{name}.answer"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answer_path.is_file():
            data = json.loads(answer_path.read_text(encoding="utf-8"))
            answer_path.unlink(missing_ok=True)
            return data if isinstance(data, dict) else {"error": "unreadable answer"}
        time.sleep(_ANSWER_POLL_S)
    try:
        request.unlink()
    except FileNotFoundError:  # taken just now: its answer follows at once
        time.sleep(0.5)
        if answer_path.is_file():
            data = json.loads(answer_path.read_text(encoding="utf-8"))
            answer_path.unlink(missing_ok=True)
            return data if isinstance(data, dict) else {"error": "unreadable answer"}
    raise TestbedError("the simulation did not take the action (has the run ended?)")


def pending_requests(state_dir: Path) -> list[PendingRequest]:
    """The requests waiting, oldest first; each is taken (its file removed) as it is listed."""
    folder = Path(state_dir) / REQUESTS_DIR
    if not folder.is_dir():
        return []
    taken = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            os.unlink(path)
        except (OSError, ValueError):
            continue  # being written (atomically: not yet there) or withdrawn
        if isinstance(data, dict) and isinstance(data.get("action"), dict):
            taken.append(PendingRequest(path, data["action"], str(data.get("user") or "")))
    return taken


def answer_request(request: PendingRequest, answer: dict[str, Any]) -> None:
    write_json_atomically(request.path.with_suffix(".answer"), answer)
