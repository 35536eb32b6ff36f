"""``testbed.actions.apply_action`` (what every landing in the simulator goes through) changes the
containment state exactly as applying the record's ``Action`` does: it skips building that
``Action`` for quarantines and releases and keeps a block's ``Block`` per parameters."""

from __future__ import annotations

import random

from testbed.actions import ACTION_KINDS, ActionRecord, apply_action
from testbed.policy import ContainmentState

HOSTS = ("pc-1", "pc-2", "fileserver")


def record(rng: random.Random) -> ActionRecord:
    kind = rng.choice(ACTION_KINDS)
    target = rng.choice(HOSTS)
    params: dict[str, object] = {}
    if kind in ("block", "unblock"):
        params = {"source": target, "destination": rng.choice(["any", "fileserver"]),
                  "port": rng.choice([None, 445]), "proto": rng.choice(["any", "tcp"])}
        if rng.random() < 0.1:  # a caller's extra parameter that is no dictionary key
            params["hosts"] = ["pc-1"]
    elif kind == "rate-limit":
        params = {"per_second": rng.choice([0.0, 2.0])}
    return ActionRecord(mono=1.0, action=kind, target=target, params=params,
                        ok=rng.random() > 0.2)


def land(state: ContainmentState, record: ActionRecord) -> None:
    """The reference: the record's ``Action``, built and applied every time."""
    if not record.ok:
        return
    action = record.to_action()
    if action.kind == "quarantine":
        state.quarantined.add(action.target)
    elif action.kind == "release":
        state.quarantined.discard(action.target)
    elif action.kind == "block":
        if action.block() not in state.blocks:
            state.blocks.append(action.block())
    elif action.kind == "unblock":
        state.blocks = [each for each in state.blocks if each != action.block()]
    elif action.kind == "rate-limit":
        state.rate_limited[action.target] = float(action.per_second or 0.0)


def test_landing_changes_the_state_as_apply_action_does() -> None:
    rng = random.Random(14)
    landed, applied = ContainmentState(), ContainmentState()
    kinds, busiest = set(), 0
    for _ in range(2000):
        each = record(rng)
        land(landed, each)
        apply_action(applied, each)
        assert landed == applied, each
        kinds.add((each.action, each.ok))
        busiest = max(busiest, len(landed.quarantined) + len(landed.blocks))
    assert kinds == {(kind, ok) for kind in ACTION_KINDS for ok in (True, False)}
    assert busiest >= 4  # hosts were quarantined and blocked at once, not only emptied
