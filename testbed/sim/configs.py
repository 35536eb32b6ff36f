"""The agents' configs a simulated run needs, without building one per host up front.

Owns: :class:`SimAgentConfigs`, a read-only mapping host -> ``AgentConfig`` equal (every field
the simulator reads; ``address_book`` aside, which only real agents use) to what
``testbed.runner.agent_configs.build_agent_configs`` builds, derived on first use.

Why: at a million hosts, building every config up front took 20 s, and a simulated outbreak
reads a handful of them (the fast path: one; the event engine: the hosts that wake).

How it stays exact without re-implementing the builder: ``build_agent_configs`` itself runs once
on a reduced copy of the scenario holding patient zero, one host per distinct ``services``
tuple (so the exploit arsenal, the union of every host's service vulnerabilities, comes out the
same), and every host with trusts plus the hosts it trusts (their addresses are looked up); the
topology's segments (hence ``cidrs``) and routers are kept whole, and patient zero is named
host by host. Every other host's config is a representative's with the per-host fields
replaced: name, address, segment network, seed (``host_seed``), patches, and the services
config of the representative with equal ``services``.
Eager (the builder on the whole scenario) when the topology is small or the scenario has benign
users, a backup or a scanner (their jobs list other hosts' services).
Seed-free, built once per scenario: the builder's output depends on the seed, the secret and
the run directory only through each config's ``seed`` (``host_seed(seed, host)``), ``secret``,
``state_dir`` and ``run`` (its name), so the builder runs once per scenario object and each
run's configs are those with these fields replaced, host by host on first use (a learning
environment resets thousands of times).
Must not: write files (configs hold the run's secret; the simulator keeps them in memory).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from testbed.agent.config import AgentConfig
from testbed.model.load_scenario import Scenario
from testbed.model.topology import Host, Service, Topology
from testbed.sim.bindings import build_agent_configs, host_seed

__all__ = ["EAGER_HOST_LIMIT", "SimAgentConfigs"]

EAGER_HOST_LIMIT = 10_000
"""Up to this many hosts, every config is built up front (as the emulated runner does)."""


@dataclass(frozen=True, slots=True)
class _SeedFree:
    """What ``build_agent_configs`` gives a scenario whatever the run's seed, secret and
    directory: its configs (for one run; the only fields the run changes are ``seed``, through
    ``host_seed``, ``secret``, ``state_dir`` and ``run``) and, when lazy, how the other hosts'
    configs are derived."""

    built: dict[str, AgentConfig]
    lazy: bool
    has_benign: bool
    kind: dict[tuple[int, ...], str]  # lazy: services' ids -> a host carrying equal ones
    template: AgentConfig | None  # lazy: the config other hosts' configs are derived from


_SEED_FREE: dict[tuple[int, int], tuple[Scenario, _SeedFree]] = {}
_SEED_FREE_CONFIGS = 20_000  # configs kept over all scenarios (the newest always)


def _seed_free(scenario: Scenario, run_dir: Path, seed: int, secret: bytes,
               eager_limit: int) -> _SeedFree:
    """The seed-free configs of ``scenario``, built once per scenario object: a learning
    environment resets a simulation of the same scenario thousands of times."""
    key = (id(scenario), eager_limit)
    cached = _SEED_FREE.get(key)
    if cached is not None and cached[0] is scenario and len(secret) >= 16:
        return cached[1]
    built = _build_seed_free(scenario, run_dir, seed, secret, eager_limit)
    _SEED_FREE[key] = (scenario, built)  # the scenario is kept, so its id is not reused
    while len(_SEED_FREE) > 1 and sum(  # over budget: the oldest go first
            len(kept.built) for _, kept in _SEED_FREE.values()) > _SEED_FREE_CONFIGS:
        _SEED_FREE.pop(next(iter(_SEED_FREE)), None)
    return built


def _build_seed_free(scenario: Scenario, run_dir: Path, seed: int, secret: bytes,
                     eager_limit: int) -> _SeedFree:
    topology = scenario.topology
    benign = scenario.spec.benign
    has_benign = bool(benign.users or benign.backup or benign.scanner)
    lazy = len(topology.hosts) > eager_limit and not has_benign
    if not lazy:
        return _SeedFree(build_agent_configs(scenario, run_dir, seed=seed, secret=secret),
                         lazy, has_benign, {}, None)
    patient_zero = scenario.patient_zero()
    keep: dict[str, None] = dict.fromkeys(patient_zero)
    kind: dict[tuple[int, ...], str] = {}
    representative: dict[tuple[Service, ...], str] = {}
    for host in topology.hosts.values():
        ids = tuple(map(id, host.services))
        if ids not in kind:
            name = representative.setdefault(host.services, host.name)
            kind[ids] = name
            keep[name] = None
        if host.trusts:
            keep[host.name] = None
            keep.update(dict.fromkeys(n for n in host.trusts if n in topology.hosts))
    hosts = {name: topology.hosts[name] for name in keep}
    reduced = Topology(
        name=topology.name, description=topology.description,
        segments=topology.segments, hosts=hosts, routers=topology.routers,
        groups={group: tuple(n for n in members if n in hosts)
                for group, members in topology.groups.items()},
        decoys=topology.decoys, source=topology.source)
    worm = scenario.spec.worm.model_copy(update={"patient_zero": list(patient_zero)})
    spec = scenario.spec.model_copy(update={"worm": worm})
    built = build_agent_configs(replace(scenario, spec=spec, topology=reduced),
                               run_dir, seed=seed, secret=secret)
    origin = set(patient_zero)
    template = next((c for name, c in built.items() if name not in origin), None)
    if template is None:  # every representative is patient zero
        first = next(iter(built.values()))
        template = replace(first, worm=replace(first.worm, patient_zero=False))
    return _SeedFree(built, lazy, has_benign, kind, template)


def _reseeded(config: AgentConfig, seed: int, secret: bytes, run_dir: Path) -> AgentConfig:
    """``replace(config, seed=, secret=, state_dir=run_dir, run=run_dir.name)`` without
    re-running the dataclass's ``__init__`` over every field (it has no ``__post_init__``; a
    reset derives every host's)."""
    copy = object.__new__(AgentConfig)
    fields = copy.__dict__
    fields.update(config.__dict__)
    fields["seed"], fields["secret"] = seed, secret
    fields["state_dir"], fields["run"] = run_dir, run_dir.name
    return copy


