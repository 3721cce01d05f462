"""Shared fixtures. Workflows register by name process-wide, so every test names its own."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def wf_name(request: pytest.FixtureRequest) -> str:
    """A workflow name unique to this test (its node id, made name-safe)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.nodeid)
