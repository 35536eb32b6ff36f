"""Engine side of the agent: one JSON config per host, built from a validated Scenario.

Owns: turning the scenario and its topology into what each host's agent needs (its services,
vulnerabilities and patches, the topology CIDRs, its trusts' addresses, the worm profile with
resolved parameters, the exploit arsenal, the patient-zero flag, TTL, and the benign timeline of
that host: users, backup, scanner) and writing ``<state_dir>/agents/<host>.json`` (mode 0600: it
holds the run's secret), or, when the deployment multiplexes agents, one group config per agent
process. Formats: ``testbed.agent.config``, ``testbed.agent.multiplex``.
Must not: start processes (the runner spawns ``agent_command(path)`` through the backend).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from testbed.agent import control
from testbed.agent.brain import resolve_params
from testbed.agent.config import (
    AgentConfig,
    BackupJob,
    BenignTarget,
    ExploitSpec,
    ScannerJob,
    ServiceConfig,
    UserJob,
    WormConfig,
    write_config,
)
from testbed.agent.multiplex import GroupMember, write_group
from testbed.backends.fabric.agents import PER_HOST, read_agent_layout
from testbed.errors import AgentError, ValidationError
from testbed.model.load_scenario import Scenario, expand_hosts
from testbed.model.spec import DEFAULT_PORTS
from testbed.model.topology import Host, Topology

__all__ = ["agent_command", "build_agent_configs", "group_config_path", "host_seed",
           "write_agent_configs"]

BACKUP_PREFERENCE = ("smb", "ssh", "ftp", "generic")
"""Which of a target's services the backup server uses, in order of preference."""
SCANNER_DEFAULT_PORTS = tuple(sorted({port for port, proto in DEFAULT_PORTS.values()
                                      if proto == "tcp"}))


