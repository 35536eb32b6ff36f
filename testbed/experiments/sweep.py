"""``testbed sweep SWEEP.yaml``: a parameter grid over one scenario (worm profiles and
parameters, detector sets and parameters, reaction delays, generated topology sizes) x seeds,
as an experiment matrix with its own schema-checked file format (``testbed schema sweep``).

Owns: ``SweepSpec`` (the file format), ``load_sweep``, ``sweep_matrix`` and ``SweepSource``
(each grid point's scenario). A grid point is derived as a one-cell bench would be
(``testbed.bench.derive_scenario``: detectors replaced, rules listening to ``any``, worm profile
replaced, duration, backend, seed), then the point's worm rate and parameters, reaction delay
(every response rule's ``delay_s``) and, for ``topology_hosts``, a generated flat topology of that
many hosts (``testbed.sim.generate``; patient zero ``h0``, no benign users) are applied.
Leaderboard labels: scenario = the scenario (``-flat<N>`` for a generated size), detectors =
set name plus detector parameters and delay, worm = profile (or name) plus worm parameters.
Must not: run anything.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from testbed.bench import BenchCell, BenchSpec, DetectorEntry, LoadedBench, derive_scenario
from testbed.errors import Diagnostic, ValidationError
from testbed.experiments.cells import CellJob
from testbed.experiments.matrix import Matrix, file_digest, fingerprint_of
from testbed.model.diagnose import diagnostics_from_pydantic, did_you_mean
from testbed.model.load_scenario import Scenario, load_scenario
from testbed.yamlsource import SourceDocument, load_yaml

__all__ = ["SweepGrid", "SweepSource", "SweepSpec", "WormVariant", "load_sweep", "sweep_matrix",
           "sweep_schema"]


class WormVariant(BaseModel):
    """One worm of the grid: a profile with, optionally, its own rate and parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, pattern=r"^[a-z][a-z0-9.=_-]{0,40}$",
                             description="Label in the leaderboard; default the profile "
                                         "(plus the rate when given).")
    profile: str = Field(description="A worm profile; see `testbed profiles`.")
    rate: float | None = Field(None, gt=0, le=1000, description="Probes per second.")
    params: dict[str, Any] = Field(default_factory=dict, description="Profile parameters.")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return " ".join([self.profile + (f"@{self.rate:g}" if self.rate is not None else ""),
                         *(f"{key}={value}" for key, value in sorted(self.params.items()))])


def _worm_entry(value: Any) -> Any:
    """Let users write ``classic`` for ``{profile: classic}``."""
    return {"profile": value} if isinstance(value, str) else value


WormEntry = Annotated[WormVariant, BeforeValidator(
    _worm_entry, json_schema_input_type=str | WormVariant)]


class SweepGrid(BaseModel):
    """The axes of the grid; every combination of their values is one row of the leaderboard.
    An omitted axis keeps the scenario's own value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector_sets: dict[str, list[DetectorEntry]] | None = Field(
        None, description="Named detector sets (a name, or {name, params}).")
    detector_params: dict[str, dict[str, list[Any]]] = Field(
        default_factory=dict, description="detector name -> parameter -> values; applied to "
                                          "that detector wherever a set has it.")
    worms: list[WormEntry] | None = Field(
        None, description="Worms: a profile name or {name, profile, rate, params}.")
    worm_params: dict[str, list[Any]] = Field(
        default_factory=dict, description="Worm parameter -> values, for every worm.")
    reaction_delay_s: list[float] | None = Field(
        None, description="Reaction delays (every response rule's delay_s).")
    topology_hosts: list[int] | None = Field(
        None, description="Generated flat topologies of these many hosts replace the "
                          "scenario's (sim backend recommended above a few dozen).")
    topology_vulnerable_fraction: float = Field(
        0.3, gt=0, le=1, description="Share of the generated hosts left vulnerable.")


class SweepSpec(BaseModel):
    """A parameter sweep over one scenario: every grid point x seed is one run."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Adaptive-worm testbed sweep")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$", description="Sweep name.")
    description: str = ""
    scenario: str = Field(description="Base scenario file, relative to this file.")
    grid: SweepGrid = Field(default_factory=SweepGrid)
    seeds: list[int] | int = Field(3, description="Seeds, or how many seeds counting up from "
                                                  "the scenario's seed.")
    duration_s: float | None = Field(None, gt=0, le=86400,
                                     description="Overrides the scenario's duration_s.")
    backend: str | None = Field(None, description="Overrides the scenario's backend.")
    baseline: str | None = Field(None, description="The detectors label every other one is "
                                                   "compared with; default 'none' when there "
                                                   "is one, else the first grid point's.")
    report: bool = Field(False, description="Write each run's report.html (slower).")


