"""Docker tier: every example topology (up to 60 hosts) as containers; reach agrees with the
planner; teardown (also `testbed down --all` after kill -9 of the deployer) leaves nothing.

Each test uses its own TESTBED_STATE_DIR, so `down --all` here never touches other runs. Only
addresses of topologies these tests built are ever contacted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.backends import get_backend
from testbed.backends.docker.containers import LABEL_KIND, LABEL_NODE, LABEL_PREFIX, LABEL_RUN
from testbed.backends.fabric import FabricDeployment
from testbed.errors import BackendError
from testbed.model import load_topology
from testbed.reach import measure_reachability

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "topologies").glob("*.yaml"))
MAX_HOSTS = 60


@pytest.fixture()
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("TESTBED_STATE_DIR", str(state))
    return state


def leftovers(client, prefix: str) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """Every kind of object a run with this prefix could leave behind."""
    containers = client.api.containers(all=True, filters={"label": f"{LABEL_PREFIX}={prefix}"})
    namespaces = [name for name in os.listdir("/run/netns") if name.startswith(prefix)] \
        if os.path.isdir("/run/netns") else []
    networks = [n.name for n in client.networks.list() if n.name.startswith(prefix)]
    return {"containers": [c["Names"][0] for c in containers], "namespaces": namespaces,
            "networks": networks}


def nothing_left(found: dict[str, list[str]]) -> bool:
    return not any(found.values())


def small_examples() -> list[Path]:
    return [path for path in EXAMPLES if len(load_topology(path).hosts) <= MAX_HOSTS]


def run_testbed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "testbed", *args], capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.mark.parametrize("path", small_examples(), ids=lambda p: p.stem)
def test_example_deploys_and_reach_agrees(client, state_dir: Path, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Through the command line, as a user would: up, reach, down."""
    topology = load_topology(path)
    run = f"dk-{path.stem}"
    up = run_testbed("up", str(path), "--backend", "docker", "--name", run)
    assert up.returncode == 0, up.stderr
    prefix = json.loads((state_dir / run / "ledger.json").read_text())["objects"]["plan"]["prefix"]
    try:
        containers = client.api.containers(filters={"label": f"{LABEL_PREFIX}={prefix}"})
        nodes = {c["Labels"][LABEL_NODE]: c for c in containers}
        assert set(nodes) == set(topology.hosts) | set(topology.routers)
        assert {c["Labels"][LABEL_KIND] for c in containers} == (
            {"host", "router"} if topology.routers else {"host"})
        assert all(c["HostConfig"]["NetworkMode"] == "none" for c in containers)

        reach = run_testbed("reach", run, "--json")
        report = json.loads(reach.stdout)
        assert report["probes"] > 0, "the example declares services: reach must probe something"
        assert reach.returncode == 0 and report["ok"], report["mismatches"][:5]
        assert 0 < report["reachable"] == report["expected_reachable"] <= report["probes"]
        deployment = get_backend("docker").attach(run)
        assert set(deployment.egress_counters().values()) == {0}
    finally:
        down = run_testbed("down", run)
    assert down.returncode == 0, down.stderr
    assert nothing_left(leftovers(client, prefix)), leftovers(client, prefix)
    assert not (state_dir / run / "ledger.json").exists()


SMALL = textwrap.dedent("""\
    name: dk-small
    segments:
      lan: {cidr: 10.77.1.0/24}
      srv: {cidr: 10.77.2.0/24}
    hosts:
      laptop: {segment: lan, tier: launch-pad, limits: {cpus: 0.5, memory_mb: 96},
               services: [{name: ssh}]}
      files: {segment: srv, tier: server, services: [{name: smb, vulns: [MOCK-SMB-1]}]}
    routers:
      gw: {segments: [lan, srv], default: deny,
           rules: [{action: allow, from: laptop, to: files, ports: 445, proto: tcp}]}
    """)


@pytest.fixture()
def small(tmp_path: Path, state_dir: Path) -> Iterator[FabricDeployment]:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    deployment = get_backend("docker").deploy(load_topology(path), "dk-small")
    try:
        yield deployment
    finally:
        deployment.teardown()


