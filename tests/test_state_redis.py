"""The Redis client and backend: the protocol on a fake transport, then against real Redis.

Real-server tests cover what only a server shows: two clients (two engine
processes) racing on one key, a connection killed or a server restarted
under pending commands, AUTH and SELECT, and the EVAL fallback when Redis
has forgotten the scripts. They wait on Deferreds, never on sleeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from engine.state.factory import open_state
from engine.state.interface import StateUnavailableError
from engine.state.redis import RedisClient, RedisCommandError, RedisConnectionError, RedisProtocol
from engine.state.redis_state import RedisState
from engine.state.resp import encode_command
from rediskit import MISSING, RedisServer, find_redis_server, free_port

T0 = 1_700_000_000.0
WAIT = 10.0  # seconds a real-server step may take before the test fails


def in_time(d: Deferred[Any]) -> Deferred[Any]:
    return d.addTimeout(WAIT, reactor)


async def failure_of(d: Deferred[Any]) -> BaseException:
    """The exception ``d`` fails with (the test fails if it succeeds)."""
    try:
        result = await d
    except Exception as exc:
        return exc
    raise AssertionError(f"expected a failure, got {result!r}")


# -- the protocol on a fake transport ------------------------------------------


def connected_protocol(timeout: float = 2.0) -> tuple[RedisProtocol, StringTransport, Clock]:
    clock = Clock()
    protocol = RedisProtocol(clock, "redis.test:6379", timeout)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock


def outcomes(*ds: Deferred[Any]) -> list[Any]:
    results: list[Any] = []
    for d in ds:
        d.addBoth(results.append)
    return results


def test_pipelined_commands_are_written_at_once_and_answered_in_order() -> None:
    protocol, transport, _clock = connected_protocol()
    a = protocol.send(encode_command("GET", "a"))
    b = protocol.send(encode_command("GET", "b"))
    c = protocol.send(encode_command("INCR", "c"))
    assert transport.value() == b"".join(
        encode_command(*cmd) for cmd in [("GET", "a"), ("GET", "b"), ("INCR", "c")])  # fmt: skip
    results = outcomes(a, b, c)
    protocol.dataReceived(b"$1\r\nA\r\n$-1\r\n:")
    assert results == [b"A", None]
    protocol.dataReceived(b"5\r\n")
    assert results == [b"A", None, 5]


def test_error_reply_fails_its_command_only() -> None:
    protocol, _transport, _clock = connected_protocol()
    a = protocol.send(encode_command("EVALSHA", "x", 0))
    b = protocol.send(encode_command("PING"))
    results = outcomes(a, b)
    protocol.dataReceived(b"-NOSCRIPT No matching script\r\n+PONG\r\n")
    assert isinstance(results[0], Failure)
    assert isinstance(results[0].value, RedisCommandError)
    assert results[0].value.code == "NOSCRIPT"
    assert results[1] == "PONG"


def test_connection_lost_fails_every_pending_command_clearly() -> None:
    protocol, _transport, _clock = connected_protocol()
    results = outcomes(protocol.send(b"x"), protocol.send(b"y"))
    protocol.connectionLost(Failure(ConnectionDone("Connection was closed cleanly.")))
    assert len(results) == 2
    for result in results:
        assert isinstance(result.value, RedisConnectionError)
        assert isinstance(result.value, StateUnavailableError)
        message = str(result.value)
        assert "redis.test:6379" in message
        assert "2 command(s) unanswered" in message
    late = outcomes(protocol.send(b"z"))
    assert isinstance(late[0].value, RedisConnectionError)


def test_garbage_from_the_server_drops_the_connection() -> None:
    protocol, transport, _clock = connected_protocol()
    results = outcomes(protocol.send(b"x"))
    protocol.dataReceived(b"!what\r\n")
    assert transport.disconnecting
    protocol.connectionLost(Failure(ConnectionDone()))
    assert "not RESP2" in str(results[0].value)


def test_a_reply_to_no_command_drops_the_connection() -> None:
    protocol, transport, _clock = connected_protocol()
    protocol.dataReceived(b"+OK\r\n")
    assert transport.disconnecting


def test_no_reply_within_the_timeout_drops_the_connection() -> None:
    protocol, transport, clock = connected_protocol(timeout=2.0)
    first = outcomes(protocol.send(b"x"))
    clock.advance(1.5)
    second = outcomes(protocol.send(b"y"))
    protocol.dataReceived(b"+OK\r\n")  # the first is answered in time
    assert first == ["OK"]
    clock.advance(1.0)  # the second has waited 1.0 s: still fine
    assert not transport.disconnecting
    clock.advance(1.0)
    assert transport.disconnecting
    protocol.connectionLost(Failure(ConnectionDone()))
    assert "no reply within 2 s" in str(second[0].value)
    assert not clock.getDelayedCalls()


def test_a_cancelled_command_keeps_its_turn() -> None:
    protocol, _transport, _clock = connected_protocol()
    a = protocol.send(b"x")
    b = protocol.send(b"y")
    a.addErrback(lambda _f: None)
    a.cancel()
    results = outcomes(b)
    protocol.dataReceived(b":1\r\n:2\r\n")
    assert results == [2]


# -- against a real redis-server -----------------------------------------------


@pytest.fixture(scope="module")
def redis_binary() -> str:
    binary = find_redis_server()
    if binary is None:
        pytest.fail(MISSING, pytrace=False)
    return binary


@pytest.fixture(scope="module")
def redis_server(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_server(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A server of the test's own, to kill or restart."""
    server = RedisServer(redis_binary, tmp_path / "redis")
    server.start()
    yield server
    server.stop()


