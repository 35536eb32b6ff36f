"""Explicit, named registries with helpful errors (backends, detectors, worm profiles).

Owns: registering a name once (duplicates are refused), lazy import of ``"module:attribute"``
targets so that optional parts load only when used, and the ``RegistryError`` that lists the known
names and the closest one for a typo.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from testbed.errors import RegistryError
from testbed.hints import closest

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> objects, or ``"package.module:attribute"`` strings imported on first use."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, target: T | str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = target

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str) -> T:
        try:
            target = self._entries[name]
        except KeyError:
            raise RegistryError(self.kind, name, list(self._entries),
                                closest(name, self._entries) or "") from None
        if isinstance(target, str):
            module_name, _, attribute = target.partition(":")
            loaded: T = getattr(importlib.import_module(module_name), attribute)
            self._entries[name] = loaded
            return loaded
        return target
