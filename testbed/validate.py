"""Validate topology and scenario files, telling which is which by their content.

Owns: recognising a file's kind (a scenario has ``worm:`` and ``topology:``, a worm profile has
``params:`` and ``imitates``/``description``, a bench file ``scenarios:``/``detector_sets:``, a
sweep ``grid:`` and ``scenario:``, else it is a topology) and collecting diagnostics. A
scenario's detectors are checked against the detector registry
(``testbed.detection.scenario_from_document``), as ``testbed run`` checks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from testbed.detection import scenario_from_document
from testbed.errors import Diagnostic, ValidationError
from testbed.model.load_topology import topology_from_document
from testbed.yamlsource import load_yaml

__all__ = ["FileReport", "validate_file"]


@dataclass
class FileReport:
    path: str
    kind: str  # topology, scenario, profile, unknown
    summary: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diagnostics


def validate_file(path: str | Path) -> FileReport:
    shown = str(path)
    report = FileReport(shown, "unknown")
    try:
        document = load_yaml(path, display_name=shown)
        data = document.data
        # Topologies never have 'worm' or 'topology' keys: either marks a scenario, so that a
        # scenario missing one of them is told so instead of being checked as a topology.
        if "worm" in data or "topology" in data:
            report.kind = "scenario"
            scenario = scenario_from_document(document, Path(path))
            report.summary = (f"scenario {scenario.name!r} on {scenario.topology.name!r} "
                              f"({len(scenario.topology.hosts)} hosts), worm "
                              f"{scenario.spec.worm.profile}")
        elif "detector_sets" in data or "scenarios" in data:
            from testbed.bench import load_bench  # a bench file: scenarios x detectors x seeds

            report.kind = "bench"
            bench = load_bench(path)
            report.summary = (f"bench {bench.spec.name!r}: "
                              f"{_count(len(bench.scenarios), 'scenario')}, "
                              f"{_count(len(bench.cells()), 'run')}")
        elif "grid" in data and "scenario" in data:
            from testbed.experiments.sweep import load_sweep, sweep_matrix  # a parameter sweep

            report.kind = "sweep"
            spec, base = load_sweep(path)
            report.summary = (f"sweep {spec.name!r} over {base.name!r}: "
                              f"{_count(len(sweep_matrix(spec, base).jobs), 'run')}")
        elif "params" in data and "segments" not in data:
            import pydantic

            from testbed.model.diagnose import diagnostics_from_pydantic
            from testbed.model.profiles import ProfileSpec

            report.kind = "profile"
            try:
                profile = ProfileSpec.model_validate(data)
            except pydantic.ValidationError as err:
                raise ValidationError(diagnostics_from_pydantic(
                    err, document, ProfileSpec.model_json_schema())) from None
            report.summary = f"worm profile {profile.name!r} ({len(profile.params)} parameters)"
        else:
            report.kind = "topology"
            topology = topology_from_document(document)
            report.summary = (f"topology {topology.name!r}: "
                              f"{_count(len(topology.segments), 'segment')}, "
                              f"{_count(len(topology.hosts), 'host')}, "
                              f"{_count(len(topology.routers), 'router')}")
    except ValidationError as err:
        report.diagnostics = err.diagnostics
    return report


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
