"""Human rendering of a :class:`~testbed.planner.analysis.PlanResult` with rich tables.

Owns: how ``testbed plan`` looks on a terminal. Must not: compute anything the JSON lacks (every
figure shown comes from the PlanResult), or decide exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from testbed.planner.analysis import (
    CONTAINMENT_WARNING,
    Hop,
    LaunchPadReport,
    PlanResult,
)

__all__ = ["render_plan"]

_STATUS_STYLE = {"all": "bold red", "some": "yellow", "none": "green", "n/a": "dim"}


def _names(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def _hop_text(hop: Hop) -> str:
    via = f"via {', '.join(hop.routers)}" if hop.routers else "same segment"
    extra = f" (+{len(hop.exploits) - 1} other service)" if len(hop.exploits) == 2 else (
        f" (+{len(hop.exploits) - 1} other services)" if len(hop.exploits) > 2 else "")
    return f"{hop.source} -> {hop.target}: {hop.exploits[0].label()}{extra}, {via}"


def _matrix_grid(result: PlanResult) -> Table:
    segments = list(result.topology.segments)
    table = Table(title="Segment matrix: services of destination hosts reachable from source "
                        "hosts (all / some / none of the host pairs)")
    table.add_column("from \\ to", style="bold", no_wrap=True)
    for name in segments:
        table.add_column(name)
    cells = {(c.source, c.destination): c for c in result.matrix}
    for source in segments:
        row = [source]
        for destination in segments:
            status = cells[(source, destination)].status
            row.append(f"[{_STATUS_STYLE[status]}]{status}[/]")
        table.add_row(*row)
    return table


def _matrix_details(result: PlanResult) -> Table | None:
    table = Table(title="Allowed services per segment pair (pairs where something is allowed)")
    table.add_column("from", no_wrap=True)
    table.add_column("to", no_wrap=True)
    for column in ("via", "allowed", "denied by"):
        table.add_column(column)
    rows = 0
    for cell in result.matrix:
        if cell.status not in ("all", "some"):
            continue
        everywhere = [f"{s.service}/{s.port}" for s in cell.services if s.status == "all"]
        partly = [f"{s.service}/{s.port} ({s.allowed_pairs}/{s.total_pairs} pairs)"
                  for s in cell.services if s.status == "some"]
        allowed = []
        if everywhere:
            allowed.append("all: " + ", ".join(everywhere))
        if partly:
            allowed.append("some: " + ", ".join(partly))
        reasons: dict[str, None] = {}
        for service in cell.services:
            reasons.update(dict.fromkeys(reason for reason, _pairs in service.denied_by))
        via = ", ".join(cell.routers or ()) or "-"
        table.add_row(cell.source, cell.destination, via, "\n".join(allowed),
                      "\n".join(reasons) or "-")
        rows += 1
    return table if rows else None


def _launch_pad_table(result: PlanResult) -> Table:
    table = Table(title="Launch pads: blast radius (hosts a worm started there can eventually "
                        "infect)")
    for column in ("launch pad(s)", "segment", "blast radius", "value at risk",
                   "crown jewels reached"):
        table.add_column(column)
    # Launch pads with the same outcome are shown on one row: campuses have dozens.
    groups: dict[tuple[str, int, float, tuple[tuple[str, int], ...]],
                 list[LaunchPadReport]] = {}
    for report in result.launch_pads:
        reached = tuple((j.jewel, len(j.hops)) for j in report.jewels if j.reachable)
        key = (report.segment, len(report.blast_radius), report.blast_value, reached)
        groups.setdefault(key, []).append(report)
    for (segment, size, value, reached), reports in groups.items():
        jewels = ", ".join(f"{name} ({hops} hop{'s' if hops != 1 else ''})"
                           for name, hops in reached) or "none"
        table.add_row(_names([r.host for r in reports]), segment, str(size), f"{value:g}",
                      jewels)
    return table


def _r0_table(result: PlanResult) -> Table:
    table = Table(title=f"R0 per segment: new infections before a detector allowing "
                        f"{result.scans_allowed} scans blocks the worm")
    table.add_column("segment", no_wrap=True)
    for column in ("hosts", "victims / routable", "r0_uniform", "local victims / usable",
                   "r0_local", "flag"):
        table.add_column(column)
    for r0 in result.r0:
        if r0.hosts == 0:
            table.add_row(r0.segment, "0", "-", "-", "-", "-", "no hosts")
            continue
        flag = "[bold red]containment can fail[/]" if r0.containment_can_fail else ""
        table.add_row(r0.segment, str(r0.hosts),
                      f"{r0.victims_weighted:.2f}/{r0.addresses_routable}",
                      f"{r0.r0_uniform:.3f}",
                      f"{r0.victims_weighted_local:.2f}/{r0.usable_addresses}",
                      f"{r0.r0_local:.3f}", flag)
    return table


def _print_table(console: Console, table: Table) -> None:
    """Print the title as its own line: rich wraps a title to the table's width, which squeezes
    it into a narrow column above small tables."""
    title, table.title = table.title, None
    console.print(Text(str(title), style="bold"), soft_wrap=True)
    console.print(table)


def render_plan(result: PlanResult, console: Console | None = None) -> None:
    """Print the plan: matrix, launch pads, pivot paths, R0, then one verdict line per jewel."""
    console = console or Console(highlight=False)
    topology = result.topology
    graph = result.attack_graph
    console.print(Text.assemble(
        ("Plan for ", ""), (topology.name, "bold"),
        (f" ({topology.source}): {_count(len(topology.hosts), 'host')}, "
         f"{_count(len(topology.segments), 'segment')}, "
         f"{_count(len(topology.routers), 'router')}; attack graph: "
         f"{_count(graph.number_of_edges(), 'infection edge')} into "
         f"{_count(sum(1 for _n, d in graph.in_degree() if d), 'host')}", "")))
    _print_table(console, _matrix_grid(result))
    details = _matrix_details(result)
    if details is not None:
        _print_table(console, details)
    if result.launch_pads:
        _print_table(console, _launch_pad_table(result))
    for verdict in result.crown_jewels:
        console.print(Text(f"Crown jewel {verdict.jewel} ({verdict.segment})", style="bold"))
        if verdict.reachable:
            for hop in verdict.hops:
                console.print(f"  {_hop_text(hop)}", soft_wrap=True)
        else:
            if verdict.approach:
                console.print(f"  closest approach ({_count(len(verdict.approach), 'hop')}):")
                for hop in verdict.approach:
                    console.print(f"    {_hop_text(hop)}", soft_wrap=True)
            elif verdict.cause != "policy":
                console.print(f"  {verdict.explanation}", soft_wrap=True)
            for blocker in verdict.blockers[:6]:
                console.print(f"  {_names(list(blocker.sources))} -x-> {verdict.jewel} "
                              f"{blocker.service}/{blocker.port}: {blocker.reason}",
                              soft_wrap=True)
            if len(verdict.blockers) > 6:
                console.print(f"  ... {len(verdict.blockers) - 6} more (--json)")
    _print_table(console, _r0_table(result))
    if any(r.containment_can_fail for r in result.r0):
        failing = [r.segment for r in result.r0 if r.containment_can_fail]
        console.print(f"[bold red]{', '.join(failing)}[/]: {CONTAINMENT_WARNING}", soft_wrap=True)
    console.print("r0_uniform = scans allowed x hosts the worst-placed host of the segment can "
                  "infect, each weighted by the share of the worm's exploits that infect it / "
                  "every address of the segments it has a route to; r0_local = scans allowed x "
                  "its weighted victims in its own subnet / usable addresses of that subnet.",
                  style="dim")
    for note in result.notes:
        console.print(f"note: {note}")
    for verdict in result.crown_jewels:
        style = "bold red" if verdict.reachable else "bold green"
        console.print(Text(verdict.line, style=style), soft_wrap=True)
