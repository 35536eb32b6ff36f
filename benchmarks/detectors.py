"""Benchmark: connection events per second through each detector and the default set, one core.

Run: ``python benchmarks/detectors.py [--events 1000000] [--json]``. Goal: >= 100k events/s for
every detector and for the default set (issue 5). The stream imitates what the sensor emits on a
busy network: benign clients on their usual services (SYN, SYN-ACK, data, first contacts and
outcomes), periodic UDP and ping, and a few scanners probing dead and live addresses (ARP and SYN).
Suricata is not in this figure: it reads the wire itself (see benchmarks/sensor.py).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.base import ConnEvent, SensorContext
from testbed.detection import DEFAULT_DETECTORS, DetectorSet
from testbed.sensor.contacts import ContactTracker


def synthetic_stream(count: int, seed: int = 1) -> list[ConnEvent]:
    """Raw events run through the real contact tracker, so derived events are realistic."""
    rng = random.Random(seed)
    clients = [f"10.1.{i // 250}.{i % 250 + 2}" for i in range(400)]
    servers = [f"10.2.0.{i + 2}" for i in range(20)]
    scanners = clients[:4]
    tracker = ContactTracker(timeout_s=1.0)
    events: list[ConnEvent] = []
    now = 1000.0
    port = 30000

    def emit(event: ConnEvent) -> None:
        events.append(event)
        events.extend(tracker.expire(event.time))
        if event.kind != "data":
            events.extend(tracker.feed(event))

    while len(events) < count:
        now += 0.0005
        port = port + 1 if port < 60000 else 30000
        roll = rng.random()
        if roll < 0.9:
            client, server = rng.choice(clients), rng.choice(servers)
            dport = rng.choice((80, 443, 445))
            emit(ConnEvent(now, "syn", client, server, port, dport))
            emit(ConnEvent(now + 0.0002, "syn-ack", server, client, dport, port))
            emit(ConnEvent(now + 0.0004, "data", client, server, port, dport,
                           payload=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        elif roll < 0.95:
            client, server = rng.choice(clients), rng.choice(servers)
            emit(ConnEvent(now, "udp", client, server, port, 53, "UDP", payload=b"q"))
            emit(ConnEvent(now + 0.0002, "udp", server, client, 53, port, "UDP", payload=b"a"))
        else:
            scanner = rng.choice(scanners)
            target = f"10.{rng.choice((1, 2))}.{rng.randrange(4)}.{rng.randrange(1, 255)}"
            if rng.random() < 0.5:
                emit(ConnEvent(now, "arp-request", scanner, target, proto="ARP"))
            else:
                emit(ConnEvent(now, "syn", scanner, target, port, 445))
                if rng.random() < 0.3:
                    emit(ConnEvent(now + 0.0002, "rst", target, scanner, 445, port))
    return events[:count]


def measure(names: list[str], events: list[ConnEvent], context: SensorContext) -> tuple[float,
                                                                                          int]:
    detectors = DetectorSet.from_names(names, context)
    observe, tick = detectors.observe, detectors.tick
    alerts = 0
    started = time.perf_counter()
    last_tick = events[0].time
    for event in events:
        if observe(event):
            alerts += 1
        if event.time - last_tick >= 1.0:
            tick(event.time)
            last_tick = event.time
    detectors.close()
    elapsed = time.perf_counter() - started
    return len(events) / elapsed, alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import ipaddress

    context = SensorContext(
        inventory={**{f"10.1.{i // 250}.{i % 250 + 2}": f"pc-{i}" for i in range(400)},
                   **{f"10.2.0.{i + 2}": f"srv-{i}" for i in range(20)}},
        cidrs=(ipaddress.IPv4Network("10.1.0.0/16"), ipaddress.IPv4Network("10.2.0.0/16")))
    started = time.perf_counter()
    events = synthetic_stream(args.events)
    built = time.perf_counter() - started
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    results = {}
    for name in [*DEFAULT_DETECTORS, "default set"]:
        names = list(DEFAULT_DETECTORS) if name == "default set" else [name]
        rate, alerts = measure(names, events, context)
        results[name] = {"events_per_s": round(rate), "alerts": alerts}
    if args.json:
        print(json.dumps({"events": len(events), "kinds": kinds, "results": results}, indent=2))
        return
    print(f"{len(events):,} synthetic events ({built:.1f} s to build incl. contact tracking "
          f"at {len(events) / built:,.0f} events/s); kinds: {kinds}")
    print(f"{'detector':<12} {'events/s':>12} {'alerts':>7}  goal >= 100,000 events/s")
    for name, result in results.items():
        mark = "ok" if result["events_per_s"] >= 100_000 else "BELOW GOAL"
        print(f"{name:<12} {result['events_per_s']:>12,} {result['alerts']:>7}  {mark}")


if __name__ == "__main__":
    main()
