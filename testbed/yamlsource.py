"""Safe, bounded YAML loading that remembers where every key and value stood in the file.

Owns: reading a user's YAML file into plain Python data plus a map from key paths to
``(line, column)``, refusing anything that is not plain data (Python tags, unknown tags), duplicate
keys, merge keys, files that are not UTF-8, absurd sizes and alias bombs, in bounded time and
memory.
Must not know what a topology or scenario is: that is ``testbed.model``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.errors import Diagnostic, ValidationError

__all__ = [
    "MAX_EXPANDED_NODES",
    "MAX_FILE_BYTES",
    "KeyPath",
    "SourceDocument",
    "format_path",
    "load_yaml",
]

MAX_FILE_BYTES = 2 * 1024 * 1024
"""Refuse larger files: a 250-host campus topology is about 20 kB."""

MAX_EXPANDED_NODES = 200_000
"""Refuse documents whose aliases expand past this many nodes (the "billion laughs" bomb)."""

MAX_DEPTH = 64
"""Refuse nesting deeper than this; real topologies nest about 6 levels."""

KeyPath = tuple[str | int, ...]

_PLAIN_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
}


def format_path(path: KeyPath) -> str:
    """``('hosts', 'web', 'services', 0, 'port')`` -> ``hosts.web.services[0].port``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class SourceDocument:
    """Plain data from one YAML file, and where each part of it stood."""

    file: Path
    data: Any
    value_marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: KeyPath, *, at_key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of ``path``, or of its nearest ancestor that has a position."""
        probe = tuple(path)
        while True:
            if at_key and probe in self.key_marks:
                return self.key_marks[probe]
            if probe in self.value_marks:
                return self.value_marks[probe]
            if probe in self.key_marks:
                return self.key_marks[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]

    def diagnostic(self, path: KeyPath, message: str, *, hint: str = "",
                   at_key: bool = False) -> Diagnostic:
        line, column = self.locate(path, at_key=at_key)
        return Diagnostic(str(self.file), line, column, message, format_path(path), hint)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader used only to compose nodes and resolve scalars; never builds Python objects."""


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def load_yaml(path: str | Path, *, display_name: str | None = None) -> SourceDocument:
    """Load ``path`` as plain YAML data. Raises ValidationError with located diagnostics."""
    file = Path(path)
    shown = display_name or str(path)
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise ValidationError.single(shown, "file not found",
                                     hint="check the path; scenario topology paths are "
                                          "relative to the scenario file") from None
    except OSError as err:
        raise ValidationError.single(shown, f"cannot read file: {err.strerror}") from None
    if file.is_dir():
        raise ValidationError.single(shown, "is a directory, not a YAML file")
    if size > MAX_FILE_BYTES:
        raise ValidationError.single(
            shown, f"file is {size} bytes, larger than the limit of {MAX_FILE_BYTES}",
            hint="use host groups with a count instead of listing thousands of hosts")
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise ValidationError.single(
            shown, f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})",
            line=line, column=column, hint="save the file as UTF-8") from None
    if "\x00" in text:
        raise ValidationError.single(shown, "binary file (contains NUL bytes), not YAML")
    return parse_yaml_text(text, shown)


