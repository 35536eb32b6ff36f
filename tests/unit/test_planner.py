"""The static planner on small hand-computed topologies, and `testbed plan` through the CLI."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from testbed.cli.main import main
from testbed.model import Topology, load_topology
from testbed.planner import SCHEMA_VERSION, PlanResult, plan

FLAT = """
name: flat
segments:
  lan: {cidr: 10.0.0.0/24}
hosts:
  laptop: {segment: lan, tier: launch-pad}
  printer: {segment: lan, services: [{name: ipp}]}
  db: {segment: lan, tier: crown-jewel, services: [{name: sql, vulns: [MOCK-SQL-1]}]}
"""

# pad (a) -> srv (b) over r1 on smb; srv (b) -> jewel (c) over r2 on sql; nothing else.
CHAIN = """
name: chain
segments:
  a: {cidr: 10.0.1.0/24}
  b: {cidr: 10.0.2.0/24}
  c: {cidr: 10.0.3.0/24}
hosts:
  pad: {segment: a, tier: launch-pad}
  srv: {segment: b, tier: server, services: [{name: smb, vulns: [MOCK-SMB-1]}]}
  jewel: {segment: c, tier: crown-jewel, services: [{name: sql, vulns: [MOCK-SQL-1]}]}
routers:
  r1: {segments: [a, b], rules: [{action: allow, from: a, to: b, ports: 445, proto: tcp}]}
  r2: {segments: [b, c], rules: [%s{action: allow, from: b, to: c}]}
