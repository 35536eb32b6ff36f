"""A run on a simulated backend (``backend: sim``): the scenario goes to the simulator instead of
being deployed, and comes back as the same ``RunResult`` and run directory an emulated run gives.

Owns: that hand-over only (``simulate_scenario``). The simulator (``testbed.sim``) writes the run
directory (manifest with ``backend: sim`` and ``clock: virtual``, events, alerts, actions,
results, report) and scores it with the same scorer. Must not: deploy, start processes, or
re-score.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from testbed.model.load_scenario import Scenario
from testbed.runner.run import RunResult, default_out_dir

__all__ = ["simulate_scenario"]


def simulate_scenario(scenario: Scenario, *, seed: int | None = None,
                      out_dir: Path | None = None, duration: float | None = None,
                      live: bool = True, stream: TextIO | None = None) -> RunResult:
    """Simulate ``scenario`` once in virtual time; ``live`` prints one line when it starts and one
    when it is done (a simulated run takes seconds: there is no outbreak to watch)."""
    import sys

    from testbed.sim.run import simulate

    say = stream if stream is not None else sys.stderr
    target = Path(out_dir) if out_dir is not None else default_out_dir(scenario)
    if live:
        print(f"simulating {scenario.name} ({len(scenario.topology.hosts)} hosts) in virtual "
              f"time", file=say, flush=True)
    run = simulate(scenario, seed, target, duration)
    if live:
        virtual = run.results.run.duration_s
        print(f"simulated {virtual:g} virtual seconds in {run.timings['simulate_s']:.2f} s "
              f"(scored and reported in {run.timings['score_report_s']:.2f} s)", file=say,
              flush=True)
    return RunResult(run_name=run.run_name, run_dir=run.run_dir, results=run.results,
                     report=run.report, interrupted=False, stop_reason=run.stop_reason,
                     wall_s=run.wall_s, timings=dict(run.timings))
