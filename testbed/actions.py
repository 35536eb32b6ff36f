"""Containment actions: one vocabulary, one way to carry them out, one log.

Owns:
- ``Action``: what a defender asks for (quarantine, release, block, unblock, rate-limit), as a
  frozen value. The responder, the manual commands (``testbed quarantine|release|block``), the
  dashboard and an RL policy all build the same value.
- ``execute_action(deployment, action, ...)``: the one way an action reaches a deployment; it
  returns (and logs) an ``ActionRecord`` whether the action was applied or failed.
- ``ActionRecord``: the typed line of ``actions.jsonl`` (what was done, when, why, how long the
  kernel took to enforce it).
- ``ActionLog``: the append-only ``actions.jsonl`` writer (one ``os.write`` of one line with
  ``O_APPEND``, so concurrent writers, e.g. the runner's responder and a manual command in another
  terminal, never interleave) and its reader (a torn last line is skipped).
- ``apply_action(state, record)``: what a logged action does to ``policy.ContainmentState``; the
  scorer's and the runner's containment timeline (``testbed.containment``) and the simulator use it.

Must not touch: ground truth, alerts' evidence or detectors. It knows deployments only through the
backend contract.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from testbed.errors import TestbedError
from testbed.policy import Block, ContainmentState
from testbed.records import parse_json_lines

if TYPE_CHECKING:
    from testbed.backends.base import ActionTiming

__all__ = [
    "ACTION_KINDS",
    "Action",
    "ActionKind",
    "ActionLog",
    "ActionRecord",
    "ActionTarget",
    "apply_action",
    "execute_action",
    "parse_action_records",
]

ActionKind = Literal["quarantine", "release", "block", "unblock", "rate-limit"]
ACTION_KINDS: tuple[ActionKind, ...] = ("quarantine", "release", "block", "unblock", "rate-limit")
ACTIONS_VERSION = 1
"""``action_version`` every line of ``actions.jsonl`` carries; bumped when the shape changes."""


class Action(BaseModel):
    """A containment action a defender asks for. ``target`` is a host name (the source, for
    blocks); ``destination``/``port``/``proto`` narrow a block; ``per_second`` is a rate limit's
    allowance of new outbound flows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActionKind
    target: str
    destination: str = "any"
    port: int | None = None
    proto: str = "any"
    per_second: float | None = None

    def params(self) -> dict[str, Any]:
        """The kind-specific parameters as logged in ``ActionRecord.params``."""
        if self.kind in ("block", "unblock"):
            return {"source": self.target, "destination": self.destination, "port": self.port,
                    "proto": self.proto}
        if self.kind == "rate-limit":
            return {"per_second": self.per_second}
        return {}

    def block(self) -> Block:
        """The ``policy.Block`` a block/unblock adds or removes."""
        return Block(source=self.target, destination=self.destination, port=self.port,
                     proto=self.proto)


class ActionRecord(BaseModel):
    """One line of ``actions.jsonl``: an action applied (``ok``) or failed, with its cause.

    ``mono``/``wall`` are when it was called (CLOCK_MONOTONIC / epoch seconds; virtual seconds in
    the simulator); ``enforced_s`` is how long the backend took until the kernel enforced it, so
    it took effect at ``effective_at``. ``cause`` says why: ``{"detector": ..., "alert_mono": ...,
    ...}`` for the responder, ``{"manual": user}`` for a person.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    action_version: int = ACTIONS_VERSION
    mono: float
    wall: float = 0.0
    action: ActionKind
    target: str
    params: dict[str, Any] = Field(default_factory=dict)
    cause: dict[str, Any] = Field(default_factory=dict)
    enforced_s: float = 0.0
    ok: bool = True
    error: str | None = None

    @property
    def effective_at(self) -> float:
        """When the action took effect: the call's time plus the time to enforcement."""
        return self.mono + max(0.0, self.enforced_s)

    def to_action(self) -> Action:
        """The ``Action`` this record carried out (its parameters read back from ``params``)."""
        params = self.params
        if self.action in ("block", "unblock"):
            port = params.get("port")
            return Action(kind=self.action, target=str(params.get("source", self.target)),
                          destination=str(params.get("destination", "any")),
                          port=int(port) if port is not None else None,
                          proto=str(params.get("proto", "any")))
        if self.action == "rate-limit":
            rate = params.get("per_second", params.get("rate"))
            return Action(kind=self.action, target=self.target,
                          per_second=float(rate) if rate is not None else None)
        return Action(kind=self.action, target=self.target)

    def to_json_line(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True) + "\n"


