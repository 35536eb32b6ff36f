"""The testbed's Docker image and engine connection (used by the docker backend and the CLI).

Owns: the Dockerfile, building the image with or without a registry (``image.py``), and the one
place that connects to the Docker engine with a helpful error (``engine.py``). Must not touch
deployments: containers of a run belong to ``testbed.backends.docker``.
"""

from testbed.docker.engine import connect
from testbed.docker.image import (
    BASE_IMAGE,
    DEFAULT_IMAGE,
    ImageStatus,
    build_image,
    image_status,
)

__all__ = ["BASE_IMAGE", "DEFAULT_IMAGE", "ImageStatus", "build_image", "connect", "image_status"]
