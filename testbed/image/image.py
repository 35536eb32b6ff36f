"""Building the testbed image, with a registry or without one.

Owns: the image names, the recipe digest that says whether an image is current, the offline base
(a minimal Debian made with debootstrap, cached as a tarball, imported into the engine) and the
``docker build`` of ``Dockerfile`` on top of either base. Must not start containers of a run.

Offline path (no registry reachable, the default)::

    debootstrap --variant=minbase --include=python3,iproute2,nftables bookworm ROOTFS MIRROR
    tar -C ROOTFS -c . > /var/cache/testbed/rootfs-bookworm-....tar   (cached: rebuilds are fast)
    docker import that tarball  -> testbed-base:bookworm
    docker build --build-arg BASE=testbed-base:bookworm --network none -> testbed-host:latest

Registry path (``--dockerfile``): the same Dockerfile on ``python:3.11-slim-bookworm``, which
installs iproute2 and nftables. Both images hold python3 >= 3.11, iproute2 and nftables; the
Dockerfile's own check fails the build otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.errors import BackendError, PrivilegeError, ToolMissingError

if TYPE_CHECKING:
    import docker

__all__ = [
    "BASE_IMAGE",
    "DEFAULT_IMAGE",
    "IMAGE_REPOSITORY",
    "BuildResult",
    "ImageStatus",
    "build_image",
    "image_status",
    "recipe_digest",
]

IMAGE_REPOSITORY = "testbed-host"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:latest"
BASE_IMAGE = "testbed-base:bookworm"
REGISTRY_BASE = "python:3.11-slim-bookworm"
SUITE = "bookworm"
PACKAGES = ("python3", "iproute2", "nftables")
RECIPE_LABEL = "org.testbed.recipe"
MODE_LABEL = "org.testbed.build"
CONTEXT_DIR = Path(__file__).resolve().parent
# Trimmed from the rootfs before import: nothing in a host needs them, and they are half its size.
TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
        "usr/share/locale", "usr/share/info")

Say = Callable[[str], None]


def cache_dir() -> Path:
    """Where the debootstrap tarball is kept: ``$TESTBED_CACHE_DIR`` or /var/cache/testbed."""
    return Path(os.environ.get("TESTBED_CACHE_DIR", "/var/cache/testbed"))


def mirror() -> str:
    return os.environ.get("TESTBED_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def recipe_digest() -> str:
    """Changes whenever what goes into the image changes (Dockerfile, suite, packages)."""
    digest = hashlib.sha256((CONTEXT_DIR / "Dockerfile").read_bytes())
    digest.update(f"{SUITE}:{','.join(PACKAGES)}".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ImageStatus:
    name: str
    present: bool
    current: bool  # built from today's recipe
    id: str | None = None
    size_mb: float | None = None
    build: str | None = None  # "offline" or "dockerfile"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BuildResult:
    image: str
    built: bool  # False when --if-missing found a current image
    mode: str
    seconds: float
    base_from_cache: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def image_status(client: docker.DockerClient, name: str = DEFAULT_IMAGE) -> ImageStatus:
    import docker.errors

    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return ImageStatus(name, present=False, current=False)
    labels = image.labels or {}
    return ImageStatus(name, present=True, current=labels.get(RECIPE_LABEL) == recipe_digest(),
                       id=image.short_id, size_mb=round(image.attrs.get("Size", 0) / 2**20, 1),
                       build=labels.get(MODE_LABEL))


def build_image(client: docker.DockerClient, *, offline: bool = True, if_missing: bool = False,
                rebuild_base: bool = False, say: Say = lambda _: None) -> BuildResult:
    """Build ``testbed-host:latest``; with ``if_missing`` do nothing when it is current."""
    started = time.monotonic()
    mode = "offline" if offline else "dockerfile"
    if if_missing and not rebuild_base:
        status = image_status(client)
        if status.current:
            return BuildResult(DEFAULT_IMAGE, built=False, mode=status.build or mode,
                               seconds=time.monotonic() - started)
    from_cache: bool | None = None
    if offline:
        base, from_cache = _offline_base(client, rebuild=rebuild_base, say=say)
    else:
        base = REGISTRY_BASE
    digest = recipe_digest()
    say(f"docker build FROM {base} -> {DEFAULT_IMAGE}")
    _docker_build(client, base=base, tags=(DEFAULT_IMAGE, f"{IMAGE_REPOSITORY}:{digest}"),
                  labels={RECIPE_LABEL: digest, MODE_LABEL: mode}, network=not offline, say=say)
    return BuildResult(DEFAULT_IMAGE, built=True, mode=mode, seconds=time.monotonic() - started,
                       base_from_cache=from_cache)


# ---- offline base ------------------------------------------------------------------------------
def _offline_base(client: docker.DockerClient, *, rebuild: bool, say: Say) -> tuple[str, bool]:
    """Import the cached rootfs tarball as ``testbed-base`` (debootstrap it first if needed)."""
    import docker.errors

    tarball = cache_dir() / f"rootfs-{SUITE}-minbase-{'-'.join(PACKAGES)}.tar"
    from_cache = tarball.exists() and not rebuild
    if not from_cache:
        _debootstrap_tarball(tarball, say=say)
    else:
        say(f"using cached root file system {tarball}")
    try:
        if not rebuild and client.images.get(BASE_IMAGE).labels.get(RECIPE_LABEL) == \
                _file_digest(tarball):
            return BASE_IMAGE, from_cache
    except docker.errors.ImageNotFound:
        pass
    say(f"docker import {tarball.name} -> {BASE_IMAGE}")
    repository, tag = BASE_IMAGE.split(":")
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        'CMD ["python3"]',
        f"LABEL {RECIPE_LABEL}={_file_digest(tarball)}",
    ]
    try:
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag,
                                          changes=changes)
    except docker.errors.DockerException as err:
        raise BackendError(f"docker import of {tarball} failed: {err}") from err
    return BASE_IMAGE, from_cache


def _file_digest(path: Path) -> str:
    """Cheap identity of a cached tarball (size and mtime): a re-debootstrap changes it."""
    stat = path.stat()
    return hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def _debootstrap_tarball(tarball: Path, *, say: Say) -> None:
    if shutil.which("debootstrap") is None:
        raise ToolMissingError("debootstrap is missing: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise PrivilegeError("building the offline base runs debootstrap, which needs root")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=tarball.parent) as workdir:
        rootfs = Path(workdir) / "rootfs"
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                   SUITE, str(rootfs), mirror()]
        say(f"{' '.join(command)} (about 40 s)")
        _stream(command, say=say, what="debootstrap")
        for relative in TRIM:
            target = rootfs / relative
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        partial = Path(workdir) / "rootfs.tar"
        _stream(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
                say=say, what="tar")
        partial.rename(tarball)  # atomic: a cached tarball is always complete
    say(f"cached root file system: {tarball} ({tarball.stat().st_size / 2**20:.0f} MiB)")


def _stream(command: list[str], *, say: Say, what: str) -> None:
    """Run ``command``, passing its progress lines to ``say``; raise with its tail on failure."""
    tail: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail = [*tail[-19:], line]
            if line.startswith(("I: Retrieving Release", "I: Installing core", "E:", "W:",
                                "I: Unpacking the base", "I: Base system installed")):
                say(f"  {what}: {line}")
    if process.returncode != 0:
        joined = "\n".join(tail)
        raise BackendError(f"{what} failed (exit {process.returncode}):\n{joined}")


# ---- docker build ------------------------------------------------------------------------------
def _docker_build(client: docker.DockerClient, *, base: str, tags: tuple[str, ...],
                  labels: dict[str, str], network: bool, say: Say) -> None:
    import docker.errors

    try:
        stream: Iterator[dict[str, Any]] = client.api.build(
            path=str(CONTEXT_DIR), dockerfile="Dockerfile", tag=tags[0],
            buildargs={"BASE": base}, labels=labels, rm=True, forcerm=True, pull=False,
            network_mode=None if network else "none", decode=True)
        image_id = None
        for chunk in stream:
            if "error" in chunk:
                raise BackendError(f"docker build failed: {chunk['error'].strip()}"
                                   + ("" if network else
                                      " (offline build: is the base complete?)"))
            text = str(chunk.get("stream", "")).strip()
            if text.startswith("Step "):
                say(f"  {text}")
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
        if image_id is None:
            raise BackendError("docker build reported no image")
        image = client.images.get(image_id)
        for tag in tags[1:]:
            repository, name = tag.split(":")
            image.tag(repository, name)
    except docker.errors.DockerException as err:
        raise BackendError(f"docker build failed: {err}") from err
