"""The red team's files: ``worst-case.scenario.yaml``, ``redteam.json`` and ``redteam.html``.

Owns: ``worst_case_document`` (the input scenario file's data with its ``worm`` section replaced
by the best worm and its ``topology`` path made relative to the output directory, so the file
validates and runs where it is written), ``render_html`` (one self-contained page: the search
curve as inline SVG, the best parameters, the evaluation against the built-in profiles, the
hosts that fell, each detector's evidence and the backends side by side; the run report's
stylesheet, no script, nothing fetched) and ``write_outputs``.
Must not: run anything or compute figures (``testbed.redteam.search`` does).
"""

from __future__ import annotations

import json
import os
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from testbed.files import write_text_atomically
from testbed.model.load_scenario import Scenario
from testbed.yamlsource import load_yaml

__all__ = ["WORST_CASE", "render_html", "worst_case_document", "write_outputs"]

WORST_CASE = "worst-case.scenario.yaml"
SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "scenario.schema.json"


def worst_case_document(scenario: Scenario, worm: dict[str, Any], out: Path) -> dict[str, Any]:
    """The scenario file's data with the worm replaced (patient zero and start kept)."""
    data = dict(load_yaml(scenario.path).data)
    original = dict(data.get("worm") or {})
    replaced: dict[str, Any] = {"profile": worm["profile"],
                                "patient_zero": original.get("patient_zero",
                                                             scenario.spec.worm.patient_zero)}
    if "start_s" in original:
        replaced["start_s"] = original["start_s"]
    if worm["params"]:
        replaced["params"] = {key: (round(value, 6) if isinstance(value, float) else value)
                              for key, value in worm["params"].items()}
    data["worm"] = replaced
    description = str(data.get("description") or "").strip()
    data["description"] = (f"Red-team worst case against this defence: {worm['text']}. "
                           f"The input scenario: {description}").strip()
    data["topology"] = os.path.relpath(scenario.topology_path.resolve(), out.resolve())
    return data


def _worst_case_text(scenario: Scenario, data: dict[str, Any], document: dict[str, Any],
                     out: Path) -> str:
    best = data["best"]
    evaluation = data.get("evaluation", {})
    median = evaluation.get("worms", {}).get("best", {}).get("infected_median")
    schema = os.path.relpath(SCHEMA, out.resolve())
    header = [f"# yaml-language-server: $schema={schema}", "#",
              f"# Written by `testbed redteam` from {scenario.path}: the worst-case worm found "
              f"against this", f"# scenario's defence (objective {data['objective']}, trial "
              f"{best['trial']}, search score {best['search_score']:.4g}"
              + (f",\n# median {median:g} hosts infected over {len(evaluation['seeds'])} "
                 "held-out seeds" if median is not None else "") + ").",
              "# Everything but the worm section (and the topology path) is the input "
              "scenario's.", ""]
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)
    return "\n".join(header) + body


# ---- HTML -------------------------------------------------------------------------------------

_PROFILE_COLOURS = ("#1e88e5", "#8e24aa", "#00897b", "#f4511e", "#3949ab", "#c0ca33",
                    "#6d4c41", "#d81b60", "#43a047", "#fb8c00")