"""


def load(tmp_path: Path, text: str, name: str = "topo.yaml") -> Topology:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_topology(path)


def jewel(result: PlanResult, name: str):  # type: ignore[no-untyped-def]
    return next(v for v in result.crown_jewels if v.jewel == name)


def test_flat_network_jewel_reachable_in_one_hop(tmp_path: Path) -> None:
    result = plan(load(tmp_path, FLAT))
    verdict = jewel(result, "db")
    assert verdict.reachable and verdict.launch_pad == "laptop"
    assert [(h.source, h.target) for h in verdict.hops] == [("laptop", "db")]
    hop = verdict.hops[0]
    assert (hop.exploits[0].service, hop.exploits[0].port, hop.exploits[0].vulns) == (
        "sql", 3306, ("MOCK-SQL-1",))
    assert hop.routers == ()
    assert verdict.line == "crown jewel db: REACHABLE from launch pad laptop in 1 hop"
    # The printer runs no vulnerable service: not in the graph's edges, not in the blast radius.
    assert set(result.attack_graph.edges) == {("laptop", "db"), ("printer", "db")}
    assert result.blast_radius("laptop") == ("db",)


def test_two_router_chain_needs_a_pivot_through_the_server(tmp_path: Path) -> None:
    result = plan(load(tmp_path, CHAIN % ""))
    verdict = jewel(result, "jewel")
    assert verdict.reachable
    assert [h.target for h in verdict.hops] == ["srv", "jewel"]
    first, second = verdict.hops
    assert (first.exploits[0].service, first.routers) == ("smb", ("r1",))
    assert (second.exploits[0].service, second.routers) == ("sql", ("r2",))
    assert "in 2 hops" in verdict.line
    assert result.blast_radius("pad") == ("srv", "jewel")
    # No direct edge pad -> jewel: r1 only lets segment a reach segment b.
    assert not result.attack_graph.has_edge("pad", "jewel")
    cells = {(c.source, c.destination): c for c in result.matrix}
    assert cells[("a", "b")].status == "all"
    direct = cells[("a", "c")]
    assert direct.status == "none" and direct.routers == ("r1", "r2")
    assert direct.services[0].denied_by == (("r1 denies (default deny)", 1),)


def test_deny_rule_makes_jewel_unreachable_and_is_named(tmp_path: Path) -> None:
    deny = "{action: deny, from: b, to: jewel, ports: 3306, proto: tcp}, "
    result = plan(load(tmp_path, CHAIN % deny))
    verdict = jewel(result, "jewel")
    assert not verdict.reachable and verdict.cause == "policy"
    expected_reason = "r2 denies (rule 1: deny b -> jewel tcp/3306)"
    assert [(b.reason, b.sources) for b in verdict.blockers] == [(expected_reason, ("srv",))]
    assert expected_reason in verdict.explanation
    assert "closest to jewel (c): srv (1 router away), reached by pad -> srv" in verdict.explanation
    assert [h.target for h in verdict.approach] == ["srv"]
    assert verdict.line.startswith("crown jewel jewel: UNREACHABLE from every launch pad: ")
    assert result.blast_radius("pad") == ("srv",)


def test_host_firewall_denies_the_last_hop(tmp_path: Path) -> None:
    text = FLAT.replace(
        "services: [{name: sql, vulns: [MOCK-SQL-1]}]}",
        "services: [{name: sql, vulns: [MOCK-SQL-1]}], "
        "firewall: {default: deny, rules: [{action: allow, from: printer}]}}")
    result = plan(load(tmp_path, text))
    verdict = jewel(result, "db")
    assert not verdict.reachable and verdict.cause == "policy"
    assert [b.reason for b in verdict.blockers] == ["db's host firewall denies (default deny)"]
    assert "on its segment" in verdict.explanation
    # The printer is allowed but is not infectable, so it is no pivot.
    assert result.attack_graph.has_edge("printer", "db")
    assert not result.attack_graph.has_edge("laptop", "db")


@pytest.mark.parametrize(("services", "patched", "cause", "words"), [
    ("[{name: sql, vulns: [MOCK-SQL-1]}]", "true", "patched",
     "db is patched against every mock vulnerability"),
    ("[{name: sql, vulns: [MOCK-SQL-1]}]", "[MOCK-SQL-1]", "patched", "db has patched MOCK-SQL-1"),
    ("[{name: sql}]", "[]", "no-vulnerable-service",
     "db runs no service carrying a mock vulnerability"),
])
def test_immune_jewel_is_explained(tmp_path: Path, services: str, patched: str, cause: str,
                                   words: str) -> None:
    text = FLAT.replace("services: [{name: sql, vulns: [MOCK-SQL-1]}]}",
                        f"services: {services}, patched: {patched}}}")
    result = plan(load(tmp_path, text))
    verdict = jewel(result, "db")
    assert (verdict.reachable, verdict.cause, verdict.explanation) == (False, cause, words)
    assert verdict.line == f"crown jewel db: UNREACHABLE from every launch pad: {words}"
    assert result.attack_graph.in_degree("db") == 0


def test_no_launch_pad(tmp_path: Path) -> None:
    result = plan(load(tmp_path, FLAT.replace("tier: launch-pad", "tier: workstation")))
    assert jewel(result, "db").cause == "no-launch-pad"
    assert result.launch_pads == ()


def test_trust_relations_do_not_open_flows(tmp_path: Path) -> None:
    deny = "{action: deny, from: b, to: jewel, ports: 3306, proto: tcp}, "
    plain = plan(load(tmp_path, CHAIN % deny, "plain.yaml")).to_json()
    trusting_text = (CHAIN % deny).replace(
        "pad: {segment: a, tier: launch-pad}", "pad: {segment: a, tier: launch-pad, "
                                               "trusts: [jewel, srv]}").replace(
        "tier: server,", "tier: server, trusts: [jewel],")
    trusting_topology = load(tmp_path, trusting_text, "trusting.yaml")
    assert trusting_topology.hosts["srv"].trusts == ("jewel",)
    trusting = plan(trusting_topology).to_json()
    for shape in (plain, trusting):
        shape["topology"].pop("source")
    assert trusting == plain
    assert plain["crown_jewels"][0]["reachable"] is False


R0_TOPOLOGY = """
name: r0
segments:
  lan: {cidr: 10.0.0.0/28}
  srv: {cidr: 10.0.1.0/29}
  empty: {cidr: 10.0.2.0/29}
