"""Exit 0 when this repository is pip-installed (editable) with every dependency satisfied.

Owns: the quick "is anything missing?" check that lets ``make install`` skip pip in well under a
second. Reads pyproject.toml (runtime dependencies plus the ``dev``, ``ray``, ``gym`` and
``redteam`` extras) and compares with the installed distributions; never installs anything itself.

Usage: python3 scripts/check_python_deps.py REPO [--quiet]
"""

from __future__ import annotations

import json
import sys
import tomllib
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef,assignment]


INSTALLED_EXTRAS = ("dev", "ray", "gym", "redteam")  # what scripts/install.sh installs


def problems(repo: Path) -> list[str]:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    found: list[str] = []
    try:
        dist = metadata.distribution(project["name"])
    except metadata.PackageNotFoundError:
        return [f"{project['name']} is not installed"]
    direct_url = dist.read_text("direct_url.json")
    target = json.loads(direct_url).get("url", "") if direct_url else ""
    if target.rstrip("/") != repo.resolve().as_uri():
        found.append(f"{project['name']} is installed from {target or 'an index'}, "
                     f"not editable from {repo}")
    wanted = list(project.get("dependencies", []))
    for extra in INSTALLED_EXTRAS:
        wanted += project.get("optional-dependencies", {}).get(extra, [])
    for line in wanted:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            found.append(f"{requirement.name} is missing")
            continue
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            found.append(f"{requirement.name} {version} does not satisfy {requirement}")
    return found


def main() -> int:
    repo = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    found = problems(repo)
    if found and "--quiet" not in sys.argv:
        for line in found:
            print(f"[install] python: {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