def test_containers_have_limits_labels_mounts_and_no_route_out(client, small) -> None:  # type: ignore[no-untyped-def]
    laptop = client.api.inspect_container(small.plan.nodes["laptop"].netns)
    assert laptop["HostConfig"]["NanoCpus"] == 500_000_000
    assert laptop["HostConfig"]["Memory"] == 96 * 2**20
    assert laptop["Config"]["Labels"][LABEL_RUN] == "dk-small"
    mounts = {m["Destination"]: m for m in laptop["Mounts"]}
    assert mounts["/opt/testbed/src/testbed"]["RW"] is False
    assert mounts[str(small.state_dir.resolve())]["RW"] is True
    files = client.api.inspect_container(small.plan.nodes["files"].netns)
    assert files["HostConfig"]["NanoCpus"] in (0, None) and files["HostConfig"]["Memory"] == 0

    for node in ("laptop", "files", "gw"):
        routes = small.run(node, ["ip", "-4", "route"]).stdout.decode()
        assert "default" not in routes, routes
        for line in routes.splitlines():
            assert line.split()[0].startswith("10.77."), line
        links = small.run(node, ["ip", "-o", "link"]).stdout.decode().splitlines()
        names = sorted(line.split(": ")[1].split("@")[0] for line in links)
        assert names[0] == "lo" and len(names) == (3 if node == "gw" else 2)


def test_agent_runs_inside_with_the_source_mounted_read_only(small) -> None:  # type: ignore[no-untyped-def]
    out = small.state_dir / "hosts" / "laptop"
    out.mkdir(parents=True)
    code = ("import os, socket, sys, testbed, pathlib; "
            "pathlib.Path(sys.argv[1]).write_text(socket.gethostname() + ' ' + testbed.__file__ "
            "+ ' ' + os.environ['TESTBED_MARK']); "
            "open('/opt/testbed/src/testbed/x', 'w')")
    process = small.spawn("laptop", [sys.executable, "-c", code, str(out / "hello")],
                          env={"TESTBED_MARK": "m1"}, stderr=subprocess.PIPE)
    _, stderr = process.communicate(timeout=30)
    assert (out / "hello").read_text() == "laptop /opt/testbed/src/testbed/__init__.py m1"
    assert process.returncode != 0 and b"Read-only file system" in stderr
    # The process lived in the container (its own pid namespace), not on the engine's machine.
    pid1 = small.run("laptop", ["cat", "/proc/1/cmdline"]).stdout
    assert pid1.startswith(b"/sbin/docker-init") or pid1.startswith(b"sleep")


def test_exec_runs_inside_the_container(small) -> None:  # type: ignore[no-untyped-def]
    """`testbed exec` on a docker run sees the container, not the machine: its hostname and its
    own PID 1 (the bug: exec entered only the network namespace)."""
    hostname = run_testbed("exec", small.run_name, "laptop", "--", "hostname")
    assert hostname.returncode == 0, hostname.stderr
    assert hostname.stdout.strip() == "laptop" != socket.gethostname()
    pid1 = run_testbed("exec", small.run_name, "laptop", "--", "cat", "/proc/1/cmdline")
    assert pid1.returncode == 0, pid1.stderr
    container_init = pid1.stdout.split("\0")[0]
    machine_init = Path("/proc/1/cmdline").read_bytes().split(b"\0")[0].decode()
    assert container_init in ("/sbin/docker-init", "sleep") and container_init != machine_init
    status = run_testbed("exec", small.run_name, "files", "--", "sh", "-c", "exit 7")
    assert status.returncode == 7, status.stderr


def test_quarantine_cuts_a_container_off_and_release_restores(small) -> None:  # type: ignore[no-untyped-def]
    before = measure_reachability(small, timeout=1.0)
    assert before.ok and any(o.reachable for o in before.outcomes)
    small.quarantine("files")
    during = measure_reachability(small, timeout=1.0)
    assert during.ok, during.mismatches
    assert not any(o.reachable for o in during.outcomes if "files" in
                   (o.probe.source, o.probe.target))
    small.release("files")
    after = measure_reachability(small, timeout=1.0)
    assert after.ok and sum(o.reachable for o in after.outcomes) == \
        sum(o.reachable for o in before.outcomes)


