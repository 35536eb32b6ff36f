"""The event engine's worm loop on edge cases of the runtime's pacing (``Simulation._launch``)."""

from __future__ import annotations

from pathlib import Path

from testbed.agent.brain import Probe
from testbed.agent.guards import RateCap
from testbed.sim.bindings import AlertLog
from testbed.sim.engine import Simulation
from testbed.sim.generate import flat_topology, scenario_for
from testbed.sim.timing import load_timing
from testbed.sim.truth import TruthLog


def test_a_rate_cap_short_by_float_noise_still_moves_the_clock(tmp_path: Path) -> None:
    """A bucket one ulp short of a token asks to wait less than one ulp of ``now``: the
    relaunch must still land strictly later (now + delay == now spun forever), and the probe
    goes out as soon as the token is there."""
    scenario = scenario_for(flat_topology(10, vulnerable_fraction=0.0, seed=1), {
        "duration_s": 20, "seed": 1, "stop": {"when": []},
        "worm": {"profile": "classic", "patient_zero": ["h0"], "start_s": 0}})
    simulation = Simulation(scenario, seed=1, timing=load_timing(), run_dir=tmp_path,
                            duration=20.0, wall_base=0.0, run_name="t", record_probes=False)
    with TruthLog(tmp_path / "events.jsonl", wall_base=0.0, address_book={}) as truth, \
            AlertLog(tmp_path / "alerts.jsonl", clock_offset=0.0) as alerts:
        simulation.start_stepped(truth, alerts)
        simulation.run_until(10.0)
        worm = simulation.worms[0]
        now = simulation.now = 10.0
        worm.cap = RateCap(15.0, burst=3.0, now=now)
        worm.cap._tokens = 1.0 - 2.0 ** -52  # short by float noise
        assert 0 < worm.cap.delay(now) and now + worm.cap.delay(now) == now
        worm.queue.clear()
        worm.queue.append(Probe(1, "10.0.0.5", 445, "tcp", "smb", "MOCK-SMB-1", "uniform",
                                "plain"))
        worm.blocked, worm.in_flight = False, 0
        probes = simulation.counters["probes"]
        simulation._heap.clear()
        simulation._launch(worm)
        relaunch = min(entry[0] for entry in simulation._heap)
        assert now < relaunch <= now + 1e-6
        assert simulation.run_until(now + 1e-3) is False  # returns: the clock moved on
        assert simulation.counters["probes"] == probes + 1
