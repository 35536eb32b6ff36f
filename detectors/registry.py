"""The explicit registry of detectors: name -> class (imported on first use).

An unknown name raises ``RegistryError`` listing the known ones. Third-party detectors are
installed packages that declare an entry point in the ``testbed.detectors`` group
(``name = "package.module:Class"``, docs/plugins.md); they join the registry on first lookup and
must pass ``detectors.base.check_detector`` (and have ``NAME`` equal to the entry point's name)
when they load, or a ``PluginError`` names their package. In-process code may also call
``DETECTORS.register("name", "package.module:Class")``.
"""

from __future__ import annotations

from typing import Any

from testbed.errors import DetectorError
from testbed.registry import Registry

__all__ = ["DETECTORS", "describe_detector", "detector_class", "detector_names",
           "detector_parameters"]



def _conforms(name: str, cls: Any) -> None:
    """The conformance check a detector plug-in passes as it loads."""
    from detectors.base import check_detector

    check_detector(cls)
    if cls.NAME != name:
        raise DetectorError(f"its NAME is {cls.NAME!r} but its entry point is named {name!r}; "
                            "alerts carry NAME, so the two must agree")


DETECTORS: Registry[Any] = Registry("detector", plugins="detector", check=_conforms)
for _name, _target in (
    ("trw", "detectors.trw:TRWDetector"),
    ("throttle", "detectors.throttle:ThrottleDetector"),
    ("cbcrl", "detectors.cbcrl:CreditBasedDetector"),
    ("fanout", "detectors.fanout:FanoutDetector"),
    ("darknet", "detectors.darknet:DarknetDetector"),
    ("signature", "detectors.signature:SignatureDetector"),
    ("graph", "detectors.graph:GraphNoveltyDetector"),
    ("reversal", "detectors.reversal:RoleReversalDetector"),
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
    """Name, package, summary, parameters and references of a detector (``testbed detectors``)."""
    import inspect

    cls = detector_class(name)
    doc = inspect.getdoc(cls) or ""
    return {
        "name": name,
        "package": DETECTORS.origin(name),
        "summary": doc.split("\n\n", 1)[0].replace("\n", " "),
        "parameters": detector_parameters(name),
        "references": list(getattr(cls, "REFERENCES", ())),
        "kinds": sorted(getattr(cls, "KINDS", ())),
    }
