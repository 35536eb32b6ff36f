"""The in-host agent: mock services, a dormant safe mock worm, and benign users.

Standard library only (plus ``testbed.errors`` and ``testbed.records``): it runs on a plain
``python3`` in any namespace or container. One process per host::

    python3 -m testbed.agent --config <state_dir>/agents/<host>.json

Modules: ``config`` (the JSON config and state-dir layout), ``protocol`` (exploit messages,
HMAC tokens, the infection gate, ``PAYLOAD_MARKER``), ``services`` (mock protocol handlers),
``clients`` (benign requests), ``brain`` (the sans-IO worm brain and profiles), ``guards`` (the
outbound choke-point and rate cap), ``events`` (ground truth), ``benign`` (user timelines),
``runtime`` (the event loop), ``control`` (engine-side wake/stop/ready helpers).
Safety model: see docs/worm.md.
"""

from testbed.agent.protocol import PAYLOAD_MARKER

__all__ = ["PAYLOAD_MARKER"]
