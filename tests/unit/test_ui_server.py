"""The dashboard's server without a browser: token, origin, CSP, the wall between the defender's
view and the truth view, replay, exercises, actions (on a fake deployment).

Runs are built on disk as the runner leaves them: a finished one (run directory with results
scored by the real scorer) and a live one (a state directory with a runner heartbeat)."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette 1.x announces httpx2; httpx still drives it
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from testbed.actions import ActionLog, ActionRecord
from testbed.backends.base import ActionTiming
from testbed.detection import load_scenario
from testbed.results import Manifest
from testbed.runner.outputs import score_run_dir, write_outputs
from testbed.ui import defender as defender_module
from testbed.ui.alerts import read_alert
from testbed.ui.server import CONTENT_SECURITY_POLICY, TOKEN_HEADER, create_app, is_loopback

REPO = Path(__file__).resolve().parents[2]
EXERCISE = REPO / "scenarios" / "exercises" / "segment-the-flat-network.yaml"
TOKEN = "s3cret-token-for-tests"
T0 = 5000.0
CANARY = "GROUND-TRUTH-CANARY-7f3a"


@pytest.fixture(scope="module")
def scenario():  # type: ignore[no-untyped-def]
    return load_scenario(EXERCISE)


def _ip(scenario: Any, host: str) -> str:
    return str(scenario.topology.hosts[host].ip)


def _manifest(scenario: Any, *, run_name: str, state_dir: Path | None,
              end: float | None) -> Manifest:
    return Manifest(scenario=scenario.name, scenario_path=str(EXERCISE),
                    topology_path=str(scenario.topology_path), run_name=run_name,
                    backend="netns", seed=7, duration_s=300.0, worm_profile="local-preference",
                    patient_zero=("lobby-printer",), detectors=("trw", "fanout"),
                    automation=False, state_dir=str(state_dir) if state_dir else None,
                    t0_mono=T0, t0_wall=1.7e9, end_mono=end)


def _write_records(directory: Path, scenario: Any, *, now: float) -> None:
    """Ground truth (pc-3 infected, with a canary), one alert of each shape, one action."""
    directory.mkdir(parents=True, exist_ok=True)
    truth = [{"mono": T0 + 1.0, "host": "lobby-printer", "type": "wake", "note": CANARY},
             {"mono": T0 + 4.0, "host": "pc-3", "type": "infection", "parent": "lobby-printer",
              "generation": 1, "note": CANARY}]
    host_dir = directory / "hosts" / "pc-3"
    host_dir.mkdir(parents=True, exist_ok=True)
    (host_dir / "events.jsonl").write_text(
        "".join(json.dumps(event) + "\n" for event in truth), encoding="utf-8")
    (directory / "events.jsonl").write_text(
        "".join(json.dumps(event) + "\n" for event in truth), encoding="utf-8")
    first_shape = {"mono": T0 + 3.0, "event_type": "alert", "detector": "trw",
                   "src_ip": _ip(scenario, "lobby-printer"), "dest_ip": _ip(scenario, "pc-1"),
                   "dest_port": 445, "host": "lobby-printer", "evidence": {"failures": 5},
                   "alert": {"signature": "TRW scanner", "severity": 1}}
    eve_shape = {"timestamp": "2023-11-14T22:13:26+00:00", "event_type": "alert",
                 "src_ip": _ip(scenario, "pc-3"), "dest_ip": _ip(scenario, "pc-4"),
                 "dest_port": 445, "host": "sensor-users",
                 "alert": {"signature": "fan-out", "severity": 2,
                           "metadata": {"alert_version": 2, "detector": "fanout",
                                        "mono": T0 + 6.0, "src_host": "pc-3",
                                        "evidence": {"destinations": 12}}}}
    (directory / "alerts.jsonl").write_text(
        json.dumps(first_shape) + "\n" + json.dumps(eve_shape) + "\n", encoding="utf-8")
    ActionLog(directory / "actions.jsonl").append(ActionRecord(
        mono=T0 + 5.0, action="quarantine", target="lobby-printer", cause={"manual": "amy"},
        enforced_s=0.01))


@pytest.fixture()
def runs(tmp_path: Path, scenario: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """runs/finished (scored), runs/live (its records in a live state directory)."""
    state_root = tmp_path / "state"
    monkeypatch.setenv("TESTBED_STATE_DIR", str(state_root))
    runs_dir = tmp_path / "runs"
    finished = runs_dir / "finished"
    _write_records(finished, scenario, now=T0 + 30)
    (finished / "hosts").rename(tmp_path / "unused-hosts")  # collected runs have merged events
    manifest = _manifest(scenario, run_name="finished-1", state_dir=None, end=T0 + 30.0)
    (finished / "manifest.json").write_text(manifest.model_dump_json(), encoding="utf-8")
    results, records = score_run_dir(finished, scenario, stop_reason="time limit", timings={})
    write_outputs(finished, results, records, report=False)

    live = runs_dir / "live"
    live.mkdir(parents=True)
    state_dir = state_root / "live-1"
    _write_records(state_dir, scenario, now=time.monotonic())
    (state_dir / "events.jsonl").unlink()  # live: ground truth is per host
    live_manifest = _manifest(scenario, run_name="live-1", state_dir=state_dir, end=None)
    (state_dir / "manifest.json").write_text(live_manifest.model_dump_json(), encoding="utf-8")
    (state_dir / "runner.json").write_text(json.dumps(
        {"pid": os.getpid(), "out_dir": str(live.resolve()), "alive_mono": time.monotonic()}))
    return {"runs": runs_dir, "finished": finished, "live": live, "state": state_dir}


@pytest.fixture()
def client(runs: dict[str, Path]) -> TestClient:
    return TestClient(create_app(runs["runs"], TOKEN), base_url="http://127.0.0.1:8765")


def authed(client: TestClient, path: str, **kwargs: Any) -> Any:
    return client.get(path, headers={TOKEN_HEADER: TOKEN}, **kwargs)


# ---- safety -------------------------------------------------------------------------------------

def test_every_api_and_page_refuses_a_missing_or_wrong_token(client: TestClient) -> None:
    for path in ("/api/runs", "/api/runs/live/defender", "/api/runs/finished/truth",
                 "/api/runs/live/topology", "/api/runs/live/stream"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={TOKEN_HEADER: TOKEN + "x"}).status_code == 401, path
    assert client.get("/runs/live").status_code == 401
    assert "token" in client.get("/").text


def test_an_unauthenticated_action_is_refused_and_not_logged(client: TestClient,
                                                              runs: dict[str, Path]) -> None:
    before = (runs["state"] / "actions.jsonl").read_text()
    body = {"kind": "quarantine", "target": "pc-3"}
    assert client.post("/api/runs/live/actions", json=body).status_code == 401
    # a cookie alone (what a cross-site form would ride on) is not enough to act
    client.cookies.set("testbed_ui_token", TOKEN)
    assert client.post("/api/runs/live/actions", json=body).status_code == 401
    assert client.post("/api/runs/live/actions", json=body,
                       headers={TOKEN_HEADER: "wrong"}).status_code == 401
    assert (runs["state"] / "actions.jsonl").read_text() == before


def test_cross_origin_requests_and_foreign_hosts_are_refused(client: TestClient) -> None:
    response = client.post("/api/runs/live/actions", json={"kind": "quarantine", "target": "pc-1"},
                           headers={TOKEN_HEADER: TOKEN, "Origin": "http://evil.example"})
    assert response.status_code == 403
    preflight = client.options("/api/runs/live/actions",
                               headers={"Origin": "http://evil.example",
                                        "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    rebound = client.get("/api/runs", headers={TOKEN_HEADER: TOKEN, "Host": "evil.example"})
    assert rebound.status_code == 400


def test_security_headers_and_token_moves_from_url_to_cookie(client: TestClient) -> None:
    response = client.get(f"/runs/live?token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/runs/live"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page = client.get("/runs/live")  # the cookie now stands for the token
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script src=\"/static/dashboard.js\"" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN, no other origin
    script = client.get("/static/dashboard.js")
    assert script.status_code == 200 and "EventSource" in script.text


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


# ---- the wall -----------------------------------------------------------------------------------

def _defender_documents(client: TestClient) -> list[str]:
    documents = [authed(client, "/api/runs").text,
                 authed(client, "/api/runs/live/topology").text,
                 authed(client, "/api/runs/live/defender").text,
                 authed(client, "/runs/live").text]
    with client.stream("GET", "/api/runs/live/stream", headers={TOKEN_HEADER: TOKEN}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                documents.append(line)
                break
    return documents


def _without_clock(text: str) -> str:
    data = json.loads(text.removeprefix("data: "))
    for key in ("clock_s", "shown_s"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True)


def test_the_defenders_page_and_api_hold_no_ground_truth_during_a_live_exercise(
        client: TestClient, runs: dict[str, Path]) -> None:
    with_truth = _defender_documents(client)
    joined = "\n".join(with_truth)
    assert CANARY not in joined
    api_answers = "\n".join(with_truth[:3] + with_truth[4:])  # all but the page's HTML
    assert '"infected' not in api_answers and "infection" not in api_answers
    # The defender's view is a function of what the defence saw: removing the ground truth
    # changes nothing in it.
    for host_file in (runs["state"] / "hosts").rglob("events.jsonl"):
        host_file.unlink()
    without_truth = _defender_documents(client)
    for index in (2, 4):  # the defender snapshot, by request and pushed
        assert _without_clock(with_truth[index]) == _without_clock(without_truth[index])
    assert with_truth[1] == without_truth[1]
    # ... and the truth view stays closed while the exercise runs
    closed = authed(client, "/api/runs/live/truth")
    assert closed.status_code == 403 and "after the run" in closed.json()["error"]


def test_truth_view_of_a_finished_run_has_infections_curve_score_and_debrief(
        client: TestClient) -> None:
    truth = authed(client, "/api/runs/finished/truth").json()
    assert [each["host"] for each in truth["infected"]] == ["lobby-printer", "pc-3"]
    assert truth["curve"] == [[1.0, 1], [4.0, 2]]
    assert truth["score"]["grade"] in "ABCDF"
    debrief = truth["debrief"]
    assert debrief["title"].startswith("Segment the flat network")
    assert [each["met"] for each in debrief["objectives"]][:2] == [True, True]
    assert debrief["would_have_changed"]
    # replay: the slider's moment filters both views
    early = authed(client, "/api/runs/finished/truth", params={"at": 2.0}).json()
    assert [each["host"] for each in early["infected"]] == ["lobby-printer"]
    defender = authed(client, "/api/runs/finished/defender", params={"at": 4.0}).json()
    assert [alert["detector"] for alert in defender["alerts"]] == ["trw"]
    assert defender["quarantined"] == []
    later = authed(client, "/api/runs/finished/defender", params={"at": 10.0}).json()
    assert later["quarantined"] == ["lobby-printer"]
    assert later["phase"] == "finished" and later["live"] is False


# ---- alerts, both shapes ------------------------------------------------------------------------

def test_alerts_of_both_shapes_name_the_accused_host_and_evidence(scenario: Any) -> None:
    inventory = defender_module.inventory(scenario.topology)
    old = read_alert({"mono": T0 + 3, "detector": "trw", "src_ip": "10.0.0.99",
                      "host": "lobby-printer", "evidence": {"n": 1}, "alert": {"severity": 1}},
                     inventory=inventory, t0_mono=T0, t0_wall=None)
    assert old is not None and old.accused == "lobby-printer" and old.time_s == 3.0
    eve = read_alert({"src_ip": _ip(scenario, "pc-3"), "host": "sensor-1",
                      "timestamp": "2023-11-14T22:13:30.000000+0000",
                      "alert": {"severity": 2, "metadata": {"detector": ["fanout"],
                                                            "evidence": ['{"k": 2}']}}},
                     inventory=inventory, t0_mono=None, t0_wall=1700000000.0)
    assert eve is not None
    assert (eve.accused, eve.sensor, eve.detector, eve.evidence) == \
        ("pc-3", "sensor-1", "fanout", {"k": 2})
    assert eve.time_s == pytest.approx(10.0)
    assert read_alert({"event_type": "flow"}, inventory=inventory, t0_mono=T0,
                      t0_wall=None) is None


# ---- acting -------------------------------------------------------------------------------------

class FakeDeployment:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.quarantined: list[str] = []

    def quarantine(self, host: str) -> ActionTiming:
        self.quarantined.append(host)
        return ActionTiming(action="quarantine", target=host, seconds=0.002)


def test_an_action_from_the_page_is_carried_out_and_logged_like_the_cli(
        client: TestClient, runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = FakeDeployment(runs["state"])
    attached: list[tuple[str, str]] = []

    class FakeBackend:
        def __init__(self, name: str) -> None:
            self.name = name

        def attach(self, run_name: str) -> FakeDeployment:
            attached.append((self.name, run_name))
            return deployment

    monkeypatch.setattr("testbed.runner.manual.get_backend", FakeBackend)
    response = client.post("/api/runs/live/actions",
                           json={"kind": "quarantine", "target": "pc-3", "user": "student-1"},
                           headers={TOKEN_HEADER: TOKEN})
    assert response.status_code == 200, response.text
    assert deployment.quarantined == ["pc-3"] and attached == [("netns", "live-1")]
    logged = ActionLog(runs["state"] / "actions.jsonl").read()[-1]
    assert (logged.action, logged.target, logged.cause) == \
        ("quarantine", "pc-3", {"manual": "student-1"})
    view = authed(client, "/api/runs/live/defender").json()
    assert "pc-3" in view["quarantined"]
    # refused: unknown host, automation-only kinds, and finished runs
    bad = {TOKEN_HEADER: TOKEN}
    assert client.post("/api/runs/live/actions", json={"kind": "quarantine", "target": "nope"},
                       headers=bad).status_code == 400
    assert client.post("/api/runs/live/actions", json={"kind": "rate-limit", "target": "pc-1",
                                                       "per_second": 1}, headers=bad).status_code \
        == 400
    assert client.post("/api/runs/finished/actions", json={"kind": "quarantine",
                                                           "target": "pc-1"},
                       headers=bad).status_code == 409


def test_hints_are_revealed_one_at_a_time_and_counted(client: TestClient,
                                                      runs: dict[str, Path]) -> None:
    before = authed(client, "/api/runs/live/defender").json()["exercise"]
    assert before["hints"] == [] and before["hints_total"] == 3
    assert client.post("/api/runs/live/hints").status_code == 401
    first = client.post("/api/runs/live/hints", headers={TOKEN_HEADER: TOKEN}).json()
    assert first["index"] == 0 and first["left"] == 2
    after = authed(client, "/api/runs/live/defender").json()["exercise"]
    assert after["hints"] == [first["hint"]]


def test_a_real_runs_clock_cannot_be_paused(client: TestClient) -> None:
    state = authed(client, "/api/runs/live/playback").json()
    assert state["controllable"] is False and isinstance(state["now_s"], float)
    refused = client.post("/api/runs/live/playback", json={"rate": 0},
                          headers={TOKEN_HEADER: TOKEN})
    assert refused.status_code == 409 and "real time" in refused.json()["error"]


def test_runs_are_listed_with_their_phase(client: TestClient) -> None:
    rows = {row["name"]: row for row in authed(client, "/api/runs").json()["runs"]}
    assert rows["live"]["live"] is True and rows["live"]["phase"] == "running"
    assert rows["finished"]["phase"] == "finished"
    assert rows["finished"]["exercise"].startswith("Segment")
    assert authed(client, "/api/runs/nope/defender").status_code == 404
    assert authed(client, "/api/runs/..%2F..%2Fetc/defender").status_code == 404
