"""Engine side: per-host agent configs built from a scenario, and their JSON round trip."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from testbed.agent import control
from testbed.agent.config import load_config
from testbed.errors import AgentError, ValidationError
from testbed.model import load_scenario
from testbed.runner.agent_configs import agent_command, build_agent_configs, write_agent_configs

TOPOLOGY = """
name: small
segments:
  home: {cidr: 192.168.1.0/24}
  office: {cidr: 10.0.1.0/24}
  servers: {cidr: 10.0.2.0/24}
defaults:
  services: [{name: smb, vulns: [MOCK-SMB-1]}]
hosts:
  laptop: {segment: home, tier: launch-pad}
  fileserver: {segment: servers, tier: server, trusts: [pc], patched: [MOCK-SMB-1]}
  db: {segment: servers, tier: crown-jewel, services: [{name: sql, vulns: [MOCK-SQL-1]},
       {name: vpn}], patched: true}
  bare: {segment: office, services: []}
groups:
  pc: {count: 3, segment: office}
routers:
  vpn: {segments: [home, office], default: allow}
  core: {segments: [office, servers], rules: [{action: allow, from: pc, to: fileserver}]}
"""

SCENARIO = """
name: small-run
topology: topo.yaml
duration_s: 30
worm: {profile: adaptive, patient_zero: laptop, start_s: 1.5, rate: 40, params: {epsilon: 0.2}}
benign:
  users:
    - {hosts: pc, targets: [fileserver, db], services: [smb], per_minute: 6}
  backup: {host: fileserver, every_s: 20, targets: [office]}
  scanner: {host: pc-1, segments: [office], every_s: 60, ports: [22, "440-442"]}
"""


@pytest.fixture()
def scenario(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "topo.yaml").write_text(TOPOLOGY)
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    return load_scenario(tmp_path / "scenario.yaml")


def test_configs_round_trip_and_carry_what_each_host_needs(scenario, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "state" / "run-1"
    control.stop_all(state)  # a stale stop file from an earlier run in the same dir
    paths = write_agent_configs(scenario, state, seed=7, secret=b"x" * 32)
    assert set(paths) == set(scenario.topology.hosts)
    assert not (state / "control" / "stop").exists()
    assert stat.S_IMODE(paths["laptop"].stat().st_mode) == 0o600
    configs = {host: load_config(path) for host, path in paths.items()}

    laptop = configs["laptop"]
    assert laptop.run == "run-1" and laptop.secret == b"x" * 32
    assert laptop.worm.patient_zero and laptop.worm.wake_after_s is None
    assert laptop.worm.params["rate"] == 40 and laptop.worm.params["epsilon"] == 0.2
    assert laptop.worm.params["dormancy_s"] == 5.0  # profile default
    assert [e.key for e in laptop.worm.arsenal] == ["MOCK-SMB-1@445/tcp", "MOCK-SQL-1@3306/tcp"]
    assert set(laptop.cidrs) == {"192.168.1.0/24", "10.0.1.0/24", "10.0.2.0/24"}
    assert laptop.segment_cidr == "192.168.1.0/24"
    assert laptop.ttl_s == 90.0
    assert laptop.events_path == state / "hosts" / "laptop" / "events.jsonl"
    assert laptop.address_book[str(scenario.topology.hosts["db"].ip)] == "db"

    fileserver = configs["fileserver"]
    assert fileserver.patched == frozenset({"MOCK-SMB-1"})
    assert set(fileserver.trusts) == {str(scenario.topology.hosts[f"pc-{n}"].ip)
                                      for n in (1, 2, 3)}
    assert configs["db"].patched is True
    assert [s.name for s in configs["db"].services] == ["sql", "vpn"]
    assert configs["db"].services[1].proto == "udp" and configs["db"].services[1].port == 1194
    assert not configs["pc-2"].worm.patient_zero

    # users: smb only, on fileserver (db offers no smb)
    (job,) = configs["pc-1"].users
    assert job.per_minute == 6 and {t.host for t in job.targets} == {"fileserver"}
    assert {t.service for t in job.targets} == {"smb"}
    backup = fileserver.backup
    assert backup is not None and backup.every_s == 20
    assert {t.host: (t.service, t.port) for t in backup.targets} == {
        "pc-1": ("smb", 445), "pc-2": ("smb", 445), "pc-3": ("smb", 445),
        "bare": ("smb", 445)}  # bare has nothing: the backup still tries, and fails
    scanner = configs["pc-1"].scanner
    assert scanner is not None and scanner.cidrs == ("10.0.1.0/24",)
    assert scanner.ports == (22, 440, 441, 442)
    assert configs["pc-2"].scanner is None and configs["pc-2"].backup is None

    seeds = {c.seed for c in configs.values()}
    assert len(seeds) == len(configs)  # derived per host
    again = build_agent_configs(scenario, state, seed=7, secret=b"x" * 32)
    assert {h: c.seed for h, c in again.items()} == {h: c.seed for h, c in configs.items()}
    other = build_agent_configs(scenario, state, seed=8, secret=b"x" * 32)
    assert other["laptop"].seed != configs["laptop"].seed


def test_self_wake_and_ttl(scenario, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    configs = build_agent_configs(scenario, tmp_path, seed=1, secret=b"y" * 16, self_wake=True,
                                  ttl_s=5.0)
    assert configs["laptop"].worm.wake_after_s == 1.5
    assert configs["pc-1"].worm.wake_after_s is None
    assert configs["pc-1"].ttl_s == 5.0


def test_short_secret_and_out_of_range_rate_are_errors(scenario, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AgentError, match="secret"):
        build_agent_configs(scenario, tmp_path, seed=1, secret=b"short")
    (tmp_path / "scenario.yaml").write_text(SCENARIO.replace("rate: 40", "rate: 900"))
    with pytest.raises(ValidationError, match="outside"):
        build_agent_configs(load_scenario(tmp_path / "scenario.yaml"), tmp_path, seed=1,
                            secret=b"y" * 16)


def test_tampered_config_is_a_clear_error(scenario, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_agent_configs(scenario, tmp_path, seed=1, secret=b"z" * 16)["pc-1"]
    data = json.loads(path.read_text())
    data["cidrs"] = ["10.0.1.0/33"]
    path.write_text(json.dumps(data))
    with pytest.raises(AgentError, match="invalid agent config"):
        load_config(path)


def test_agent_command_runs_the_agent_module(tmp_path: Path) -> None:
    assert agent_command(tmp_path / "a.json", python="python3") == [
        "python3", "-m", "testbed.agent", "--config", str(tmp_path / "a.json")]


def test_every_shipped_scenario_builds(tmp_path: Path, repo_root: Path) -> None:
    scenarios = [path for path in sorted((repo_root / "scenarios").glob("*.yaml"))
                 if "\nworm:" in path.read_text()]  # skip sweep/bench files of other formats
    assert len(scenarios) >= 6  # one per example topology
    for path in scenarios:
        configs = build_agent_configs(load_scenario(path), tmp_path / path.stem, seed=1,
                                      secret=b"s" * 16)
        assert any(c.worm.patient_zero for c in configs.values()), path