@lru_cache(maxsize=1)
def sweep_schema() -> dict[str, Any]:
    return SweepSpec.model_json_schema(by_alias=True)


@dataclass(frozen=True)
class GridPoint:
    """One combination of the grid's values, with its leaderboard labels."""

    scenario_label: str
    detectors_label: str
    worm_label: str
    detector_set: str | None
    detector_params: tuple[tuple[str, str, Any], ...]
    worm: WormVariant | None
    worm_params: tuple[tuple[str, Any], ...]
    delay_s: float | None
    hosts: int | None


def _axis(values: list[Any] | None) -> list[Any]:
    return list(values) if values else [None]


def _grid_points(spec: SweepSpec, scenario: Scenario) -> list[GridPoint]:
    grid = spec.grid
    detector_param_axes = [(detector, parameter, values)
                           for detector, parameters in sorted(grid.detector_params.items())
                           for parameter, values in sorted(parameters.items())]
    worm_param_axes = sorted(grid.worm_params.items())
    points = []
    for hosts, set_name, delay, detector_values, worm, worm_values in itertools.product(
            _axis(grid.topology_hosts), _axis(list(grid.detector_sets or {})),
            _axis(grid.reaction_delay_s),
            itertools.product(*(values for _d, _p, values in detector_param_axes)),
            _axis(grid.worms), itertools.product(*(values for _p, values in worm_param_axes))):
        in_set = ({d.name for d in (grid.detector_sets or {})[set_name]} if set_name is not None
                  else {d.name for d in scenario.spec.detectors})
        # parameters of detectors the set lacks change nothing: leave them out of the label, so
        # identical cells share one label (and run once)
        detector_params = tuple((d, p, v) for (d, p, _vs), v in zip(
            detector_param_axes, detector_values, strict=True) if d in in_set)
        worm_params = tuple((p, v) for (p, _vs), v in zip(worm_param_axes, worm_values,
                                                          strict=True))
        detectors_label = " ".join(
            [set_name or "own"] + [f"{d}.{p}={v}" for d, p, v in detector_params]
            + ([f"delay={delay:g}s"] if delay is not None else []))
        worm_label = " ".join([worm.label if isinstance(worm, WormVariant)
                               else scenario.spec.worm.profile]
                              + [f"{p}={v}" for p, v in worm_params])
        points.append(GridPoint(
            scenario_label=scenario.name + (f"-flat{hosts}" if hosts is not None else ""),
            detectors_label=detectors_label, worm_label=worm_label, detector_set=set_name,
            detector_params=detector_params, worm=worm, worm_params=worm_params,
            delay_s=delay, hosts=hosts))
    return points


@dataclass(frozen=True)
class SweepSource:
    """Each sweep cell's scenario (picklable; generated topologies are built once per size and
    per process)."""

    spec: SweepSpec
    base: Scenario
    points: dict[tuple[str, str, str], GridPoint]
    _topologies: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "base": self.base, "points": self.points}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in {**state, "_topologies": {}}.items():
            object.__setattr__(self, name, value)

    def scenario(self, cell: BenchCell) -> Scenario:
        point = self.points[(cell.scenario, cell.detector_set, cell.profile)]
        sets = self.spec.grid.detector_sets or {}
        detectors = None
        if point.detector_set is not None:
            detectors = [
                detector.model_copy(update={"params": {
                    **detector.params,
                    **{p: v for d, p, v in point.detector_params if d == detector.name}}})
                for detector in sets[point.detector_set]]
        profile = point.worm.profile if point.worm is not None else self.base.spec.worm.profile
        one_cell = LoadedBench(
            BenchSpec(name="sweep-cell", scenarios=[str(self.base.path)],
                      detector_sets={cell.detector_set: detectors} if detectors is not None
                      else None,
                      profiles=[profile], duration_s=self.spec.duration_s,
                      backend=self.spec.backend, report=self.spec.report),
            self.base.path, {self.base.name: self.base})
        derived = derive_scenario(one_cell, BenchCell(
            self.base.name, self.base.path,
            cell.detector_set if detectors is not None else "own", profile, cell.seed))
        spec = derived.spec
        worm = spec.worm
        worm_update: dict[str, Any] = {"params": {**worm.params, **(
            point.worm.params if point.worm else {}), **dict(point.worm_params)}}
        if point.worm is not None and point.worm.rate is not None:
            worm_update["rate"] = point.worm.rate
        update: dict[str, Any] = {"worm": worm.model_copy(update=worm_update)}
        if point.delay_s is not None:
            update["response"] = spec.response.model_copy(update={"rules": [
                rule.model_copy(update={"delay_s": point.delay_s})
                for rule in spec.response.rules]})
        spec = spec.model_copy(update=update)
        if point.hosts is None:
            return dataclasses.replace(derived, spec=spec)
        return self._generated(spec, point.hosts, cell.scenario)

    def _generated(self, spec: Any, hosts: int, name: str) -> Scenario:
        from testbed.sim.generate import flat_topology, scenario_for

        topology = self._topologies.get(hosts)
        if topology is None:
            topology = flat_topology(
                hosts, vulnerable_fraction=self.spec.grid.topology_vulnerable_fraction,
                seed=1, name=name)
            self._topologies[hosts] = topology
        data = spec.model_dump(mode="json", exclude={"topology", "name", "benign",
                                                     "monitoring", "exercise"})
        data["worm"]["patient_zero"] = ["h0"]
        return scenario_for(topology, data)