def parse_yaml_text(text: str, shown: str) -> SourceDocument:
    """Parse YAML ``text`` (already decoded) named ``shown`` in messages."""
    loader = _StrictLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            problem = err.problem or err.context or "invalid YAML"
            raise ValidationError.single(shown, f"not valid YAML: {problem}", line=line,
                                         column=column) from None
        except yaml.YAMLError as err:
            raise ValidationError.single(shown, f"not valid YAML: {err}") from None
        except RecursionError:
            raise ValidationError.single(shown, "nesting is too deep to be a topology or "
                                                "scenario") from None
    finally:
        loader.dispose()
    if root is None or (isinstance(root, yaml.ScalarNode) and root.value == ""
                        and root.tag == "tag:yaml.org,2002:null"):  # '---' alone
        raise ValidationError.single(shown, "file is empty",
                                     hint="a topology starts with 'name:' and 'segments:'")
    document = SourceDocument(Path(shown), None)
    diagnostics: list[Diagnostic] = []
    _check_size(root, shown)
    document.data = _to_plain(root, (), document, diagnostics, loader, depth=0)
    if diagnostics:
        raise ValidationError(diagnostics)
    if not isinstance(document.data, dict):
        line, column = _mark(root)
        raise ValidationError.single(shown, "the document must be a mapping of keys to values",
                                     line=line, column=column,
                                     hint="start with 'name: ...' on the first line")
    return document


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def _check_size(root: yaml.Node, shown: str) -> None:
    """Count nodes as if aliases were expanded, in time linear in the distinct nodes."""
    expanded: dict[int, int] = {}
    # Iterative post-order so that deep documents cannot exhaust the Python stack.
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 0)]
    while stack:
        node, children_done, depth = stack.pop()
        if id(node) in expanded:
            continue
        if depth > MAX_DEPTH:
            line, column = _mark(node)
            raise ValidationError.single(shown, f"nesting deeper than {MAX_DEPTH} levels",
                                         line=line, column=column)
        if children_done:
            total = 1 + sum(expanded[id(child)] for child in _children(node))
            if total > MAX_EXPANDED_NODES:
                line, column = _mark(node)
                raise ValidationError.single(
                    shown, f"document expands to more than {MAX_EXPANDED_NODES} nodes "
                           "(an alias bomb?)", line=line, column=column,
                    hint="avoid nested anchors and aliases; use defaults and host groups")
            expanded[id(node)] = total
            continue
        stack.append((node, True, depth))
        for child in _children(node):
            if id(child) not in expanded:
                stack.append((child, False, depth + 1))


def _to_plain(node: yaml.Node, path: KeyPath, document: SourceDocument,
              diagnostics: list[Diagnostic], loader: _StrictLoader, depth: int) -> Any:
    document.value_marks.setdefault(path, _mark(node))
    if node.tag not in _PLAIN_TAGS:
        line, column = _mark(node)
        diagnostics.append(Diagnostic(
            document.file.as_posix(), line, column,
            f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')!r} is not allowed: "
            "these files hold plain data only",
            format_path(path), "remove the tag; use plain strings, numbers, lists and maps"))
        return None
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                line, column = _mark(key_node)
                diagnostics.append(Diagnostic(
                    document.file.as_posix(), line, column, "merge keys ('<<') are not supported",
                    format_path(path), "use 'defaults:' or host groups to share values"))
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _PLAIN_TAGS:
                line, column = _mark(key_node)
                diagnostics.append(Diagnostic(document.file.as_posix(), line, column,
                                              "keys must be plain scalars", format_path(path)))
                continue
            key = str(loader.construct_scalar(key_node))
            child = (*path, key)
            if key in result:
                line, column = _mark(key_node)
                first = document.key_marks.get(child, (0, 0))[0]
                diagnostics.append(Diagnostic(
                    document.file.as_posix(), line, column,
                    f"duplicate key {key!r} (first defined on line {first})", format_path(child),
                    "each key may appear once in a mapping"))
                continue
            document.key_marks[child] = _mark(key_node)
            result[key] = _to_plain(value_node, child, document, diagnostics, loader, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_plain(item, (*path, index), document, diagnostics, loader, depth + 1)
                for index, item in enumerate(node.value)]
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError as err:
        line, column = _mark(node)
        diagnostics.append(Diagnostic(document.file.as_posix(), line, column,
                                      f"cannot read value: {err}", format_path(path)))
        return None
    if node.tag == "tag:yaml.org,2002:timestamp":
        return str(node.value)  # dates are just labels here; keep what the user wrote
    if (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool"
            and node.style is None and node.value.lower() not in ("true", "false")):
        # YAML 1.1 reads yes/no/on/off as booleans; YAML 1.2 (and editors) read text. Keep the
        # text: a host named 'no' stays a name, and boolean fields still accept 'yes'.
        return str(node.value)
    return value
