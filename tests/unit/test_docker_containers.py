"""Unit tier: what each docker-backend container is, derived from a topology (no engine)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from testbed.backends.docker.containers import (
    LABEL_KIND,
    LABEL_NODE,
    LABEL_PREFIX,
    LABEL_RUN,
    LABEL_STATE_ROOT,
    SOURCE_MOUNT,
    container_specs,
)
from testbed.backends.docker.runtime import in_container
from testbed.backends.fabric.plan import WiringPlan
from testbed.errors import BackendError
from testbed.image import DEFAULT_IMAGE
from testbed.image.image import recipe_digest
from testbed.model import load_topology

TOPOLOGY = textwrap.dedent("""\
    name: unit
    segments:
      lan: {cidr: 10.9.1.0/24}
      srv: {cidr: 10.9.2.0/24}
    hosts:
      cam: {segment: lan, tier: launch-pad, limits: {cpus: 0.25, memory_mb: 64}}
      edr: {segment: srv, tier: server, image: "acme/edr:2"}
    routers:
      gw: {segments: [lan, srv]}
    """)


@pytest.fixture()
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "t.yaml"
    path.write_text(TOPOLOGY)
    topology = load_topology(path)
    plan = WiringPlan.from_topology(topology, "tabcd")
    found = container_specs(topology, plan, "r1", tmp_path / "state" / "r1")
    return {spec.node: spec for spec in found}, tmp_path


def test_every_host_and_router_is_a_container(specs) -> None:  # type: ignore[no-untyped-def]
    by_node, _ = specs
    assert set(by_node) == {"cam", "edr", "gw"}
    assert by_node["gw"].kind == "router" and by_node["cam"].kind == "host"
    assert by_node["cam"].name == "tabcd-cam"  # = its namespace name: unique per machine


def test_limits_come_from_the_topology(specs) -> None:  # type: ignore[no-untyped-def]
    by_node, _ = specs
    assert by_node["cam"].nano_cpus == 250_000_000 and by_node["cam"].mem_limit == "64m"
    assert by_node["edr"].nano_cpus is None and by_node["edr"].mem_limit is None
    assert by_node["gw"].nano_cpus is None


def test_images_default_and_own(specs) -> None:  # type: ignore[no-untyped-def]
    by_node, _ = specs
    assert by_node["cam"].image == DEFAULT_IMAGE and not by_node["cam"].custom_image
    assert by_node["edr"].image == "acme/edr:2" and by_node["edr"].custom_image
    assert by_node["gw"].image == DEFAULT_IMAGE


def test_labels_find_a_run_without_its_ledger(specs) -> None:  # type: ignore[no-untyped-def]
    by_node, tmp_path = specs
    labels = by_node["cam"].labels
    assert labels[LABEL_RUN] == "r1" and labels[LABEL_PREFIX] == "tabcd"
    assert labels[LABEL_NODE] == "cam" and labels[LABEL_KIND] == "host"
    assert labels[LABEL_STATE_ROOT] == str((tmp_path / "state").resolve())


def test_mounts_state_read_write_at_the_same_path_and_source_read_only(specs) -> None:  # type: ignore[no-untyped-def]
    by_node, tmp_path = specs
    binds = by_node["cam"].binds
    state = str((tmp_path / "state" / "r1").resolve())
    assert binds[state] == {"bind": state, "mode": "rw"}
    sources = [b for b in binds.values() if b["bind"].startswith(SOURCE_MOUNT)]
    assert sources == [{"bind": f"{SOURCE_MOUNT}/testbed", "mode": "ro"}]
    assert by_node["cam"].environment["PYTHONPATH"] == SOURCE_MOUNT


def test_router_forwards_and_hosts_do_not(specs) -> None:  # type: ignore[no-untyped-def]
    by_node, _ = specs
    assert by_node["gw"].sysctls["net.ipv4.ip_forward"] == "1"
    assert by_node["cam"].sysctls["net.ipv4.ip_forward"] == "0"


def test_engine_python_becomes_container_python() -> None:
    assert in_container([sys.executable, "-m", "testbed.agent"]) == [
        "python3", "-m", "testbed.agent"]
    assert in_container(["ip", "addr"]) == ["ip", "addr"]
    with pytest.raises(BackendError):
        in_container([])


def test_recipe_digest_is_stable() -> None:
    assert recipe_digest() == recipe_digest() and len(recipe_digest()) == 16


def test_images_of_lists_who_runs_what(tmp_path: Path) -> None:
    from testbed.backends.docker.containers import images_of

    path = tmp_path / "t.yaml"
    path.write_text(TOPOLOGY)
    assert images_of(load_topology(path)) == {DEFAULT_IMAGE: ["cam", "gw"], "acme/edr:2": ["edr"]}


class _DeadEngineApi:
    """The Docker SDK's low-level API after the engine died: every call fails to connect."""

    def containers(self, **_filters: object) -> list[dict[str, object]]:
        import requests.exceptions
        import urllib3.exceptions

        raise requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError(
            "Connection aborted.", ConnectionRefusedError(111, "Connection refused")))


class _DeadEngineClient:
    api = _DeadEngineApi()


def test_engine_death_is_said_in_words_with_the_cleanup_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from testbed.backends.docker.runtime import DockerRuntime
    from testbed.backends.ledger import Ledger
    from testbed.image import EngineUnavailableError

    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    ledger = Ledger(run="office-7", backend="docker", objects={"plan": {"prefix": "tabcd"}})
    runtime = DockerRuntime(client=_DeadEngineClient())  # type: ignore[arg-type]
    with pytest.raises(EngineUnavailableError) as caught:
        runtime.remove_nodes(ledger)
    message = str(caught.value)
    assert "Docker engine is not answering (connection refused)" in message
    assert "`testbed down office-7`" in message and "`testbed down --all`" in message
    assert "Connection aborted" not in message  # words, not the transport's tuple


def test_a_run_whose_engine_died_keeps_its_ledger_for_a_later_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from testbed.backends.docker.runtime import DockerRuntime
    from testbed.backends.fabric.lifecycle import destroy_run
    from testbed.backends.ledger import Ledger, list_ledgers
    from testbed.image import EngineUnavailableError

    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    ledger = Ledger.create("office-8", "docker")
    ledger.objects = {"plan": {"prefix": "tabce"}, "namespaces": []}
    ledger.save()
    with pytest.raises(EngineUnavailableError, match="testbed down office-8"):
        destroy_run(DockerRuntime(client=_DeadEngineClient()), ledger)  # type: ignore[arg-type]
    assert [found.run for found in list_ledgers()] == ["office-8"]


def test_other_engine_errors_are_not_mistaken_for_a_dead_engine() -> None:
    import docker.errors

    from testbed.image import engine_failure

    assert engine_failure(docker.errors.APIError("500 Server Error: no space left")) is None
    assert engine_failure(ConnectionRefusedError(111, "Connection refused")) == \
        "connection refused"
