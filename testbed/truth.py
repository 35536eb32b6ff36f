"""Ground truth: the agents' own account of what the worm did (``events.jsonl``).

Owns: reading ground-truth events (each agent's ``<state_dir>/hosts/<host>/events.jsonl`` while a
run lives, the run directory's merged ``events.jsonl`` after it), merging the per-host files into
the run directory, and the facts every reader derives from them the same way: when each host was
infected, when a probe began, which probes each host made.

The wall: this is the only module that reads ground-truth files. The scorer, the report, the
runner (live view, stop check, collection) and ``down``'s salvage use it; detectors, detection,
the sensor and the responder must not import it (an import-linter contract forbids it), so ground
truth never feeds back into detection.

Must not touch: alerts, actions, or anything the defence sees.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from testbed.files import write_text_atomically
from testbed.records import read_json_lines

__all__ = [
    "EVENTS_FILE",
    "event_time",
    "infection_times",
    "infections",
    "merge_host_events",
    "probe_time",
    "probe_times_by_host",
    "read_events",
    "read_host_events",
    "woken_hosts",
]

EVENTS_FILE = "events.jsonl"
INFECTING_TYPES = ("infection", "wake")  # patient zero is woken by the runner, not infected


def event_time(event: Mapping[str, Any]) -> float:
    """When an event was logged (``mono``; the run's clock)."""
    return float(event.get("mono", 0.0))


def probe_time(event: Mapping[str, Any]) -> float:
    """When a probe began: agents log a probe when its outcome is known (after a connect
    timeout, seconds later), with its start in ``start_mono``."""
    return float(event.get("start_mono", event.get("mono", 0.0)))


# ---- reading -----------------------------------------------------------------------------------

def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """A collected run's ground truth (``<run_dir>/events.jsonl``), in time order."""
    return sorted(read_json_lines(Path(run_dir) / EVENTS_FILE), key=event_time)


def read_host_events(state_dir: Path) -> list[dict[str, Any]]:
    """A live (or crashed) run's ground truth: every agent's
    ``<state_dir>/hosts/<host>/events.jsonl``, merged in time order."""
    hosts_dir = Path(state_dir) / "hosts"
    events: list[dict[str, Any]] = []
    if hosts_dir.is_dir():
        for directory in sorted(hosts_dir.iterdir()):
            events.extend(read_json_lines(directory / EVENTS_FILE))
    events.sort(key=event_time)
    return events


def merge_host_events(state_dir: Path, run_dir: Path) -> int:
    """Write the agents' events under ``state_dir`` into ``<run_dir>/events.jsonl`` (time order,
    one JSON object a line); returns how many."""
    events = read_host_events(state_dir)
    write_text_atomically(Path(run_dir) / EVENTS_FILE,
                          "".join(json.dumps(event, sort_keys=True) + "\n" for event in events))
    return len(events)


# ---- facts -------------------------------------------------------------------------------------

def infections(events: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, float]]:
    """``(host, when)`` for each event that makes a host infected (``infection``, or patient
    zero's ``wake``), in the order given; a host may appear more than once (first one counts)."""
    for event in events:
        if event.get("type") in INFECTING_TYPES and "host" in event:
            yield str(event["host"]), event_time(event)


def infection_times(events: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Host -> time it became infected: its earliest ``infection`` event, or for patient zero
    (woken by the runner rather than infected) its earliest ``wake`` event."""
    times: dict[str, float] = {}
    for host, when in infections(events):
        if host not in times or when < times[host]:
            times[host] = when
    return times


def woken_hosts(events: Iterable[Mapping[str, Any]]) -> set[str]:
    """Hosts the runner woke (patient zero, as ground truth tells it)."""
    return {str(e["host"]) for e in events if e.get("type") == "wake" and "host" in e}


def probe_times_by_host(events: Iterable[Mapping[str, Any]],
                        hosts: Iterable[str] | None = None) -> dict[str, list[float]]:
    """Host -> start times of its probes, sorted; only ``hosts`` when given."""
    wanted = set(hosts) if hosts is not None else None
    times: dict[str, list[float]] = {}
    for event in events:
        host = event.get("host")
        if event.get("type") != "probe" or not isinstance(host, str):
            continue
        if wanted is not None and host not in wanted:
            continue
        times.setdefault(host, []).append(probe_time(event))
    for each in times.values():
        each.sort()
    return times
