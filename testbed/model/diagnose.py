"""Turn pydantic validation errors into located, hinted diagnostics.

Owns: the mapping from a pydantic error (a ``loc`` and a type) to ``file:line:column``, a readable
message, and a hint (the closest valid key or value for a typo).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import pydantic

from testbed.errors import Diagnostic
from testbed.yamlsource import KeyPath, SourceDocument

__all__ = ["closest", "diagnostics_from_pydantic", "did_you_mean"]


def closest(word: str, candidates: list[str] | tuple[str, ...] | set[str]) -> str | None:
    matches = difflib.get_close_matches(str(word), sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...] | set[str],
                 kind: str = "") -> str:
    """A hint for an unknown name: the closest candidate, or the list when it is short."""
    match = closest(word, candidates)
    if match:
        return f"did you mean {match!r}?"
    names = sorted(candidates)
    if not names:
        return f"no {kind or 'names'} are defined" if kind else ""
    if len(names) <= 8:
        return f"known {kind or 'names'}: {', '.join(names)}"
    return f"known {kind or 'names'} include {', '.join(names[:8])}, ..."


def _resolve_ref(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["$defs"][name]
    return node


def _allowed_keys(schema: dict[str, Any], loc: KeyPath) -> list[str]:
    """Property names valid at ``loc`` (the mapping that holds the bad key) in the JSON schema."""
    nodes = [schema]
    for part in loc:
        following: list[dict[str, Any]] = []
        for node in nodes:
            node = _resolve_ref(schema, node)
            for option in node.get("anyOf", []) + node.get("allOf", []):
                following.extend(_step(schema, _resolve_ref(schema, option), part))
            following.extend(_step(schema, node, part))
        nodes = following
    keys: set[str] = set()
    for node in nodes:
        node = _resolve_ref(schema, node)
        for option in [node, *node.get("anyOf", [])]:
            keys.update(_resolve_ref(schema, option).get("properties", {}))
    return sorted(keys)


def _step(schema: dict[str, Any], node: dict[str, Any], part: str | int) -> list[dict[str, Any]]:
    if isinstance(part, int):
        return [node["items"]] if isinstance(node.get("items"), dict) else []
    if part in node.get("properties", {}):
        return [node["properties"][part]]
    matched = [sub for pattern, sub in node.get("patternProperties", {}).items()
               if re.search(pattern, part)]
    extra = node.get("additionalProperties")
    return matched + ([extra] if isinstance(extra, dict) else [])


_QUOTED = re.compile(r"'([^']*)'")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def diagnostics_from_pydantic(error: pydantic.ValidationError, document: SourceDocument,
                              schema: dict[str, Any], prefix: KeyPath = ()) -> list[Diagnostic]:
    """One diagnostic per pydantic error, located in ``document``."""
    results: list[Diagnostic] = []
    for item in error.errors(include_url=False):
        loc: KeyPath = tuple(part for part in item["loc"] if isinstance(part, str | int))
        # Aliased fields come back under their alias ('from'), as the user wrote them.
        full = (*prefix, *loc)
        kind = item["type"]
        value = item.get("input")
        hint = ""
        if kind == "extra_forbidden":
            allowed = _allowed_keys(schema, loc[:-1])
            match = closest(str(loc[-1]), allowed)
            hint = (f"did you mean {match!r}?" if match else
                    f"allowed keys here: {', '.join(allowed)}" if allowed else "")
            results.append(document.diagnostic(full, f"unknown key {loc[-1]!r}", hint=hint,
                                               at_key=True))
            continue
        message = item["msg"]
        if kind in ("literal_error", "enum"):
            options = _QUOTED.findall(item.get("ctx", {}).get("expected", ""))
            match = closest(str(value), options) if options else None
            message = f"{_shown(value)} is not allowed; expected one of: {', '.join(options)}"
            hint = f"did you mean {match!r}?" if match else ""
        elif kind == "missing":
            message = f"required key {loc[-1]!r} is missing"
            full = full[:-1]
            hint = "add it"
        elif kind == "string_pattern_mismatch":
            pattern = item.get("ctx", {}).get("pattern", "")
            if "MOCK-" in pattern:
                message = f"{_shown(value)} is not a mock vulnerability id"
                hint = "write ids like MOCK-SMB-1: the testbed never names real CVEs"
            else:
                message = f"{_shown(value)} is not a valid name"
                hint = "use lower-case letters, digits and '-', starting with a letter"
        elif kind.startswith("value_error"):
            message = message.removeprefix("Value error, ")
            message = f"{_shown(value)}: {message}" if value is not None else message
        elif value is not None and not isinstance(value, dict | list):
            message = f"{message}; got {_shown(value)}"
        elif isinstance(value, dict | list) and kind.endswith("_type"):
            message = f"{message}; got a {'mapping' if isinstance(value, dict) else 'list'}"
        results.append(document.diagnostic(full, message, hint=hint))
    return results
