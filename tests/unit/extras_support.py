"""Optional packages the unit tier uses: the ``ray``, ``gym`` and ``redteam`` extras, which
``make test`` installs. Outside CI a missing one skips the tests that need it; under ``CI=true``
it fails them instead, so a broken install cannot pass as skipped tests."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

__all__ = ["require_extra"]


def require_extra(module: str) -> ModuleType:
    """``module`` imported; skips (outside CI) or raises ``ImportError`` (CI) when missing."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module)
