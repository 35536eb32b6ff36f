"""Ground truth, read one way: agents' per-host files, the merged run file, and the facts derived
from them (infection times, probe start times)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testbed.truth import (
    infection_times,
    infections,
    merge_host_events,
    probe_time,
    probe_times_by_host,
    read_events,
    read_host_events,
    woken_hosts,
)


def write_host_events(state_dir: Path, host: str, events: list[dict[str, Any]],
                      torn: bool = False) -> None:
    directory = state_dir / "hosts" / host
    directory.mkdir(parents=True)
    text = "".join(json.dumps(event) + "\n" for event in events)
    (directory / "events.jsonl").write_text(text + ('{"mono": 9' if torn else ""))


def test_host_files_merge_in_time_order_and_torn_lines_are_skipped(tmp_path: Path) -> None:
    state = tmp_path / "state"
    write_host_events(state, "pc1", [{"mono": 3.0, "host": "pc1", "type": "infection",
                                      "parent": "laptop"}], torn=True)
    write_host_events(state, "laptop", [{"mono": 1.0, "host": "laptop", "type": "wake"},
                                        {"mono": 4.0, "host": "laptop", "type": "probe",
                                         "start_mono": 2.0}])
    (state / "hosts" / "printer").mkdir()  # an agent that never wrote anything
    events = read_host_events(state)
    assert [e["mono"] for e in events] == [1.0, 3.0, 4.0]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert merge_host_events(state, run_dir) == 3
    assert read_events(run_dir) == events
    assert not (run_dir / "events.jsonl.tmp").exists()


def test_missing_ground_truth_reads_as_none(tmp_path: Path) -> None:
    assert read_host_events(tmp_path / "nowhere") == []
    assert read_events(tmp_path) == []


def test_infections_count_the_first_wake_or_infection() -> None:
    events = [{"mono": 5.0, "host": "pc1", "type": "infection"},
              {"mono": 2.0, "host": "laptop", "type": "wake"},
              {"mono": 3.0, "host": "pc1", "type": "infection"},
              {"mono": 4.0, "host": "pc2", "type": "probe"},
              {"mono": 6.0, "type": "infection"}]  # no host: ignored
    assert infection_times(events) == {"pc1": 3.0, "laptop": 2.0}
    assert list(infections(events)) == [("pc1", 5.0), ("laptop", 2.0), ("pc1", 3.0)]
    assert woken_hosts(events) == {"laptop"}


def test_a_probe_is_timed_by_when_it_began() -> None:
    late = {"mono": 10.0, "host": "a", "type": "probe", "start_mono": 8.0}
    assert probe_time(late) == 8.0
    assert probe_time({"mono": 7.0, "type": "probe"}) == 7.0
    events = [late, {"mono": 9.0, "host": "a", "type": "probe"},
              {"mono": 1.0, "host": "b", "type": "probe"},
              {"mono": 2.0, "host": "a", "type": "benign-request"}]
    assert probe_times_by_host(events) == {"a": [8.0, 9.0], "b": [1.0]}
    assert probe_times_by_host(events, ["b"]) == {"b": [1.0]}
