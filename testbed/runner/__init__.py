"""Run a scenario end to end: deploy, start agents and defence, wake patient zero, watch, stop,
collect, tear down, score, report; and pick up after a runner that was killed.

Owns: the order of a run and its cleanup (``run.Run``: one method per phase), the run directory's
outputs (``manifest.json``, ``events.jsonl``, ``alerts.jsonl``, ``actions.jsonl``,
``results.json``, ``report.html``, optional ``pcap/`` and ``labels.csv``; ``outputs``), the live
view of the outbreak and the stop conditions (``outbreak``), the agents as processes
(``agents``) and their configs (``agent_configs``), manual containment from another terminal
(``manual``), the salvage of crashed runs for ``testbed down`` (``salvage``), and repetitions
over seeds.

The wall: the runner reads ground truth (agents' event logs) only for its live view, its stop
conditions and the scorer. Detectors see sensor events only; the responder sees alerts only.

Must not touch: other runs' state, anything outside the deployment it made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from testbed.runner.run import Run, RunResult, default_out_dir, run_repetitions, run_scenario

__all__ = [
    "Run",
    "RunResult",
    "default_out_dir",
    "run_repetitions",
    "run_scenario",
]


def __getattr__(name: str) -> Any:
    # Lazy: ``testbed quarantine`` and ``testbed down`` import submodules (manual, salvage)
    # without paying for the sensor, detectors and live view that a run needs.
    if name in __all__:
        from testbed.runner import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
