"""What a test does when a tool or service it needs is missing."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def skip_or_fail(reason: str) -> NoReturn:
    """Skip locally, so a developer without the tool can still run the rest; under `CI=true`
    fail, because CI installs everything (.ci/run) and a skip there would hide a gap."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)
