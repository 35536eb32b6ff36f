"""Pre-flight of the emulation backends: the estimate (hosts x memory per host against the memory
this machine has), the message that names the limit and the estimate, and the bad input: a
sim-sized topology on netns or docker refused before anything is created (no root needed: the
check comes first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.backends.preflight import (
    EMULATION_MAX_HOSTS,
    HEADROOM_MIB,
    CapacityError,
    CapacityEstimate,
    available_memory_bytes,
    check_capacity,
    estimate_capacity,
)
from testbed.cli.main import main
from testbed.model.generate import generate_topology
from testbed.model.load_topology import topology_from_document
from testbed.model.topology import Topology
from testbed.yamlsource import SourceDocument

GIB = 2**30
MIB = 2**20


def flat(hosts: int) -> Topology:
    return topology_from_document(SourceDocument(Path("<flat>"), generate_topology("flat", hosts)))


def test_estimate_multiplies_hosts_by_memory_per_host() -> None:
    estimate = estimate_capacity(flat(1000), "netns", host_memory_mib=26,
                                 available_bytes=8 * GIB)
    assert estimate.hosts == 1000
    assert estimate.needed_bytes == 1000 * 26 * MIB
    assert estimate.max_hosts == (8 * 1024 - HEADROOM_MIB) // 26  # 295
    assert not estimate.fits


def test_small_topology_fits() -> None:
    estimate = check_capacity(flat(30), "netns", host_memory_mib=26, available_bytes=8 * GIB)
    assert estimate.fits and estimate.max_hosts == 295


def test_ceiling_holds_on_any_machine() -> None:
    plenty = 10_000 * GIB
    estimate = estimate_capacity(flat(EMULATION_MAX_HOSTS + 1), "docker", host_memory_mib=40,
                                 available_bytes=plenty)
    assert estimate.max_hosts == EMULATION_MAX_HOSTS and not estimate.fits
    unknown = CapacityEstimate("t", "docker", hosts=50, host_memory_mib=40, available_bytes=None)
    assert unknown.max_hosts == EMULATION_MAX_HOSTS and unknown.fits
    assert "an unknown amount of memory free" in unknown.message()


def test_refusal_names_the_limit_the_estimate_and_the_way_out() -> None:
    with pytest.raises(CapacityError) as caught:
        check_capacity(flat(1000), "netns", host_memory_mib=24, available_bytes=4 * GIB)
    message = str(caught.value)
    assert "topology 'flat-1000' needs about 1000 hosts x 24 MiB = 23.4 GiB" in message
    assert "this machine has 4.0 GiB free" in message
    assert "netns holds at most ~149 hosts here" in message
    assert "hint: use --backend sim" in message


def test_too_little_memory_for_even_one_host() -> None:
    estimate = estimate_capacity(flat(3), "netns", host_memory_mib=26,
                                 available_bytes=HEADROOM_MIB * MIB)
    assert estimate.max_hosts == 0 and not estimate.fits


def test_available_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemFree:         1000 kB\n"
                       "MemAvailable:   2097152 kB\n", encoding="ascii")
    assert available_memory_bytes(meminfo) == 2 * GIB
    meminfo.write_text("MemTotal: 5 kB\n", encoding="ascii")
    assert available_memory_bytes(meminfo) is None
    assert available_memory_bytes(tmp_path / "absent") is None
    assert estimate_capacity(flat(3), "netns", host_memory_mib=26,
                             meminfo=tmp_path / "absent").available_bytes is None


# ---- bad input: a sim-sized topology on an emulation backend --------------------------------

@pytest.fixture()
def oversized_scenario(tmp_path: Path) -> Path:
    """A scenario on a generated flat topology above the emulation ceiling (on any machine)."""
    hosts = EMULATION_MAX_HOSTS + 1000
    assert main(["generate", "flat", "--hosts", str(hosts),
                 "--out", str(tmp_path / "big.yaml")]) == 0
    scenario = tmp_path / "big-scenario.yaml"
    scenario.write_text("name: big\ntopology: big.yaml\nduration_s: 10\n"
                        "worm: {profile: classic, patient_zero: laptop}\n", encoding="utf-8")
    return scenario


@pytest.mark.parametrize("backend", ["netns", "docker"])
def test_emulation_refuses_a_sim_sized_topology_before_creating_anything(
        backend: str, oversized_scenario: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("TESTBED_STATE_DIR", str(state))
    out = tmp_path / "run"
    assert main(["run", str(oversized_scenario), "--backend", backend, "--out", str(out),
                 "--no-live"]) == 3
    err = capsys.readouterr().err
    assert f"topology 'flat-{EMULATION_MAX_HOSTS + 1000}' needs about" in err
    assert f"{backend} holds at most ~" in err and "hint: use --backend sim" in err
    assert not out.exists()  # no run directory
    assert list(state.iterdir()) == []  # no ledger, no state


def test_the_same_topology_runs_on_sim(oversized_scenario: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", str(oversized_scenario), "--backend", "sim", "--out", str(out),
                 "--duration", "5", "--json"]) == 0
    assert (out / "results.json").is_file()


def test_a_deployment_without_agents_counts_only_its_nodes() -> None:
    topology = flat(1400)
    with pytest.raises(CapacityError):
        check_capacity(topology, "netns", host_memory_mib=26, available_bytes=16 * GIB)
    estimate = check_capacity(topology, "netns", host_memory_mib=1, available_bytes=16 * GIB,
                              memory_of="node")
    assert estimate.fits
    with pytest.raises(CapacityError, match=r"x 1 MiB = 9\.8 GiB of node memory"):
        check_capacity(flat(10_000), "netns", host_memory_mib=1, available_bytes=16 * GIB,
                       memory_of="node")
