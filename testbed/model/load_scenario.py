"""Load and validate a scenario file together with the topology it names.

Owns: cross-references between a scenario and its topology (hosts, groups, segments), the worm
profile catalog, and the scenario's detectors against a ``DetectorCatalog`` the caller passes.
Reports every problem, located in the file it is in.

Must not import the detector plug-ins or their registry: the model is the engine's bottom layer
(an import contract in pyproject.toml enforces it). The engine passes the registry's catalog:
``testbed.detection.load_scenario`` is this loader with ``detectors=REGISTERED_DETECTORS``, and is
what ``testbed run``, ``testbed validate`` and the bench call. Without a catalog, detector names
and parameters are not checked here (only duplicates and the response rules' references are).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import pydantic

from testbed.errors import Diagnostic, RegistryError, ValidationError
from testbed.model.diagnose import diagnostics_from_pydantic, did_you_mean
from testbed.model.load_topology import load_topology
from testbed.model.profiles import check_profile_params, resolved_profile_params
from testbed.model.scenario_spec import ScenarioSpec
from testbed.model.spec import SERVICE_KINDS
from testbed.model.topology import Topology
from testbed.yamlsource import KeyPath, SourceDocument, load_yaml

__all__ = ["DetectorCatalog", "Scenario", "load_scenario", "scenario_from_document",
           "scenario_path"]


class DetectorCatalog(Protocol):
    """The detectors a scenario may name, as the loader needs to know them."""

    def names(self) -> Collection[str]:
        """Every known detector name."""
        ...

    def parameters(self, name: str) -> Mapping[str, Any]:
        """The default parameters of a known detector (``ImportError`` or ``RegistryError`` when
        its plug-in cannot be loaded)."""
        ...


@lru_cache(maxsize=1)
def scenario_schema() -> dict[str, Any]:
    return ScenarioSpec.model_json_schema(by_alias=True)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario with its resolved topology."""

    spec: ScenarioSpec
    topology: Topology
    path: Path
    topology_path: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None,
                  detectors: DetectorCatalog | None = None) -> Scenario:
        """A scenario from a mapping shaped like a scenario YAML file, validated exactly as a
        file is. Its ``topology`` path is relative to ``base_dir`` (default: the current
        directory). ``detectors``: as for ``load_scenario`` (``testbed.detection`` passes the
        registry's)."""
        import yaml

        from testbed.yamlsource import parse_yaml_text

        base = Path(base_dir) if base_dir is not None else Path.cwd()
        name = str(data.get("name") or "scenario")
        text = yaml.safe_dump(dict(data), sort_keys=False)
        document = parse_yaml_text(text, str(base / f"{name}.yaml"))
        return scenario_from_document(document, base / f"{name}.yaml", detectors=detectors)

    def worm_params(self) -> dict[str, Any]:
        """The profile's parameters with the scenario's overrides (and ``worm.rate``) applied."""
        params = dict(self.spec.worm.params)
        if self.spec.worm.rate is not None:
            params["rate"] = self.spec.worm.rate
        return resolved_profile_params(self.spec.worm.profile, params)

    def monitored_segments(self) -> set[str]:
        """Segments whose taps the sensors listen on (``monitoring.segments``)."""
        names = self.spec.monitoring.segments
        return set(self.topology.segments) if "any" in names else set(names)

    def patient_zero(self) -> list[str]:
        return expand_hosts(self.topology, self.spec.worm.patient_zero)


def expand_hosts(topology: Topology, names: list[str]) -> list[str]:
    """Host names for a list of host, group or segment names ('any' = every host)."""
    hosts: list[str] = []
    for name in names:
        if name == "any":
            hosts.extend(topology.hosts)
        elif name in topology.hosts:
            hosts.append(name)
        elif name in topology.groups:
            hosts.extend(topology.groups[name])
        elif name in topology.segments:
            hosts.extend(h.name for h in topology.hosts_in(name))
    return list(dict.fromkeys(hosts))


def scenario_path(name: str | Path, scenarios_dir: Path) -> Path:
    """A scenario file named by its path, or by its name under ``scenarios_dir``
    (``smb-flat`` or ``smb-flat.yaml``): how scripts let users name shipped scenarios."""
    path = Path(name)
    if path.is_file():
        return path
    text = str(name)
    return scenarios_dir / (text if text.endswith(".yaml") else f"{text}.yaml")


def load_scenario(path: str | Path, *, display_name: str | None = None,
                  detectors: DetectorCatalog | None = None) -> Scenario:
    """The scenario at ``path``; ``ValidationError`` listing every problem.

    ``detectors``: what the scenario's detector names and parameters are checked against (see
    the module docstring; ``testbed.detection.load_scenario`` passes the registry's).
    """
    document = load_yaml(path, display_name=display_name)
    return scenario_from_document(document, Path(path), detectors=detectors)


def scenario_from_document(document: SourceDocument, real_path: Path, *,
                           detectors: DetectorCatalog | None = None) -> Scenario:
    try:
        spec = ScenarioSpec.model_validate(document.data)
    except pydantic.ValidationError as err:
        raise ValidationError(diagnostics_from_pydantic(err, document, scenario_schema())) from None
    topology_real = (real_path.parent / spec.topology)
    topology_shown = os.path.normpath(document.file.parent / spec.topology)
    if not topology_real.is_file():
        raise ValidationError([document.diagnostic(
            ("topology",), f"topology file {spec.topology!r} not found "
                           f"(looked for {topology_shown})",
            hint="the path is relative to the scenario file")])
    try:
        topology = load_topology(topology_real, display_name=topology_shown)
    except ValidationError as err:
        # The errors are located in the topology file; say where the scenario names it, too.
        count = len(err.diagnostics)
        note = document.diagnostic(("topology",), f"topology {spec.topology!r} is not valid "
                                                  f"({count} error{'s' if count != 1 else ''})",
                                   hint=f"run: testbed validate {topology_shown}")
        raise ValidationError([*err.diagnostics, note]) from None
    spec = _resolve_policy_path(spec, document, real_path)
    problems = _cross_check(spec, topology, document, detectors)
    if problems:
        raise ValidationError(problems)
    return Scenario(spec, topology, real_path, topology_real)