def apply_action(state: ContainmentState, record: ActionRecord) -> None:
    """Apply one logged action to ``state``; a failed action changes nothing.

    A quarantine or release names only ``record.target``, and a block's ``Block`` is kept per
    parameters (``_record_block``): the simulator and a learning defender land thousands of
    actions, and rebuilding the record's ``Action`` (a pydantic validation) for each was a
    tenth of a gym step."""
    if not record.ok:
        return
    kind = record.action
    if kind == "quarantine":
        state.quarantined.add(record.target)
    elif kind == "release":
        state.quarantined.discard(record.target)
    elif kind in ("block", "unblock"):
        block = _record_block(record)
        if kind == "block":
            if block not in state.blocks:
                state.blocks.append(block)
        else:
            state.blocks = [each for each in state.blocks if each != block]
    elif kind == "rate-limit":
        state.rate_limited[record.target] = float(record.to_action().per_second or 0.0)


_RECORD_BLOCKS: dict[tuple[Any, ...], Block] = {}  # (target, params) -> the record's Block


def _record_block(record: ActionRecord) -> Block:
    """``record.to_action().block()``, kept per (target, parameters)."""
    key = (record.target, *sorted(record.params.items()))
    try:
        block = _RECORD_BLOCKS.get(key)
    except TypeError:  # a parameter that cannot be a key (a caller's extra parameters)
        return record.to_action().block()
    if block is None:
        if len(_RECORD_BLOCKS) >= 65_536:
            _RECORD_BLOCKS.clear()
        block = _RECORD_BLOCKS[key] = record.to_action().block()
    return block


class ActionLog:
    """The append-only ``actions.jsonl`` of a run (writer and reader)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: ActionRecord) -> None:
        """Append one record as one line in one write (``O_APPEND``): lines of concurrent
        writers never interleave, and a writer killed mid-call leaves at most a torn last line,
        which ``read`` skips."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = record.to_json_line().encode("utf-8")
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)

    def read(self) -> list[ActionRecord]:
        """Every record logged so far, in file order."""
        if not self.path.is_file():
            return []
        with self.path.open(encoding="utf-8") as stream:
            return parse_action_records(parse_json_lines(stream))


def parse_action_records(records: Iterable[Mapping[str, Any]]) -> list[ActionRecord]:
    """Typed records from parsed JSON lines (lines that are not action records are skipped)."""
    typed = []
    for record in records:
        try:
            typed.append(ActionRecord.model_validate(record))
        except ValueError:
            continue
    return typed


class ActionTarget(Protocol):
    """What carrying out an action needs of a deployment: its containment calls. Every
    ``backends.base.Deployment`` has them; the simulator answers them with modelled times."""

    def quarantine(self, host: str) -> ActionTiming: ...

    def release(self, host: str) -> ActionTiming: ...

    def block(self, source: str, destination: str = "any", port: int | None = None,
              proto: str = "any") -> ActionTiming: ...

    def unblock(self, source: str, destination: str = "any", port: int | None = None,
                proto: str = "any") -> ActionTiming: ...

    def rate_limit(self, host: str, per_second: float) -> ActionTiming: ...


def _dispatch(deployment: ActionTarget, action: Action) -> ActionTiming:
    if action.kind == "quarantine":
        return deployment.quarantine(action.target)
    if action.kind == "release":
        return deployment.release(action.target)
    if action.kind == "block":
        return deployment.block(action.target, action.destination, action.port, action.proto)
    if action.kind == "unblock":
        return deployment.unblock(action.target, action.destination, action.port, action.proto)
    return deployment.rate_limit(action.target, float(action.per_second or 0.0))


def execute_action(deployment: ActionTarget, action: Action, *, cause: Mapping[str, Any],
                   log: ActionLog | None = None, extra_params: Mapping[str, Any] | None = None,
                   clock: Callable[[], float] = time.monotonic) -> ActionRecord:
    """Carry out ``action`` on ``deployment`` and log it (applied or failed).

    Returns the record. When the backend refuses (any ``TestbedError``: unknown host, kernel
    failure ...), the failed record (``ok: false`` with the error) is logged first and the error
    is re-raised with the record attached as ``err.action_record``, so a person at the CLI gets
    the backend's own message and exit code while the log stays complete.
    """
    params = {**(extra_params or {}), **action.params()}
    started_mono, started_wall = clock(), time.time()
    try:
        timing = _dispatch(deployment, action)
    except TestbedError as err:
        record = ActionRecord(mono=started_mono, wall=started_wall, action=action.kind,
                              target=action.target, params=params, cause=dict(cause),
                              enforced_s=clock() - started_mono, ok=False, error=str(err))
        if log is not None:
            log.append(record)
        err.action_record = record  # type: ignore[attr-defined]
        raise
    record = ActionRecord(mono=started_mono, wall=started_wall, action=action.kind,
                          target=action.target, params=params, cause=dict(cause),
                          enforced_s=timing.seconds, ok=True)
    if log is not None:
        log.append(record)
    return record
