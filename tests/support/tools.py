"""External tools in tests: skip locally when one is missing, fail in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def unavailable(reason: str) -> None:
    """Skip the test locally; fail it in CI, where every tool must be installed and working."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def require_tool(*names: str) -> dict[str, str]:
    """The path of each named executable, or skip (locally) / fail (in CI) when one is missing."""
    found = {}
    for name in names:
        path = shutil.which(name)
        if path is None:
            unavailable(f"{name} is not installed (not found on PATH)")
        found[name] = path
    return found

