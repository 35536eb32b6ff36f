"""Inline SVG charts of one run: infection curve by tier, timeline, topology coloured by outcome.

Owns: turning scored results and records into SVG strings (no JavaScript, no external fonts or
files, so the report works offline and in headless browsers). Layout of the topology is computed
in Python with networkx. Must not: score anything (``testbed.scoring`` does) or read files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape

from testbed.containment import ContainmentTimeline
from testbed.eve import alert_detector, alert_time
from testbed.model.topology import Topology
from testbed.results import Results
from testbed.scoring import RunRecords, alert_host

__all__ = ["OUTCOME_COLOURS", "TIER_COLOURS", "host_outcomes", "infection_curve", "timeline",
           "topology_map"]

TIER_COLOURS: dict[str, str] = {
    "launch-pad": "#8d6e63",
    "workstation": "#42a5f5",
    "server": "#ab47bc",
    "crown-jewel": "#e53935",
}
OUTCOME_COLOURS: dict[str, str] = {
    "patient-zero": "#212121",
    "infected": "#e53935",
    "infected-quarantined": "#fb8c00",
    "quarantined": "#fdd835",
    "clean": "#43a047",
    "immune": "#90a4ae",
}
ACTION_COLOURS: dict[str, str] = {
    "quarantine": "#fb8c00", "release": "#26a69a", "block": "#6d4c41",
    "unblock": "#8d6e63", "rate-limit": "#7e57c2",
}
DETECTOR_PALETTE = ("#1e88e5", "#8e24aa", "#00897b", "#f4511e", "#3949ab", "#c0ca33",
                    "#6d4c41", "#d81b60")
DETECTION_COLOUR = "#1e88e5"
CONTAINMENT_COLOUR = "#2e7d32"
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _nice_step(span: float, ticks: int = 6) -> float:
    raw = max(span, 1e-9) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)


class _Frame:
    """A plot area: data -> pixel mapping with axes."""

    def __init__(self, width: int, height: int, x_max: float, y_max: float,
                 left: int = 56, right: int = 16, top: int = 16, bottom: int = 40) -> None:
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, right, top, bottom
        self.x_max, self.y_max = max(x_max, 1e-6), max(y_max, 1e-6)

    def x(self, value: float) -> float:
        inner = self.width - self.left - self.right
        return self.left + inner * min(max(value, 0.0), self.x_max) / self.x_max

    def y(self, value: float) -> float:
        inner = self.height - self.top - self.bottom
        return self.top + inner * (1.0 - min(max(value, 0.0), self.y_max) / self.y_max)

    def x_axis(self, label: str) -> list[str]:
        parts = []
        step = _nice_step(self.x_max)
        tick = 0.0
        base = self.height - self.bottom
        while tick <= self.x_max + 1e-9:
            x = self.x(tick)
            parts.append(f"<line x1='{x:.1f}' y1='{base}' x2='{x:.1f}' y2='{base + 5}' "
                         "stroke='#555'/>")
            parts.append(f"<text x='{x:.1f}' y='{base + 18}' font-size='11' {FONT} "
                         f"text-anchor='middle' fill='#333'>{_fmt(tick)}</text>")
            tick += step
        parts.append(f"<line x1='{self.left}' y1='{base}' x2='{self.width - self.right}' "
                     f"y2='{base}' stroke='#555'/>")
        parts.append(f"<text x='{(self.left + self.width - self.right) / 2:.1f}' "
                     f"y='{self.height - 4}' font-size='12' {FONT} text-anchor='middle' "
                     f"fill='#333'>{escape(label)}</text>")
        return parts


def _svg(width: int, height: int, body: Iterable[str], title: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
            f"width='{width}' height='{height}' role='img' aria-label='{escape(title)}'>"
            f"<rect width='{width}' height='{height}' fill='#ffffff'/>" + "".join(body) + "</svg>")


def _marker_line(frame: _Frame, at: float | None, colour: str, label: str,
                 row: int = 0) -> list[str]:
    """A dashed vertical line; ``row`` 1 puts the label lower so that two close lines stay
    readable."""
    if at is None:
        return []
    x = frame.x(at)
    return [f"<line x1='{x:.1f}' y1='{frame.top}' x2='{x:.1f}' "
            f"y2='{frame.height - frame.bottom}' stroke='{colour}' stroke-width='2' "
            f"stroke-dasharray='6 4'><title>{escape(label)}</title></line>",
            f"<text x='{x + 4:.1f}' y='{frame.top - 3 + 13 * row}' font-size='11' {FONT} "
            f"fill='{colour}'>{escape(label)}</text>"]


def infection_curve(results: Results, width: int = 1160, height: int = 320) -> str:
    """Cumulative infected hosts over time, stacked by tier, with detection/containment lines."""
    duration = results.run.duration_s or 1.0
    infections = sorted(results.infections, key=lambda i: i.time_s or 0.0)
    total = max(1, len(infections))
    frame = _Frame(width, height, duration, max(total, 1) * 1.1, top=30)
    body: list[str] = []
    # horizontal grid and y labels
    step = max(1.0, _nice_step(frame.y_max, 5))
    tick = 0.0
    while tick <= frame.y_max:
        y = frame.y(tick)
        body.append(f"<line x1='{frame.left}' y1='{y:.1f}' x2='{width - frame.right}' "
                    f"y2='{y:.1f}' stroke='#eee'/>")
        body.append(f"<text x='{frame.left - 6}' y='{y + 4:.1f}' font-size='11' {FONT} "
                    f"text-anchor='end' fill='#333'>{int(tick)}</text>")
        tick += step
    body.append(f"<text x='14' y='{height / 2:.0f}' font-size='12' {FONT} fill='#333' "
                f"transform='rotate(-90 14 {height / 2:.0f})' text-anchor='middle'>"
                "infected hosts</text>")
    # stacked step areas: the tier order puts the most valuable on top
    tiers = list(TIER_COLOURS)
    times = sorted({0.0, duration, *(i.time_s or 0.0 for i in infections)})
    counts = {tier: [sum(1 for i in infections if i.tier == tier and (i.time_s or 0.0) <= t)
                     for t in times] for tier in tiers}
    below = [0] * len(times)
    for tier in tiers:
        above = [b + c for b, c in zip(below, counts[tier], strict=True)]
        if not any(counts[tier]):
            continue
        upper, lower = [], []
        for index, t in enumerate(times):
            next_t = times[index + 1] if index + 1 < len(times) else t
            upper += [(frame.x(t), frame.y(above[index])), (frame.x(next_t), frame.y(above[index]))]
            lower += [(frame.x(t), frame.y(below[index])), (frame.x(next_t), frame.y(below[index]))]
        points = upper + lower[::-1]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f"<polygon points='{path}' fill='{TIER_COLOURS[tier]}' fill-opacity='0.85' "
                    f"stroke='{TIER_COLOURS[tier]}'><title>{escape(tier)}: "
                    f"{counts[tier][-1]} infected</title></polygon>")
        below = above
    for infection in infections:
        x = frame.x(infection.time_s or 0.0)
        body.append(f"<circle cx='{x:.1f}' cy='{frame.height - frame.bottom}' r='3' "
                    f"fill='{TIER_COLOURS.get(infection.tier, '#777')}'>"
                    f"<title>{escape(infection.host)} infected at "
                    f"{_fmt(infection.time_s or 0.0)} s</title></circle>")
    body += _marker_line(frame, results.first_detection_at_s, DETECTION_COLOUR,
                         "first detection")
    body += _marker_line(frame, results.contained_at_s, CONTAINMENT_COLOUR, "contained", row=1)
    body += frame.x_axis("seconds since start")
    # legend
    x = frame.left + 8
    for tier in tiers:
        body.append(f"<rect x='{x}' y='{frame.top + 22}' width='12' height='12' "
                    f"fill='{TIER_COLOURS[tier]}'/><text x='{x + 16}' y='{frame.top + 32}' "
                    f"font-size='11' {FONT} fill='#333'>{escape(tier)}</text>")
        x += 112
    return _svg(width, height, body, "infection curve by tier")


def timeline(results: Results, records: RunRecords, width: int = 1160,
             max_lanes: int = 60) -> str:
    """One lane per host that was infected, accused or acted on: infections, alerts, actions."""
    t0, topology = records.t0, records.topology
    duration = results.run.duration_s or 1.0
    marks: dict[str, list[tuple[float, str, str]]] = {}  # host -> (time, kind, label)
    for infection in results.infections:
        kind = "wake" if infection.patient_zero else "infection"
        marks.setdefault(infection.host, []).append(
            (infection.time_s or 0.0, kind,
             f"{infection.host} {'woke (patient zero)' if kind == 'wake' else 'infected'}"
             + (f" by {infection.parent}" if infection.parent else "")))
    detectors: list[str] = list(results.detectors)
    for record in records.alerts:
        host = alert_host(record, topology)
        if host is None:
            continue
        name = alert_detector(record)
        if name not in detectors:
            detectors.append(name)
        signature = (record.get("alert") or {}).get("signature", "")
        marks.setdefault(host, []).append(
            (alert_time(record, t0) - t0, f"alert:{name}",
             f"{name} alert on {host}: {signature}"))
    for action in records.actions:
        target = action.target
        host = target if target in topology.hosts else str(action.params.get("source", ""))
        if host not in topology.hosts:
            continue
        cause = action.cause
        who = f"manual ({cause['manual']})" if "manual" in cause else cause.get("detector", "")
        failed = "" if action.ok else " FAILED"
        marks.setdefault(host, []).append(
            (action.effective_at - t0, f"action:{action.action}",
             f"{action.action} {target} ({who}){failed}"))
    lanes = sorted(marks, key=lambda h: min(t for t, _, _ in marks[h]))
    hidden = max(0, len(lanes) - max_lanes)
    lanes = lanes[:max_lanes]
    lane_height = 20
    height = 60 + lane_height * max(1, len(lanes)) + 30
    frame = _Frame(width, height, duration, 1.0, left=130, top=44, bottom=40)
    body: list[str] = []
    colour_of = {name: DETECTOR_PALETTE[i % len(DETECTOR_PALETTE)]
                 for i, name in enumerate(d for d in detectors if d != "any")}
    for index, host in enumerate(lanes):
        y = frame.top + index * lane_height + lane_height / 2
        tier = topology.hosts[host].tier.value if host in topology.hosts else ""
        body.append(f"<line x1='{frame.left}' y1='{y:.1f}' x2='{width - frame.right}' "
                    f"y2='{y:.1f}' stroke='#eee'/>")
        body.append(f"<text x='{frame.left - 8}' y='{y + 4:.1f}' font-size='11' {FONT} "
                    f"text-anchor='end' fill='{TIER_COLOURS.get(tier, '#333')}'>"
                    f"{escape(host)}</text>")
        for when, kind, label in sorted(marks[host]):
            x = frame.x(when)
            tip = f"<title>{escape(label)} at {_fmt(when)} s</title>"
            if kind in ("infection", "wake"):
                fill = OUTCOME_COLOURS["patient-zero" if kind == "wake" else "infected"]
                body.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='6' fill='{fill}'>{tip}</circle>")
            elif kind.startswith("alert:"):
                colour = colour_of.get(kind[6:], "#1e88e5")
                body.append(f"<path d='M{x:.1f},{y - 9:.1f} L{x + 5:.1f},{y:.1f} "
                            f"L{x - 5:.1f},{y:.1f} Z' fill='{colour}' fill-opacity='0.9'>"
                            f"{tip}</path>")
            else:
                colour = ACTION_COLOURS.get(kind[7:], "#555")
                body.append(f"<rect x='{x - 4:.1f}' y='{y + 1:.1f}' width='8' height='8' "
                            f"fill='{colour}' stroke='#333'>{tip}</rect>")
    body += _marker_line(frame, results.first_detection_at_s, DETECTION_COLOUR,
                         "first detection")
    body += _marker_line(frame, results.contained_at_s, CONTAINMENT_COLOUR, "contained", row=1)
    body += frame.x_axis("seconds since start")
    legend = [("infection", OUTCOME_COLOURS["infected"], "circle"),
              ("patient zero", OUTCOME_COLOURS["patient-zero"], "circle")]
    legend += [(f"alert: {name}", colour, "triangle") for name, colour in colour_of.items()]
    legend += [("quarantine", ACTION_COLOURS["quarantine"], "square"),
               ("block", ACTION_COLOURS["block"], "square"),
               ("release", ACTION_COLOURS["release"], "square")]
    x = frame.left
    for label, colour, shape in legend:
        if shape == "circle":
            body.append(f"<circle cx='{x + 6}' cy='14' r='6' fill='{colour}'/>")
        elif shape == "triangle":
            body.append(f"<path d='M{x + 6},7 L{x + 12},19 L{x},19 Z' fill='{colour}'/>")
        else:
            body.append(f"<rect x='{x + 1}' y='9' width='10' height='10' fill='{colour}' "
                        "stroke='#333'/>")
        body.append(f"<text x='{x + 16}' y='18' font-size='11' {FONT} fill='#333'>"
                    f"{escape(label)}</text>")
        x += 24 + 7 * len(label)
    if not lanes:
        body.append(f"<text x='{width / 2:.0f}' y='{frame.top + 12}' font-size='12' {FONT} "
                    "text-anchor='middle' fill='#777'>no infections, alerts or actions</text>")
    if hidden:
        body.append(f"<text x='{frame.left}' y='{height - 22}' font-size='11' {FONT} "
                    f"fill='#777'>... and {hidden} more hosts (see events.jsonl)</text>")
    return _svg(width, height, body, "timeline of infections, alerts and actions")


def host_outcomes(results: Results, records: RunRecords) -> dict[str, str]:
    """Host -> outcome key of OUTCOME_COLOURS, as the run ended."""
    topology = records.topology
    infected = {i.host for i in results.infections}
    patient_zero = set(results.run.patient_zero)
    containment = ContainmentTimeline(topology)  # actions only: what was enforced at the end
    for action in records.actions:
        containment.act(action)
    containment.advance(records.end)
    quarantined = containment.state.quarantined
    outcomes = {}
    for name, host in topology.hosts.items():
        if name in patient_zero:
            outcomes[name] = "patient-zero"
        elif name in infected:
            outcomes[name] = "infected-quarantined" if name in quarantined else "infected"
        elif name in quarantined:
            outcomes[name] = "quarantined"
        elif not host.susceptible:
            outcomes[name] = "immune"
        else:
            outcomes[name] = "clean"
    return outcomes


def _segment_positions(topology: Topology, start_segments: Sequence[str]
                       ) -> dict[str, tuple[float, float]]:
    """Segments and routers in columns by hop distance from the outbreak's segment(s), so the
    picture reads left to right the way the worm must travel (networkx multipartite layout)."""
    import networkx as nx

    graph = topology.segment_graph.copy()
    layer: dict[str, int] = {}
    sources = [f"s:{s}" for s in start_segments if f"s:{s}" in graph] or [next(iter(graph))]
    for source in sources:
        for node, distance in nx.single_source_shortest_path_length(graph, source).items():
            layer[node] = min(layer.get(node, distance), distance)
    next_layer = max(layer.values(), default=-1) + 1
    for component in nx.connected_components(graph):  # islands the outbreak cannot reach
        if any(node in layer for node in component):
            continue
        first = sorted(component)[0]
        for node, distance in nx.single_source_shortest_path_length(graph, first).items():
            layer[node] = next_layer + distance
        next_layer = max(layer.values()) + 1
    for node in graph.nodes:
        graph.nodes[node]["layer"] = layer[node]
    if len(set(layer.values())) == 1:
        count = graph.number_of_nodes()
        return {node: (float(i) / max(1, count - 1), 0.0) for i, node in enumerate(graph.nodes)}
    positions = nx.multipartite_layout(graph, subset_key="layer")
    return {node: (float(xy[0]), float(xy[1])) for node, xy in positions.items()}


def topology_map(results: Results, records: RunRecords, width: int = 1160,
                 height: int = 620) -> str:
    """Segments (rounded boxes), routers (diamonds), hosts (dots) coloured by outcome."""
    topology = records.topology
    outcomes = host_outcomes(results, records)
    start = [topology.hosts[h].segment for h in results.run.patient_zero if h in topology.hosts]
    positions = _segment_positions(topology, start)
    margin = 100
    xs = [p[0] for p in positions.values()] or [0.0]
    ys = [p[1] for p in positions.values()] or [0.0]
    span_x, span_y = (max(xs) - min(xs)), (max(ys) - min(ys))
    if span_y < 1e-6:  # one row of segments: a shorter picture
        height = 400

    def place(node: str) -> tuple[float, float]:
        x, y = positions[node]
        px = width / 2 if span_x < 1e-6 else margin + (width - 2 * margin) * (x - min(xs)) / span_x
        py = ((height - 20) / 2 if span_y < 1e-6
              else margin + (height - 2 * margin - 20) * (y - min(ys)) / span_y)
        return px, py

    body: list[str] = []
    for router in topology.routers.values():
        rx, ry = place(f"r:{router.name}")
        for segment_name in router.interfaces:
            sx, sy = place(f"s:{segment_name}")
            body.append(f"<line x1='{rx:.1f}' y1='{ry:.1f}' x2='{sx:.1f}' y2='{sy:.1f}' "
                        "stroke='#90a4ae' stroke-width='3'/>")
    centres = [place(f"s:{name}") for name in topology.segments]
    gaps = [math.dist(a, b) for i, a in enumerate(centres) for b in centres[i + 1:]]
    ring_room = min([0.45 * min(gaps)] if gaps else [min(width, height) / 2 - 40])
    ring_room = max(30.0, min(ring_room, height / 2 - 30))
    host_radius, first_ring, ring_gap = 7.0, 58.0, 30.0
    for segment in topology.segments.values():
        cx, cy = place(f"s:{segment.name}")
        members = list(topology.hosts_in(segment.name))
        # concentric rings, each holding as many hosts as its circumference allows
        ring, placed = 0, 0
        dots: list[tuple[str, float, float]] = []
        while placed < len(members):
            radius = first_ring + ring * ring_gap
            capacity = max(6, int(2 * math.pi * radius / (4.2 * host_radius)))
            in_ring = min(capacity, len(members) - placed)
            for k in range(in_ring):
                angle = 2 * math.pi * k / in_ring + ring * 0.3 - math.pi / 2
                dots.append((members[placed + k].name, cx + radius * math.cos(angle),
                             cy + radius * math.sin(angle)))
            placed += in_ring
            ring += 1
        outer = first_ring + max(0, ring - 1) * ring_gap
        scale = min(1.0, ring_room / outer)
        dots = [(name, cx + (hx - cx) * scale, cy + (hy - cy) * scale) for name, hx, hy in dots]
        labelled = len(members) <= 24 and scale > 0.7
        for _name, hx, hy in dots:
            body.append(f"<line x1='{cx:.1f}' y1='{cy:.1f}' x2='{hx:.1f}' y2='{hy:.1f}' "
                        "stroke='#cfd8dc'/>")
        box_w = 24 + 7 * len(segment.name)
        body.append(f"<rect x='{cx - box_w / 2:.1f}' y='{cy - 13:.1f}' width='{box_w}' "
                    f"height='26' rx='8' fill='#eceff1' stroke='#546e7a'><title>segment "
                    f"{escape(segment.name)} {segment.cidr}</title></rect>")
        body.append(f"<text x='{cx:.1f}' y='{cy + 4:.1f}' font-size='12' {FONT} "
                    f"text-anchor='middle' fill='#263238'>{escape(segment.name)}</text>")
        for name, hx, hy in dots:
            host = topology.hosts[name]
            outcome = outcomes[name]
            ring_colour = "#263238" if host.tier.value == "crown-jewel" else "#ffffff"
            radius = host_radius + (3 if host.tier.value in ("server", "crown-jewel") else 0)
            body.append(f"<circle cx='{hx:.1f}' cy='{hy:.1f}' r='{radius:.1f}' "
                        f"fill='{OUTCOME_COLOURS[outcome]}' stroke='{ring_colour}' "
                        f"stroke-width='2'><title>{escape(name)} ({host.tier.value}, "
                        f"{host.ip}): {outcome}</title></circle>")
            if labelled:
                body.append(f"<text x='{hx:.1f}' y='{hy + radius + 11:.1f}' font-size='9' "
                            f"{FONT} text-anchor='middle' fill='#455a64'>{escape(name)}</text>")
    for router in topology.routers.values():
        rx, ry = place(f"r:{router.name}")
        body.append(f"<path d='M{rx:.1f},{ry - 14:.1f} L{rx + 14:.1f},{ry:.1f} "
                    f"L{rx:.1f},{ry + 14:.1f} L{rx - 14:.1f},{ry:.1f} Z' fill='#546e7a'>"
                    f"<title>router {escape(router.name)} (default {router.default}, "
                    f"{len(router.rules)} rules)</title></path>")
        body.append(f"<text x='{rx:.1f}' y='{ry + 27:.1f}' font-size='11' {FONT} "
                    f"text-anchor='middle' fill='#37474f' font-weight='bold'>"
                    f"{escape(router.name)}</text>")
    x = 12
    for outcome, colour in OUTCOME_COLOURS.items():
        body.append(f"<circle cx='{x + 6}' cy='{height - 14}' r='6' fill='{colour}'/>"
                    f"<text x='{x + 16}' y='{height - 10}' font-size='11' {FONT} fill='#333'>"
                    f"{escape(outcome)}</text>")
        x += 30 + 7 * len(outcome)
    return _svg(width, height, body, "topology coloured by outcome")

