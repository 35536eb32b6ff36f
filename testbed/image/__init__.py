"""The testbed's Docker image and the engine connection (used by the docker backend and the CLI).

Owns: the Dockerfile, building the image with or without a registry (``image.py``), and the one
place that connects to the Docker engine and words its failures (``engine.py``). Must not touch
deployments: the containers of a run belong to the docker node runtime,
``testbed.backends.docker``. (Named ``image`` so that it is not mistaken for that backend.)
"""

from testbed.image.engine import EngineUnavailableError, connect, engine_failure
from testbed.image.image import (
    BASE_IMAGE,
    DEFAULT_IMAGE,
    ImageStatus,
    build_image,
    image_status,
)

__all__ = [
    "BASE_IMAGE",
    "DEFAULT_IMAGE",
    "EngineUnavailableError",
    "ImageStatus",
    "build_image",
    "connect",
    "engine_failure",
    "image_status",
]
