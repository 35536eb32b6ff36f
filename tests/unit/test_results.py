"""The typed run records: results.json and manifest.json validate against their published
schemas, round-trip through the models, cannot be edited, and every key is documented in
docs/metrics.md; the headline and the summary over repetitions read them typed."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jsonschema
import pydantic
import pytest

from testbed.cli.main import main
from testbed.report.sample import sample_records
from testbed.results import (
    RESULTS_VERSION,
    Manifest,
    Results,
    headline,
    summarize,
)
from testbed.scoring import RunRecords, load_run_records, score
from testbed.stats import median, spread

REPO = Path(__file__).resolve().parents[2]


def _sample_variants() -> dict[str, RunRecords]:
    """Synthetic records that exercise every optional part of the results."""
    sample = sample_records()
    return {
        "sample": sample,
        "quiet": RunRecords(topology=sample.topology, t0=0.0, end=10.0,
                            patient_zero=("old-laptop",), egress_counters={}),
        "egress-unknown": dataclasses.replace(sample, egress_counters=None, manifest=None),
        "leaked": dataclasses.replace(sample, egress_counters={"printer": 2}),
    }


VARIANTS = _sample_variants()


def _printed_schema(kind: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["schema", kind]) == 0
    schema: dict[str, object] = json.loads(capsys.readouterr().out)
    return schema


@pytest.mark.parametrize("name", list(VARIANTS))
def test_results_json_validates_against_the_printed_schema(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema = _printed_schema("results", capsys)
    written = tmp_path / "results.json"
    written.write_text(score(VARIANTS[name], stop_reason="contained",
                             timings={"deploy_s": 1.23456}, labelled_flows=7).to_json())
    data = json.loads(written.read_text())
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
    assert data["results_version"] == RESULTS_VERSION == 2
    assert data["run"]["stop_reason"] == "contained"
    assert data["run"]["timings_s"] == {"deploy_s": 1.235}
    assert data["run"]["labelled_flows"] == 7


@pytest.mark.parametrize("name", list(VARIANTS))
def test_results_round_trip_through_the_model(name: str) -> None:
    results = score(VARIANTS[name])
    assert Results.model_validate_json(results.to_json()) == results
    assert Results.model_validate(json.loads(results.to_json())) == results


def test_schema_rejects_what_the_model_rejects(capsys: pytest.CaptureFixture[str]) -> None:
    schema = _printed_schema("results", capsys)
    data = json.loads(score(VARIANTS["sample"]).to_json())
    for broken in ({**data, "infected": 3},  # unknown key
                   {**data, "grade": {**data["grade"], "letter": "E"}},
                   {**data, "results_version": 1},
                   {k: v for k, v in data.items() if k != "contained"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)
        with pytest.raises(pydantic.ValidationError):
            Results.model_validate(broken)


def test_results_cannot_be_edited() -> None:
    results = score(VARIANTS["sample"])
    with pytest.raises(pydantic.ValidationError):
        results.infected_total = 0  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        results.run.stop_reason = "edited"  # type: ignore[misc]


def test_manifest_validates_and_loads(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    schema = _printed_schema("manifest", capsys)
    sample = VARIANTS["sample"]
    assert sample.manifest is not None
    manifest = sample.manifest.model_copy(update={"stop_reason": "time limit",
                                                  "interrupted": True})
    data = json.loads(manifest.model_dump_json())
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
    assert data["clock"] == "monotonic"
    # a run directory with only a manifest scores as an empty, interrupted run
    (tmp_path / "manifest.json").write_text(manifest.model_dump_json())
    results = score(load_run_records(tmp_path, sample.topology))
    assert results.run.interrupted is True
    assert results.run.stop_reason == "time limit"  # the manifest's, when none is given
    assert results.infected_total == 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "seeed": 1}, schema,
                            cls=jsonschema.Draft202012Validator)
    with pytest.raises(pydantic.ValidationError):
        Manifest.model_validate({**data, "clock": "sundial"})


def test_manifest_without_t0_is_not_a_scorable_run(tmp_path: Path) -> None:
    from testbed.errors import RunError

    sample = VARIANTS["sample"]
    assert sample.manifest is not None
    (tmp_path / "manifest.json").write_text(
        sample.manifest.model_copy(update={"t0_mono": None}).model_dump_json())
    with pytest.raises(RunError, match="never started"):
        load_run_records(tmp_path, sample.topology)
    (tmp_path / "manifest.json").write_text('{"scenario": 3}')
    with pytest.raises(RunError, match="not a valid run manifest"):
        load_run_records(tmp_path, sample.topology)


# ---- documentation -----------------------------------------------------------------------------

def _fields(model: type[pydantic.BaseModel]) -> dict[str, pydantic.fields.FieldInfo]:
    """Every field of ``model`` and of the record models it nests, by qualified name."""
    found: dict[str, pydantic.fields.FieldInfo] = {}
    for name, info in model.model_fields.items():
        found[f"{model.__name__}.{name}"] = info
        for inner in _nested_models(info.annotation):
            found.update(_fields(inner))
    return found


def _nested_models(annotation: object) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _nested_models(arg)]


@pytest.mark.parametrize("model", [Results, Manifest])
def test_every_field_has_a_description(model: type[pydantic.BaseModel]) -> None:
    missing = [name for name, info in _fields(model).items() if not info.description]
    assert not missing, f"fields without Field(description=...): {missing}"


@pytest.mark.parametrize("model", [Results, Manifest])
def test_every_field_is_defined_in_docs_metrics(model: type[pydantic.BaseModel]) -> None:
    text = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # code blocks are not definitions
    documented = {word for span in re.findall(r"`([^`]+)`", text)
                  for word in re.findall(r"[a-z_][a-z0-9_]*", span)}
    missing = sorted({name.split(".")[1] for name in _fields(model)} - documented)
    assert not missing, f"docs/metrics.md does not define: {missing}"


# ---- text for people ---------------------------------------------------------------------------

def test_headline_names_the_report() -> None:
    results = score(VARIANTS["sample"], stop_reason="contained")
    text = headline(results, Path("runs/x/report.html"))
    assert text.splitlines()[0] == f"grade {results.grade.letter} " \
                                   f"(score {results.grade.score}/100)"
    assert "launch-pad escape        yes, pc-1" in text
    assert "stopped because          contained" in text
    assert "report                   runs/x/report.html" in text
    assert "egress packets           0" in text


def test_summary_of_repetitions() -> None:
    results = score(VARIANTS["sample"])
    other = Results.model_validate({**results.model_dump(), "infected_total": 3,
                                    "contained": False})
    summary = summarize([results, other])
    assert summary.infected_total.median == (results.infected_total + 3) / 2
    assert summary.contained_fraction.median == 0.5
    assert summary.time_to_first_detection_s.iqr == 0.0  # the same in both
    assert dict(summary)["grade_score"].n == 2


def test_one_median_and_spread() -> None:
    # scores 70, 80, 90, 100: median 85; inclusive quartiles 77.5 and 92.5 -> IQR 15
    assert spread([100, 70, 90, 80]) == spread([70.0, 80.0, 90.0, 100.0])
    assert (spread([70, 80, 90, 100]).median, spread([70, 80, 90, 100]).iqr) == (85.0, 15.0)
    assert (spread([4.0]).median, spread([4.0]).iqr, spread([4.0]).n) == (4.0, 0.0, 1)
    assert (spread([]).median, spread([]).iqr, spread([]).n) == (None, None, 0)
    assert median([1.0, 2.0, 2.2345], 2) == 2.0 and median([1, 2], 3) == 1.5
    assert median([]) is None


# ---- a recorded run ----------------------------------------------------------------------------

RECORDED = REPO / "tests" / "data" / "recorded" / "basement-launchpad-seed42"


def test_recorded_flagship_run_scores_as_results_version_1_did(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The records of a netns run of the flagship (seed 42), scored by the typed scorer: every
    metric equals what the untyped scorer (results_version 1) wrote for the same records."""
    import gzip
    import shutil

    from testbed.model import load_scenario

    for name in ("manifest.json", "alerts.jsonl", "actions.jsonl"):
        shutil.copyfile(RECORDED / name, tmp_path / name)
    (tmp_path / "events.jsonl").write_bytes(gzip.decompress(
        (RECORDED / "events.jsonl.gz").read_bytes()))
    scenario = load_scenario(REPO / "scenarios" / "basement-launchpad.yaml")
    results = score(load_run_records(tmp_path, scenario.topology))
    before = json.loads((RECORDED / "results-v1.json").read_text())
    now = json.loads(results.to_json())
    assert before["results_version"] == 1
    for key in set(before) - {"results_version", "run"}:
        assert now[key] == before[key], key
    for key, value in before["run"].items():
        if key != "timings_s":  # the runner's phase timings: passed to the scorer, not recorded
            assert now["run"][key] == value, key
    # the headline the issue keeps: infected, escape, crown jewel, grade
    assert results.infected_total == 8
    assert (results.launch_pad_escape.host, results.launch_pad_escape.time_s) == (
        "home-office-pc", 36.11)
    assert [c.host for c in results.crown_jewels_infected] == ["finance-db"]
    assert (results.grade.letter, results.grade.score) == ("F", 42.3)
    assert results.run.stop_reason == "crown-jewel-infected"  # from the manifest
    jsonschema.validate(now, _printed_schema("results", capsys),
                        cls=jsonschema.Draft202012Validator)