def test_missing_image_is_a_clear_error_and_leaves_nothing(client, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                           state_dir: Path) -> None:
    path = tmp_path / "own-image.yaml"
    path.write_text(SMALL.replace("tier: server,", "tier: server, image: no-such-image:1,"))
    with pytest.raises(BackendError, match=r"no-such-image:1.*not on this machine"):
        get_backend("docker").deploy(load_topology(path), "dk-noimage")
    assert not (state_dir / "dk-noimage").exists()
    assert client.api.containers(all=True, filters={"label": f"{LABEL_RUN}=dk-noimage"}) == []


DEPLOYER = textwrap.dedent("""\
    import sys, time
    from testbed.backends import get_backend
    from testbed.model import load_topology
    deployment = get_backend("docker").deploy(load_topology(sys.argv[1]), sys.argv[2])
    print(deployment.plan.prefix, flush=True)
    time.sleep(600)
    """)


@pytest.mark.parametrize("moment", ["during", "after"])
def test_down_all_after_kill_9_leaves_nothing(client, tmp_path: Path, state_dir: Path,  # type: ignore[no-untyped-def]
                                              moment: str) -> None:
    """kill -9 of the deployer half-way through starting containers, or once it is up."""
    path = REPO / "topologies" / "smb-flat.yaml" if moment == "during" else tmp_path / "s.yaml"
    if moment == "after":
        path.write_text(SMALL)
    run = f"dk-killed-{moment}"
    deployer = subprocess.Popen([sys.executable, "-c", DEPLOYER, str(path), run],
                                stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert deployer.stdout is not None
    ledger = state_dir / run / "ledger.json"
    try:
        if moment == "after":
            prefix = deployer.stdout.readline().strip()
            assert prefix, "the deployer died before deploying"
        else:
            deadline = time.monotonic() + 120
            prefix = ""
            while time.monotonic() < deadline and deployer.poll() is None:
                if ledger.exists():
                    # the ledger exists before the plan is recorded in it: poll until it is
                    plan = json.loads(ledger.read_text())["objects"].get("plan")
                    prefix = plan["prefix"] if plan else ""
                    if prefix and leftovers(client, prefix)["containers"]:
                        break
                time.sleep(0.05)
            assert prefix and deployer.poll() is None, "could not catch the deployer mid-way"
        deployer.send_signal(signal.SIGKILL)
        deployer.wait(10)
        assert leftovers(client, prefix)["containers"]  # the crash left the run behind
        if moment == "during":
            assert json.loads(ledger.read_text())["status"] == "deploying"

        down = run_testbed("down", "--all")
        assert down.returncode == 0, down.stderr
        assert nothing_left(leftovers(client, prefix)), leftovers(client, prefix)
        assert not ledger.exists()
    finally:  # a failure above must not leave the deployer and its run behind
        if deployer.poll() is None:
            deployer.kill()
            deployer.wait(10)
        if ledger.exists():
            run_testbed("down", "--all")


def test_down_all_removes_containers_that_outlived_their_state(client, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                               state_dir: Path) -> None:
    """After a reboot /run is empty but stopped containers remain: found by label."""
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    deployment = get_backend("docker").deploy(load_topology(path), "dk-orphan")
    prefix = deployment.plan.prefix
    # Simulate the lost state: drop the ledger and namespace names, keep the containers.
    from testbed.kernel import remove_named_netns

    for name in deployment.plan.namespaces:
        remove_named_netns(name)
    (deployment.state_dir / "ledger.json").unlink()
    runs = {info.name: info for info in get_backend("docker").runs()}
    assert runs["dk-orphan"].pid is None and runs["dk-orphan"].hosts == 3
    down = subprocess.run([sys.executable, "-m", "testbed", "down", "--all"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert down.returncode == 0, down.stderr
    assert nothing_left(leftovers(client, prefix)), leftovers(client, prefix)
