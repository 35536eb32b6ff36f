"""The docker tier's shared fixture: a client of the local Docker engine.

Without root or an engine the tier skips, which tests/conftest.py turns into a failure under
CI=true (make test installs and starts the engine there).
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    from testbed.image import connect

    if os.geteuid() != 0:
        pytest.skip("the docker backend needs root")
    try:
        return connect(timeout=10)
    except Exception as err:  # any failure means: no engine here
        pytest.skip(f"no Docker engine: {err}")
