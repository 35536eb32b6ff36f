"""The worm profile catalog: profile YAML files shipped in ``testbed/agent/profiles/``.

Owns: reading and validating the profile files (their schema is ``testbed schema profile``) and
checking a scenario's profile parameters against them. The agent itself is standard-library only
and never reads YAML: the runner hands it the resolved parameters as JSON.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from testbed.errors import ValidationError
from testbed.model.diagnose import diagnostics_from_pydantic, did_you_mean
from testbed.yamlsource import load_yaml

__all__ = ["PROFILE_DIRECTORY", "ParameterSpec", "ProfileSpec", "check_profile_params",
           "profile_catalog"]

PROFILE_DIRECTORY = Path(__file__).resolve().parent.parent / "agent" / "profiles"


class ParameterSpec(BaseModel):
    """One tunable parameter of a worm profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: float | int | bool | str
    min: float | None = None
    max: float | None = None
    choices: list[str] | None = None
    help: str = Field(description="What the parameter does, in one sentence.")


class ProfileSpec(BaseModel):
    """A worm profile: a named set of tactic parameters for the agent's brain."""

    model_config = ConfigDict(extra="forbid", frozen=True,
                              title="Adaptive-worm testbed worm profile")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str
    imitates: str = Field("", description="The real-world behaviour it imitates.")
    params: dict[str, ParameterSpec]


@lru_cache(maxsize=1)
def profile_catalog() -> dict[str, ProfileSpec]:
    """Every shipped profile by name. Raises ValidationError if a shipped file is broken."""
    catalog: dict[str, ProfileSpec] = {}
    for path in sorted(PROFILE_DIRECTORY.glob("*.yaml")):
        document = load_yaml(path)
        try:
            profile = ProfileSpec.model_validate(document.data)
        except pydantic.ValidationError as err:
            raise ValidationError(diagnostics_from_pydantic(
                err, document, ProfileSpec.model_json_schema())) from None
        catalog[profile.name] = profile
    return catalog


def check_profile_params(profile_name: str,
                         params: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    """Problems with ``params`` as (parameter or None, message, hint); [] if fine."""
    catalog = profile_catalog()
    if profile_name not in catalog:
        return [(None, f"unknown worm profile {profile_name!r}",
                 did_you_mean(profile_name, set(catalog), "profiles"))]
    specs = catalog[profile_name].params
    problems: list[tuple[str | None, str, str]] = []
    for key, value in params.items():
        if key not in specs:
            problems.append((key, f"profile {profile_name!r} has no parameter {key!r}",
                             did_you_mean(key, set(specs), "parameters")))
            continue
        problem = _check_value(specs[key], value)
        if problem:
            problems.append((key, problem, specs[key].help))
    return problems


def _check_value(spec: ParameterSpec, value: Any) -> str:
    default = spec.default
    if isinstance(default, bool):
        return "" if isinstance(value, bool) else f"{value!r} is not true or false"
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{value!r} is not a number"
        if isinstance(default, int) and not isinstance(value, int):
            return f"{value!r} is not a whole number"
        if spec.min is not None and value < spec.min:
            return f"{value!r} is below the minimum {spec.min:g}"
        if spec.max is not None and value > spec.max:
            return f"{value!r} is above the maximum {spec.max:g}"
        return ""
    if not isinstance(value, str):
        return f"{value!r} is not a string"
    if spec.choices and value not in spec.choices:
        return f"{value!r} is not one of {', '.join(spec.choices)}"
    return ""


def resolved_profile_params(profile_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults of the profile overridden by ``params`` (assumed checked)."""
    specs = profile_catalog()[profile_name].params
    return {key: params.get(key, spec.default) for key, spec in specs.items()}
