"""JSON Schemas of the file formats, generated from the pydantic models and shipped in the package.

Owns: generating ``testbed/schemas/<kind>.schema.json`` for the input formats (topology, scenario,
profile, bench) and the run records (results, manifest); a unit test fails when the shipped files
are stale; ``python -m testbed.schema`` rewrites them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

__all__ = ["SCHEMA_DIRECTORY", "SCHEMA_KINDS", "generate_schema", "schema_text", "write_schemas"]

SCHEMA_DIRECTORY = Path(__file__).resolve().parent / "schemas"


def _models() -> dict[str, type[BaseModel]]:
    from testbed.bench import BenchSpec
    from testbed.model.profiles import ProfileSpec
    from testbed.model.scenario_spec import ScenarioSpec
    from testbed.model.spec import TopologySpec
    from testbed.results import Manifest, Results

    return {"topology": TopologySpec, "scenario": ScenarioSpec, "profile": ProfileSpec,
            "bench": BenchSpec, "results": Results, "manifest": Manifest}


SCHEMA_KINDS = ("topology", "scenario", "profile", "bench", "results", "manifest")


def generate_schema(kind: str) -> dict[str, Any]:
    schema = _models()[kind].model_json_schema(by_alias=True)
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
