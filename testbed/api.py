"""The notebook API: run a scenario and load a run's records as typed results and DataFrames.

Owns: ``run(scenario_or_dict, **overrides)`` (one run on the netns backend by default, returns
the typed ``Results``) and ``load_run(dir)`` (a finished run's folder as ``RunData``: typed
``results`` and ``manifest``, and ``events``, ``alerts``, ``actions``, ``labels``, ``flows`` as
pandas DataFrames). ``testbed.run`` and ``testbed.load_run`` are these functions, imported on
first use so that ``import testbed`` stays light. Documented in docs/api.md.

Must not touch: a run's files (read only); the run itself is the runner's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.errors import RunError
from testbed.eve import alert_detector, alert_source_host, alert_time
from testbed.model.load_scenario import Scenario
from testbed.records import read_json_lines
from testbed.results import Manifest, Results

if TYPE_CHECKING:
    import pandas

__all__ = ["RUN_OPTIONS", "RunData", "load_run", "run"]

RUN_OPTIONS = ("backend", "seed", "out_dir", "duration", "live")
"""Keyword arguments of ``run`` that steer the run; any other keyword overrides a top-level key
of the scenario document (``detectors=[...]``, ``worm={...}``, ``duration_s=30`` ...)."""


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ()) -> pandas.DataFrame:
    import pandas

    frame = pandas.DataFrame(list(rows))
    for column in columns:
        if column not in frame.columns:
            frame[column] = pandas.Series(dtype=object)
    return frame


ALERT_COLUMNS = ("time", "timestamp", "detector", "src_ip", "src_port", "dest_ip", "dest_port",
                 "proto", "src_host", "signature", "signature_id", "severity", "category",
                 "community_id", "flow_id", "sensor", "in_iface", "evidence")
FLOW_COLUMNS = ("timestamp", "flow_id", "community_id", "src_ip", "src_port", "dest_ip",
                "dest_port", "proto", "start", "end", "pkts_toserver", "pkts_toclient",
                "bytes_toserver", "bytes_toclient", "state", "reason", "sensor", "in_iface")


def _alert_row(record: Mapping[str, Any]) -> dict[str, Any]:
    info = record.get("alert") or {}
    metadata = info.get("metadata") or {}
    return {
        "time": alert_time(record), "timestamp": record.get("timestamp"),
        "detector": alert_detector(record), "src_ip": record.get("src_ip"),
        "src_port": record.get("src_port"), "dest_ip": record.get("dest_ip"),
        "dest_port": record.get("dest_port"), "proto": record.get("proto"),
        "src_host": alert_source_host(record), "signature": info.get("signature"),
        "signature_id": info.get("signature_id"), "severity": info.get("severity"),
        "category": info.get("category"), "community_id": record.get("community_id", ""),
        "flow_id": record.get("flow_id"), "sensor": record.get("host") if metadata else None,
        "in_iface": record.get("in_iface"),
        "evidence": metadata.get("evidence", record.get("evidence", {})),
    }


def _flow_row(record: Mapping[str, Any]) -> dict[str, Any]:
    flow = record.get("flow") or {}
    row = {key: record.get(key) for key in ("timestamp", "flow_id", "community_id", "src_ip",
                                            "src_port", "dest_ip", "dest_port", "proto",
                                            "in_iface")}
    row.update({key: flow.get(key) for key in FLOW_COLUMNS if key in flow})
    row["sensor"] = record.get("host")
    return row


@dataclass(frozen=True)
class RunData:
    """A run's folder, read lazily: each DataFrame is built on first access.

    ``time`` columns are on the run's clock (``manifest.t0_mono`` is the outbreak's start);
    ``timestamp``/``start``/``end`` are EVE timestamps (UTC).
    """

    path: Path
    manifest: Manifest
    results: Results | None  # None: the run did not finish (no results.json)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def events(self) -> pandas.DataFrame:
        """Ground truth (``events.jsonl``): one row per agent event, in time order."""
        from testbed.truth import read_events

        return _frame(read_events(self.path), ("mono", "wall", "host", "type"))

    @cached_property
    def alerts(self) -> pandas.DataFrame:
        """Alerts (``alerts.jsonl``, EVE), flattened: detector, time, source host, signature."""
        return _frame([_alert_row(r) for r in read_json_lines(self.path / "alerts.jsonl")],
                      ALERT_COLUMNS)

    @cached_property
    def actions(self) -> pandas.DataFrame:
        """Containment actions (``actions.jsonl``), typed fields as columns."""
        from testbed.actions import parse_action_records

        records = parse_action_records(read_json_lines(self.path / "actions.jsonl"))
        return _frame([r.model_dump(mode="json") for r in records],
                      ("mono", "action", "target", "ok"))

    @cached_property
    def labels(self) -> pandas.DataFrame:
        """One ground-truth label per flow (``labels.parquet``, else ``labels.csv``)."""
        import pandas

        from testbed.runner.labels import LABEL_COLUMNS

        if (self.path / "labels.parquet").is_file():
            return pandas.read_parquet(self.path / "labels.parquet")
        if (self.path / "labels.csv").is_file():
            return pandas.read_csv(self.path / "labels.csv", keep_default_na=False)
        return _frame([], LABEL_COLUMNS)

    @cached_property
    def flows(self) -> pandas.DataFrame:
        """The sensor's flows (``flows.jsonl``, EVE ``flow`` records), flattened."""
        return _frame([_flow_row(r) for r in read_json_lines(self.path / "flows.jsonl")],
                      FLOW_COLUMNS)