defaults:
  services: [{name: smb, vulns: [MOCK-SMB-1]}]
hosts:
  pad: {segment: lan, tier: launch-pad, services: []}
  w1: {segment: lan}
  w2: {segment: lan}
  w3: {segment: lan, patched: true}
  s1: {segment: srv, tier: server}
routers:
  r: {segments: [lan, srv], default: allow}
"""


def test_r0_exact_numbers(tmp_path: Path) -> None:
    topology = load(tmp_path, R0_TOPOLOGY)
    # All flows allowed. Infectable: w1, w2, s1 (pad has no service, w3 is patched).
    # lan: pad and w3 can infect 3 (w1, w2, s1), 2 of them local; srv: s1 infects w1, w2.
    # One vulnerability: the arsenal is one exploit, so every victim weighs 1.
    # Addresses: 16 + 8 + 8 = 32; routable from lan and srv: 16 + 8 = 24 (no router touches
    # "empty"); usable: lan 14, srv 6.
    r0 = {r.segment: r for r in plan(topology).r0}
    assert (r0["lan"].vulnerable_reachable, r0["lan"].vulnerable_reachable_local) == (3, 2)
    assert r0["lan"].addresses_total == 32 and r0["lan"].usable_addresses == 14
    assert r0["lan"].r0_uniform == pytest.approx(4 * 3 / 24)  # 0.5
    assert r0["lan"].r0_local == pytest.approx(4 * 2 / 14)
    assert r0["srv"].r0_uniform == pytest.approx(4 * 2 / 24)
    assert r0["srv"].r0_local == 0.0
    assert r0["empty"].r0_uniform is None and r0["empty"].hosts == 0
    assert not any(r.containment_can_fail for r in r0.values())

    stricter = {r.segment: r for r in plan(topology, scans_allowed=10).r0}
    assert stricter["lan"].r0_uniform == pytest.approx(30 / 24)  # 1.25
    assert stricter["lan"].r0_local == pytest.approx(20 / 14)
    assert stricter["srv"].r0_uniform == pytest.approx(20 / 24)  # 0.833: holds
    assert [s for s, r in stricter.items() if r.containment_can_fail] == ["lan"]


def test_r0_divides_by_routable_addresses_only(tmp_path: Path) -> None:
    # A worm's scan to a segment it has no route to fails at connect(): no detector counts it
    # and it cannot infect. "empty" (8 addresses) is unrouted from lan and srv, and routes to
    # nothing but itself.
    r0 = {r.segment: r for r in plan(load(tmp_path, R0_TOPOLOGY), scans_allowed=8).r0}
    assert [(r.addresses_total, r.addresses_routable) for r in r0.values()] == [
        (32, 24), (32, 24), (32, 8)]
    # srv: 8 x 2 / 24 = 0.667 (it was 8 x 2 / 32 = 0.5 over every address).
    assert r0["srv"].r0_uniform == pytest.approx(8 * 2 / 24)
    # lan: 8 x 3 / 24 = 1.0 fails (over every address, 8 x 3 / 32 = 0.75 would have held).
    assert r0["lan"].r0_uniform == pytest.approx(1.0)
    assert r0["lan"].containment_can_fail


# One segment, every flow allowed. The arsenal: MOCK-SMB-1 (smb/445), MOCK-SQL-1 and MOCK-SQL-2
# (sql/3306), MOCK-WEB-1 (http/80): 4 exploits, whoever has patched them.
ARSENAL_TOPOLOGY = """
name: arsenal
segments:
  lan: {cidr: 10.0.0.0/28}
