#!/usr/bin/env python3
"""Thousands of real hosts on one machine (issue 17): deploy, agents ready, teardown and agent
memory for generated campus topologies, against a bare-namespace floor; then one run of a
scenario with benign users and detectors on the largest topology.

Usage (root)::

    python benchmarks/scale.py                          # 100,500,1000,2000,5000 + a 60 s run
    python benchmarks/scale.py --sizes 100,500 --run-hosts 0      # quick, no scenario run
    TESTBED_AGENTS=per-host python benchmarks/scale.py --sizes 100 --run-hosts 0  # old layout

For every size: ``testbed generate campus --hosts N``; the *floor*: create that many bare named
namespaces (plus the fabric) with their veths on the segment bridges, then delete them; then
deploy the topology on netns, write the agents' configs and start them (multiplexed unless
``TESTBED_AGENTS=per-host``) until every host's agent is ready, read the agents' resident memory
(VmRSS of their processes, divided by the hosts), stop them and tear down. Columns: ``teardown
s`` is stopping the agents plus removing the network; ``x floor up``/``x floor down`` divide
deploy and teardown by the floor's create and delete times; ``state rm s`` is removing the run's
state directory afterwards (a directory per host: instant on tmpfs, about 3 ms a directory on an
ext4 ``/run`` mounted with ``discard``).

The scenario run (``--run-hosts``, default 5000; ``--duration``, default 60 s) is a normal
``testbed run``: benign users on every staff segment, TRW and fan-out detectors on every segment,
a classic worm from the laptop; it prints the phases' times, the grade, the sensor's kernel drops
and the egress count.

Everything made is recorded in a ledger before it exists, under run names ``scale-...``: an
error or Ctrl-C removes it on the way out, and after ``kill -9`` ``testbed down --all`` does.
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.backends import get_backend  # noqa: E402 -- after the path set-up above
from testbed.backends.fabric import FabricDeployment  # noqa: E402
from testbed.backends.fabric.agents import AGENTS_ENV, PER_HOST, requested_layout  # noqa: E402
from testbed.backends.fabric.lifecycle import destroy_run, remove_namespaces, unique_prefix  # noqa: E402
from testbed.backends.fabric.plan import WiringPlan  # noqa: E402
from testbed.backends.fabric.wiring import build_fabric, parallel  # noqa: E402
from testbed.backends.ledger import Ledger  # noqa: E402
from testbed.backends.netns import NetnsRuntime  # noqa: E402
from testbed.kernel import create_named_netns  # noqa: E402
from testbed.model import load_scenario  # noqa: E402
from testbed.model.generate import PATIENT_ZERO, generate_topology, topology_yaml  # noqa: E402
from testbed.model.topology import Topology  # noqa: E402
from testbed.runner.agent_configs import write_agent_configs  # noqa: E402
from testbed.runner.agents import AgentFleet  # noqa: E402
from testbed.runner.outputs import remove_state  # noqa: E402
from testbed.runner.run import run_scenario  # noqa: E402

DEFAULT_SIZES = "100,500,1000,2000,5000"
PREFIXES: list[str] = []  # every run prefix this benchmark used, to check none is left


# ---- inputs ----------------------------------------------------------------------------------
def write_inputs(directory: Path, hosts: int, duration: float) -> Path:
    """``testbed generate campus --hosts N`` and a scenario on it; returns the scenario path."""
    document = generate_topology("campus", hosts)
    topology_path = directory / f"campus-{hosts}.yaml"
    topology_path.write_text(
        topology_yaml(document, command=f"testbed generate campus --hosts {hosts}"),
        encoding="utf-8")
    staff = [name for name in document["groups"] if "-pc" in name]  # every building's staff
    scenario_path = directory / f"scale-{hosts}.yaml"
    scenario_path.write_text(json.dumps({
        "name": f"scale-{hosts}",
        "topology": topology_path.name,
        "duration_s": duration,
        "seed": 42,
        "worm": {"profile": "classic", "patient_zero": PATIENT_ZERO, "start_s": 5,
                 "params": {"rate": 5.0}},
        "benign": {"users": [{"hosts": staff, "targets": ["fileserver", "intranet"],
                              "per_minute": 1}]},
        "detectors": [{"name": "trw"}, {"name": "fanout"}],
        "response": {"automation": False},
        "outputs": {"report": False},
    }, indent=1), encoding="utf-8")
    return scenario_path


# ---- the floor -------------------------------------------------------------------------------
@contextlib.contextmanager
def recorded_namespaces(plan: WiringPlan, run_name: str) -> Iterator[Ledger]:
    """A ledger naming the floor's namespaces before they exist (so ``testbed down`` finds them
    after a crash); removes whatever exists on the way out."""
    ledger = Ledger.create(run_name, "netns")
    try:
        ledger.topology = {"name": f"floor-{len(plan.nodes)}", "hosts": len(plan.nodes)}
        ledger.objects = {"namespaces": plan.namespaces}
        ledger.save()
        yield ledger
    finally:
        destroy_run(NetnsRuntime(), ledger)


def floor(topology: Topology) -> tuple[float, float]:
    """Seconds to create the topology's namespaces (bare) with their veths on the bridges, and
    to delete them again: what any namespace emulator pays at least."""
    plan = WiringPlan.from_topology(topology, unique_prefix())
    PREFIXES.append(plan.prefix)
    with recorded_namespaces(plan, f"scale-floor-{secrets.token_hex(3)}") as ledger:
        started = time.perf_counter()
        fabric = create_named_netns(plan.fabric_netns)
        paths: dict[str, str] = {}

        def make(name: str) -> None:
            paths[name] = create_named_netns(plan.nodes[name].netns)

        parallel(list(plan.nodes), make, stage="floor")
        build_fabric(plan, fabric, paths)
        created = time.perf_counter() - started
        started = time.perf_counter()
        remove_namespaces(ledger)
        deleted = time.perf_counter() - started
    return created, deleted


# ---- one size --------------------------------------------------------------------------------
def resident_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


def bench_size(scenario_path: Path) -> dict[str, Any]:
    scenario = load_scenario(scenario_path)
    topology = scenario.topology
    hosts = len(topology.hosts)
    floor_create, floor_delete = floor(topology)
    run_name = f"scale-{hosts}-{secrets.token_hex(3)}"
    started = time.perf_counter()
    deployment = get_backend("netns").deploy(topology, run_name)
    deploy_s = time.perf_counter() - started
    if isinstance(deployment, FabricDeployment):
        PREFIXES.append(deployment.plan.prefix)
    fleet: AgentFleet | None = None
    try:
        started = time.perf_counter()
        configs = write_agent_configs(scenario, deployment.state_dir, seed=42,
                                      secret=secrets.token_bytes(32), ttl_s=600)
        fleet = AgentFleet(deployment, deployment.state_dir)
        fleet.start(configs)
        fleet.wait_ready(timeout=600)
        ready_s = time.perf_counter() - started
        time.sleep(1.0)  # let the loops settle (first benign requests, ready files written)
        rss = resident_mib(fleet.pids)
        processes = len(fleet.pids)
    finally:
        started = time.perf_counter()
        try:
            if fleet is not None:
                fleet.stop()
        finally:
            stop_s = time.perf_counter() - started
            started = time.perf_counter()
            deployment.teardown()
            teardown_s = time.perf_counter() - started
        started = time.perf_counter()
        remove_state(deployment.state_dir, run_name)  # configs hold the secret: as a run does
        state_s = time.perf_counter() - started
    return {"hosts": hosts, "agent_processes": processes,
            "floor_create_s": round(floor_create, 3), "floor_delete_s": round(floor_delete, 3),
            "deploy_s": round(deploy_s, 3), "agents_ready_s": round(ready_s, 3),
            "agents_stop_s": round(stop_s, 3), "teardown_s": round(teardown_s, 3),
            "state_removal_s": round(state_s, 3),
            "agent_rss_mib": round(rss, 1), "rss_per_host_mib": round(rss / hosts, 3),
            "deploy_vs_floor": round(deploy_s / floor_create, 2),
            "teardown_vs_floor": round((stop_s + teardown_s) / max(floor_delete, 1e-6), 2)}


def scenario_run(scenario_path: Path, out: Path) -> dict[str, Any]:
    result = run_scenario(load_scenario(scenario_path), out_dir=out, live=False)
    results = result.results
    sensor = results.run.sensor or {}
    return {"hosts": results.run.hosts_total, "wall_s": round(result.wall_s, 1),
            "timings_s": results.run.timings_s, "stop_reason": result.stop_reason,
            "grade": f"{results.grade.letter} {results.grade.score}",
            "infected": results.infected_total, "alerts": results.run.alerts_total,
            "sensor_packets": sensor.get("packets"), "kernel_drops": sensor.get("kernel_drops"),
            "egress_packets": results.safety.egress_packets}


def leftover_namespaces() -> list[str]:
    """Namespaces of the runs this benchmark made that still exist (must be none)."""
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return sorted(name for name in names if name.split("-")[0].split("_")[0] in PREFIXES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help=f"comma-separated host counts (default {DEFAULT_SIZES})")
    parser.add_argument("--run-hosts", type=int, default=5000,
                        help="hosts of the scenario run (0: none; default 5000)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="duration of the scenario run in seconds (default 60)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/scale.py needs root", file=sys.stderr)
        return 3
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    layout = requested_layout(NetnsRuntime().agent_layout())
    rows: list[dict[str, Any]] = []
    run: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="testbed-scale-") as scratch:
        directory = Path(scratch)
        if not args.json:
            print(f"netns, agents {layout}{'' if layout != PER_HOST else f' ({AGENTS_ENV})'}, "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; generated "
                  f"campus topologies; floor = bare namespaces + veths")
            print(f"{'hosts':>6} {'procs':>5} {'floor up/down s':>15} {'deploy s':>8} "
                  f"{'agents ready s':>14} {'teardown s':>10} {'MiB/host':>8} "
                  f"{'x floor up':>10} {'x floor down':>12} {'state rm s':>10}")
        for size in sizes:
            row = bench_size(write_inputs(directory, size, args.duration))
            rows.append(row)
            if not args.json:
                teardown = row["agents_stop_s"] + row["teardown_s"]
                print(f"{row['hosts']:>6} {row['agent_processes']:>5} "
                      f"{row['floor_create_s']:>7.2f} /{row['floor_delete_s']:>6.2f} "
                      f"{row['deploy_s']:>8.2f} {row['agents_ready_s']:>14.2f} "
                      f"{teardown:>10.2f} {row['rss_per_host_mib']:>8.3f} "
                      f"{row['deploy_vs_floor']:>10.2f} {row['teardown_vs_floor']:>12.2f} "
                      f"{row['state_removal_s']:>10.2f}",
                      flush=True)
        if args.run_hosts:
            scenario = write_inputs(directory, args.run_hosts, args.duration)
            run = scenario_run(scenario, directory / "run")
            if not args.json:
                timings = run["timings_s"]
                print(f"\nscenario run, {run['hosts']} hosts, {args.duration:g} s "
                      f"(benign users on every staff segment, trw + fanout, classic worm): "
                      f"deploy {timings.get('deploy_s')} s, agents ready "
                      f"{timings.get('agents_s')} s, teardown {timings.get('teardown_s')} s, "
                      f"wall {run['wall_s']} s; grade {run['grade']}, infected "
                      f"{run['infected']}, alerts {run['alerts']}; sensor packets "
                      f"{run['sensor_packets']}, kernel drops {run['kernel_drops']}; egress "
                      f"packets {run['egress_packets']}; stopped: {run['stop_reason']}")
    left = leftover_namespaces()
    if args.json:
        json.dump({"layout": layout, "cpus": os.cpu_count(), "sizes": rows, "run": run,
                   "leftover_namespaces": left}, sys.stdout, indent=2)
        print()
    else:
        print(f"leftover namespaces of this benchmark: {len(left)}")
    return 0 if not left else 1


if __name__ == "__main__":
    raise SystemExit(main())