class Clients:
    """Clients opened by a test, closed after it."""

    def __init__(self) -> None:
        self.opened: list[RedisClient] = []

    def __call__(self, port: int, **kw: Any) -> RedisClient:
        kw.setdefault("min_backoff", 0.01)
        kw.setdefault("max_backoff", 0.1)
        client = RedisClient(reactor, "127.0.0.1", port, **kw)
        self.opened.append(client)
        return client


@pytest.fixture
def clients() -> Iterator[Clients]:
    made = Clients()
    yield made
    for client in made.opened:
        pytest_twisted.blockon(in_time(client.close()))


@pytest_twisted.ensureDeferred
async def test_two_clients_racing_never_hold_more_than_the_limit(
    redis_server: RedisServer, clients: Clients
) -> None:
    """Two connections, as two engine processes; many leases at once; an observer counting."""
    clock = Clock()
    clock.advance(T0)
    prefix = f"race:{uuid.uuid4().hex}:"
    a, b, observer = (clients(redis_server.port) for _ in range(3))
    for client in (a, b, observer):
        await in_time(client.wait_connected())
    states = [RedisState(c, clock, prefix=prefix) for c in (a, b)]
    watch = RedisState(observer, clock, prefix=prefix)
    limit = 7
    held: set[str] = set()
    for round_ in range(20):
        releasing = sorted(held)[: len(held) // 2 + round_ % 2]
        acquires: list[tuple[str, Deferred[bool]]] = []
        others: list[Deferred[Any]] = []
        counts: list[Deferred[int]] = []
        for i in range(150):
            lease = f"r{round_}-{i}"
            acquires.append((lease, states[i % 2].acquire("dest", limit, lease)))
            if i % 10 == 0:
                counts.append(watch.count("dest"))
            if i < len(releasing):
                others.append(states[(i + 1) % 2].release("dest", releasing[i]))
        held.difference_update(releasing)
        for lease, d in acquires:
            if await in_time(d):
                held.add(lease)
        for d in others:
            await in_time(d)
        observed = [await in_time(d) for d in counts]
        assert max(observed) <= limit, observed
        assert len(held) <= limit
        assert await in_time(watch.count("dest")) == len(held)
    assert len(held) == limit  # the last round filled what the releases freed


@pytest_twisted.ensureDeferred
async def test_all_at_once_exactly_the_limit_is_granted(
    redis_server: RedisServer, clients: Clients
) -> None:
    clock = Clock()
    clock.advance(T0)
    prefix = f"burst:{uuid.uuid4().hex}:"
    a, b = clients(redis_server.port), clients(redis_server.port)
    await in_time(a.wait_connected())
    await in_time(b.wait_connected())
    states = [RedisState(a, clock, prefix=prefix), RedisState(b, clock, prefix=prefix)]
    pending = [states[i % 2].acquire("k", 25, f"leg{i}") for i in range(1000)]
    granted = [await in_time(d) for d in pending]
    assert sum(granted) == 25
    assert await in_time(states[0].count("k")) == 25


@pytest_twisted.ensureDeferred
async def test_a_killed_connection_fails_pending_commands_and_reconnects(
    redis_server: RedisServer, clients: Clients
) -> None:
    client = clients(redis_server.port)
    await in_time(client.wait_connected())
    state = RedisState(client, reactor, prefix=f"kill:{uuid.uuid4().hex}:")
    name = f"victim-{uuid.uuid4().hex}"
    await in_time(client.execute("CLIENT", "SETNAME", name))
    blocked = client.execute("BLPOP", f"nothing:{name}", 0)  # waits for ever
    behind = state.acquire("k", 1, "a")  # pipelined behind it
    killer = clients(redis_server.port)
    await in_time(killer.wait_connected())
    clients_list = await in_time(killer.execute("CLIENT", "LIST"))
    victim_id = next(line.split()[0].split("=")[1] for line in clients_list.decode().splitlines()
                     if f"name={name}" in line)  # fmt: skip
    assert await in_time(killer.execute("CLIENT", "KILL", "ID", victim_id)) == 1
    for d in (blocked, behind):
        error = await failure_of(in_time(d))
        assert isinstance(error, RedisConnectionError), error
        assert "lost with 2 command(s) unanswered" in str(error)
        assert f"127.0.0.1:{redis_server.port}" in str(error)
    await in_time(client.wait_connected())
    assert await in_time(state.acquire("k", 1, "a"))


@pytest_twisted.ensureDeferred
async def test_a_redis_restart_fails_pending_commands_then_the_client_comes_back(
    own_server: RedisServer, clients: Clients
) -> None:
    client = clients(own_server.port)
    await in_time(client.wait_connected())
    state = RedisState(client, reactor, prefix="restart:")
    assert await in_time(state.acquire("k", 2, "a"))  # caches the script
    blocked = client.execute("BLPOP", "nothing", 0)
    own_server.kill()
    error = await failure_of(in_time(blocked))
    assert isinstance(error, RedisConnectionError)
    assert "lost with 1 command(s) unanswered" in str(error)
    # Down: commands fail at once with a sentence, they do not pile up.
    while client.connected:  # the loss may not have reached the client yet
        await in_time(client.execute("PING")).addErrback(lambda _f: None)
    error = await failure_of(in_time(state.acquire("k", 2, "b")))
    assert isinstance(error, StateUnavailableError)
    assert f"redis at 127.0.0.1:{own_server.port}" in str(error)
    own_server.start()
    await in_time(client.wait_connected())
    # A fresh server has neither the lease nor the script: EVALSHA falls back to EVAL.
    assert await in_time(state.count("k")) == 0
    assert await in_time(state.acquire("k", 2, "b"))
    assert await in_time(state.count("k")) == 1


@pytest_twisted.ensureDeferred
async def test_scripts_flushed_fall_back_to_eval(
    redis_server: RedisServer, clients: Clients
) -> None:
    client = clients(redis_server.port)
    await in_time(client.wait_connected())
    state = RedisState(client, reactor, prefix=f"flush:{uuid.uuid4().hex}:")
    assert await in_time(state.acquire("k", 1, "a"))
    assert await in_time(client.execute("SCRIPT", "FLUSH")) == "OK"
    assert not await in_time(state.acquire("k", 1, "b"))
    assert await in_time(state.acquire("k", 2, "b"))


@pytest_twisted.ensureDeferred
async def test_nothing_listening_fails_commands_clearly(clients: Clients) -> None:
    client = clients(free_port())
    error = await failure_of(in_time(client.execute("PING")))
    assert isinstance(error, RedisConnectionError)
    assert "cannot connect to redis at 127.0.0.1:" in str(error)
    error = await failure_of(in_time(client.execute("PING")))
    assert "unavailable" in str(error) or "cannot connect" in str(error)


@pytest_twisted.ensureDeferred
async def test_close_answers_what_was_sent_then_refuses(
    redis_server: RedisServer, clients: Clients
) -> None:
    client = clients(redis_server.port)
    await in_time(client.wait_connected())
    pending = [client.execute("ECHO", str(i)) for i in range(50)]
    closed = client.close()
    assert [await in_time(d) for d in pending] == [str(i).encode() for i in range(50)]
    await in_time(closed)
    error = await failure_of(client.execute("PING"))
    assert "closed" in str(error)


@pytest_twisted.ensureDeferred
async def test_open_state_authenticates_and_selects_the_database(
    redis_binary: str, tmp_path: Path
) -> None:
    server = RedisServer(redis_binary, tmp_path / "redis", "--requirepass", "s3cr et")
    server.start()
    try:
        url = f"redis://:s3cr%20et@127.0.0.1:{server.port}/3"
        state: Any = open_state(url, reactor)
        try:
            await in_time(state.ready())
            assert await in_time(state.acquire("k", 1, "a"))
            assert await in_time(state.client.execute("EXISTS", "vms:slots:k")) == 1
        finally:
            await in_time(state.close())
        acl: Any = open_state(f"redis://default:s3cr%20et@127.0.0.1:{server.port}", reactor)
        try:
            assert await in_time(acl.count("k")) == 0  # database 0
            assert await in_time(acl.client.execute("SELECT", 3)) == "OK"
            assert await in_time(acl.client.execute("EXISTS", "vms:slots:k")) == 1
        finally:
            await in_time(acl.close())
        wrong: Any = open_state(f"redis://:nope@127.0.0.1:{server.port}/0", reactor)
        try:
            error = await failure_of(in_time(wrong.acquire("k", 1, "b")))
            assert isinstance(error, RedisConnectionError)
            assert "refused AUTH" in str(error)
            assert "nope" not in str(error)
        finally:
            await in_time(wrong.close())
    finally:
        server.stop()


@pytest_twisted.ensureDeferred
async def test_unexpected_reply_type_is_a_state_error(
    redis_server: RedisServer, clients: Clients
) -> None:
    client = clients(redis_server.port)
    await in_time(client.wait_connected())
    prefix = f"wrongtype:{uuid.uuid4().hex}:"
    await in_time(client.execute("SET", f"{prefix}slots:k", "not a sorted set"))
    state = RedisState(client, reactor, prefix=prefix)
    error = await failure_of(in_time(state.acquire("k", 1, "a")))
    assert isinstance(error, RedisCommandError)
    assert "WRONGTYPE" in str(error)
