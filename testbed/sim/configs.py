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
Must not: write files (configs hold the run's secret; the simulator keeps them in memory).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from testbed.agent.config import AgentConfig
from testbed.model.load_scenario import Scenario
from testbed.model.topology import Host, Service, Topology
from testbed.sim.bindings import build_agent_configs, host_seed

__all__ = ["EAGER_HOST_LIMIT", "SimAgentConfigs"]

EAGER_HOST_LIMIT = 10_000
"""Up to this many hosts, every config is built up front (as the emulated runner does)."""


class SimAgentConfigs(Mapping[str, AgentConfig]):
    """host name -> its ``AgentConfig``; see the module docstring."""

    def __init__(self, scenario: Scenario, run_dir: Path, *, seed: int, secret: bytes,
                 eager_limit: int = EAGER_HOST_LIMIT) -> None:
        self._topology = topology = scenario.topology
        self._seed = seed
        benign = scenario.spec.benign
        self.has_benign = bool(benign.users or benign.backup or benign.scanner)
        self.lazy = len(topology.hosts) > eager_limit and not self.has_benign
        if not self.lazy:
            self._built = build_agent_configs(scenario, run_dir, seed=seed, secret=secret)
            return
        patient_zero = scenario.patient_zero()
        keep: dict[str, None] = dict.fromkeys(patient_zero)
        self._kind: dict[tuple[int, ...], str] = {}  # services' ids -> a host carrying equal
        representative: dict[tuple[Service, ...], str] = {}
        for host in topology.hosts.values():
            ids = tuple(map(id, host.services))
            if ids not in self._kind:
                name = representative.setdefault(host.services, host.name)
                self._kind[ids] = name
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
        self._built = build_agent_configs(replace(scenario, spec=spec, topology=reduced),
                                          run_dir, seed=seed, secret=secret)
        origin = set(patient_zero)
        template = next((c for name, c in self._built.items() if name not in origin), None)
        if template is None:  # every representative is patient zero
            first = next(iter(self._built.values()))
            template = replace(first, worm=replace(first.worm, patient_zero=False))
        self._template = template
        self._derived: dict[str, AgentConfig] = {}

    def _derive(self, host: Host) -> AgentConfig:
        sibling = self._built[self._kind[tuple(map(id, host.services))]]
        return replace(
            self._template, host=host.name, address=str(host.ip),
            segment_cidr=str(self._topology.segments[host.segment].cidr),
            seed=host_seed(self._seed, host.name), services=sibling.services,
            patched=True if host.patched is True else frozenset(host.patched), trusts=(),
            address_book={})

    def __getitem__(self, name: str) -> AgentConfig:
        config = self._built.get(name)
        if config is not None:
            return config
        if not self.lazy or name not in self._topology.hosts:
            raise KeyError(name)
        config = self._derived.get(name)
        if config is None:
            config = self._derived[name] = self._derive(self._topology.hosts[name])
        return config

    def __iter__(self) -> Iterator[str]:
        return iter(self._topology.hosts)

    def __len__(self) -> int:
        return len(self._topology.hosts)
