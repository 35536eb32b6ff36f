"""Incremental readers of JSON-lines files that other processes are still appending to.

Owns: following ``hosts/*/events.jsonl`` (ground truth, for the runner's live view and stop
conditions only: never handed to detectors) and ``actions.jsonl`` (the runner's own responder and
manual ``testbed quarantine`` commands from other terminals append to it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed.records import parse_json_lines

__all__ = ["JsonlTail", "MultiTail"]


class JsonlTail:
    """Yields each complete line of a growing file once; a half-written last line waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as stream:
                stream.seek(self._offset)
                chunk = stream.read()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended with a newline
        return parse_json_lines(lines)


class MultiTail:
    """Follows ``<root>/*/<name>`` for directories that may appear later (one per host)."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self._tails: dict[Path, JsonlTail] = {}

    def poll(self) -> list[dict[str, Any]]:
        if self.root.is_dir():
            for directory in self.root.iterdir():
                path = directory / self.name
                if path not in self._tails and path.is_file():
                    self._tails[path] = JsonlTail(path)
        records: list[dict[str, Any]] = []
        for tail in self._tails.values():
            records.extend(tail.poll())
        records.sort(key=lambda r: float(r.get("mono", 0.0)))
        return records
