"""The shipped example topologies and scenarios: they validate, the published JSON schemas accept
them (and are up to date), and each network has the properties its comments promise."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import jsonschema
import pytest

from testbed.cli.main import main
from testbed.detection import load_scenario  # detectors checked against the registry, as users get
from testbed.model import Host, Tier, Topology, load_topology
from testbed.policy import decide_flow
from testbed.schema import SCHEMA_DIRECTORY, SCHEMA_KINDS, generate_schema, schema_text
from testbed.yamlsource import load_yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA_LINE = "# yaml-language-server: $schema="


def declared_schema(path: Path) -> Path:
    """The schema a YAML file names on its first line (for editors), resolved."""
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith(SCHEMA_LINE), f"{path} must start with {SCHEMA_LINE}..."
    return (path.parent / first_line.removeprefix(SCHEMA_LINE)).resolve()


def declared_kind(path: Path) -> str:
    return declared_schema(path).name.removesuffix(".schema.json")


ALL_YAML = sorted([*(REPO / "topologies").glob("*.yaml"), *(REPO / "scenarios").glob("*.yaml"),
                   *(REPO / "testbed" / "agent" / "profiles").glob("*.yaml")])
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))
# scenarios/ also holds bench files (testbed bench), which declare their own schema.
SCENARIOS = [p for p in sorted((REPO / "scenarios").glob("*.yaml"))
             if declared_kind(p) == "scenario"]
PROFILES = sorted((REPO / "testbed" / "agent" / "profiles").glob("*.yaml"))
EXPECTED_TOPOLOGIES = {"home-basement", "smb-flat", "smb-segmented", "hospital", "ics-grid",
                       "campus"}


def ids(paths: Iterable[Path]) -> list[str]:
    return [path.relative_to(REPO).as_posix() for path in paths]


def test_the_examples_exist() -> None:
    assert {p.stem for p in TOPOLOGIES} >= EXPECTED_TOPOLOGIES
    assert {p.stem for p in SCENARIOS} >= EXPECTED_TOPOLOGIES - {"home-basement"} | {
        "basement-launchpad"}


def test_validate_accepts_every_example(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in ALL_YAML]
    assert main(["validate", *paths]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.count(": ok: ") == len(paths)


# ---- schemas -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_shipped_schema_is_up_to_date(kind: str) -> None:
    shipped = SCHEMA_DIRECTORY / f"{kind}.schema.json"
    assert shipped.read_text(encoding="utf-8") == schema_text(kind), (
        f"{shipped} is stale: run `python -m testbed.schema` and commit the result")


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_schema_is_a_valid_json_schema_that_forbids_unknown_keys(kind: str) -> None:
    schema = generate_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    for name, definition in schema.get("$defs", {}).items():
        if definition.get("type") == "object" and "properties" in definition:
            assert definition.get("additionalProperties") is False, name


@pytest.mark.parametrize("path", ALL_YAML, ids=ids(ALL_YAML))
def test_example_starts_with_its_schema_line_and_the_schema_accepts_it(path: Path) -> None:
    schema_path = declared_schema(path)
    assert schema_path.parent == SCHEMA_DIRECTORY.resolve() and schema_path.is_file()
    kind = declared_kind(path)
    assert kind in SCHEMA_KINDS
    if path.parent.name in ("topologies", "profiles"):
        assert kind == {"topologies": "topology", "profiles": "profile"}[path.parent.name]
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    # Read as the testbed reads it (keys stay text: PyYAML's safe_load would turn the key
    # 'on' into True, as YAML 1.1 says; editors' YAML 1.2 keeps it text, as we do).
    data = load_yaml(path).data
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)


def test_the_published_schema_rejects_what_the_loader_rejects() -> None:
    schema = generate_schema("topology")
    base = load_yaml(REPO / "topologies" / "smb-flat.yaml").data
    for broken in ({**base, "hots": {}},
                   {**base, "hosts": {**base["hosts"], "kiosk": {"segmnet": "users"}}},
                   {**base, "hosts": {**base["hosts"], "Web_Server": {"segment": "users"}}},
                   {**base, "segments": {**base["segments"], "DMZ": {"cidr": "10.9.0.0/24"}}},
                   {**base, "hosts": {**base["hosts"], "kiosk": {"tier": "crown-jewl"}}},
                   {**base, "hosts": {**base["hosts"], "kiosk": {
                       "services": [{"name": "smb", "vulns": ["CVE-2017-0144"]}]}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_schema_command_prints_the_schema_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "topology"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == generate_schema("topology")
    assert printed["title"] == "Adaptive-worm testbed topology"


# ---- what the networks promise -------------------------------------------------------------
def spread(topology: Topology, start: Iterable[str], immune: Iterable[str] = ()) -> set[str]:
    """Every host an outbreak from ``start`` can reach, hop by hop, through vulnerable services
    the static policy allows (no defence at run time)."""
    infected = set(start)
    blocked = set(immune)
    frontier = list(infected)
    while frontier:
        source = topology.hosts[frontier.pop()]
        for target in topology.hosts.values():
            if target.name in infected or target.name in blocked:
                continue
            if any(decide_flow(topology, source, target.ip, service.port, service.proto)
                   for service in target.vulnerable_services()):
                infected.add(target.name)
                frontier.append(target.name)
    return infected


def names(hosts: Iterable[Host]) -> set[str]:
    return {host.name for host in hosts}


@pytest.fixture(scope="module")
def loaded() -> dict[str, Topology]:
    return {path.stem: load_topology(path) for path in TOPOLOGIES}


def test_host_counts(loaded: dict[str, Topology]) -> None:
    counts = {name: len(t.hosts) for name, t in loaded.items()}
    assert all(8 <= count for count in counts.values()), counts
    assert counts["campus"] >= 250
    lab = sum(1 for h in loaded["campus"].hosts_in("student-lab"))
    assert lab >= 200
    assert 20 <= counts["smb-flat"] <= 30


def test_every_example_has_launch_pads_and_crown_jewels(loaded: dict[str, Topology]) -> None:
    for name, t in loaded.items():
        assert t.hosts_of_tier(Tier.LAUNCH_PAD), name
        assert t.hosts_of_tier(Tier.CROWN_JEWEL), name
        assert t.decoys, name


def test_addresses_are_private_and_inside_their_segments(loaded: dict[str, Topology]) -> None:
    for t in loaded.values():
        for host in t.hosts.values():
            assert host.ip in t.segments[host.segment].cidr and host.ip.is_private


def test_flat_and_segmented_smb_hold_the_same_hosts(loaded: dict[str, Topology]) -> None:
    def inventory(t: Topology) -> dict[str, tuple[object, ...]]:
        return {h.name: (h.segment, h.ip, h.tier, h.value, h.os, h.services, h.trusts, h.patched,
                         h.group) for h in t.hosts.values()}

    flat, segmented = loaded["smb-flat"], loaded["smb-segmented"]
    assert inventory(flat) == inventory(segmented)
    assert flat.decoys == segmented.decoys
    assert {n: s.cidr for n, s in flat.segments.items()} == {
        n: s.cidr for n, s in segmented.segments.items()}
    assert flat.groups["pc"] == segmented.groups["pc"]


def test_segmentation_decides_whether_a_crown_jewel_falls(loaded: dict[str, Topology]) -> None:
    for name, jewel_reachable in (("smb-flat", True), ("smb-segmented", False)):
        t = loaded[name]
        pads = names(t.hosts_of_tier(Tier.LAUNCH_PAD))
        jewels = names(t.hosts_of_tier(Tier.CROWN_JEWEL))
        fallen = spread(t, pads)
        assert bool(fallen & jewels) is jewel_reachable, (name, fallen & jewels)
    # In the flat network the kiosk reaches the finance database's sql directly.
    flat = loaded["smb-flat"]
    assert decide_flow(flat, flat.hosts["lobby-kiosk"], flat.hosts["finance-db"].ip, 3306, "tcp")


def test_the_basement_laptop_pivots_through_the_home_office_vpn(
        loaded: dict[str, Topology]) -> None:
    t = loaded["home-basement"]
    company = {h.name for h in t.hosts.values() if not h.segment == "home"}
    fallen = spread(t, ["basement-laptop"])
    assert "home-office-pc" in fallen
    assert {"fileserver", "erp-app", "finance-db"} <= fallen
    # Without the home-office PC there is no way into the company.
    assert not spread(t, ["basement-laptop"], immune=["home-office-pc"]) & company
    # Only the home-office PC's traffic is tunnelled.
    laptop, fileserver = t.hosts["basement-laptop"], t.hosts["fileserver"]
    assert not decide_flow(t, laptop, fileserver.ip, 445, "tcp")
    assert decide_flow(t, t.hosts["home-office-pc"], fileserver.ip, 445, "tcp")
    # The finance database only answers the ERP application (host firewall).
    assert not decide_flow(t, t.hosts["ws-1"], t.hosts["finance-db"].ip, 3306, "tcp")


def test_hospital_guests_are_isolated_and_the_dicom_path_is_the_weak_spot(
        loaded: dict[str, Topology]) -> None:
    t = loaded["hospital"]
    guest = t.hosts["guest-1"]
    for other in ("ward-pc-1", "ehr", "infusion-pump-1"):
        verdict = decide_flow(t, guest, t.hosts[other].ip, 443, "tcp")
        assert not verdict and "no route" in verdict.reason
    fallen = spread(t, ["infusion-pump-1"])
    assert "pacs" in fallen and "ehr" in fallen
    assert "ehr" not in spread(t, ["infusion-pump-1"], immune=["pacs"])
    assert not spread(t, ["guest-1"]) - {"guest-1"}


def test_ics_grid_follows_the_purdue_model(loaded: dict[str, Topology]) -> None:
    t = loaded["ics-grid"]
    plc = t.hosts["plc-1"]
    for it_host in ("office-1", "it-admin", "lobby-kiosk", "historian", "jump-host"):
        assert not decide_flow(t, t.hosts[it_host], plc.ip, 502, "tcp"), it_host
    assert decide_flow(t, t.hosts["eng-ws"], plc.ip, 502, "tcp")
    assert t.router_paths[("corp-it", "ot-field")] == ("it-dmz-fw", "dmz-ot-fw", "cell-fw")
    assert {h.name for h in t.hosts_of_tier(Tier.CROWN_JEWEL)} >= {"scada", "hmi-1"}
    assert all(any(s.name == "modbus" for s in t.hosts[m].services) for m in t.groups["plc"])
    # A kiosk in IT cannot reach a crown jewel, but the field camera can reach the PLCs' peers.
    assert not spread(t, ["lobby-kiosk"]) & {"scada", "hmi-1", "hmi-2", "hmi-3"}


def test_campus_research_data_is_fenced_off(loaded: dict[str, Topology]) -> None:
    t = loaded["campus"]
    data = t.hosts["research-data"]
    for outsider in ("lab-pc-1", "staff-pc-1", "dorm-device-1", "lms"):
        assert not decide_flow(t, t.hosts[outsider], data.ip, 445, "tcp"), outsider
    assert decide_flow(t, t.hosts["research-pi"], data.ip, 445, "tcp")


# ---- scenarios -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", SCENARIOS, ids=ids(SCENARIOS))
def test_scenarios_stay_short_and_start_on_launch_pads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.spec.duration_s <= 120
    assert scenario.spec.detectors, "every example runs a defence"
    assert all(not detector.params for detector in scenario.spec.detectors)
    for host in scenario.patient_zero():
        assert scenario.topology.hosts[host].tier == Tier.LAUNCH_PAD
    assert scenario.worm_params()  # the profile's parameters resolve


def test_every_topology_has_a_scenario() -> None:
    used = {load_scenario(path).topology_path.resolve() for path in SCENARIOS}
    assert used == {path.resolve() for path in TOPOLOGIES}


def test_the_flagship_scenario() -> None:
    scenario = load_scenario(REPO / "scenarios" / "basement-launchpad.yaml")
    assert scenario.topology.name == "home-basement"
    assert scenario.patient_zero() == ["basement-laptop"]
    assert scenario.spec.worm.profile in ("adaptive", "classic")
    assert {d.name for d in scenario.spec.detectors} >= {"trw", "fanout", "darknet"}
    assert scenario.spec.response.automation
    assert any(rule.action == "quarantine" for rule in scenario.spec.response.rules)
    assert 60 <= scenario.spec.duration_s <= 120


def test_smb_scenarios_differ_only_in_their_topology() -> None:
    flat = load_scenario(REPO / "scenarios" / "smb-flat.yaml").spec
    segmented = load_scenario(REPO / "scenarios" / "smb-segmented.yaml").spec
    ignore = {"name", "description", "topology"}
    assert flat.model_dump(exclude=ignore) == segmented.model_dump(exclude=ignore)
    assert flat.topology != segmented.topology
