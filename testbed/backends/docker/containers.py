"""The containers of a docker-backend run: what each one is; starting, finding, removing them.

Owns: the container description of every host and router (image, labels, CPU and memory limits,
mounts), starting one with ``network_mode=none`` and giving its network namespace a name under
/run/netns (as ``ip netns attach`` does) so that the fabric can wire it like any other namespace,
and removing containers by label (which works without any ledger, after ``kill -9`` of the
deployer). It does not wire networks: that is the fabric's (:mod:`testbed.backends.fabric`).

Labels on every container::

    org.testbed.run         run name
    org.testbed.prefix      the run's unique kernel-object prefix (also in the ledger)
    org.testbed.node        host or router name
    org.testbed.kind        "host" or "router"
    org.testbed.state-root  the state root (TESTBED_STATE_DIR) the run belongs to
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import testbed
from testbed.backends.base import Progress, state_root
from testbed.backends.fabric.plan import NodePlan, WiringPlan
from testbed.backends.fabric.wiring import node_sysctls, parallel
from testbed.errors import BackendError
from testbed.image import DEFAULT_IMAGE, EngineUnavailableError, engine_failure
from testbed.kernel import kill_processes_in, name_existing_netns, named_netns_path
from testbed.model.topology import Topology

if TYPE_CHECKING:
    import docker

__all__ = [
    "LABEL_KIND",
    "LABEL_NODE",
    "LABEL_PREFIX",
    "LABEL_RUN",
    "LABEL_STATE_ROOT",
    "SOURCE_MOUNT",
    "ContainerSpec",
    "check_images",
    "container_spec",
    "container_specs",
    "images_of",
    "list_testbed_containers",
    "remove_containers",
    "start_container",
]

LABEL_RUN = "org.testbed.run"
LABEL_PREFIX = "org.testbed.prefix"
LABEL_NODE = "org.testbed.node"
LABEL_KIND = "org.testbed.kind"
LABEL_STATE_ROOT = "org.testbed.state-root"
SOURCE_MOUNT = "/opt/testbed/src"
"""Where the testbed source is mounted read-only: ``python3 -m testbed.agent`` works from it."""
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ContainerSpec:
    """One container of a run, as data (unit-tested without an engine)."""

    name: str  # container name = the node's namespace name (unique on this machine)
    node: str
    kind: str  # "host" or "router"
    image: str
    labels: dict[str, str]
    binds: dict[str, Mapping[str, str]]  # host path -> {"bind": path inside, "mode": "ro"|"rw"}
    environment: dict[str, str]
    nano_cpus: int | None = None
    mem_limit: str | None = None
    custom_image: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)  # written from outside once started


def state_root_label() -> str:
    return str(state_root().resolve())


def source_directory() -> Path:
    """The directory holding the ``testbed`` package (mounted into every container)."""
    return Path(testbed.__file__).resolve().parent


def container_spec(topology: Topology, plan: WiringPlan, node: NodePlan, run_name: str,
                   state_dir: Path) -> ContainerSpec:
    """One host or router of ``topology`` as a container description."""
    package = source_directory()
    state = str(state_dir.resolve())
    # The run directory at the same path inside as outside: agent configs and event logs name
    # host paths, and they stay valid in every container (out of band, never on the network).
    binds: dict[str, Mapping[str, str]] = {
        state: {"bind": state, "mode": "rw"},
        str(package): {"bind": f"{SOURCE_MOUNT}/{package.name}", "mode": "ro"},
    }
    labels = {LABEL_RUN: run_name, LABEL_PREFIX: plan.prefix, LABEL_NODE: node.name,
              LABEL_KIND: node.kind, LABEL_STATE_ROOT: state_root_label()}
    environment = {"PYTHONPATH": SOURCE_MOUNT, "PYTHONDONTWRITEBYTECODE": "1",
                   "PYTHONUNBUFFERED": "1", "TESTBED_RUN": run_name,
                   "TESTBED_NODE": node.name, "PATH": CONTAINER_PATH}
    image, nano_cpus, mem_limit = DEFAULT_IMAGE, None, None
    if node.kind == "host":
        host = topology.hosts[node.name]
        image = host.image or DEFAULT_IMAGE
        if host.cpus is not None:
            nano_cpus = int(host.cpus * 1e9)
        if host.memory_mb is not None:
            mem_limit = f"{host.memory_mb}m"
    return ContainerSpec(
        name=node.netns, node=node.name, kind=node.kind, image=image, labels=labels,
        binds=binds, environment=environment, nano_cpus=nano_cpus, mem_limit=mem_limit,
        custom_image=image != DEFAULT_IMAGE, sysctls=node_sysctls(node.kind))


def container_specs(topology: Topology, plan: WiringPlan, run_name: str,
                    state_dir: Path) -> list[ContainerSpec]:
    """Every host and router of ``topology`` as a container description."""
    return [container_spec(topology, plan, node, run_name, state_dir)
            for node in plan.nodes.values()]


def images_of(topology: Topology) -> dict[str, list[str]]:
    """Image -> the hosts and routers that run it."""
    users: dict[str, list[str]] = {}
    for host in topology.hosts.values():
        users.setdefault(host.image or DEFAULT_IMAGE, []).append(host.name)
    for router in topology.routers:
        users.setdefault(DEFAULT_IMAGE, []).append(router)
    return users


def check_images(client: docker.DockerClient, topology: Topology) -> None:
    """Every image must be on this machine already: a deployment never pulls."""
    import docker.errors

    for image, users in sorted(images_of(topology).items()):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            hint = ("build it: testbed image build" if image == DEFAULT_IMAGE else
                    f"load or build it first (docker load / docker build -t {image}); "
                    "it needs python3")
            raise BackendError(f"docker image {image!r} (used by {', '.join(users[:5])}) is not "
                               f"on this machine (hint: {hint})") from None
        except docker.errors.DockerException as err:
            raise BackendError(f"cannot inspect docker image {image!r}: {err}") from err


def _create_and_start(client: docker.DockerClient, spec: ContainerSpec) -> int:
    """Create and start one container; return the pid of its main process."""
    api = client.api
    host_config = api.create_host_config(
        network_mode="none", init=True, binds=spec.binds, nano_cpus=spec.nano_cpus,
        mem_limit=spec.mem_limit, auto_remove=False)
    created = api.create_container(
        image=spec.image, name=spec.name, hostname=spec.node, labels=spec.labels,
        environment=spec.environment, host_config=host_config, detach=True,
        # A custom image keeps its own command (its service, its EDR); stdin kept open keeps
        # a shell- or REPL-like command alive. The testbed image sleeps.
        stdin_open=spec.custom_image,
        command=None if spec.custom_image else ["sleep", "infinity"])
    api.start(created["Id"])
    state = api.inspect_container(created["Id"])["State"]
    pid = int(state.get("Pid") or 0)
    if not state.get("Running") or pid <= 0:
        logs = api.logs(created["Id"], tail=5).decode(errors="replace").strip()
        raise BackendError(f"container of {spec.node} ({spec.image}) stopped right after it "
                           f"started (exit {state.get('ExitCode')}): its command must keep "
                           f"running" + (f"; last output: {logs}" if logs else ""))
    return pid


def start_container(client: docker.DockerClient, spec: ContainerSpec) -> str:
    """Start the container and name its network namespace /run/netns/NAME (with its sysctls
    set); return that path. The name keeps the namespace alive until the fabric removes it, as
    with a netns node."""
    import docker.errors

    try:
        pid = _create_and_start(client, spec)
    except docker.errors.DockerException as err:
        raise BackendError(f"cannot start the container of {spec.node} ({spec.image}): "
                           f"{err}") from err
    return name_existing_netns(spec.name, f"/proc/{pid}/ns/net", spec.sysctls)


def list_testbed_containers(client: docker.DockerClient,
                            **labels: str) -> list[dict[str, Any]]:
    """Testbed containers (running or not) of this state root, filtered by more labels.

    Keyword names are label suffixes: ``prefix="tk3q9"`` filters on org.testbed.prefix.
    """
    filters = [f"{LABEL_STATE_ROOT}={state_root_label()}"]
    filters += [f"org.testbed.{key.replace('_', '-')}={value}" for key, value in labels.items()]
    try:
        return list(client.api.containers(all=True, filters={"label": filters}))
    except Exception as err:
        reason = engine_failure(err)
        if reason is not None:
            raise EngineUnavailableError(f"the Docker engine is not answering ({reason})",
                                         reason=reason) from err
        raise BackendError(f"cannot list containers: {err}") from err


def remove_containers(client: docker.DockerClient, prefix: str, *,
                      progress: Progress | None = None) -> int:
    """Force-remove every container of the run with this prefix; return how many."""
    import docker.errors

    found = list_testbed_containers(client, prefix=prefix)
    failures: list[tuple[str, Exception]] = []
    # SIGKILL every process of the run first (found through the named namespaces): the engine
    # then only has to delete exited containers, several times faster than stopping them.
    kill_processes_in(named_netns_path(str(c["Names"][0]).lstrip("/"))
                      for c in found if c.get("Names"))

    def remove(container: dict[str, Any]) -> None:
        try:
            client.api.remove_container(container["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass
        except Exception as err:  # the SDK lets the transport's errors through
            failures.append((str(container.get("Names")), err))

    parallel(found, remove, stage="containers-down", progress=progress)
    for _name, err in failures:
        reason = engine_failure(err)
        if reason is not None:
            raise EngineUnavailableError(f"the Docker engine is not answering ({reason})",
                                         reason=reason) from err
    if failures:
        raise BackendError("could not remove containers: "
                           + "; ".join(f"{name}: {err}" for name, err in failures[:3]))
    return len(found)
