"""JSON Schemas of the file formats, generated from the pydantic models and shipped in the package.

Owns: generating ``testbed/schemas/<kind>.schema.json`` for the input formats (topology, scenario,
profile, bench, sweep) and the run records (results, manifest, events, alerts, actions, labels,
flows); the models of the record lines that have no model elsewhere (``AlertLine`` and
``FlowLine``: the EVE subset the testbed writes, which Suricata's own schema also accepts;
``LabelRow``); a unit test fails when the shipped files are stale; ``python -m testbed.schema``
rewrites them.

Versions: ``results_version`` in results.json, ``alert.metadata.alert_version`` in each alert,
``label_version`` in each label row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SCHEMA_DIRECTORY", "SCHEMA_KINDS", "generate_schema", "schema_text", "write_schemas"]

SCHEMA_DIRECTORY = Path(__file__).resolve().parent / "schemas"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlertMetadata(BaseModel):
    """The testbed's keys of an alert (EVE ``alert.metadata``)."""

    model_config = ConfigDict(extra="forbid")

    alert_version: Literal[2] = Field(description="Version of the alert record.")
    detector: str = Field(description="The detector that raised it (its registry name).")
    mono: float = Field(description="When, on the run's clock (CLOCK_MONOTONIC seconds).")
    src_host: str | None = Field(description="The accused source's host name, if known.")
    evidence: dict[str, Any] = Field(description="The detector's own figures.")


class AlertInfo(_Strict):
    action: str
    gid: int
    signature_id: int
    rev: int
    signature: str = Field(description="One line: why it fired.")
    category: str
    severity: int = Field(ge=1, le=3, description="1 high .. 3 low, as in Suricata.")
    metadata: AlertMetadata


class AlertLine(_Strict):
    """One line of ``alerts.jsonl``: a Suricata EVE ``alert`` record."""

    model_config = ConfigDict(extra="forbid", title="Adaptive-worm testbed alert (Suricata EVE)")

    timestamp: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+[+\-]\d{4}$")
    flow_id: int
    in_iface: str = Field(description="The tap that saw it, else the sensor's name.")
    event_type: Literal["alert"]
    src_ip: str
    src_port: int
    dest_ip: str
    dest_port: int
    proto: str
    community_id: str = Field(description="Community ID v1 of the flow.")
    host: str = Field(description="The sensor's name (EVE).")
    alert: AlertInfo


class FlowCounters(_Strict):
    pkts_toserver: int
    pkts_toclient: int
    bytes_toserver: int
    bytes_toclient: int
    start: str
    end: str
    age: int
    state: Literal["new", "established", "closed"]
    reason: str
    alerted: bool


class FlowLine(_Strict):
    """One line of ``flows.jsonl``: a Suricata EVE ``flow`` record."""

    model_config = ConfigDict(extra="forbid", title="Adaptive-worm testbed flow (Suricata EVE)")

    timestamp: str
    flow_id: int
    in_iface: str
    event_type: Literal["flow"]
    src_ip: str
    src_port: int
    dest_ip: str
    dest_port: int
    proto: str
    community_id: str
    host: str
    flow: FlowCounters


class LabelRow(_Strict):
    """One row of ``labels.csv`` / ``labels.parquet``: a flow and its ground-truth label."""

    model_config = ConfigDict(extra="forbid", title="Adaptive-worm testbed flow label")

    label_version: Literal[2]
    flow_id: int
    community_id: str
    start: float = Field(description="Epoch seconds.")
    end: float
    duration: float
    src_ip: str
    src_port: int
    dest_ip: str
    dest_port: int
    proto: str
    pkts_toserver: int
    pkts_toclient: int
    bytes_toserver: int
    bytes_toclient: int
    state: str
    outcome: str = Field(description="success, refused, unreachable, prohibited, unanswered.")
    label: Literal["worm-probe", "worm-exploit", "worm-interleave", "benign", "backup",
                   "scanner", "unlabelled"]
    technique: str = Field(description="MITRE ATT&CK technique the agent logged, or empty.")
    src_host: str
    dest_host: str
    generation: int = Field(description="The worm's generation, -1 for benign or unlabelled.")
    in_iface: str


def _ground_truth_event() -> Any:
    """``testbed.records.GroundTruthEvent`` (a standard-library TypedDict, since the agent
    imports it) as the ``typing_extensions`` TypedDict pydantic needs on Python 3.11."""
    from typing import get_type_hints

    import typing_extensions

    from testbed.records import GroundTruthEvent

    event = typing_extensions.TypedDict(  # type: ignore[misc,operator]
        "GroundTruthEvent", get_type_hints(GroundTruthEvent), total=False)
    event.__doc__ = GroundTruthEvent.__doc__ or "One ground-truth event an agent logged."
    event.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return event


def _action_line(record: type[BaseModel]) -> type[BaseModel]:
    """``testbed.actions.ActionRecord`` as published: the log is written from the model, so a
    line never has other keys (the model itself ignores unknown ones when reading)."""

    class ActionLine(record):  # type: ignore[valid-type,misc]
        model_config = ConfigDict(extra="forbid", title="Adaptive-worm testbed action record")

    ActionLine.__doc__ = record.__doc__
    return ActionLine


def _models() -> dict[str, Any]:
    from pydantic import TypeAdapter

    from testbed.actions import ActionRecord
    from testbed.bench import BenchSpec
    from testbed.experiments.sweep import SweepSpec
    from testbed.model.profiles import ProfileSpec
    from testbed.model.scenario_spec import ScenarioSpec
    from testbed.model.spec import TopologySpec
    from testbed.results import Manifest, Results

    return {"topology": TopologySpec, "scenario": ScenarioSpec, "profile": ProfileSpec,
            "bench": BenchSpec, "sweep": SweepSpec, "results": Results, "manifest": Manifest,
            "events": TypeAdapter(_ground_truth_event()), "alerts": AlertLine,
            "actions": _action_line(ActionRecord), "labels": LabelRow, "flows": FlowLine}


SCHEMA_KINDS = ("topology", "scenario", "profile", "bench", "sweep", "results", "manifest",
                "events", "alerts", "actions", "labels", "flows")


def generate_schema(kind: str) -> dict[str, Any]:
    model = _models()[kind]
    schema = (model.json_schema(by_alias=True) if hasattr(model, "json_schema")
              else model.model_json_schema(by_alias=True))
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$id": f"https://adaptive-worm-testbed.invalid/schemas/{kind}.schema.json", **schema}
    return schema


def schema_text(kind: str) -> str:
    return json.dumps(generate_schema(kind), indent=2, sort_keys=False) + "\n"


def write_schemas() -> list[Path]:
    SCHEMA_DIRECTORY.mkdir(exist_ok=True)
    written = []
    for kind in SCHEMA_KINDS:
        path = SCHEMA_DIRECTORY / f"{kind}.schema.json"
        path.write_text(schema_text(kind), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas():
        print(written_path)
