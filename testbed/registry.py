"""Explicit, named registries with helpful errors (backends, detectors), and plug-ins found by
Python entry points.

Owns: registering a name once (duplicates are refused), lazy import of ``"module:attribute"``
targets so that optional parts load only when used, the ``RegistryError`` that lists the known
names and the closest one for a typo, and plug-in discovery: a registry with an entry-point
group (``testbed.detectors``, ``testbed.backends``; ``testbed.profiles`` and
``testbed.responders`` are listed by ``installed_plugins``) also knows every name that installed
distributions declare in that group, remembers which package each came from, and runs the
registry's conformance check on a plug-in when it is first loaded: a plug-in that fails gets a
``PluginError`` naming its package.

Must not touch: what the registered objects do (callers use them).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from testbed.errors import RegistryError, TestbedError
from testbed.hints import closest

__all__ = ["BUILT_IN", "PLUGIN_GROUPS", "PluginError", "PluginInfo", "Registry",
           "installed_plugins"]

T = TypeVar("T")

BUILT_IN = "built-in"
"""``Registry.origin`` of a name the testbed itself registers."""
PLUGIN_GROUPS: dict[str, str] = {
    "detector": "testbed.detectors",
    "profile": "testbed.profiles",
    "responder": "testbed.responders",
    "backend": "testbed.backends",
}
"""Kind of plug-in -> the entry-point group an external package declares it in."""


class PluginError(TestbedError):
    """An installed plug-in could not be loaded or failed its conformance check."""


@dataclass(frozen=True)
class PluginInfo:
    """One entry point an installed distribution declares in a testbed plug-in group."""

    kind: str  # "detector", "profile", "responder", "backend"
    name: str
    target: str  # "package.module:attribute"
    package: str  # the distribution that declares it
    version: str

    @property
    def origin(self) -> str:
        return f"{self.package} {self.version}".strip()

    def load(self) -> Any:
        """The declared object; ``PluginError`` naming the package when it cannot be imported."""
        module_name, _, attribute = self.target.partition(":")
        try:
            loaded = importlib.import_module(module_name)
            for part in attribute.split(".") if attribute else ():
                loaded = getattr(loaded, part)
        except Exception as err:  # any failure of third-party code is the plug-in's
            raise PluginError(f"{self.kind} plug-in {self.name!r} from package "
                              f"{self.origin!r} cannot be loaded ({self.target}): "
                              f"{type(err).__name__}: {err}") from err
        return loaded


def installed_plugins(kind: str) -> list[PluginInfo]:
    """The plug-ins of ``kind`` that installed distributions declare, by name."""
    from importlib.metadata import distributions

    group = PLUGIN_GROUPS[kind]
    found: dict[str, PluginInfo] = {}
    for distribution in distributions():
        for entry in distribution.entry_points:
            if entry.group != group or entry.name in found:
                continue
            package = distribution.metadata["Name"] or "unknown"
            found[entry.name] = PluginInfo(kind, entry.name, entry.value, package,
                                           distribution.version or "")
    return [found[name] for name in sorted(found)]


class Registry(Generic[T]):
    """Names -> objects, or ``"package.module:attribute"`` strings imported on first use.

    ``plugins`` names the kind of plug-in (a key of ``PLUGIN_GROUPS``) whose entry points join
    the registry on first lookup; ``check(name, obj)`` is run on each plug-in as it loads and raises
    (any exception) when it does not conform.
    """

    def __init__(self, kind: str, *, plugins: str | None = None,
                 check: Callable[[str, Any], None] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._origins: dict[str, str] = {}
        self._plugins: dict[str, PluginInfo] = {}
        self._plugin_kind = plugins
        self._check = check
        self._discovered = plugins is None

    def register(self, name: str, target: T | str, *, origin: str = BUILT_IN) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = target
        self._origins[name] = origin

    def discover(self) -> None:
        """Add the installed plug-ins (once). A plug-in may not shadow a registered name."""
        if self._discovered or self._plugin_kind is None:
            return
        self._discovered = True
        for info in installed_plugins(self._plugin_kind):
            if info.name in self._entries:
                raise PluginError(f"{self.kind} plug-in {info.name!r} from package "
                                  f"{info.origin!r} uses a name already registered by "
                                  f"{self._origins[info.name]}; rename its entry point")
            self._plugins[info.name] = info
            self.register(info.name, info.target, origin=info.origin)

    def names(self) -> list[str]:
        self.discover()
        return list(self._entries)

    def origin(self, name: str) -> str:
        """``built-in``, or the package (and version) that installed the plug-in."""
        self.discover()
        return self._origins.get(name, BUILT_IN)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self.discover()
        return iter(self._entries)

    def get(self, name: str) -> T:
        self.discover()
        try:
            target = self._entries[name]
        except KeyError:
            raise RegistryError(self.kind, name, list(self._entries),
                                closest(name, self._entries) or "") from None
        if not isinstance(target, str):
            return target
        plugin = self._plugins.get(name)
        if plugin is None:
            module_name, _, attribute = target.partition(":")
            loaded: T = getattr(importlib.import_module(module_name), attribute)
        else:
            loaded = plugin.load()
            if self._check is not None:
                try:
                    self._check(name, loaded)
                except Exception as err:
                    raise PluginError(f"{self.kind} plug-in {name!r} from package "
                                      f"{plugin.origin!r} fails its conformance check: "
                                      f"{err}") from err
        self._entries[name] = loaded
        return loaded
