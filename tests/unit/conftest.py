"""Fixtures shared by unit tests of several modules."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

ClassicOutbreak = Callable[..., list[float]]


@pytest.fixture()
def classic_outbreak(tmp_path: Path) -> ClassicOutbreak:
    """``classic_outbreak(fast, seed, hosts=..., vulnerable_fraction=..., duration=...)``: the
    sorted infection times of a classic worm from ``h0`` on a generated flat network, simulated
    on the fast path (``fast=True``) or the event engine driving one Brain per host."""
    from testbed.sim.engine import Simulation
    from testbed.sim.generate import flat_topology, scenario_for
    from testbed.sim.timing import load_timing

    def run(fast: bool, seed: int, *, hosts: int, vulnerable_fraction: float,
            duration: float) -> list[float]:
        topology = flat_topology(hosts, vulnerable_fraction=vulnerable_fraction, seed=5)
        scenario = scenario_for(topology, {
            "duration_s": duration, "seed": seed, "stop": {"when": []},
            "worm": {"profile": "classic", "patient_zero": ["h0"], "start_s": 0}})
        out = tmp_path / f"{'fast' if fast else 'events'}-{hosts}-{seed}"
        out.mkdir()
        simulation = Simulation(scenario, seed=seed, timing=load_timing(), run_dir=out,
                                duration=duration, wall_base=0.0, run_name="t",
                                record_probes=False, fast_path=fast)
        simulation.run()
        assert simulation.mode == ("fast-classic" if fast else "events")
        events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        return sorted(e["mono"] for e in events if e["type"] == "infection")

    return run
