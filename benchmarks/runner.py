"""Runner overhead: a 50-host, 60-second scenario end to end, report included.

Goal (issue 6): the whole run finishes within 75 s of wall time, i.e. the runner's own overhead
(deploy, agents, teardown, scoring, report) stays under 15 s. Prints figures; asserts nothing.

    sudo python benchmarks/runner.py [--backend netns] [--duration 60] [--keep DIR]

Uses its own TESTBED_STATE_DIR (a temporary directory) and a generated topology: 5 launch pads,
35 workstations, 8 servers and 2 crown jewels on four segments behind two routers. The scenario
never stops early (no stop conditions): the full duration always runs.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/detectors.py would shadow the `detectors` package when run as a script
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

TOPOLOGY = """
name: bench-fifty
segments:
  lobby: {cidr: 10.50.0.0/24}
  office: {cidr: 10.50.1.0/24}
  servers: {cidr: 10.50.2.0/24}
  vault: {cidr: 10.50.3.0/24}
defaults:
  services: [{name: smb, vulns: [MOCK-SMB-1]}, {name: http}]
groups:
  pad: {count: 5, segment: lobby, tier: launch-pad}
  ws: {count: 35, segment: office, tier: workstation}
  srv: {count: 8, segment: servers, tier: server}
  jewel: {count: 2, segment: vault, tier: crown-jewel,
          services: [{name: sql, vulns: [MOCK-SQL-1]}]}
routers:
  edge: {segments: [lobby, office], default: allow}
  core:
    segments: [office, servers, vault]
    rules:
      - {action: allow, from: office, to: servers, ports: [445, 80], proto: tcp}
      - {action: allow, from: servers, to: vault, ports: 3306, proto: tcp}
"""

SCENARIO = """
name: bench-fifty
topology: topology.yaml
duration_s: {duration}
seed: 5
worm: {{profile: classic, patient_zero: pad-1, start_s: 3, rate: 5}}
benign:
  users:
    - {{hosts: ws, targets: srv, per_minute: 4}}
detectors: [{{name: trw}}, {{name: fanout}}, {{name: darknet}}]
response: {{rules: [{{on: any, action: quarantine}}]}}
stop: {{when: []}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="netns")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--keep", type=Path, help="keep the run directory here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    from testbed.detection import load_scenario
    from testbed.runner import run_scenario

    with tempfile.TemporaryDirectory(prefix="testbed-bench-runner-") as scratch:
        root = Path(scratch)
        os.environ["TESTBED_STATE_DIR"] = str(root / "state")
        (root / "state").mkdir()
        (root / "topology.yaml").write_text(TOPOLOGY)
        (root / "scenario.yaml").write_text(SCENARIO.format(duration=args.duration))
        scenario = load_scenario(root / "scenario.yaml")
        out = args.keep or root / "run"
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        result = run_scenario(scenario, backend=args.backend, out_dir=out, live=False,
                              stream=io.StringIO())
        wall = time.monotonic() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    runner_cpu = ((cpu_after.ru_utime - cpu_before.ru_utime)
                  + (cpu_after.ru_stime - cpu_before.ru_stime))
    scenario_s = result.results.run.duration_s
    hosts = result.results.run.hosts_total
    print(f"hosts                     {hosts}")
    print(f"scenario time             {scenario_s:.1f} s (t0 to stop)")
    print(f"wall time, report incl.   {wall:.1f} s  (goal: <= {args.duration + 15:.0f} s)")
    print(f"runner overhead           {wall - scenario_s:.1f} s  (wall - scenario time)")
    for phase, seconds in result.timings.items():
        print(f"  {phase:22s}  {seconds:.2f} s")
    print(f"runner process CPU        {runner_cpu:.1f} s over the whole run "
          f"({100 * runner_cpu / wall:.0f}% of one core)")
    sensor = result.results.run.sensor
    print(f"sensor                    {sensor.get('packets', '?')} packets, "
          f"{sensor.get('kernel_drops', '?')} kernel drops")
    results = result.results
    print(f"outcome                   grade {results.grade.letter}, infected "
          f"{results.infected_total}, egress {results.safety.egress_packets}")
    if args.keep:
        print(f"report                    {result.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