class SimAgentConfigs(Mapping[str, AgentConfig]):
    """host name -> its ``AgentConfig``; see the module docstring."""

    def __init__(self, scenario: Scenario, run_dir: Path, *, seed: int, secret: bytes,
                 eager_limit: int = EAGER_HOST_LIMIT) -> None:
        self._topology = scenario.topology
        self._seed = seed
        self._secret = secret
        self._run_dir = run_dir
        self._base = _seed_free(scenario, run_dir, seed, secret, eager_limit)
        self.has_benign = self._base.has_benign
        self.lazy = self._base.lazy
        self._configs: dict[str, AgentConfig] = {}  # this seed's, derived on first use

    def _derive(self, host: Host) -> AgentConfig:
        base = self._base
        assert base.template is not None
        sibling = base.built[base.kind[tuple(map(id, host.services))]]
        return replace(
            base.template, host=host.name, address=str(host.ip),
            segment_cidr=str(self._topology.segments[host.segment].cidr),
            seed=host_seed(self._seed, host.name), secret=self._secret,
            state_dir=self._run_dir, run=self._run_dir.name, services=sibling.services,
            patched=True if host.patched is True else frozenset(host.patched), trusts=(),
            address_book={})

    def __getitem__(self, name: str) -> AgentConfig:
        config = self._configs.get(name)
        if config is not None:
            return config
        built = self._base.built.get(name)
        if built is not None:
            config = _reseeded(built, host_seed(self._seed, name), self._secret, self._run_dir)
        elif self.lazy and name in self._topology.hosts:
            config = self._derive(self._topology.hosts[name])
        else:
            raise KeyError(name)
        self._configs[name] = config
        return config

    def __iter__(self) -> Iterator[str]:
        return iter(self._topology.hosts)

    def __len__(self) -> int:
        return len(self._topology.hosts)
