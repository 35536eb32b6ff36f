"""Fixtures for the privileged tier: deploy topologies safely next to other people's runs.

- ``state_dir``: a private ``TESTBED_STATE_DIR`` for the test (so ``down --all`` only ever sees
  this test's runs).
- ``deploy(topology_or_path_or_yaml_text, backend="netns", name=None)``: deploys under a unique
  run name; every deployment is torn down after the test, and any run left in the private state
  directory (e.g. started through the CLI) is destroyed too.
- ``leftovers(prefix)``: kernel objects carrying a run prefix that still exist (namespaces,
  root-namespace links, root-namespace nftables tables): a test asserts it is empty.
- ``write_topology(text)``: a YAML file in the test's tmp directory.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.backends import get_backend
from testbed.backends.base import Deployment
from testbed.backends.ledger import list_ledgers
from testbed.model import load_topology
from testbed.model.load_topology import topology_from_document
from testbed.model.topology import Topology
from testbed.yamlsource import parse_yaml_text

REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = REPO / "topologies"

SMALL_TOPOLOGY = """
name: small
segments:
  home: {cidr: 192.168.77.0/24}
  office: {cidr: 10.77.1.0/24}
  servers: {cidr: 10.77.2.0/24}
defaults:
  services: [{name: smb, vulns: [MOCK-SMB-1]}]
hosts:
  laptop: {segment: home, tier: launch-pad}
  fileserver: {segment: servers, tier: server, trusts: [pc]}
  db:
    segment: servers
    tier: crown-jewel
    services: [{name: sql, vulns: [MOCK-SQL-1]}, {name: vpn}]
    firewall: {default: deny, rules: [{action: allow, from: fileserver}]}
groups:
  pc: {count: 3, segment: office}
routers:
  vpn: {segments: [home, office], default: allow}
  core:
    segments: [office, servers]
    rules: [{action: allow, from: pc, to: fileserver, ports: 445, proto: tcp}]
"""


def topology_from_text(text: str, name: str = "<test>") -> Topology:
    return topology_from_document(parse_yaml_text(text, name))


@pytest.fixture()
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "state"
    directory.mkdir()
    monkeypatch.setenv("TESTBED_STATE_DIR", str(directory))
    return directory


@pytest.fixture()
def write_topology(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "topology.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def unique_run_name(stem: str = "t") -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def deploy(state_dir: Path) -> Iterator[Callable[..., Any]]:
    deployments: list[Deployment] = []

    def _deploy(topology: Topology | Path | str, backend: str = "netns",
                name: str | None = None) -> Any:
        if isinstance(topology, Path):
            topology = load_topology(topology)
        elif isinstance(topology, str):
            topology = topology_from_text(topology)
        deployment = get_backend(backend).deploy(topology, name or unique_run_name())
        deployments.append(deployment)
        return deployment

    try:
        yield _deploy
    finally:
        errors = []
        for deployment in deployments:
            try:
                deployment.teardown()
            except Exception as err:  # keep tearing down the others
                errors.append(err)
        for ledger in list_ledgers():  # runs started through the CLI or left half-made
            get_backend(ledger.backend).destroy(ledger.run)
        if errors:
            raise errors[0]


def _lines(command: list[str]) -> list[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return result.stdout.splitlines()


def root_links() -> list[str]:
    return [line.split(":")[1].strip().split("@")[0] for line in _lines(["ip", "-o", "link"])
            if line.count(":") >= 2]


def root_tables() -> list[str]:
    return [line.strip() for line in _lines(["nft", "list", "tables"])]


def named_namespaces() -> list[str]:
    return sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []


def find_leftovers(prefix: str) -> dict[str, list[str]]:
    """Objects with the run's prefix that still exist; empty lists when all is clean."""
    return {
        "namespaces": [n for n in named_namespaces() if n.startswith(prefix)],
        "root_links": [n for n in root_links() if n.startswith(prefix)],
        "root_tables": [t for t in root_tables() if prefix in t],
    }


@pytest.fixture()
def leftovers() -> Callable[[str], dict[str, list[str]]]:
    return find_leftovers


@pytest.fixture()
def small_topology() -> str:
    """YAML text of a 6-host, 3-segment, 2-router topology (host firewall included)."""
    return SMALL_TOPOLOGY