def _cross_check(spec: SweepSpec, document: SourceDocument) -> list[Diagnostic]:
    from detectors.registry import DETECTORS
    from testbed.model.profiles import profile_catalog

    problems = []
    known = set(DETECTORS.names())
    for set_name, detectors in (spec.grid.detector_sets or {}).items():
        for index, detector in enumerate(detectors):
            if detector.name not in known:
                problems.append(document.diagnostic(
                    ("grid", "detector_sets", set_name, index),
                    f"unknown detector {detector.name!r}",
                    hint=did_you_mean(detector.name, known, "detectors")))
    for name in spec.grid.detector_params:
        if name not in known:
            problems.append(document.diagnostic(("grid", "detector_params", name),
                                                f"unknown detector {name!r}",
                                                hint=did_you_mean(name, known, "detectors")))
    catalog = profile_catalog()
    for index, worm in enumerate(spec.grid.worms or []):
        if worm.profile not in catalog:
            problems.append(document.diagnostic(
                ("grid", "worms", index), f"unknown worm profile {worm.profile!r}",
                hint=did_you_mean(worm.profile, set(catalog), "profiles")))
    labels = [worm.label for worm in spec.grid.worms or []]
    for index, label in enumerate(labels):
        if label in labels[:index]:
            problems.append(document.diagnostic(("grid", "worms", index),
                                                f"worm {label!r} is listed twice",
                                                hint="give one of them a name"))
    if spec.backend is not None:
        from testbed.backends import BACKENDS

        if spec.backend not in BACKENDS:
            problems.append(document.diagnostic(
                ("backend",), f"unknown backend {spec.backend!r}",
                hint=did_you_mean(spec.backend, set(BACKENDS.names()), "backends")))
    return problems


def load_sweep(path: str | Path) -> tuple[SweepSpec, Scenario]:
    """Load and check a sweep file and its scenario; ValidationError otherwise."""
    path = Path(path)
    document = load_yaml(path)
    try:
        spec = SweepSpec.model_validate(document.data)
    except pydantic.ValidationError as err:
        raise ValidationError(diagnostics_from_pydantic(err, document, sweep_schema())) from None
    problems = _cross_check(spec, document)
    scenario_path = path.parent / spec.scenario
    if not scenario_path.is_file():
        problems.append(document.diagnostic(("scenario",),
                                            f"scenario file {spec.scenario!r} not found",
                                            hint="paths are relative to the sweep file"))
    if problems:
        raise ValidationError(problems)
    return spec, load_scenario(scenario_path)


def sweep_matrix(spec: SweepSpec, scenario: Scenario, backend: str | None = None) -> Matrix:
    """Every grid point x seed of the sweep as a matrix (``backend`` overrides the file's)."""
    if backend is not None:
        spec = spec.model_copy(update={"backend": backend})
    points = {(p.scenario_label, p.detectors_label, p.worm_label): p
              for p in _grid_points(spec, scenario)}
    seeds = (list(spec.seeds) if isinstance(spec.seeds, list)
             else [scenario.spec.seed + i for i in range(spec.seeds)])
    cell_backend = spec.backend or scenario.spec.backend
    jobs = tuple(
        CellJob(index, BenchCell(label[0], scenario.path, label[1], label[2], seed),
                cell_backend)
        for index, (label, seed) in enumerate(itertools.product(points, seeds)))
    fingerprint = fingerprint_of(spec.model_dump(mode="json"),
                                 scenario.spec.model_dump(mode="json"),
                                 file_digest(scenario.topology_path),
                                 [(job.key, job.backend) for job in jobs])
    baseline = spec.baseline
    if baseline is None and "none" in (spec.grid.detector_sets or {}):
        baseline = next((p.detectors_label for p in points.values()
                         if p.detector_set == "none"), None)
    return Matrix(name=spec.name, title=f"sweep {spec.name}",
                  source=SweepSource(spec, scenario, points), jobs=jobs, baseline=baseline,
                  fingerprint=fingerprint)
