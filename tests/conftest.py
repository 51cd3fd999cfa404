"""Shared test setup: hypothesis profiles and the path to the shared DBC corpus."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from remote_support import serve_remote

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "dbc-corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared real-world DBC corpus beside the project root; skip where it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"DBC corpus not found at {CORPUS} (it sits beside the project in CI)")
    return CORPUS


@pytest.fixture
def remote_server() -> Iterator[str]:
    """One python-can-remote server (a bus between processes) for the test."""
    with serve_remote() as url:
        yield url
