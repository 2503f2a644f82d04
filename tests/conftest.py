"""Shared fixtures: repository paths and the shared prompts beside the checkout."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rediskit import RedisServer, running_redis  # noqa: E402 - on the path just above

#: Fixtures of the kits: make_api (the HTTP API on loopback).
pytest_plugins = ["apikit"]


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (modules that share one override this per module)."""
    with running_redis(tmp_path / "redis") as server:
        yield server
