"""The contract of SharedState: every test runs against the memory and the Redis backend.

Both backends take their time from a ``task.Clock`` that the tests move, so
expiry is tested without waiting; the Redis backend runs against a real
``redis-server`` (its absence fails the tests, ``make test`` installs it),
each test under a fresh key prefix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from engine.state.interface import SharedState
from engine.state.leases import LeaseKeeper
from engine.state.memory import MemoryState
from engine.state.redis import RedisClient
from engine.state.redis_state import RENEW_BATCH, RedisState
from rediskit import RedisServer, running_redis

TTL = 30.0
T0 = 1_700_000_000.0  # a realistic epoch: Redis scores are milliseconds of it


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@dataclass
class Backend:
    name: str
    state: SharedState
    clock: Clock

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    clock = Clock()
    clock.advance(T0)
    state: Any
    if request.param == "memory":
        state = MemoryState(clock, lease_ttl=TTL)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        client = RedisClient(reactor, "127.0.0.1", server.port)
        state = RedisState(client, clock, lease_ttl=TTL, prefix=f"test:{uuid.uuid4().hex}:")
    pytest_twisted.blockon(state.ready().addTimeout(10, reactor))
    yield Backend(request.param, state, clock)
    pytest_twisted.blockon(state.close().addTimeout(10, reactor))


async def take(state: SharedState, key: str, limit: int, leases: list[str]) -> list[bool]:
    """Acquire for each lease, all sent at once (pipelined on Redis)."""
    pending = [state.acquire(key, limit, lease) for lease in leases]
    return [await d for d in pending]


# -- limits ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_acquire_takes_up_to_the_limit_and_then_refuses(backend: Backend) -> None:
    state = backend.state
    assert await take(state, "+3225551234", 3, ["a", "b", "c", "d", "e"]) == [
        True, True, True, False, False]  # fmt: skip
    assert await state.count("+3225551234") == 3


@pytest_twisted.ensureDeferred
async def test_a_refused_acquire_takes_nothing(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 1, ["a"])
    assert not await state.acquire("k", 1, "b")
    await state.release("k", "a")
    assert await state.count("k") == 0  # "b" holds nothing that would need releasing


@pytest_twisted.ensureDeferred
async def test_limit_of_zero_or_less_refuses(backend: Backend) -> None:
    state = backend.state
    assert not await state.acquire("k", 0, "a")
    assert not await state.acquire("k", -1, "a")
    assert await state.count("k") == 0


@pytest_twisted.ensureDeferred
async def test_keys_are_independent(backend: Backend) -> None:
    state = backend.state
    assert await take(state, "x", 1, ["a"]) == [True]
    assert await take(state, "y", 1, ["a"]) == [True]
    assert await state.count("x") == 1
    assert await state.count("y") == 1


@pytest_twisted.ensureDeferred
async def test_a_limit_lowered_below_the_holders_refuses_until_enough_leave(
    backend: Backend,
) -> None:
    state = backend.state
    await take(state, "k", 3, ["a", "b", "c"])
    assert not await state.acquire("k", 2, "d")
    await state.release("k", "a")
    assert not await state.acquire("k", 2, "d")
    await state.release("k", "b")
    assert await state.acquire("k", 2, "d")


@pytest_twisted.ensureDeferred
async def test_any_key_and_lease_text(backend: Backend) -> None:
    state = backend.state
    key, lease = "sip:+32 2 555 12 34@trunk;é", "leg:7f3a ✓ 'quoted' \"x\""
    assert await state.acquire(key, 1, lease)
    assert await state.count(key) == 1
    await state.release(key, lease)
    assert await state.count(key) == 0


# -- idempotence -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_acquire_is_idempotent_for_the_same_lease(backend: Backend) -> None:
    state = backend.state
    assert await take(state, "k", 2, ["a", "a", "a"]) == [True, True, True]
    assert await state.count("k") == 1


@pytest_twisted.ensureDeferred
async def test_a_holder_acquiring_again_at_the_limit_is_told_yes(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 2, ["a", "b"])
    assert await state.acquire("k", 2, "b")
    assert await state.count("k") == 2


@pytest_twisted.ensureDeferred
async def test_release_is_idempotent(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 2, ["a", "b"])
    await state.release("k", "a")
    await state.release("k", "a")
    await state.release("k", "never-held")
    await state.release("no-such-key", "a")
    assert await state.count("k") == 1


# -- release and count -----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_release_frees_a_slot_for_another_lease(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 2, ["a", "b"])
    assert not await state.acquire("k", 2, "c")
    await state.release("k", "a")
    assert await state.count("k") == 1
    assert await state.acquire("k", 2, "c")
    assert await state.count("k") == 2


@pytest_twisted.ensureDeferred
async def test_count_of_an_unknown_key_is_zero(backend: Backend) -> None:
    assert await backend.state.count("nobody") == 0


@pytest_twisted.ensureDeferred
async def test_count_follows_acquires_and_releases(backend: Backend) -> None:
    state = backend.state
    leases = [f"leg{i}" for i in range(10)]
    await take(state, "k", 100, leases)
    for done, lease in enumerate(leases, 1):
        await state.release("k", lease)
        assert await state.count("k") == 10 - done


# -- expiry ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_lease_not_renewed_expires_after_its_ttl(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 1, ["a"])
    backend.advance(TTL - 0.002)
    assert await state.count("k") == 1
    assert not await state.acquire("k", 1, "b")
    backend.advance(0.002)
    assert await state.count("k") == 0
    assert await state.acquire("k", 1, "b")
    assert await state.count("k") == 1


@pytest_twisted.ensureDeferred
async def test_expired_leases_give_their_slots_to_new_ones(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 3, ["a", "b", "c"])
    backend.advance(TTL / 2)
    await state.release("k", "a")
    assert await take(state, "k", 3, ["d"]) == [True]
    backend.advance(TTL / 2)  # b and c expire; d lives on
    assert await state.count("k") == 1
    assert await take(state, "k", 3, ["e", "f", "g"]) == [True, True, False]


@pytest_twisted.ensureDeferred
async def test_acquiring_again_pushes_the_expiry_back(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 1, ["a"])
    backend.advance(TTL * 0.9)
    assert await state.acquire("k", 1, "a")
    backend.advance(TTL * 0.9)
    assert await state.count("k") == 1


# -- renew -----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_renew_keeps_leases_alive(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 2, ["a", "b"])
    for _ in range(5):
        backend.advance(TTL * 0.9)
        await state.renew([("k", "a"), ("k", "b")])
    assert await state.count("k") == 2
    backend.advance(TTL)
    assert await state.count("k") == 0


@pytest_twisted.ensureDeferred
async def test_renew_only_what_is_named(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 2, ["a", "b"])
    backend.advance(TTL * 0.9)
    await state.renew([("k", "a")])
    backend.advance(TTL * 0.2)
    assert await state.count("k") == 1
    assert await take(state, "k", 2, ["c", "d"]) == [True, False]


@pytest_twisted.ensureDeferred
async def test_renew_does_not_bring_back_an_expired_lease(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 1, ["a"])
    backend.advance(TTL)
    await state.renew([("k", "a")])
    assert await state.count("k") == 0
    assert await state.acquire("k", 1, "b")


@pytest_twisted.ensureDeferred
async def test_renew_does_not_take_a_released_slot_back(backend: Backend) -> None:
    state = backend.state
    await take(state, "k", 1, ["a"])
    await state.release("k", "a")
    await state.renew([("k", "a"), ("other", "a")])
    assert await state.count("k") == 0
    assert await state.count("other") == 0


@pytest_twisted.ensureDeferred
async def test_renew_of_nothing(backend: Backend) -> None:
    await backend.state.renew([])
    await backend.state.renew(iter(()))


@pytest_twisted.ensureDeferred
async def test_renew_many_leases_on_many_keys(backend: Backend) -> None:
    state = backend.state
    pairs = [(f"dest{i % 37}", f"leg{i}") for i in range(2 * RENEW_BATCH + 123)]
    granted = [await d for d in [state.acquire(k, 1000, lease) for k, lease in pairs]]
    assert all(granted)
    backend.advance(TTL * 0.9)
    await state.renew(pair for pair in pairs)  # any iterable, consumed once
    backend.advance(TTL * 0.9)
    counts = [await state.count(f"dest{i}") for i in range(37)]
    assert sum(counts) == len(pairs)


# -- the keeper, on both backends ------------------------------------------


@pytest_twisted.ensureDeferred
async def test_keeper_keeps_held_leases_alive_and_lets_released_ones_go(
    backend: Backend,
) -> None:
    state = backend.state
    renewals: list[Any] = []
    renew = state.renew

    def spy(leases: Any) -> Any:
        d = renew(leases)
        renewals.append(d)
        return d

    state.renew = spy  # type: ignore[method-assign]
    keeper = LeaseKeeper(state, backend.clock)
    assert keeper.interval == TTL / 3
    assert await keeper.acquire("k", 2, "a")
    assert await keeper.acquire("k", 2, "b")
    assert not await keeper.acquire("k", 2, "c")
    assert keeper.held == [("k", "a"), ("k", "b")]
    keeper.start()
    for _ in range(12):  # four TTLs
        backend.advance(keeper.interval)
        for d in renewals:
            await d
    assert len(renewals) == 12
    assert await state.count("k") == 2
    await keeper.release("k", "a")
    assert keeper.held == [("k", "b")]
    keeper.stop()
    backend.advance(TTL)
    assert await state.count("k") == 0
    assert len(renewals) == 12
