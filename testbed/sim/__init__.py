"""The simulation backend (issue 11): the same topology, policy, worm brain, mock-service rules,
benign timelines, sensor semantics, detectors, responder and scorer, in virtual time.

Owns: ``testbed.sim.*`` only -- the engine (``engine``), the wire model (``network``), the
sensor model (``sensor``), the mock services' verdicts (``services``), ground truth in the
agents' format (``truth``), the timing model (``timing``, ``timing.yaml``) and a run end to end
(``run.run_simulation``). Every import of a module the architecture refactor moves lives in
``bindings``. Must not: touch the system (no namespaces, sockets or processes), or be wired
into the CLI, runner or backend registry from here (the lead does that).

Use::

    from testbed.model import load_scenario
    from testbed.sim import run_simulation
    results, run_dir = run_simulation(load_scenario("scenarios/smb-flat.yaml"), seed=7,
                                      out_dir=Path("runs/smb-flat-sim"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["run_simulation"]

if TYPE_CHECKING:
    from testbed.sim.run import run_simulation


def __getattr__(name: str) -> Any:
    if name == "run_simulation":
        from testbed.sim.run import run_simulation

        return run_simulation
    raise AttributeError(name)
