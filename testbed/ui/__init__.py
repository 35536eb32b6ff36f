"""The live rehearsal dashboard (``testbed ui``, ``testbed run --ui``): watch an outbreak, act as
the defender, replay any run, play exercises.

Modules, on two sides of a wall:

- the defender's side, which never sees ground truth (import contract ``dashboard-truth-view``):
  ``sources`` (runs under ``runs/`` and the live state directory of a running one, their clocks),
  ``alerts`` (one tolerant reader of alert records, both shapes), ``defender`` (the defender's
  view, exercise hints, and actions carried out like ``testbed quarantine``);
- ``truth_view``: infections, the infection curve, the score and an exercise's debrief, a reader
  of ground truth next to the scorer and the report, opened by ``truth_gate`` only;
- ``server``: the web application and its safety rules (token, same origin, CSP, loopback), and
  ``static/``: the page's assets, served from the package.

Must not touch: deployments other than through ``testbed.runner.manual``; run files other than by
appending (actions, revealed hints).
"""

from __future__ import annotations

__all__: list[str] = []
