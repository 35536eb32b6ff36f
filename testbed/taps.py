"""A sensor tap: where on the emulated network a sensor listens (a value type, no behaviour).

Owns: ``Tap`` only. It sits low in the layers because three parts exchange it and none of them
should import another for it: backends produce taps, the sensor captures on them, and detectors
(through the plug-in API ``detectors.base``) are told which taps they watch. Must import nothing
from the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Tap"]


@dataclass(frozen=True)
class Tap:
    """An interface a sensor must listen on to see a segment's or router's traffic."""

    name: str  # e.g. "segment:office" or "router:core-fw:office"
    interface: str  # kernel interface name
    netns: str | None  # network namespace it lives in (None: the caller's own, e.g. docker)
    segment: str  # the segment whose traffic it carries
    kind: str  # "segment" (a bridge) or "router" (a router interface)
