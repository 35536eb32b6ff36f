"""The explicit registry of detectors: name -> class (imported on first use).

An unknown name raises ``RegistryError`` listing the known ones. Third-party detectors register
with ``DETECTORS.register("name", "package.module:Class")``.
"""

from __future__ import annotations

from typing import Any

from testbed.registry import Registry

__all__ = ["DETECTORS", "describe_detector", "detector_class", "detector_names",
           "detector_parameters"]

DETECTORS: Registry[Any] = Registry("detector")
for _name, _target in (
    ("trw", "detectors.trw:TRWDetector"),
    ("throttle", "detectors.throttle:ThrottleDetector"),
    ("cbcrl", "detectors.cbcrl:CreditBasedDetector"),
    ("fanout", "detectors.fanout:FanoutDetector"),
    ("darknet", "detectors.darknet:DarknetDetector"),
    ("signature", "detectors.signature:SignatureDetector"),
    ("graph", "detectors.graph:GraphNoveltyDetector"),
    ("suricata", "detectors.suricata:SuricataDetector"),
):
    DETECTORS.register(_name, _target)


def detector_names() -> list[str]:
    return DETECTORS.names()


def detector_class(name: str) -> Any:
    return DETECTORS.get(name)


def detector_parameters(name: str) -> dict[str, Any]:
    """The detector's documented default parameters (its ``PARAMETERS`` class attribute)."""
    return dict(getattr(detector_class(name), "PARAMETERS", {}))


def describe_detector(name: str) -> dict[str, Any]:
    """Name, summary, parameters and references of a detector (for ``testbed detectors``)."""
    import inspect

    cls = detector_class(name)
    doc = inspect.getdoc(cls) or ""
    return {
        "name": name,
        "summary": doc.split("\n\n", 1)[0].replace("\n", " "),
        "parameters": detector_parameters(name),
        "references": list(getattr(cls, "REFERENCES", ())),
        "kinds": sorted(getattr(cls, "KINDS", ())),
    }