def search_curve_svg(curve: list[dict[str, Any]], profiles: list[str], objective: str,
                     width: int = 900, height: int = 300) -> str:
    """Every finished trial's score (dots coloured by profile) and the best so far (line)."""
    if not curve:
        return "<p>No finished trial yet.</p>"
    left, right, top, bottom = 60, 150, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    high = max(point["score"] for point in curve) or 1.0
    last = max(point["trial"] for point in curve) or 1

    def x(trial: float) -> float:
        return left + plot_w * trial / last

    def y(score: float) -> float:
        return top + plot_h * (1.0 - score / high)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"role='img' aria-label='search curve'>",
             f"<line x1='{left}' y1='{top + plot_h}' x2='{left + plot_w}' y2='{top + plot_h}' "
             "stroke='#90a4ae'/>",
             f"<line x1='{left}' y1='{top}' x2='{left}' y2='{top + plot_h}' stroke='#90a4ae'/>"]
    for fraction in (0.0, 0.5, 1.0):
        value = high * fraction
        parts.append(f"<text x='{left - 6}' y='{y(value) + 4:.1f}' font-size='11' "
                     f"text-anchor='end'>{value:.3g}</text>")
    parts.append(f"<text x='{left + plot_w / 2:.0f}' y='{height - 8}' font-size='12' "
                 "text-anchor='middle'>trial</text>")
    parts.append(f"<text x='14' y='{top + plot_h / 2:.0f}' font-size='12' "
                 f"transform='rotate(-90 14 {top + plot_h / 2:.0f})' text-anchor='middle'>"
                 f"{escape(objective)}</text>")
    steps = []
    for point in curve:
        steps.append(f"{x(point['trial']):.1f},{y(point['best_so_far']):.1f}")
    parts.append(f"<polyline points='{' '.join(steps)}' fill='none' stroke='#263238' "
                 "stroke-width='2'/>")
    colours = {p: _PROFILE_COLOURS[i % len(_PROFILE_COLOURS)] for i, p in enumerate(profiles)}
    for point in curve:
        colour = colours.get(point.get("profile") or "", "#607d8b")
        parts.append(f"<circle cx='{x(point['trial']):.1f}' cy='{y(point['score']):.1f}' r='4' "
                     f"fill='{colour}'><title>trial {point['trial']}: {point['profile']} "
                     f"{point['score']:.3g}</title></circle>")
    for index, profile in enumerate(profiles):
        legend_y = top + 14 + 16 * index
        parts.append(f"<circle cx='{left + plot_w + 20}' cy='{legend_y - 4}' r='4' "
                     f"fill='{colours[profile]}'/><text x='{left + plot_w + 30}' "
                     f"y='{legend_y}' font-size='11'>{escape(profile)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def render_html(data: dict[str, Any]) -> str:
    """The whole red-team report as one HTML document."""
    css = resources.files("testbed.report").joinpath("style.css").read_text(encoding="utf-8")
    title = f"{data['scenario']}: red team"
    search = data.get("search", {})
    sections = [f"<h1>{escape(title)}</h1>",
                f"<div class='sub'>objective {escape(data['objective'])} "
                f"({escape(data['objective_means'])}) · {data['budget']} trials x "
                f"{data['seeds_per_trial']} seeds on {escape(data['backend'])}"
                + (" · INTERRUPTED (rerun the same command to continue)"
                   if data.get("interrupted") else "") + "</div>"]
    best = data.get("best")
    evaluation = data.get("evaluation")
    if best and evaluation:
        worms = evaluation["worms"]
        builtin = evaluation["best_builtin"]
        ratio = evaluation.get("infected_median_ratio")
        sections.append(
            f"<p><b>Worst-case worm:</b> {escape(best['worm']['text'])}: median "
            f"{_fmt(worms['best']['infected_median'])} hosts infected over "
            f"{len(evaluation['seeds'])} held-out seeds, against "
            f"{_fmt(worms[builtin]['infected_median'])} for the best built-in profile "
            f"({escape(builtin)})" + (f", {ratio:.2f}x" if ratio else "") + ".</p>")
    sections.append("<h2>Search curve</h2><figure>" + search_curve_svg(
        search.get("curve", []), list(data.get("space", {})), data["objective"])
        + "<figcaption>Each dot a finished trial (its mean objective over the search seeds), "
          "coloured by profile; the line is the best so far.</figcaption></figure>")
    if best:
        sections.append("<h2>Best parameters</h2>" + _table(
            ["parameter", "value"], [["profile", best["worm"]["profile"]]]
            + [[k, _fmt(v)] for k, v in best["worm"]["params"].items()]))
    if evaluation:
        rows = [[label, row["worm"]["text"], _fmt(row["score"]), _fmt(row["infected_median"]),
                 " ".join(str(v) for v in row["infected"]), _fmt(row["value_median"]),
                 f"{row['jewel_runs']}/{len(row['infected'])}",
                 f"{row['contained_runs']}/{len(row['infected'])}",
                 f"{row['detected_runs']}/{len(row['infected'])}"]
                for label, row in evaluation["worms"].items()]
        sections.append(f"<h2>Against the built-in profiles ({len(evaluation['seeds'])} "
                        f"held-out seeds on {escape(evaluation['backend'])})</h2>" + _table(
                            ["worm", "parameters", "score", "infected (median)",
                             "infected per seed", "value lost (median)", "jewel fell",
                             "contained", "detected"], rows))
        fell = evaluation["hosts_fell"]
        runs = len(evaluation["seeds"])
        bars = "".join(
            f"<tr><td>{escape(host)}</td><td><div style='background:#e53935;height:12px;"
            f"width:{200 * count / runs:.0f}px'></div></td><td>{count}/{runs}</td></tr>"
            for host, count in fell.items())
        sections.append(f"<h2>Hosts that fell to the worst-case worm</h2><table>{bars}</table>")
    for key, heading in (("evidence", "Why each detector missed it"),
                         ("evidence_best_builtin", "The same detectors against the best "
                                                   "built-in profile")):
        if data.get(key):
            sections.append(f"<h2>{heading}</h2>" + _table(
                ["detector", "alerted", "alerts (median)", "first alert (s, median)",
                 "hosts fallen by then (median)", "evidence"],
                [[e["detector"], f"{e['runs_alerted']}/{e['runs']}", _fmt(e["alerts_median"]),
                  _fmt(e["first_alert_s_median"]), _fmt(e["infected_before_first_alert_median"]),
                  e["verdict"]] for e in data[key]]))
    confirmation = data.get("confirmation")
    if confirmation:
        if confirmation.get("skipped"):
            sections.append(f"<h2>Confirmation</h2><p>Skipped: "
                            f"{escape(confirmation['skipped'])}.</p>")
        else:
            rows = [[label, row["worm"]["text"], " ".join(map(str, row["sim_infected"])),
                     _fmt(row["sim_median"]), " ".join(map(str, row["emulated_infected"])),
                     _fmt(row["emulated_median"])]
                    for label, row in confirmation["rows"].items()]
            backend = escape(confirmation["backend"])
            sections.append(f"<h2>Both backends, same seeds {confirmation['seeds']}</h2>"
                            + _table(["worm", "parameters", "sim: infected", "sim median",
                                      f"{backend}: infected", f"{backend} median"], rows)
                            + f"<p>Direction agrees: {confirmation.get('direction_agrees')}.</p>")
    raw = escape(json.dumps({k: v for k, v in data.items() if k != "search"}, indent=2))
    sections.append(f"<details><summary>redteam.json (without the trials)</summary>"
                    f"<pre>{raw}</pre></details>")
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>"
            f"{escape(title)}</title><style>{css}</style></head><body>"
            + "\n".join(sections) + "<div class='foot'>adaptive-worm testbed · testbed redteam "
            "· generated offline</div></body></html>\n")


def write_outputs(out: Path, scenario: Scenario, data: dict[str, Any]) -> dict[str, Path]:
    """Write the files the data allows (the worst-case scenario once a trial finished)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "redteam.json", "html": out / "redteam.html"}
    write_text_atomically(paths["json"], json.dumps(data, indent=2, default=str) + "\n")
    write_text_atomically(paths["html"], render_html(data))
    if data.get("best"):
        document = worst_case_document(scenario, data["best"]["worm"], out)
        paths["scenario"] = out / WORST_CASE
        write_text_atomically(paths["scenario"], _worst_case_text(scenario, data, document,
                                                                  out))
    return paths
