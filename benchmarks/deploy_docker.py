#!/usr/bin/env python3
"""Docker backend deploy figures, beside the netns backend's on the same topologies.

Usage (root, a running Docker engine and the testbed image)::

    python benchmarks/deploy_docker.py [--sizes 10,20,50] [--no-netns] [--json]

Reuses ``benchmarks/deploy.py`` (same synthetic topologies, same timing of deploy, teardown and
containment actions) and adds seconds per host and the cost of one ``docker exec`` (how agents
start in containers). Goal (issue 7): at most 0.3 s per host, 50 hosts deployed in 15 s on 2
cores. Yardsticks: Containerlab deploys a 6-node lab in about 5 s; Containernet reported
connectivity failures from about 45 containers on one switch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy import bench_size, synthetic_topology

from testbed.backends import get_backend

GOAL_SECONDS_PER_HOST = 0.3
GOAL_50_HOSTS_SECONDS = 15.0


def exec_latency(samples: int = 10) -> dict[str, float]:
    """Median seconds of one ``run`` (docker exec) and one ``spawn``+wait in a container."""
    deployment = get_backend("docker").deploy(synthetic_topology(10), f"bench-exec-{os.getpid()}")
    try:
        host = next(iter(deployment.topology.hosts))
        runs, spawns = [], []
        for _ in range(samples):
            started = time.perf_counter()
            deployment.run(host, ["true"])
            runs.append(time.perf_counter() - started)
            started = time.perf_counter()
            deployment.spawn(host, ["python3", "-c", "pass"]).wait(30)
            spawns.append(time.perf_counter() - started)
    finally:
        deployment.teardown()
    return {"run_median_ms": round(statistics.median(runs) * 1000, 1),
            "spawn_python_median_ms": round(statistics.median(spawns) * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,20,50", help="host counts (default 10,20,50)")
    parser.add_argument("--actions", type=int, default=10, help="containment cycles per size")
    parser.add_argument("--no-netns", action="store_true", help="skip the netns comparison")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/deploy_docker.py needs root", file=sys.stderr)
        return 3
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    backends = ["docker"] if args.no_netns else ["docker", "netns"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="testbed-bench-docker-") as state:
        os.environ["TESTBED_STATE_DIR"] = state  # never touches other runs' state
        load = os.getloadavg()[0]
        if not args.json:
            print(f"{os.cpu_count()} CPUs, load average {load:.1f} at start")
            print(f"{'backend':>7} {'hosts':>5} {'nodes':>5} {'deploy s':>8} {'s/host':>6} "
                  f"{'teardown s':>10} {'quarantine ms':>13}")
        for size in sizes:
            for backend in backends:
                result = bench_size(backend, size, args.actions)
                result["backend"] = backend
                result["deploy_s_per_host"] = round(result["deploy_s"] / result["hosts"], 3)
                rows.append(result)
                if not args.json:
                    print(f"{backend:>7} {result['hosts']:>5} {result['namespaces'] - 1:>5} "
                          f"{result['deploy_s']:>8.2f} {result['deploy_s_per_host']:>6.3f} "
                          f"{result['teardown_s']:>10.2f} "
                          f"{result['quarantine_median_ms']!s:>13}", flush=True)
        latency = exec_latency()
    docker_rows = [row for row in rows if row["backend"] == "docker"]
    worst = max(row["deploy_s_per_host"] for row in docker_rows)
    fifty = next((row["deploy_s"] for row in docker_rows if row["hosts"] == 50), None)
    summary = {"worst_s_per_host": worst, "goal_s_per_host": GOAL_SECONDS_PER_HOST,
               "deploy_50_hosts_s": fifty, "goal_50_hosts_s": GOAL_50_HOSTS_SECONDS,
               "load_average_at_start": round(load, 2), **latency}
    if args.json:
        json.dump({"cpus": os.cpu_count(), "results": rows, "summary": summary},
                  sys.stdout, indent=2)
        print()
        return 0
    print(f"docker exec: run median {latency['run_median_ms']} ms, spawn python3 and wait "
          f"median {latency['spawn_python_median_ms']} ms")
    verdict = "meets" if worst <= GOAL_SECONDS_PER_HOST else "misses"
    print(f"docker: worst {worst:.3f} s/host ({verdict} the {GOAL_SECONDS_PER_HOST} s goal)"
          + (f"; 50 hosts in {fifty:.1f} s (goal {GOAL_50_HOSTS_SECONDS:.0f} s)"
             if fifty is not None else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
