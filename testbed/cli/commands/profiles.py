"""`testbed profiles`: list the worm profiles and their parameters, and the profile plug-ins that
installed packages declare (entry-point group ``testbed.profiles``), with their package."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pydantic

from testbed.errors import TestbedError
from testbed.model.profiles import ProfileSpec, profile_catalog
from testbed.registry import BUILT_IN, PluginError, installed_plugins

NAME = "profiles"
HELP = "List the worm profiles (built-in and installed plug-ins) and their parameters"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def plugin_profiles() -> dict[str, tuple[ProfileSpec, str]]:
    """Installed profile plug-ins: name -> (profile, package). A plug-in's object is a
    ``ProfileSpec``, a mapping, or the path of a profile YAML file; one that does not validate
    as a profile gets a ``PluginError`` naming its package."""
    from testbed.yamlsource import load_yaml

    found: dict[str, tuple[ProfileSpec, str]] = {}
    for info in installed_plugins("profile"):
        loaded = info.load()
        try:
            if isinstance(loaded, ProfileSpec):
                profile = loaded
            elif isinstance(loaded, str | Path):
                profile = ProfileSpec.model_validate(load_yaml(Path(loaded)).data)
            else:
                profile = ProfileSpec.model_validate(loaded)
        except (pydantic.ValidationError, TestbedError, OSError) as err:
            raise PluginError(f"profile plug-in {info.name!r} from package {info.origin!r} "
                              f"fails its conformance check: {err}") from err
        found[info.name] = (profile, info.origin)
    return found


def run(args: argparse.Namespace) -> int:
    catalog = profile_catalog()
    plugins = plugin_profiles()
    if args.json:
        listed = {name: {**p.model_dump(), "package": BUILT_IN} for name, p in catalog.items()}
        listed.update({name: {**p.model_dump(), "package": package}
                       for name, (p, package) in plugins.items()})
        json.dump(listed, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    shown = [(name, profile, BUILT_IN) for name, profile in catalog.items()]
    shown += [(name, profile, package) for name, (profile, package) in plugins.items()]
    for name, profile, package in shown:
        origin = "" if package == BUILT_IN else f" (plug-in from {package})"
        table = Table(title=f"{name}: {profile.description}{origin}", title_justify="left")
        for column in ("parameter", "default", "range / choices", "meaning"):
            table.add_column(column)
        for key, spec in profile.params.items():
            bounds = ", ".join(spec.choices) if spec.choices else (
                f"{spec.min:g} .. {spec.max:g}" if spec.min is not None and spec.max is not None
                else "")
            table.add_row(key, str(spec.default), bounds, spec.help)
        console.print(table)
    return 0