def _resolve_policy_path(spec: ScenarioSpec, document: SourceDocument,
                         real_path: Path) -> ScenarioSpec:
    """``response.policy`` is relative to the scenario file, as ``topology`` is; a missing file
    fails here, before a run deploys anything. Whether its layers fit this scenario is checked
    by ``testbed.response.check_policy`` (it needs numpy) before deployment."""
    policy = spec.response.policy
    if policy is None:
        return spec
    given = Path(policy).expanduser()
    policy_real = given if given.is_absolute() else real_path.parent / given
    if not policy_real.is_file():
        shown = os.path.normpath(given if given.is_absolute() else document.file.parent / given)
        raise ValidationError([document.diagnostic(
            ("response", "policy"), f"policy file {policy!r} not found (looked for {shown})",
            hint="the path is relative to the scenario file; train one with "
                 "benchmarks/train_defender.py (docs/gym.md)")])
    response = spec.response.model_copy(update={"policy": str(policy_real)})
    return spec.model_copy(update={"response": response})


def _cross_check(spec: ScenarioSpec, topology: Topology, document: SourceDocument,
                 catalog: DetectorCatalog | None) -> list[Diagnostic]:
    problems: list[Diagnostic] = []

    def error(path: KeyPath, message: str, hint: str = "", at_key: bool = False) -> None:
        problems.append(document.diagnostic(path, message, hint=hint, at_key=at_key))

    host_like = set(topology.hosts) | set(topology.groups)
    every_name = host_like | set(topology.segments) | {"any"}

    def check_names(path: KeyPath, names: list[str], allowed: set[str], what: str) -> None:
        for index, name in enumerate(names):
            if name not in allowed:
                where = (*path, index) if len(names) > 1 else path
                error(where, f"unknown {what} {name!r} in topology {topology.name!r}",
                      hint=did_you_mean(name, allowed, what + "s"))

    check_names(("worm", "patient_zero"), spec.worm.patient_zero, host_like, "host")
    for key, message, hint in check_profile_params(spec.worm.profile, spec.worm.params):
        error(("worm", "params", key) if key else ("worm", "profile"), message, hint,
              at_key=key is not None)
    for index, user in enumerate(spec.benign.users):
        check_names(("benign", "users", index, "hosts"), user.hosts, host_like, "host")
        check_names(("benign", "users", index, "targets"), user.targets, every_name, "host")
        for position, kind in enumerate(user.services or ()):
            if kind not in SERVICE_KINDS:
                error(("benign", "users", index, "services", position),
                      f"unknown service kind {kind!r}",
                      hint=did_you_mean(kind, set(SERVICE_KINDS), "service kinds"))
    if spec.benign.backup:
        check_names(("benign", "backup", "host"), [spec.benign.backup.host], set(topology.hosts),
                    "host")
        check_names(("benign", "backup", "targets"), spec.benign.backup.targets, every_name, "host")
    if spec.benign.scanner:
        check_names(("benign", "scanner", "host"), [spec.benign.scanner.host],
                    set(topology.hosts), "host")
        check_names(("benign", "scanner", "segments"), spec.benign.scanner.segments,
                    set(topology.segments), "segment")

    check_names(("monitoring", "segments"), spec.monitoring.segments,
                set(topology.segments) | {"any"}, "segment")

    known_detectors = set(catalog.names()) if catalog is not None else None
    seen: set[str] = set()
    for index, detector in enumerate(spec.detectors):
        path: KeyPath = ("detectors", index, "name")
        if known_detectors is not None and detector.name not in known_detectors:
            error(path, f"unknown detector {detector.name!r}",
                  hint=did_you_mean(detector.name, known_detectors, "detectors"))
            continue
        if detector.name in seen:
            error(path, f"detector {detector.name!r} is listed twice")
        seen.add(detector.name)
        if not detector.params or catalog is None:
            continue
        try:
            defaults = catalog.parameters(detector.name)
        except (ImportError, RegistryError) as err:
            error(path, f"detector {detector.name!r} cannot be loaded: {err}")
            continue
        for key, value in detector.params.items():
            if key not in defaults:
                error(("detectors", index, "params", key),
                      f"detector {detector.name!r} has no parameter {key!r}",
                      hint=did_you_mean(key, set(defaults), "parameters"), at_key=True)
            elif not _same_kind(defaults[key], value):
                error(("detectors", index, "params", key),
                      f"{value!r} does not fit parameter {key!r} (default {defaults[key]!r})")
    for index, rule in enumerate(spec.response.rules):
        for position, name in enumerate(rule.on):
            if name != "any" and name not in seen:
                where: KeyPath = (("response", "rules", index, "on", position) if len(rule.on) > 1
                                  else ("response", "rules", index, "on"))
                error(where, f"response rule listens to {name!r}, which is not among this "
                             "scenario's detectors", hint=did_you_mean(name, seen, "detectors"))
    return problems


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and (isinstance(default, float)
                                                    or isinstance(value, int))
    if default is None:
        return True
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(default))
