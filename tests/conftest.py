"""Shared test configuration: hypothesis profiles (``ci`` when CI=true) and fixtures."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def shm_name() -> Iterator[str]:
    """A fresh shared-memory name, removed afterwards whatever the test left."""
    from segalloc import ManagedSharedMemory

    name = f"segalloc-test-{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        ManagedSharedMemory.remove(name)
