"""The static attack-path planner: what a worm starting on each launch pad could reach.

Owns: the pure analysis of a resolved topology (``plan``), its result model (``PlanResult`` and the
dataclasses it holds, with a stable JSON shape) and the rich rendering used by ``testbed plan``.
Must not: evaluate policy rules itself (``testbed.policy.decide_flow`` is the single reference
semantics) or touch the system. See ``docs/planner-json.md`` for the JSON shape.
"""

from testbed.planner.analysis import (
    DEFAULT_SCANS_ALLOWED,
    SCHEMA_VERSION,
    Blocker,
    Exploit,
    Hop,
    JewelPath,
    JewelVerdict,
    LaunchPadReport,
    PlanResult,
    SegmentPair,
    SegmentR0,
    ServiceReach,
    flow_verdicts,
    plan,
)

__all__ = [
    "DEFAULT_SCANS_ALLOWED",
    "SCHEMA_VERSION",
    "Blocker",
    "Exploit",
    "Hop",
    "JewelPath",
    "JewelVerdict",
    "LaunchPadReport",
    "PlanResult",
    "SegmentPair",
    "SegmentR0",
    "ServiceReach",
    "flow_verdicts",
    "plan",
]