def host_seed(seed: int, host: str) -> int:
    """The per-host seed derived from the run's seed (stable across Python versions)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{host}".encode()).digest()[:8], "big")


def agent_command(config_path: Path, python: str = sys.executable) -> list[str]:
    """The argv that starts one agent (give ``python3`` for a container)."""
    return [python, "-m", "testbed.agent", "--config", str(config_path)]


def build_agent_configs(scenario: Scenario, state_dir: Path, *, seed: int, secret: bytes,
                        self_wake: bool = False, ttl_s: float | None = None,
                        listen_address: str = "0.0.0.0") -> dict[str, AgentConfig]:
    """Every host's AgentConfig (nothing written).

    ``self_wake``: patient zero wakes itself ``worm.start_s`` after its agent starts (otherwise
    the runner calls ``testbed.agent.control.wake``). ``ttl_s``: hard lifetime of every agent
    (default: the scenario's duration plus 60 s).
    """
    if len(secret) < 16:
        raise AgentError("the run secret must be at least 16 bytes")
    topology = scenario.topology
    spec = scenario.spec
    params = scenario.worm_params()
    try:
        params = resolve_params(spec.worm.profile, params)
    except AgentError as err:
        raise ValidationError.single(scenario.path, str(err), path="worm",
                                     hint="see `testbed profiles` for each parameter's range"
                                     ) from None
    arsenal = _arsenal(topology)
    patient_zero = set(scenario.patient_zero())
    users = _user_jobs(scenario)
    backups = _backup_jobs(scenario)
    scanners = _scanner_jobs(scenario)
    address_book = {str(h.ip): h.name for h in topology.hosts.values()}
    cidrs = tuple(str(c) for c in topology.cidrs)
    rate = float(params["rate"])
    configs: dict[str, AgentConfig] = {}
    for host in topology.hosts.values():
        worm = WormConfig(
            profile=spec.worm.profile, params=dict(params), arsenal=arsenal,
            patient_zero=host.name in patient_zero,
            wake_after_s=spec.worm.start_s if self_wake and host.name in patient_zero else None,
            max_probe_rate=min(300.0, max(1.0, 1.5 * rate)))
        configs[host.name] = AgentConfig(
            run=state_dir.name, host=host.name, address=str(host.ip),
            segment_cidr=str(topology.segments[host.segment].cidr), secret=secret,
            seed=host_seed(seed, host.name), state_dir=state_dir, cidrs=cidrs,
            services=tuple(ServiceConfig(s.name, s.port, s.proto, s.banner, s.vulns)
                           for s in host.services),
            patched=True if host.patched is True else frozenset(host.patched),
            worm=worm,
            trusts=tuple(str(topology.hosts[name].ip) for name in host.trusts
                         if name in topology.hosts),
            address_book=address_book,
            users=tuple(users.get(host.name, ())),
            backup=backups.get(host.name), scanner=scanners.get(host.name),
            ttl_s=ttl_s if ttl_s is not None else spec.duration_s + 60.0,
            listen_address=listen_address)
    return configs


def write_agent_configs(scenario: Scenario, state_dir: Path, *, seed: int, secret: bytes,
                        self_wake: bool = False, ttl_s: float | None = None,
                        listen_address: str = "0.0.0.0",
                        layout: str | None = None) -> dict[str, Path]:
    """Write every host's agent config; returns {host: path of the file its agent reads}.

    ``layout`` None: as the deployment recorded in ``state_dir`` (``AgentFleet`` starts them
    so); ``"per-host"``: one file per host whatever the record says (for a caller that starts
    ``agent_command(path)`` in each host itself). Per host: ``<state_dir>/agents/<host>.json``;
    multiplexed: one group config per agent process, ``<state_dir>/agents/group-<n>.json``,
    with what every host shares (the address book: hosts x hosts entries) written once. Also
    clears stale stop/wake control files of an earlier run in the same directory.
    """
    state_dir = Path(state_dir)
    configs = build_agent_configs(scenario, state_dir, seed=seed, secret=secret,
                                  self_wake=self_wake, ttl_s=ttl_s, listen_address=listen_address)
    control.clear(state_dir)
    paths: dict[str, Path] = {}
    recorded = read_agent_layout(state_dir)
    if layout not in (None, PER_HOST):
        raise AgentError(f"layout {layout!r}: only {PER_HOST!r} can be asked for here (a "
                         "multiplexed layout is the deployment's, recorded at deploy time)")
    if recorded.multiplexed and layout is None:
        for number, group in enumerate(recorded.groups):
            path = group_config_path(state_dir, number)
            write_group(path, [GroupMember(configs[host], netns) for host, netns in group])
            paths.update(dict.fromkeys((host for host, _netns in group), path))
        missing = sorted(set(configs) - set(paths))
        if missing:
            raise AgentError(f"the recorded agent layout has no group for {missing[:5]}")
        return paths
    for name, config in configs.items():
        path = state_dir / "agents" / f"{name}.json"
        write_config(path, config)
        paths[name] = path
    return paths


def group_config_path(state_dir: Path, number: int) -> Path:
    """Where the config of multiplexed agent process ``number`` goes."""
    return Path(state_dir) / "agents" / f"group-{number}.json"


def _arsenal(topology: Topology) -> tuple[ExploitSpec, ...]:
    """Every (vulnerability, service kind, port, proto) in the topology, in a canonical order.

    The worm carries exploits for the vulnerabilities that exist; it does not know which hosts
    have them. Both ends derive the same order, which is the order of weights in a token.
    """
    found = {ExploitSpec(vuln, service.name, service.port, service.proto)
             for host in topology.hosts.values() for service in host.services
             for vuln in service.vulns}
    return tuple(sorted(found, key=lambda e: (e.vuln, e.port, e.proto, e.service)))


def _targets(host: Host, kinds: list[str] | None) -> list[BenignTarget]:
    return [BenignTarget(str(host.ip), s.port, s.proto, s.name, host.name)
            for s in host.services if kinds is None or s.name in kinds]


def _user_jobs(scenario: Scenario) -> dict[str, list[UserJob]]:
    topology = scenario.topology
    jobs: dict[str, list[UserJob]] = {}
    for user in scenario.spec.benign.users:
        target_hosts = expand_hosts(topology, user.targets)
        for name in expand_hosts(topology, user.hosts):
            targets = [t for other in target_hosts if other != name
                       for t in _targets(topology.hosts[other], user.services)]
            if targets:
                jobs.setdefault(name, []).append(UserJob(user.per_minute, tuple(targets)))
    return jobs


def _backup_jobs(scenario: Scenario) -> dict[str, BackupJob]:
    backup = scenario.spec.benign.backup
    if backup is None:
        return {}
    topology = scenario.topology
    targets = []
    for name in expand_hosts(topology, backup.targets):
        if name == backup.host:
            continue
        host = topology.hosts[name]
        by_kind = {s.name: s for s in host.services}
        chosen = next((by_kind[k] for k in BACKUP_PREFERENCE if k in by_kind),
                      host.services[0] if host.services else None)
        if chosen is None:  # nothing to back up over: it still tries SMB (and fails, as in life)
            targets.append(BenignTarget(str(host.ip), 445, "tcp", "smb", name))
        else:
            targets.append(BenignTarget(str(host.ip), chosen.port, chosen.proto, chosen.name,
                                        name))
    return {backup.host: BackupJob(backup.every_s, tuple(targets))}


def _scanner_jobs(scenario: Scenario) -> dict[str, ScannerJob]:
    scanner = scenario.spec.benign.scanner
    if scanner is None:
        return {}
    topology = scenario.topology
    cidrs = tuple(str(topology.segments[name].cidr) for name in scanner.segments
                  if name in topology.segments)
    ports: list[int] = []
    for item in scanner.ports or SCANNER_DEFAULT_PORTS:
        if isinstance(item, int):
            ports.append(item)
        else:
            low, _, high = str(item).partition("-")
            ports.extend(range(int(low), int(high or low) + 1))
    return {scanner.host: ScannerJob(scanner.every_s, cidrs, tuple(dict.fromkeys(ports)))}
