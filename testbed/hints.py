"""Did-you-mean hints for unknown names: the one place that guesses what a user meant.

Owns: ``closest`` (the nearest known name, by ``difflib``) and ``did_you_mean`` (a hint sentence:
the nearest name, else the list when it is short). Validation diagnostics, registries (detectors,
backends, profiles) and backends' host lookups all use it, so every "unknown name" reads the
same. Standard library only; imports nothing from the engine.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection

__all__ = ["closest", "did_you_mean"]


def closest(word: str, candidates: Collection[str]) -> str | None:
    """The known name nearest to ``word``, or None when nothing is close."""
    matches = difflib.get_close_matches(str(word), sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Collection[str], kind: str = "") -> str:
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
