"""Calibrate the simulator's timing model on the netns backend (issue 11: measured, not guessed).

Run (root): ``python benchmarks/calibrate_sim.py [--samples 50] [--write [--only KEYS]]``.
Deploys a tiny topology of its own (two segments joined by one router: a client, a listener next
to it, a listener behind the router), measures from inside the client's namespace
- the connect round trip on one segment and across the router (-> ``link_one_way_s``,
  ``router_hop_s``),
- the time to ECONNREFUSED from a closed port (the RST round trip, a check of the above),
- the time to EHOSTUNREACH for an address nobody answers ARP for (-> ``arp_failure_s``),
- the kernel's ARP settings (``retrans_time_ms``, ``mcast_solicit`` -> ``arp_retrans_s``,
  ``arp_requests``),
- the backend's containment enforcement times (quarantine, block, rate limit),
- a mock service's exploit handling time (``service_s``, in process: the infection gate and the
  reply, without the socket),
- the agent's wake lateness (``wake_delay_s``, in process: the loop's lateness at the moment the
  wake file names),
and prints them next to the values in ``testbed/sim/timing.yaml``; ``--write`` rewrites that file.
Packets go only between the namespaces this script creates.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testbed.model.load_topology import load_topology
from testbed.sim.timing import DEFAULT_TIMING_PATH, load_timing

TOPOLOGY = """\
name: calibrate
segments:
  a: {cidr: 10.77.1.0/24}
  b: {cidr: 10.77.2.0/24}
hosts:
  client: {segment: a, ip: 10.77.1.10, tier: workstation}
  near: {segment: a, ip: 10.77.1.20, tier: server}
  far: {segment: b, ip: 10.77.2.20, tier: server}
routers:
  r: {segments: [a, b], default: allow}
"""
PORT, CLOSED_PORT = 7000, 7001

LISTEN = r"""
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1])))
server.listen(128)
while True:
    connection, _ = server.accept()
    connection.close()
"""

CONNECT = r"""
import errno, json, socket, sys, time
addresses, port, count = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
results = []
for address in addresses:
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(10.0)
        started = time.perf_counter()
        try:
            sock.connect((address, port))
            outcome = "open"
        except ConnectionRefusedError:
            outcome = "refused"
        except OSError as error:
            outcome = errno.errorcode.get(error.errno or 0, "timeout")
        results.append([outcome, time.perf_counter() - started])
        sock.close()
print(json.dumps(results))
"""

SYSCTL = r"""
import json, os
root = "/proc/sys/net/ipv4/neigh/"
interface = next(name for name in sorted(os.listdir(root)) if name not in ("lo", "default"))
print(json.dumps({name: int(open(root + interface + "/" + name).read()) for name in
                  ("retrans_time_ms", "mcast_solicit")}))
"""


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def connect_times(deployment: Any, addresses: list[str], port: int, count: int,
                  expect: str) -> list[float]:
    done = deployment.run("client", [sys.executable, "-c", CONNECT, ",".join(addresses),
                                     str(port), str(count)], timeout=120.0)
    results = json.loads(done.stdout)
    return [seconds for outcome, seconds in results if outcome == expect]


def service_time(samples: int) -> float:
    """A mock service's exploit path in process: gate check, ground truth line, reply."""
    from testbed.agent.config import ServiceConfig
    from testbed.agent.events import EventLog
    from testbed.agent.protocol import InfectionGate, make_exploit, message_line
    from testbed.agent.services import ExploitHandler

    secret = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory() as directory:
        log = EventLog(Path(directory) / "events.jsonl", "near")
        gate = InfectionGate(run="calibrate", secret=secret, own_address="10.77.1.20",
                             patched=frozenset({"MOCK-SMB-1"}))
        handler = ExploitHandler(gate, log, lambda *args: "infected")
        service = ServiceConfig("smb", 445, "tcp", "", ("MOCK-SMB-1",))
        timings = []
        for index in range(samples):
            message = make_exploit(secret=secret, run="calibrate", vuln="MOCK-SMB-1",
                                   source="10.77.1.10", target="10.77.1.20",
                                   nonce=f"{index:032x}", issued_ms=int(time.time() * 1000),
                                   generation=0, parent="client")
            line = message_line(message)
            started = time.perf_counter()
            handler.handle(line, "plain", "10.77.1.10", service)
            timings.append(time.perf_counter() - started)
        log.close()
    return _median(timings)


def wake_delay(samples: int) -> float:
    """Median lateness of the agent's wake: the runner names the moment in the wake file ahead
    of time (``testbed.agent.control.wake``) and the agent's loop calls ``wake`` at it
    (``loop.call_at`` on ``time.monotonic()``), so what is left is the loop's lateness."""
    import asyncio

    async def lateness() -> list[float]:
        loop, late = asyncio.get_running_loop(), []

        def woke(future: asyncio.Future[float], moment: float) -> None:
            future.set_result(time.monotonic() - moment)

        for _ in range(samples):
            moment = time.monotonic() + 0.005
            future: asyncio.Future[float] = loop.create_future()
            loop.call_at(moment, woke, future, moment)
            late.append(await future)
        return late

    return _median(asyncio.run(lateness()))


