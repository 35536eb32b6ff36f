"""Crash-safe file writes: the one atomic writer every component uses.

Owns: writing a file so that a reader (or a process started after ``kill -9`` of the writer) sees
the old or the new content, never half of one: write a temporary file in the same directory,
fsync, rename over the target. Ledgers, containment state, manifests, results and merged ground
truth are all written this way. Standard library only; imports nothing from the engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_json_atomically", "write_text_atomically"]


def write_text_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (temporary file, fsync, rename)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_json_atomically(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON with ``write_text_atomically``."""
    write_text_atomically(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
