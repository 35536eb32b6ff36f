"""Containment of a live run: the state file and the fabric's nftables tables, changed together.

Owns: ``containment.json`` in the run's state directory (what is enforced, as data, so that
another process attached to the run sees it) and :class:`FabricContainment`, which applies one
change at a time (across processes: the run lock) as one nftables transaction in the fabric
namespace and times it from the call to the kernel's commit. It does not decide *what* to
contain (responders and the manual commands do) and keeps no log of actions.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from testbed.backends.base import ActionTiming
from testbed.backends.fabric.plan import WiringPlan
from testbed.backends.fabric.ruleset import (
    QUARANTINE_COUNTER,
    block_rules,
    containment_update,
    quarantine_update,
)
from testbed.backends.ledger import run_lock
from testbed.errors import BackendError
from testbed.files import write_json_atomically
from testbed.hints import closest
from testbed.kernel import Nft
from testbed.model.topology import Topology
from testbed.policy import Block, ContainmentState

__all__ = [
    "CONTAINMENT_FILE",
    "FabricContainment",
    "containment_from_json",
    "containment_to_json",
    "read_containment",
    "suggest",
    "write_containment",
]

CONTAINMENT_FILE = "containment.json"


def containment_to_json(state: ContainmentState) -> dict[str, Any]:
    return {"quarantined": sorted(state.quarantined),
            "blocks": [{"source": b.source, "destination": b.destination, "port": b.port,
                        "proto": b.proto} for b in state.blocks],
            "rate_limited": dict(sorted(state.rate_limited.items()))}


def containment_from_json(data: Mapping[str, Any]) -> ContainmentState:
    return ContainmentState(set(data.get("quarantined", ())),
                            [Block(**b) for b in data.get("blocks", ())],
                            {h: float(r) for h, r in dict(data.get("rate_limited", {})).items()})


def read_containment(state_dir: Path) -> ContainmentState:
    """The containment recorded for a run (nothing contained if the file is missing)."""
    try:
        return containment_from_json(json.loads((state_dir / CONTAINMENT_FILE).read_text()))
    except FileNotFoundError:
        return ContainmentState()


def write_containment(state_dir: Path, state: ContainmentState) -> None:
    write_json_atomically(state_dir / CONTAINMENT_FILE, containment_to_json(state))


def suggest(name: str, known: Sequence[str]) -> str:
    """`` (hint: did you mean 'x'?)`` for a mistyped node name, or nothing."""
    match = closest(name, known)
    return f" (hint: did you mean {match!r}?)" if match else ""


Change = Callable[[ContainmentState], str | None]
"""Edits the state in place; returns the nftables text that enforces it (None: nothing to do)."""


class FabricContainment:
    """Quarantine, blocks and rate limits of one run, enforced in its fabric namespace."""

    def __init__(self, topology: Topology, plan: WiringPlan, run_name: str, state_dir: Path,
                 fabric_path: str) -> None:
        self.topology = topology
        self.plan = plan
        self.run_name = run_name
        self.state_dir = state_dir
        self._fabric_path = fabric_path
        self._nft: Nft | None = None
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Release the fabric's nftables context (a socket in a namespace keeps it alive);
        further changes are refused."""
        with self._lock:
            self._closed = True
            if self._nft is not None:
                self._nft.close()
                self._nft = None

    def _fabric_nft(self) -> Nft:
        with self._lock:
            if self._closed:
                raise BackendError(f"run {self.run_name!r} was torn down")
            if self._nft is None:
                self._nft = Nft(self._fabric_path)
            return self._nft

    def state(self) -> ContainmentState:
        return read_containment(self.state_dir)

    def _apply(self, action: str, target: str, change: Change) -> ActionTiming:
        """Apply one change atomically; time it from the call to the kernel's commit of the
        nftables transaction (the moment it is enforced)."""
        started = time.perf_counter()
        if self._closed:
            raise BackendError(f"run {self.run_name!r} was torn down")
        with run_lock(self.run_name):
            state = self.state()
            text = change(state)
            if text:
                self._fabric_nft().run(text)
            enforced = time.perf_counter()
            write_containment(self.state_dir, state)
        return ActionTiming(action, target, enforced - started)

    def _check_host(self, host: str) -> None:
        if host not in self.topology.hosts:
            raise BackendError(f"no host {host!r} in run {self.run_name!r}"
                               + suggest(host, list(self.topology.hosts)))

    def _rules_text(self, state: ContainmentState) -> str:
        return containment_update(self.topology, self.plan.table, state,
                                  self.plan.bridge_of_segment())

    # ---- the actions ---------------------------------------------------------------------------
    def quarantine(self, host: str) -> ActionTiming:
        self._check_host(host)

        def change(state: ContainmentState) -> str | None:
            if host in state.quarantined:
                return None
            state.quarantined.add(host)
            return quarantine_update(self.plan.table, self.plan.host_port(host), add=True)

        return self._apply("quarantine", host, change)

    def release(self, host: str) -> ActionTiming:
        self._check_host(host)

        def change(state: ContainmentState) -> str | None:
            if host not in state.quarantined:
                return None
            state.quarantined.discard(host)
            return quarantine_update(self.plan.table, self.plan.host_port(host), add=False)

        return self._apply("release", host, change)

    def block(self, source: str, destination: str = "any", port: int | None = None,
              proto: str = "any") -> ActionTiming:
        wanted = Block(source, destination, port, proto)
        block_rules(self.topology, wanted)  # validates names, CIDRs, protocol, port

        def change(state: ContainmentState) -> str | None:
            if wanted in state.blocks:
                return None
            state.blocks.append(wanted)
            return self._rules_text(state)

        return self._apply("block", f"{source}->{destination}", change)

    def unblock(self, source: str, destination: str = "any", port: int | None = None,
                proto: str = "any") -> ActionTiming:
        wanted = Block(source, destination, port, proto)

        def change(state: ContainmentState) -> str | None:
            if wanted not in state.blocks:
                return None
            state.blocks.remove(wanted)
            return self._rules_text(state)

        return self._apply("unblock", f"{source}->{destination}", change)

    def rate_limit(self, host: str, per_second: float) -> ActionTiming:
        self._check_host(host)
        if not per_second > 0:
            raise BackendError(f"rate limit must be positive, not {per_second}")

        def change(state: ContainmentState) -> str | None:
            state.rate_limited[host] = float(per_second)
            return self._rules_text(state)

        return self._apply("rate_limit", host, change)

    def remove_rate_limit(self, host: str) -> ActionTiming:
        self._check_host(host)

        def change(state: ContainmentState) -> str | None:
            if state.rate_limited.pop(host, None) is None:
                return None
            return self._rules_text(state)

        return self._apply("remove_rate_limit", host, change)

    def quarantine_drops(self) -> int:
        """Frames the fabric dropped at quarantined ports so far."""
        output = self._fabric_nft().run(
            f"list counter bridge {self.plan.table} {QUARANTINE_COUNTER}")
        for line in output.splitlines():
            if "packets" in line:
                return int(line.split("packets", 1)[1].split()[0])
        return 0