def measure(samples: int) -> dict[str, Any]:
    from testbed.backends import get_backend

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "calibrate.yaml"
        path.write_text(TOPOLOGY)
        topology = load_topology(path)
    backend = get_backend("netns")
    run_name = f"calib-{secrets.token_hex(3)}"
    with backend.deploy(topology, run_name) as deployment:
        for host in ("near", "far"):
            deployment.spawn(host, [sys.executable, "-c", LISTEN, str(PORT)])
        time.sleep(0.5)  # listeners up
        connect_times(deployment, ["10.77.1.20", "10.77.2.20"], PORT, 3, "open")  # warm ARP
        local = connect_times(deployment, ["10.77.1.20"], PORT, samples, "open")
        routed = connect_times(deployment, ["10.77.2.20"], PORT, samples, "open")
        refused = connect_times(deployment, ["10.77.1.20"], CLOSED_PORT, samples, "refused")
        dead = [f"10.77.1.{200 + i}" for i in range(min(5, samples))]
        arp = connect_times(deployment, dead, PORT, 1, "EHOSTUNREACH")
        kernel = json.loads(deployment.run("client", [sys.executable, "-c", SYSCTL]).stdout)
        enforce = {}
        for name, act, undo in (
                ("quarantine", lambda: deployment.quarantine("near"),
                 lambda: deployment.release("near")),
                ("block", lambda: deployment.block("client", "near"),
                 lambda: deployment.unblock("client", "near")),
                ("rate_limit", lambda: deployment.rate_limit("client", 5.0),
                 lambda: deployment.remove_rate_limit("client"))):
            seconds = []
            for _ in range(5):
                seconds.append(act().seconds)
                undo()
            enforce[name] = _median(seconds)
    rtt_local, rtt_routed = _median(local), _median(routed)
    return {
        "link_one_way_s": rtt_local / 2,
        "router_hop_s": max(0.0, (rtt_routed - rtt_local) / 2),
        "rst_round_trip_s": _median(refused),
        "arp_failure_s": _median(arp),
        "arp_retrans_s": kernel["retrans_time_ms"] / 1000.0,
        "arp_requests": kernel["mcast_solicit"],
        "enforce_quarantine_s": enforce["quarantine"],
        "enforce_block_s": enforce["block"],
        "enforce_rate_limit_s": enforce["rate_limit"],
        "service_s": service_time(max(samples, 200)),
        "wake_delay_s": wake_delay(max(samples, 200)),
        "samples": {"local": len(local), "routed": len(routed), "refused": len(refused),
                    "arp": len(arp)},
    }


def write_timing(measured: dict[str, Any], path: Path, *, partial: bool = False) -> None:
    """Replace the measured constants' values (and ``source``) in ``path``, keeping its comments
    and every constant this script does not measure. ``partial`` (``--only``): ``source`` stays,
    and each rewritten line says when it was measured."""
    load_timing(path)  # a broken file is an error, not something to patch
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    source = f"measured by benchmarks/calibrate_sim.py on {stamp} ({socket.gethostname()})"
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        key, separator, _ = line.partition(":")
        if separator and not line.startswith((" ", "#")):
            if key == "source" and not partial:
                line = f"source: {source}"
            elif key in measured and key != "samples":
                value = measured[key]
                text = (str(int(value)) if key == "arp_requests"  # YAML 1.1 floats need a dot
                        else f"{float(value):.9f}".rstrip("0").rstrip(".") or "0")
                line = f"{key}: {text}" + (f"  # {source}" if partial else "")
        lines.append(line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--write", action="store_true",
                        help="rewrite testbed/sim/timing.yaml with the measurements")
    parser.add_argument("--only", default="",
                        help="with --write: rewrite only these constants (comma-separated), "
                             "e.g. wake_delay_s after a change to the agents' control")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    measured = measure(args.samples)
    if args.json:
        print(json.dumps(measured, indent=2))
    else:
        current = load_timing().as_dict()
        for key, value in measured.items():
            if key == "samples":
                continue
            shipped = current.get(key, "-")
            print(f"{key:>22}: measured {value:.6g}   timing.yaml {shipped}")
        print(f"{'samples':>22}: {measured['samples']}")
    if args.write:
        only = {key.strip() for key in args.only.split(",") if key.strip()}
        unknown = only - set(measured)
        if unknown:
            print(f"error: --only {', '.join(sorted(unknown))}: not measured here; one of "
                  f"{', '.join(k for k in measured if k != 'samples')}", file=sys.stderr)
            return 2
        write_timing({k: v for k, v in measured.items() if not only or k in only},
                     DEFAULT_TIMING_PATH, partial=bool(only))
        print(f"wrote {DEFAULT_TIMING_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
