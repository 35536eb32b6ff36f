"""A real netns run's records are what EVE tools and data-set users expect: every alert (the
built-in detectors' and real Suricata's) validates against Suricata's own EVE schema, the live
sensor's flows are EVE ``flow`` records, the labels cover every flow, and alerts join labels by
Community ID. The run is started through the notebook API (``testbed.run``) in a subprocess,
without automated response, so that the worm scans for the whole 20 s."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testbed.records import read_json_lines

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
import testbed
results = testbed.run("scenarios/smb-flat.yaml", duration=20, out_dir=sys.argv[1],
                      detectors=[{"name": "trw"}, {"name": "fanout"}, {"name": "signature"},
                                 {"name": "suricata"}],
                      outputs={"pcap": True},
                      response={"automation": False})  # let it spread: Suricata's rules count
print(results.grade.letter, results.infected_total)
"""


@pytest.fixture(scope="module")
def eve_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("suricata") is None:
        pytest.skip("suricata is not installed (scripts/install.sh installs it)")
    base = tmp_path_factory.mktemp("eve-run")
    out, state = base / "out", base / "state"
    state.mkdir()
    env = {**os.environ, "TESTBED_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=240, check=False)
    finally:
        subprocess.run([sys.executable, "-m", "testbed", "down", "--all"], cwd=REPO, env=env,
                       capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return out


def test_every_alert_of_a_real_run_is_valid_eve(eve_run: Path, eve_validator: Any) -> None:
    alerts = read_json_lines(eve_run / "alerts.jsonl")
    detectors = {a["alert"]["metadata"]["detector"] for a in alerts}
    assert {"trw", "signature", "suricata"} <= detectors, detectors
    for record in alerts:
        assert [e.message for e in eve_validator.iter_errors(record)] == [], record
        assert "community_id" in record and "flow_id" in record and record["in_iface"]
        if record["dest_ip"]:  # an alert about one flow (a tally over many has no flow)
            assert record["community_id"].startswith("1:")
    assert len({a["host"] for a in alerts}) == 1  # the sensor's name, not the accused host


def test_flows_labels_and_the_community_id_join(eve_run: Path, eve_validator: Any) -> None:
    import pandas

    import testbed

    flows = read_json_lines(eve_run / "flows.jsonl")
    assert flows
    for record in flows:
        assert [e.message for e in eve_validator.iter_errors(record)] == [], record
    run = testbed.load_run(eve_run)
    assert run.results is not None and run.results.run.labelled_flows == len(run.labels) > 0
    assert {"worm-probe", "worm-exploit"} & set(run.labels["label"])
    assert run.labels["community_id"].is_unique
    tied = run.alerts[(run.alerts["src_port"] != 0) & (run.alerts["detector"] != "suricata")]
    joined = tied.merge(run.labels, on="community_id", how="inner")
    assert len(joined) >= 1
    assert set(joined["label"]) <= {"worm-probe", "worm-exploit", "worm-interleave"}
    assert isinstance(run.flows, pandas.DataFrame) and len(run.flows) == len(flows)
    manifest = json.loads((eve_run / "manifest.json").read_text())
    assert "suricata" in manifest["detectors"]
