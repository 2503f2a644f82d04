"""open_state and the ``state:`` URL: what is accepted, and one sentence for the rest."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from engine.state.factory import open_state
from engine.state.memory import MemoryState
from engine.state.redis_state import RedisState
from engine.state.url import StateURL, parse_state_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory", StateURL("memory")),
        ("redis://127.0.0.1:6379/0", StateURL("redis", "127.0.0.1", 6379, 0)),
        ("redis://redis.example/2", StateURL("redis", "redis.example", 6379, 2)),
        ("redis://localhost", StateURL("redis", "localhost", 6379, 0)),
        ("redis://localhost:7000/", StateURL("redis", "localhost", 7000, 0)),
        ("redis://[::1]:6380/1", StateURL("redis", "::1", 6380, 1)),
        ("redis://:pa%40ss@h:1/15", StateURL("redis", "h", 1, 15, None, "pa@ss")),
        ("redis://vms:pw@h/3", StateURL("redis", "h", 6379, 3, "vms", "pw")),
    ],
)
def test_accepted_urls(url: str, expected: StateURL) -> None:
    assert parse_state_url(url) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "the scheme must be redis://"),
        ("Memory", "the scheme must be redis://"),
        ("sqlite:///tmp/x", "the scheme must be redis://"),
        ("rediss://h:6379/0", "TLS (rediss://) is not supported"),
        ("redis://", "the host is missing"),
        ("redis://:6379/0", "the host is missing"),
        ("redis://h:port/0", "Port could not be cast"),
        ("redis://h:99999/0", "Port out of range"),
        ("redis://h:6379/zero", "the database 'zero' is not a number"),
        ("redis://h:6379/0/1", "the database '0/1' is not a number"),
        ("redis://h:6379/0?timeout=1", "options after '?' or '#' are not supported"),
        ("redis://vms@h:6379/0", "a user name needs a password"),
    ],
)
def test_refused_urls_get_one_sentence(url: str, why: str) -> None:
    with pytest.raises(ValueError, match="state must be 'memory' or redis://") as caught:
        parse_state_url(url)
    assert why in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_refusal_never_shows_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        parse_state_url("redis://user:hunter2@h:6379/x")
    assert "hunter2" not in str(caught.value)
    assert "redis://user:***@h:6379/x" in str(caught.value)


def test_open_memory() -> None:
    clock = Clock()
    state = open_state("memory", clock, lease_ttl=10)
    assert isinstance(state, MemoryState)
    assert state.lease_ttl == 10
    assert state.acquire("k", 1, "a").result is True


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan")])
def test_a_lease_ttl_must_be_positive(ttl: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        open_state("memory", Clock(), lease_ttl=ttl)


@pytest_twisted.ensureDeferred
async def test_open_redis_builds_the_client_from_the_url() -> None:
    state: Any = open_state("redis://:pw@127.0.0.1:1/4", reactor, lease_ttl=60)
    try:
        assert isinstance(state, RedisState)
        assert state.lease_ttl == 60
        assert (state.client.host, state.client.port, state.client.db) == ("127.0.0.1", 1, 4)
    finally:
        await state.close()
