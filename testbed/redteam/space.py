"""The red team's search space: every registered worm profile and its safe parameter ranges.

Owns: ``WormChoice`` (one worm: a profile and its parameters, hashable, with a path-safe label),
``SearchSpace`` (discovered from ``testbed.agent.brain.PROFILE_PARAMETERS`` intersected with the
profile catalog a scenario is validated against, so a profile another engineer is still adding
joins as soon as both know it) and the Optuna side of it (``suggest``: a conditional space, one
categorical ``profile`` then ``<profile>.<parameter>`` for that profile's parameters).
Every suggested value lies inside its ``ParamRule`` range (rates are drawn on a log scale up to
the profile's cap) and every ``WormChoice`` is checked by ``brain.resolve_params``: the search
never leaves the range the agent itself would accept.
Must not: run anything, or hard-code the list of profiles.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from testbed.errors import AgentError, TestbedError

__all__ = ["ParameterRange", "SearchSpace", "WormChoice", "discover_space"]


class SearchSpaceError(TestbedError):
    """The search space is empty or a worm lies outside it."""


@dataclass(frozen=True)
class WormChoice:
    """One worm the red team can field: a profile and its parameters (only explicit ones)."""

    profile: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, profile: str, params: Mapping[str, Any] | None = None) -> WormChoice:
        return cls(profile, tuple(sorted((params or {}).items())))

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def fingerprint(self) -> str:
        text = json.dumps([self.profile, self.params], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def describe(self) -> str:
        """``hitlist rate=200 fallback=uniform`` (numbers to 3 significant digits)."""
        parts = [self.profile]
        for key, value in self.params:
            parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
        return " ".join(parts)


@dataclass(frozen=True)
class ParameterRange:
    """A parameter the search may set: numeric bounds, or choices."""

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class SearchSpace:
    """Profiles (in registry order) and their parameter ranges."""

    profiles: tuple[str, ...]
    ranges: Mapping[str, tuple[ParameterRange, ...]]

    def suggest(self, trial: Any) -> WormChoice:
        """The worm an Optuna ``trial`` asks for (conditional: only the chosen profile's
        parameters are suggested, named ``<profile>.<parameter>``)."""
        profile = trial.suggest_categorical("profile", list(self.profiles))
        params: dict[str, Any] = {}
        for rule in self.ranges[profile]:
            key = f"{profile}.{rule.name}"
            if rule.choices is not None:
                params[rule.name] = trial.suggest_categorical(key, list(rule.choices))
            elif rule.integer:
                params[rule.name] = trial.suggest_int(key, int(rule.low or 0),
                                                      int(rule.high or 0), log=rule.log)
            else:
                params[rule.name] = trial.suggest_float(key, float(rule.low or 0.0),
                                                        float(rule.high or 0.0), log=rule.log)
        worm = WormChoice.of(profile, params)
        self.check(worm)
        return worm

    def trial_params(self, worm: WormChoice) -> dict[str, Any]:
        """``worm`` as Optuna parameters (for ``enqueue_trial``)."""
        return {"profile": worm.profile,
                **{f"{worm.profile}.{key}": value for key, value in worm.params}}

    def worm_from_trial_params(self, params: Mapping[str, Any]) -> WormChoice:
        """The worm of a finished trial's ``params``."""
        profile = str(params["profile"])
        prefix = profile + "."
        return WormChoice.of(profile, {key[len(prefix):]: value for key, value in params.items()
                                       if key.startswith(prefix)})

    def defaults(self, profile: str) -> WormChoice:
        """The built-in profile as shipped: every parameter at its default."""
        return WormChoice.of(profile, {})

    def check(self, worm: WormChoice) -> None:
        """SearchSpaceError unless the agent's own parameter check accepts ``worm``."""
        from testbed.agent.brain import resolve_params

        if worm.profile not in self.ranges:
            raise SearchSpaceError(f"profile {worm.profile!r} is not in the search space; "
                                   f"known: {', '.join(self.profiles)}")
        try:
            resolve_params(worm.profile, worm.params_dict)
        except AgentError as err:
            raise SearchSpaceError(f"worm {worm.describe()!r} is outside the safe ranges: "
                                   f"{err}") from None

    def as_dict(self) -> dict[str, Any]:
        return {profile: {rule.name: {"default": rule.default, "low": rule.low,
                                      "high": rule.high, "choices": rule.choices,
                                      "log": rule.log} for rule in self.ranges[profile]}
                for profile in self.profiles}


def _parameter_range(name: str, rule: Any) -> ParameterRange | None:
    """A ``brain.ParamRule`` as a range; None for a parameter the search cannot vary."""
    default = rule.default
    if rule.choices is not None:
        return ParameterRange(name, default, choices=tuple(rule.choices))
    if isinstance(default, bool):
        return ParameterRange(name, default, choices=(False, True))
    if rule.min is None or rule.max is None or not rule.max > rule.min:
        return None  # unbounded or fixed: leave it at its default
    low, high = float(rule.min), float(rule.max)
    integer = isinstance(default, int)
    # Rates span orders of magnitude (0.01..200 per second): search them on a log scale.
    log = name.endswith("rate") and low > 0 and high / low >= 10
    if integer:
        low, high = math.ceil(low), math.floor(high)
        if high <= low:
            return None
    return ParameterRange(name, default, low, high, log=log, integer=integer)


def discover_space(profiles: list[str] | None = None) -> SearchSpace:
    """Every profile both the brain and the scenario catalog know (``profiles`` restricts it),
    each with the parameters both know."""
    from testbed.agent.brain import PROFILE_PARAMETERS
    from testbed.model.profiles import profile_catalog

    catalog = profile_catalog()
    known = [name for name in PROFILE_PARAMETERS if name in catalog]
    if profiles:
        unknown = [name for name in profiles if name not in known]
        if unknown:
            raise SearchSpaceError(f"unknown worm profile {unknown[0]!r}; known: "
                                   f"{', '.join(known)}")
        known = [name for name in known if name in profiles]
    ranges: dict[str, tuple[ParameterRange, ...]] = {}
    for name in known:
        catalog_params = catalog[name].params
        found = (_parameter_range(key, rule) for key, rule in PROFILE_PARAMETERS[name].items()
                 if key in catalog_params)
        ranges[name] = tuple(r for r in found if r is not None)
    if not ranges:
        raise SearchSpaceError("no worm profile to search over")
    return SearchSpace(tuple(ranges), ranges)
