"""The single-file HTML report: self-contained, escaped, and complete for odd runs."""

from __future__ import annotations

import re
from pathlib import Path

from testbed.report import render_report, write_report
from testbed.report.sample import sample_records
from testbed.report.svg import host_outcomes
from testbed.scoring import RunRecords, score


def test_report_is_self_contained(tmp_path: Path) -> None:
    records = sample_records()
    html = write_report(tmp_path / "report.html", score(records), records).read_text()
    assert html.startswith("<!DOCTYPE html>")
    # nothing fetched: the only URL is the SVG namespace identifier
    urls = set(re.findall(r"https?://[^\s'\"<>]+", html))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=", html)
    assert html.count("<svg") == 3  # curve, timeline, topology
    for text in ("Infection curve by tier", "Timeline", "Topology by outcome", "Detectors",
                 "first detection", "contained", "old-laptop", "payroll-db", "trw", "fanout"):
        assert text in html, text


def test_report_shows_headline_numbers(tmp_path: Path) -> None:
    records = sample_records()
    results = score(records)
    html = render_report(results, records)
    assert f">{results.grade.letter}<" in html
    assert f"{results.infected_total} / {len(records.topology.hosts)}" in html


def test_report_of_a_quiet_run_renders() -> None:
    sample = sample_records()
    quiet = RunRecords(topology=sample.topology, t0=0.0, end=10.0, patient_zero=("old-laptop",),
                       egress_counters={})
    html = render_report(score(quiet), quiet)
    assert "no infections, alerts or actions" in html
    assert "never" in html  # no detection


def test_names_are_escaped() -> None:
    sample = sample_records()
    evil = RunRecords(topology=sample.topology, t0=0.0, end=10.0,
                      alerts=[{"mono": 1.0, "detector": "<script>x</script>",
                               "host": "pc-1", "alert": {"signature": "<b>"}}],
                      manifest=sample.manifest.model_copy(update={"scenario": "<img src=x>"}))
    html = render_report(score(evil), evil)
    assert "<script>x" not in html and "<img src=x>" not in html
    assert "&lt;script&gt;" in html


def test_outcomes_follow_the_records() -> None:
    records = sample_records()
    outcomes = host_outcomes(score(records), records)
    assert outcomes["old-laptop"] == "patient-zero"
    assert outcomes["backup"] == "immune"  # patched
    assert outcomes["pc-12"] == "quarantined"  # quarantined, never infected
    assert outcomes["printer"] == "infected-quarantined"
    assert outcomes["payroll-db"] == "clean"
