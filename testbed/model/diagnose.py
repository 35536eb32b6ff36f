"""Turn pydantic validation errors into located, hinted diagnostics.

Owns: the mapping from a pydantic error (a ``loc`` and a type) to ``file:line:column``, a readable
message, and a hint (the closest valid key or value for a typo).
"""

from __future__ import annotations

import re
from typing import Any

import pydantic
from pydantic_core import ErrorDetails

from testbed.errors import Diagnostic
from testbed.hints import closest, did_you_mean
from testbed.yamlsource import KeyPath, SourceDocument

__all__ = ["closest", "diagnostics_from_pydantic", "did_you_mean"]


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


_TYPE_WORDS = {"int": "a whole number", "float": "a number", "string": "a string",
               "bool": "true or false", "list": "a list", "dict": "a mapping",
               "ip_v4_address": "an IPv4 address", "ip_v4_network": "an IPv4 network"}


def _expected_kind(kind: str) -> str | None:
    """'int_parsing' -> 'a whole number'; None for errors that are not about the value's type."""
    base = kind.removesuffix("_type").removesuffix("_parsing")
    if base == kind and kind not in _TYPE_WORDS:
        return None
    return _TYPE_WORDS.get(base, base.replace("_", " "))


def _clean_loc(loc: tuple[Any, ...], data: Any, keep_last: bool) -> tuple[KeyPath, bool, int]:
    """Drop what pydantic adds to a location beyond the user's keys: union branch tags
    ('int', 'list[constrained-str]'), '[key]' for a bad mapping key, and list indexes a
    before-validator invented (``ports: 80`` checked as ``[80]``).

    Returns the cleaned path, whether the problem is the key itself, and the length of the
    cleaned path where the first branch tag was dropped (-1 when none was).
    """
    cleaned: list[str | int] = []
    at_key, branch, cursor, walking = False, -1, data, True
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        if part == "[key]":
            at_key = True
        elif walking and isinstance(cursor, dict) and part in cursor:
            cleaned.append(part)
            cursor = cursor[part]
        elif (walking and isinstance(cursor, list) and isinstance(part, int)
              and 0 <= part < len(cursor)):
            cleaned.append(part)
            cursor = cursor[part]
        elif last and keep_last:
            cleaned.append(part)  # a missing key: name it
        else:
            if isinstance(part, str) and branch < 0:
                branch = len(cleaned)
            walking = isinstance(part, str) and walking  # a branch tag keeps the same data
    return tuple(cleaned), at_key, branch


def _shown_message(item: ErrorDetails, value: Any) -> tuple[str, str]:
    """A readable message and hint for one pydantic error that is not about keys."""
    kind, message, hint = item["type"], item["msg"], ""
    if kind in ("literal_error", "enum"):
        options = _QUOTED.findall(item.get("ctx", {}).get("expected", ""))
        match = closest(str(value), options) if options else None
        message = f"{_shown(value)} is not allowed; expected one of: {', '.join(options)}"
        hint = f"did you mean {match!r}?" if match else ""
    elif kind == "string_pattern_mismatch":
        pattern = item.get("ctx", {}).get("pattern", "")
        if "MOCK-" in pattern:
            message = f"{_shown(value)} is not a mock vulnerability id"
            hint = "write ids like MOCK-SMB-1: the testbed never names real CVEs"
        elif pattern.startswith("^\\d"):
            message = f"{_shown(value)} is not a port or a port range"
            hint = "write ports as 445 or ranges as '8000-8080'"
        elif "a-z" in pattern:
            message = f"{_shown(value)} is not a valid name"
            hint = "use lower-case letters, digits and '-', starting with a letter"
        else:
            message = f"{_shown(value)} does not match the pattern {pattern}"
    elif kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
        message = f"{_shown(value)}: {message}" if value is not None else message
    elif value is not None and not isinstance(value, dict | list):
        message = f"{message}; got {_shown(value)}"
    elif isinstance(value, dict | list) and kind.endswith("_type"):
        message = f"{message}; got a {'mapping' if isinstance(value, dict) else 'list'}"
    return message, hint


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _shown(value)


def diagnostics_from_pydantic(error: pydantic.ValidationError, document: SourceDocument,
                              schema: dict[str, Any], prefix: KeyPath = ()) -> list[Diagnostic]:
    """One diagnostic per problem, located in ``document``.

    A value that fits none of a union's options (``patched: true`` or a list of ids) makes
    pydantic report one error per option; the user needs one: the option that got furthest
    into the value (it is what they meant), or "expected X or Y" when none got anywhere.
    """
    data: Any = document.data
    for part in prefix:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            data = None
    entries: list[tuple[KeyPath, bool, int, ErrorDetails]] = []
    for item in error.errors(include_url=False):
        raw = tuple(part for part in item["loc"] if isinstance(part, str | int))
        loc, at_key, branch = _clean_loc(raw, data, keep_last=item["type"] == "missing")
        entries.append((loc, at_key, branch, item))

    # Group union alternatives by the place where they branched.
    groups: dict[tuple[KeyPath, bool], list[tuple[KeyPath, bool, int, ErrorDetails]]] = {}
    for entry in entries:
        loc, _at_key, branch, item = entry
        key = (loc[:branch], True) if branch >= 0 else (loc, False)
        groups.setdefault(key, []).append(entry)
    chosen: list[tuple[KeyPath, bool, ErrorDetails, str | None]] = []
    for (_where, is_union), members in groups.items():
        if not is_union:
            chosen.extend((loc, at_key, item, None) for loc, at_key, _b, item in members)
            continue
        deepest = max(len(loc) for loc, _a, _b, _i in members)
        members = [m for m in members if len(m[0]) == deepest]
        specific = [m for m in members if _expected_kind(m[3]["type"]) is None]
        if specific:
            chosen.extend((loc, at_key, item, None) for loc, at_key, _b, item in specific)
            continue
        kinds = list(dict.fromkeys(_expected_kind(m[3]["type"]) or "" for m in members))
        loc, at_key, _b, item = members[0]
        chosen.append((loc, at_key, item, " or ".join(kinds)))

    results: list[Diagnostic] = []
    for loc, at_key, item, expected in chosen:
        # Aliased fields come back under their alias ('from'), as the user wrote them.
        full = (*prefix, *loc)
        kind = item["type"]
        value = item.get("input")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(schema, loc[:-1])
            match = closest(str(loc[-1]), allowed)
            hint = (f"did you mean {match!r}?" if match else
                    f"allowed keys here: {', '.join(allowed)}" if allowed else "")
            results.append(document.diagnostic(full, f"unknown key {loc[-1]!r}", hint=hint,
                                               at_key=True))
            continue
        if kind == "missing":
            results.append(document.diagnostic(full[:-1], f"required key {loc[-1]!r} is missing",
                                               hint="add it"))
            continue
        if expected is not None:
            message, hint = f"expected {expected}; got {_got(value)}", ""
        else:
            message, hint = _shown_message(item, value)
        results.append(document.diagnostic(full, message, hint=hint, at_key=at_key))
    return results
