"""Issue 17 without root: the pre-flight's estimates (memory with multiplexed agents, open files,
neighbour entries, nftables objects) and their refusals, the agent layout (groups, records), and
the group config (what hosts share written once, each host's config read back exactly)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from testbed.agent.config import dump_config
from testbed.agent.multiplex import GroupMember, dump_group, load_group, write_group
from testbed.backends.fabric import lifecycle
from testbed.backends.fabric.agents import (
    DESCRIPTOR_RESERVE,
    AgentLayout,
    host_descriptors,
    plan_agent_layout,
    read_agent_layout,
    requested_layout,
    write_agent_layout,
)
from testbed.backends.fabric.plan import WiringPlan, neighbour_entries, segment_nodes
from testbed.backends.netns import NetnsRuntime
from testbed.backends.preflight import (
    CapacityError,
    check_deployment,
    estimate_capacity,
    estimate_descriptors,
    estimate_neighbours,
    free_file_handles,
    nft_objects,
)
from testbed.errors import AgentError, BackendError
from testbed.model.generate import generate_topology
from testbed.model.load_scenario import load_scenario
from testbed.model.load_topology import topology_from_document
from testbed.model.topology import Topology
from testbed.runner.agent_configs import build_agent_configs, write_agent_configs
from testbed.yamlsource import SourceDocument

GIB = 2**30


def generated(kind: str, hosts: int) -> Topology:
    return topology_from_document(SourceDocument(Path(f"<{kind}>"),
                                                 generate_topology(kind, hosts)))


# ---- memory ----------------------------------------------------------------------------------

def test_multiplexed_memory_counts_hosts_processes_and_nftables() -> None:
    topology = generated("campus", 1000)
    estimate = estimate_capacity(topology, "netns", host_memory_mib=1.5, fixed_mib=60.0,
                                 fixed_detail="2 multiplexed agent process(es) x 30 MiB",
                                 available_bytes=8 * GIB)
    assert estimate.needed_bytes == int((1000 * 1.5 + 60) * 2**20)
    assert estimate.fits
    assert "needs about 1000 hosts x 1.5 MiB + 60 MiB (2 multiplexed agent process(es) x 30 MiB)" \
        in estimate.message()
    small = estimate_capacity(topology, "netns", host_memory_mib=1.5, fixed_mib=60.0,
                              available_bytes=2 * GIB)
    assert small.max_hosts == int((2048 - 512 - 60) / 1.5) and not small.fits  # 984 < 1000


def test_nftables_objects_grow_with_hosts_and_rules() -> None:
    small, large = generated("enterprise", 100), generated("enterprise", 1000)
    assert 0 < nft_objects(small) < nft_objects(large)
    assert nft_objects(large) >= 10 * len(large.hosts)  # a guard table in every node


# ---- open files ------------------------------------------------------------------------------

def test_descriptors_refused_name_the_limit_and_what_fits() -> None:
    estimate = estimate_descriptors(5000, [15_000, 15_000], limit=4096, system_free=10**6)
    assert not estimate.fits and estimate.busiest == 15_000 and estimate.total == 30_000
    assert estimate.max_hosts == 1365  # 4096 / 15000 x 5000
    message = estimate.message()
    assert "about 15,000 open files in the busiest of 2 agent process(es)" in message
    assert "RLIMIT_NOFILE is 4,096" in message and "1,365 hosts would fit" in message


def test_descriptors_against_the_machines_free_handles() -> None:
    estimate = estimate_descriptors(1000, [4000], limit=100_000, system_free=2000)
    assert not estimate.fits and estimate.max_hosts == 500
    assert "2,000 file handles free (fs.file-max)" in estimate.message()
    assert estimate_descriptors(1000, [4000], limit=100_000, system_free=None).fits


def test_free_file_handles_read_from_proc(tmp_path: Path) -> None:
    file_nr = tmp_path / "file-nr"
    file_nr.write_text("3000\t0\t100000\n")
    assert free_file_handles(file_nr) == 97_000
    assert free_file_handles(tmp_path / "absent") is None


# ---- neighbour entries -----------------------------------------------------------------------

def test_neighbour_entries_match_the_plan() -> None:
    topology = generated("campus", 1000)
    plan = WiringPlan.from_topology(topology, "tabcd")
    assert neighbour_entries(segment_nodes(topology).values()) == plan.neighbour_entries_needed()


def test_neighbours_refused_when_the_limit_cannot_be_raised() -> None:
    sizes = segment_nodes(generated("flat", 3000))
    needed = neighbour_entries(sizes.values())
    stuck = estimate_neighbours(needed, max(sizes.values()), limit=1024, in_use=0,
                                raisable=False)
    assert not stuck.fits
    assert stuck.max_segment * (stuck.max_segment - 1) + 64 * stuck.max_segment <= 512
    assert (stuck.max_segment + 1) * stuck.max_segment + 64 * (stuck.max_segment + 1) > 512
    assert "net.ipv4.neigh.default.gc_thresh3 = 1,024" in stuck.message()
    assert "segments of up to ~" in stuck.message()
    assert estimate_neighbours(needed, 3001, limit=1024, in_use=0, raisable=True).fits


def test_check_deployment_names_every_limit_exceeded() -> None:
    topology = generated("flat", 3000)
    memory = estimate_capacity(topology, "netns", host_memory_mib=1.5, available_bytes=GIB)
    files = estimate_descriptors(3000, [20_000], limit=1024, system_free=None)
    sizes = segment_nodes(topology)
    neighbours = estimate_neighbours(neighbour_entries(sizes.values()), 3001, limit=1024,
                                     in_use=0, raisable=False)
    with pytest.raises(CapacityError) as caught:
        check_deployment(memory, files, neighbours)
    message = str(caught.value)
    for part in ("GiB of agent memory", "RLIMIT_NOFILE is 1,024", "gc_thresh3 = 1,024",
                 "hint: use --backend sim"):
        assert part in message
    check_deployment(estimate_capacity(topology, "netns", host_memory_mib=1.5,
                                       available_bytes=64 * GIB))


def test_the_lifecycle_preflight_refuses_5000_hosts_per_host_but_fits_them_multiplexed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    topology = generated("campus", 5000)
    monkeypatch.setattr("testbed.backends.preflight.available_memory_bytes",
                        lambda *_args: 20 * GIB)
    monkeypatch.setattr("testbed.backends.fabric.lifecycle.descriptor_limit", lambda: 20_000)
    monkeypatch.setattr("testbed.backends.preflight.descriptor_limit", lambda: 20_000)
    monkeypatch.setattr("testbed.backends.preflight.os.access", lambda *_args: True)
    monkeypatch.setenv("TESTBED_AGENTS", "per-host")
    with pytest.raises(CapacityError, match=r"5000 hosts x 26 MiB"):
        lifecycle.preflight(NetnsRuntime(), topology)
    monkeypatch.setenv("TESTBED_AGENTS", "multiplexed")
    layout = lifecycle.preflight(NetnsRuntime(), topology)
    assert layout is not None and layout.multiplexed
    assert max(layout.descriptors) <= 20_000
    assert sum(len(group) for group in layout.groups) == 5000


# ---- the agent layout ------------------------------------------------------------------------

def test_layout_groups_cover_every_host_once_and_respect_the_descriptor_limit() -> None:
    topology = generated("campus", 2000)
    netns = {name: f"/run/netns/x-{name}" for name in topology.hosts}
    layout = plan_agent_layout(topology, "multiplexed", netns, cpus=2, descriptor_limit=20_000,
                               max_processes=8)
    assert layout.processes(2000) == 2
    hosts = [host for group in layout.groups for host, _ in group]
    assert sorted(hosts) == sorted(topology.hosts)
    tight = plan_agent_layout(topology, "multiplexed", netns, cpus=2, descriptor_limit=2000,
                              max_processes=64)
    per_host = [host_descriptors(h) for h in topology.hosts.values()]
    assert tight.processes(2000) >= sum(per_host) // (2000 - DESCRIPTOR_RESERVE)
    assert max(tight.descriptors) <= 2000
    flat = generated("flat", 30)
    small = plan_agent_layout(flat, "multiplexed", dict.fromkeys(flat.hosts, ""),
                              cpus=8, descriptor_limit=20_000, max_processes=16)
    assert small.processes(30) == 1  # a few hosts never pay for a second interpreter
    assert plan_agent_layout(topology, "per-host", netns, cpus=2, descriptor_limit=1,
                             max_processes=1) == AgentLayout("per-host")


def test_layout_record_round_trips_and_defaults_to_per_host(tmp_path: Path) -> None:
    assert not read_agent_layout(tmp_path).multiplexed
    layout = AgentLayout("multiplexed", ((("a", "/run/netns/x-a"), ("b", "/run/netns/x-b")),),
                         (300,))
    write_agent_layout(tmp_path, layout)
    assert read_agent_layout(tmp_path) == layout
    moved = layout.with_namespaces({"a": "/run/netns/y-a", "b": "/run/netns/y-b"})
    assert moved.groups == ((("a", "/run/netns/y-a"), ("b", "/run/netns/y-b")),)
    assert moved.descriptors == layout.descriptors


def test_the_layout_is_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TESTBED_AGENTS", raising=False)
    assert NetnsRuntime().agent_layout() == "multiplexed"
    monkeypatch.setenv("TESTBED_AGENTS", "per-host")
    assert NetnsRuntime().agent_layout() == "per-host"
    monkeypatch.setenv("TESTBED_AGENTS", "threads")
    with pytest.raises(BackendError, match="multiplexed, per-host"):
        requested_layout("multiplexed")


# ---- group configs ---------------------------------------------------------------------------

@pytest.fixture()
def scenario_path(tmp_path: Path) -> Path:
    (tmp_path / "topology.yaml").write_text(json.dumps(generate_topology("enterprise", 60)))
    path = tmp_path / "scenario.yaml"
    path.write_text("name: g\ntopology: topology.yaml\nduration_s: 30\n"
                    "worm: {profile: classic, patient_zero: laptop, start_s: 2}\n"
                    "benign:\n  users:\n    - {hosts: laptop, targets: any, per_minute: 3}\n")
    return path


def test_a_group_config_reads_back_every_hosts_own_config(scenario_path: Path,
                                                          tmp_path: Path) -> None:
    scenario = load_scenario(scenario_path)
    configs = build_agent_configs(scenario, tmp_path / "state", seed=3, secret=b"k" * 32,
                                  self_wake=True)
    members = [GroupMember(config, f"/run/netns/x-{name}") for name, config in configs.items()]
    document = dump_group(members)
    assert "address_book" in document["shared"] and "secret" in document["shared"]
    assert all("address_book" not in entry["config"] for entry in document["hosts"])
    path = tmp_path / "group.json"
    write_group(path, members)
    assert os.stat(path).st_mode & 0o777 == 0o600  # it holds the secret
    loaded = load_group(path)
    assert [m.netns for m in loaded] == [m.netns for m in members]
    for member, original in zip(loaded, members, strict=True):
        assert dump_config(member.config) == dump_config(original.config)
    books = {id(member.config.address_book) for member in loaded}
    assert len(books) == 1  # one address book in memory, not one per host


def test_a_bad_group_config_names_the_host(tmp_path: Path, scenario_path: Path) -> None:
    scenario = load_scenario(scenario_path)
    configs = build_agent_configs(scenario, tmp_path, seed=3, secret=b"k" * 32)
    members = [GroupMember(config, "/x") for config in configs.values()]
    document = dump_group(members)
    document["hosts"][2]["config"]["address"] = "not-an-address"
    path = tmp_path / "group.json"
    path.write_text(json.dumps(document))
    with pytest.raises(AgentError, match="host #2: invalid agent config"):
        load_group(path)
    path.write_text("{}")
    with pytest.raises(AgentError, match="not an agent group config"):
        load_group(path)
    with pytest.raises(AgentError, match="at least one host"):
        dump_group([])
    one = dataclasses.replace(members[0].config)
    with pytest.raises(AgentError, match="twice"):
        write_group(path, [GroupMember(one, "/a"), GroupMember(one, "/b")])
        load_group(path)


def test_configs_follow_the_recorded_layout(scenario_path: Path, tmp_path: Path) -> None:
    scenario = load_scenario(scenario_path)
    state = tmp_path / "state"
    names = list(scenario.topology.hosts)
    half = len(names) // 2
    write_agent_layout(state, AgentLayout("multiplexed", (
        tuple((n, f"/run/netns/x-{n}") for n in names[:half]),
        tuple((n, f"/run/netns/x-{n}") for n in names[half:]))))
    paths = write_agent_configs(scenario, state, seed=1, secret=b"s" * 32)
    assert set(paths) == set(names) and len(set(paths.values())) == 2
    assert not (state / "agents" / f"{names[0]}.json").exists()
    assert [m.config.host for m in load_group(paths[names[0]])] == names[:half]
    per_host = write_agent_configs(scenario, tmp_path / "plain", seed=1, secret=b"s" * 32)
    assert len(set(per_host.values())) == len(names)  # no record: one file per host, as before
    asked = write_agent_configs(scenario, state, seed=1, secret=b"s" * 32, layout="per-host")
    assert asked[names[0]] == state / "agents" / f"{names[0]}.json"  # for agents started by hand
    with pytest.raises(AgentError, match="only 'per-host'"):
        write_agent_configs(scenario, state, seed=1, secret=b"s" * 32, layout="threads")