hosts:
  pad: {segment: lan, tier: launch-pad}
  a: {segment: lan, services: [{name: smb, vulns: [MOCK-SMB-1]}]}
  b: {segment: lan, services: [{name: sql, vulns: [MOCK-SQL-1, MOCK-SQL-2]}]}
  c:
    segment: lan
    services: [{name: smb, vulns: [MOCK-SMB-1]}, {name: http, vulns: [MOCK-WEB-1]}]
    patched: [MOCK-WEB-1]
"""


def test_r0_weighs_each_victim_by_its_share_of_the_arsenal(tmp_path: Path) -> None:
    topology = load(tmp_path, ARSENAL_TOPOLOGY)
    # The worm picks one of the 4 exploits per probe: a probe to host a infects with 1/4 (SMB-1),
    # to b with 2/4 (SQL-1 or SQL-2), to c with 1/4 (SMB-1; WEB-1 is patched).
    # pad infects a, b, c: 1/4 + 2/4 + 1/4 = 1.0; a infects b, c: 0.75; b infects a, c: 0.5;
    # c infects a, b: 0.75. Worst placed: pad. 16 addresses, 14 usable.
    (r0,) = plan(topology).r0
    assert r0.arsenal_size == 4 and r0.vulnerable_reachable == 3
    assert r0.worst_placed == r0.worst_placed_local == "pad"
    assert r0.victims_weighted == pytest.approx(1.0)
    assert r0.r0_uniform == pytest.approx(4 * 1.0 / 16)  # 0.25
    # The local-preference worm picks its exploit the same way: same weights.
    assert r0.victims_weighted_local == pytest.approx(1.0)
    assert r0.r0_local == pytest.approx(4 * 1.0 / 14)
    # At 8 scans, counting every victim whole would say 8 x 3 / 16 = 1.5 (fails); weighted,
    # 8 x 1.0 / 16 = 0.5 and 8 / 14 = 0.571: containment holds.
    (stricter,) = plan(topology, scans_allowed=8).r0
    assert stricter.r0_uniform == pytest.approx(0.5)
    assert not stricter.containment_can_fail


def test_planner_arsenal_is_the_one_the_worm_carries() -> None:
    from testbed.planner.analysis import _arsenal_matches
    from testbed.runner.agent_configs import _arsenal

    for path in sorted((Path(__file__).resolve().parents[2] / "topologies").glob("*.yaml")):
        topology = load_topology(path)
        carried = _arsenal(topology)
        size, matching = _arsenal_matches(topology)
        assert size == len(carried), path.name
        assert matching == Counter((e.vuln, e.port, e.proto) for e in carried), path.name


def test_json_shape_is_stable(tmp_path: Path) -> None:
    shape = plan(load(tmp_path, CHAIN % "")).to_json()
    json.dumps(shape)  # serialisable
    assert shape["schema_version"] == SCHEMA_VERSION == 1
    assert list(shape) == ["schema_version", "topology", "parameters", "matrix", "attack_graph",
                           "launch_pads", "crown_jewels", "r0", "notes"]
    assert set(shape["topology"]) == {"name", "source", "segments", "hosts", "routers"}
    assert shape["parameters"] == {"scans_allowed": 4}
    cell = shape["matrix"][0]
    assert set(cell) == {"from", "to", "status", "routers", "services"}
    assert set(shape["matrix"][1]["services"][0]) == {
        "service", "port", "proto", "status", "allowed_pairs", "total_pairs",
        "reachable_hosts", "sources", "denied_by"}
    node = shape["attack_graph"]["nodes"][1]
    assert set(node) == {"host", "segment", "ip", "tier", "value", "susceptible",
                         "vulnerable_services"}
    assert node["vulnerable_services"] == [{"id": "smb/445/tcp", "service": "smb", "port": 445,
                                            "proto": "tcp", "vulns": ["MOCK-SMB-1"]}]
    assert shape["attack_graph"]["edges"][0] == {"from": "pad", "to": "srv", "routers": ["r1"],
                                                 "exploits": ["smb/445/tcp"]}
    pad = shape["launch_pads"][0]
    assert set(pad) == {"host", "segment", "blast_radius", "blast_radius_size", "blast_value",
                        "jewels"}
    assert set(pad["jewels"][0]) == {"jewel", "reachable", "hop_count", "path", "hops", "cause",
                                     "explanation", "blockers", "approach"}
    crown = shape["crown_jewels"][0]
    assert set(crown) == {"host", "segment", "reachable", "launch_pad", "hop_count", "path",
                          "hops", "reachable_from", "cause", "explanation", "blockers",
                          "approach", "verdict"}
    assert crown["path"] == ["pad", "srv", "jewel"] and crown["hop_count"] == 2
    assert set(crown["hops"][0]) == {"from", "to", "routers", "exploits"}
    assert set(shape["r0"][0]) == {"segment", "hosts", "scans_allowed", "vulnerable_reachable",
                                   "addresses_total", "r0_uniform", "vulnerable_reachable_local",
                                   "usable_addresses", "r0_local", "containment_can_fail",
                                   "arsenal_size", "victims_weighted", "worst_placed",
                                   "addresses_routable", "victims_weighted_local",
                                   "worst_placed_local"}


def test_blocker_json_shape(tmp_path: Path) -> None:
    deny = "{action: deny, from: b, to: jewel, ports: 3306, proto: tcp}, "
    crown = plan(load(tmp_path, CHAIN % deny)).to_json()["crown_jewels"][0]
    assert crown["path"] is None and crown["hop_count"] is None
    assert crown["blockers"] == [{"reason": "r2 denies (rule 1: deny b -> jewel tcp/3306)",
                                  "service": "sql", "port": 3306, "proto": "tcp",
                                  "routers": ["r2"], "from": ["srv"]}]


def test_scans_allowed_must_be_positive(tmp_path: Path) -> None:
    from testbed.errors import TestbedError

    with pytest.raises(TestbedError):
        plan(load(tmp_path, FLAT), scans_allowed=0)


# ---- CLI ----------------------------------------------------------------------------------------
def test_cli_human_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(CHAIN % "")
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "crown jewel jewel: REACHABLE from launch pad pad in 2 hops" in out
    assert "Segment matrix" in out and "R0 per segment" in out


def test_cli_unreachable_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deny.yaml"
    path.write_text(CHAIN % "{action: deny, from: b, to: jewel, ports: 3306, proto: tcp}, ")
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "crown jewel jewel: UNREACHABLE from every launch pad:" in out
    assert "r2 denies (rule 1: deny b -> jewel tcp/3306)" in out
    assert "closest approach (1 hop):" in out
    assert "pad -> srv: smb/445 (MOCK-SMB-1), via r1" in out


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r0.yaml"
    path.write_text(R0_TOPOLOGY)
    # At 10 scans lan's R0 is 10 x 3 / 24 = 1.25, srv's 10 x 2 / 24 = 0.833 (test_r0_exact_numbers).
    assert main(["plan", str(path), "--json", "--scans-allowed", "10"]) == 0
    shape = json.loads(capsys.readouterr().out)
    assert shape["schema_version"] == 1 and shape["parameters"]["scans_allowed"] == 10
    assert [r["segment"] for r in shape["r0"] if r["containment_can_fail"]] == ["lan"]
    assert shape["r0"][2]["r0_uniform"] is None


def test_cli_invalid_topology_exits_one(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(FLAT.replace("laptop: {segment: lan", "laptop: {segment: lab"))
    assert main(["plan", str(path)]) == 1
    captured = capsys.readouterr()
    assert "unknown segment 'lab'" in captured.err and "bad.yaml:" in captured.err
    assert captured.out == ""


def test_cli_rejects_zero_scans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text(FLAT)
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", str(path), "--scans-allowed", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