def load_run(run_dir: str | Path) -> RunData:
    """A run's output folder (``testbed run --out DIR``) as typed results and DataFrames."""
    from testbed.scoring import load_manifest

    path = Path(run_dir)
    manifest = load_manifest(path / "manifest.json")
    results = None
    if (path / "results.json").is_file():
        try:
            results = Results.model_validate_json((path / "results.json").read_text("utf-8"))
        except ValueError as err:
            raise RunError(f"{path / 'results.json'} is not a valid results file: {err}") from err
    return RunData(path=path, manifest=manifest, results=results)


def _scenario(source: Scenario | str | Path | Mapping[str, Any],
              overrides: Mapping[str, Any]) -> Scenario:
    from testbed.detection import REGISTERED_DETECTORS
    from testbed.yamlsource import load_yaml

    if isinstance(source, Scenario):
        if overrides:
            raise RunError(f"scenario overrides {sorted(overrides)} need a scenario file or "
                           "dict, not a loaded Scenario")
        return source
    if isinstance(source, str | Path):
        path = Path(source)
        document = dict(load_yaml(path).data)
        base_dir = path.parent
    else:
        document, base_dir = json.loads(json.dumps(dict(source))), Path.cwd()
    document.update(overrides)
    return Scenario.from_dict(document, base_dir=base_dir, detectors=REGISTERED_DETECTORS)


def run(scenario: Scenario | str | Path | Mapping[str, Any], **overrides: Any) -> Results:
    """Run a scenario once and return its typed results (written, with every record, to
    ``out_dir``: by default ``runs/<name>-<time>``).

    ``scenario`` is a loaded ``Scenario``, a scenario file's path, or a dict shaped like one
    (its ``topology`` path relative to the current directory). Keywords in ``RUN_OPTIONS``
    steer the run (``backend`` defaults to the scenario's, i.e. netns; ``live`` to False: no
    live view in a notebook); any other keyword replaces that top-level key of the scenario.
    Needs root, as ``testbed run`` does.
    """
    from testbed.runner import run_scenario

    options = {key: overrides.pop(key) for key in RUN_OPTIONS if key in overrides}
    options.setdefault("live", False)
    if options.get("out_dir") is not None:
        options["out_dir"] = Path(options["out_dir"])
    loaded = _scenario(scenario, overrides)
    return run_scenario(loaded, **options).results
