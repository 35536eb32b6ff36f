"""The single-file HTML report of one run: headline metrics, grade, plots, detector table.

Owns: ``render_report`` (a self-contained HTML string: CSS and SVG inline, no script, no CDN, no
font or image fetched, so it opens offline and in headless Chromium) and ``write_report``.
Must not: compute metrics (``testbed.scoring`` does) or read run files.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from testbed.report.svg import infection_curve, timeline, topology_map
from testbed.results import Results
from testbed.scoring import RunRecords

__all__ = ["render_report", "write_report"]


def _seconds(value: Any) -> str:
    if value is None:
        return "never"
    value = float(value)
    if value < 1:
        return f"{1000 * value:.0f} ms"
    if value < 120:
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _card(label: str, value: str, note: str = "", css: str = "") -> str:
    return (f"<div class='card'><div class='label'>{escape(label)}</div>"
            f"<div class='value {css}'>{escape(value)}</div>"
            + (f"<div class='note'>{escape(note)}</div>" if note else "") + "</div>")


def _headline(results: Results) -> str:
    grade, run = results.grade, results.run
    escape_info = results.launch_pad_escape
    crown = results.crown_jewels_infected
    safety, collateral = results.safety, results.collateral
    held = results.one_ten_sixty.held
    tier_note = ", ".join(f"{tier} {count}" for tier, count in results.infected_by_tier.items()
                          if count)
    cards = [
        _card("grade", grade.letter, f"score {grade.score} / 100", f"grade grade-{grade.letter}"),
        _card("time to first detection", _seconds(results.time_to_first_detection_s),
              "from patient zero's first probe"),
        _card("time to containment", _seconds(results.time_to_containment_s),
              "contained" if results.contained else "NOT contained at the end",
              "good" if results.contained else "bad"),
        _card("infected", f"{results.infected_total} / {run.hosts_total}", tier_note or "none"),
        _card("launch-pad escape",
              f"at {_seconds(escape_info.time_s)}" if escape_info.escaped else "no",
              escape_info.host or "", "bad" if escape_info.escaped else "good"),
        _card("crown jewels lost", str(len(crown)),
              ", ".join(f"{c.host} at {_seconds(c.time_s)}" for c in crown),
              "bad" if crown else "good"),
        _card("value lost", _number(results.value_weighted_loss, 1),
              f"{100 * (results.value_loss_fraction or 0):.1f}% of value at risk"),
        _card("peak infected", str(results.peak_infected), "infected and not quarantined"),
        _card("benign hosts quarantined", str(collateral.benign_hosts_quarantined),
              f"{collateral.benign_requests_failed} of {collateral.benign_requests} "
              "benign requests failed"),
        _card("egress packets", _number(safety.egress_packets),
              "must be 0", "good" if safety.egress_packets == 0 else "bad"),
        _card("1-10-60", "held" if held else "missed", "detect < 1 min, contain < 60 min",
              "good" if held else "bad"),
    ]
    return "<div class='cards'>" + "".join(cards) + "</div>"


def _detector_table(results: Results) -> str:
    rows = []
    for name, row in results.detectors.items():
        label = "all detectors" if name == "any" else name
        rows.append(
            f"<tr><td>{escape(label)}</td><td>{row.alerts}</td><td>{row.tp}</td>"
            f"<td>{row.fp}</td><td>{row.fn}</td><td>{_number(row.precision)}</td>"
            f"<td>{_number(row.recall)}</td>"
            f"<td>{_number(row.median_detection_latency_s)}</td>"
            f"<td title='{escape(', '.join(row.false_positive_hosts))}'>"
            f"{escape(', '.join(row.false_positive_hosts[:6]))}</td></tr>")
    return ("<table><tr><th>detector</th><th>alerts</th><th>TP hosts</th><th>FP hosts</th>"
            "<th>FN hosts</th><th>precision</th><th>recall</th><th>median latency (s)</th>"
            "<th>false positives</th></tr>" + "".join(rows) + "</table>")


def _grade_table(results: Results) -> str:
    grade = results.grade
    rows = "".join(f"<tr><td>{escape(name.replace('_', ' '))}</td><td>-{value}</td></tr>"
                   for name, value in grade.penalties.items())
    caps = "".join(f"<li>{escape(cap)}</li>" for cap in grade.caps)
    return (f"<table><tr><th>penalty</th><th>points</th></tr>{rows or '<tr><td>none</td><td>0'}"
            f"</table>" + (f"<ul>{caps}</ul>" if caps else "")
            + "<p class='note'>Formula: see docs/metrics.md (100 minus penalties for value lost, "
              "launch-pad escape, time to contain, collateral; crown jewel caps at D).</p>")


def render_report(results: Results, records: RunRecords) -> str:
    """The whole report as one HTML document."""
    run = results.run
    css = resources.files("testbed.report").joinpath("style.css").read_text(encoding="utf-8")
    title = f"{run.scenario or run.topology}: containment report"
    subtitle = " · ".join(str(part) for part in (
        f"topology {run.topology}", f"seed {run.seed}" if run.seed is not None else "",
        f"backend {run.backend}" if run.backend is not None else "",
        f"{_seconds(run.duration_s)} run",
        f"patient zero {', '.join(run.patient_zero)}",
        "INTERRUPTED" if run.interrupted else "") if part)
    sensor_line = ", ".join(f"{k} {v}" for k, v in run.sensor.items()) if run.sensor else "n/a"
    raw = escape(json.dumps(results.model_dump(mode="json", exclude={"infections"}), indent=2))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{css}</style></head>
<body>
<h1>{escape(title)}</h1>
<div class="sub">{escape(subtitle)}</div>
{_headline(results)}
<h2>Infection curve by tier</h2>
<figure>{infection_curve(results)}
<figcaption>Cumulative infected hosts, stacked by tier; dashed lines mark the first true
detection and the moment the outbreak was contained.</figcaption></figure>
<h2>Timeline</h2>
<figure>{timeline(results, records)}
<figcaption>One lane per host that was infected, accused or acted on (hover for details).
</figcaption></figure>
<h2>Topology by outcome</h2>
<figure>{topology_map(results, records)}
<figcaption>Segments, routers (diamonds) and hosts coloured by outcome at the end of the run;
larger dots are servers and crown jewels.</figcaption></figure>
<h2>Detectors</h2>
{_detector_table(results)}
<p>Probes before detection (median): {_number(results.probes_before_detection.median)}.
Sensor: {escape(sensor_line)}.
Forged tokens rejected: {results.safety.forged_tokens_rejected}.</p>
<h2>Grade</h2>
{_grade_table(results)}
<details><summary>results.json</summary><pre>{raw}</pre></details>
<div class="foot">adaptive-worm testbed · generated offline · every metric is defined in
docs/metrics.md</div>
</body></html>
"""


def write_report(path: Path, results: Results, records: RunRecords) -> Path:
    path.write_text(render_report(results, records), encoding="utf-8")
    return path
