"""A small Redis client for the reactor: pipelining, reconnection, Lua scripts.

Why not redis-py: its synchronous client would block the reactor on every
call, and its asyncio client would force the asyncio reactor on the whole
engine. The state needs a handful of commands and scripts, so this module
moves the bytes of :mod:`engine.state.resp` over one TCP connection
(:mod:`engine.state.redis_connection`), which the whole process shares:

- **Pipelining.** Commands are written as they come, without waiting for
  earlier answers; replies are matched to commands in order.
- **Failing clearly.** A command never waits for ever: when the connection
  drops, or the oldest command gets no reply within ``command_timeout``,
  every pending command fails with :class:`RedisConnectionError`, which
  says where and why. The caller does not know whether those commands ran
  (the state's operations are idempotent, and leases expire).
- **Reconnecting.** A lost connection is re-established with exponential
  backoff (jittered, so many engine processes do not knock together). While
  an attempt is in progress, commands wait for it; while backing off they
  fail at once instead of piling up behind a dead server during a call.
- **Handshake.** ``AUTH`` (password, or ACL user and password) and ``SELECT``
  run on every new connection before any queued command.
- **Scripts.** :meth:`RedisClient.eval_script` sends ``EVALSHA`` and falls
  back to ``EVAL`` on ``NOSCRIPT`` (after a Redis restart or ``SCRIPT FLUSH``),
  which also caches the script again.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from engine.ratelog import RateLimitedLog
from engine.state.redis_connection import RedisCommandError, RedisConnectionError, RedisProtocol
from engine.state.resp import Arg, Reply, encode_command

__all__ = ["RedisClient", "RedisCommandError", "RedisConnectionError", "RedisProtocol", "Script"]

log = logging.getLogger("vms.state")


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA1, the name ``EVALSHA`` knows it by."""

    source: str
    sha1: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha1", hashlib.sha1(self.source.encode()).hexdigest())


class _OneShot(Factory[RedisProtocol]):
    """The factory of one connection attempt, handing out its one protocol."""

    def __init__(self, protocol: RedisProtocol) -> None:
        self.protocol_instance = protocol

    def buildProtocol(self, addr: IAddress | None) -> RedisProtocol:  # noqa: N802
        return self.protocol_instance


def _describe(failure: Failure) -> str:
    return failure.getErrorMessage() or failure.type.__name__  # type: ignore[union-attr]


class RedisClient:
    """A reconnecting, pipelining client of one Redis server and database."""

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 2.0,
        command_timeout: float = 2.0,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.db = db
        self.where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._handshake_commands: list[tuple[str, bytes]] = []
        if password is not None:
            auth = ("AUTH", username, password) if username else ("AUTH", password)
            self._handshake_commands.append(("AUTH", encode_command(*auth)))
        if db:
            self._handshake_commands.append((f"SELECT {db}", encode_command("SELECT", db)))
        self._protocol: RedisProtocol | None = None
        self._attempt: Deferred[Any] | None = None
        self._connecting: RedisProtocol | None = None
        self._retry: Any = None
        self._queued: list[tuple[bytes, Deferred[Reply]]] = []
        self._waiters: list[Deferred[None]] = []
        self._failures = 0
        self._last_error = "not connected yet"
        self._closed = False
        self._warn = RateLimitedLog(log, reactor, interval=30.0)
        self._connect()

    @property
    def connected(self) -> bool:
        """True while a connection is up and through its handshake."""
        return self._protocol is not None

    def execute(self, *args: Arg) -> Deferred[Reply]:
        """Send one command (``client.execute("ZCARD", key)``); fires with its reply."""
        return self.send(encode_command(*args))

    def send(self, data: bytes) -> Deferred[Reply]:
        """Send one command already encoded by :func:`~engine.state.resp.encode_command`."""
        if self._protocol is not None:
            return self._protocol.send(data)
        if self._closed:
            return fail(RedisConnectionError(f"the client of redis at {self.where} is closed"))
        if self._attempt is not None:
            d: Deferred[Reply] = Deferred()
            self._queued.append((data, d))
            return d
        why = f"redis at {self.where} is unavailable ({self._last_error}); reconnecting"
        return fail(RedisConnectionError(why))

    def eval_script(
        self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]
    ) -> Deferred[Reply]:
        """Run ``script`` atomically: ``EVALSHA``, then ``EVAL`` if Redis lost it."""
        d = self.execute("EVALSHA", script.sha1, len(keys), *keys, *args)

        def fallback(failure: Failure) -> Deferred[Reply]:
            if isinstance(failure.value, RedisCommandError) and failure.value.code == "NOSCRIPT":
                return self.execute("EVAL", script.source, len(keys), *keys, *args)
            failure.raiseException()

        return d.addErrback(fallback)

    def wait_connected(self) -> Deferred[None]:
        """Fires when a connection is up (at once if it is); for start-up and tests."""
        if self._protocol is not None:
            return succeed(None)
        if self._closed:
            return fail(RedisConnectionError(f"the client of redis at {self.where} is closed"))
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def close(self) -> Deferred[None]:
        """Stop reconnecting; commands already sent are answered, then QUIT."""
        self._closed = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        closed = f"the client of redis at {self.where} is closed"
        queued, self._queued = self._queued, []
        for _data, d in queued:
            d.errback(RedisConnectionError(closed))
        if self._connecting is not None:
            self._connecting.drop("the client is closed")
        if self._attempt is not None:
            self._attempt.cancel()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(RedisConnectionError(closed))
        protocol, self._protocol = self._protocol, None
        if protocol is None:
            return succeed(None)
        done = protocol.when_lost()
        protocol.send(encode_command("QUIT")).addErrback(lambda _f: None)
        return done

    # -- connecting --------------------------------------------------------

    def _connect(self) -> None:
        self._retry = None
        protocol = RedisProtocol(self.reactor, self.where, self.command_timeout)
        endpoint: Any = HostnameEndpoint(
            self.reactor, self.host, self.port, timeout=self.connect_timeout)
        self._connecting = protocol
        self._attempt = attempt = endpoint.connect(_OneShot(protocol))
        attempt.addCallback(lambda _p: self._handshake(protocol))
        attempt.addCallbacks(self._ready, self._attempt_failed)

    def _handshake(self, protocol: RedisProtocol) -> Deferred[RedisProtocol]:
        """AUTH and SELECT, pipelined; the connection is dropped if either is refused."""
        names = [name for name, _ in self._handshake_commands]
        replies = [protocol.send(data) for _, data in self._handshake_commands]

        def check(results: list[tuple[bool, Any]]) -> RedisProtocol:
            for name, (ok, result) in zip(names, results, strict=True):
                if ok:
                    continue
                if isinstance(result.value, RedisConnectionError):
                    result.raiseException()  # lost while shaking hands: said as such
                protocol.drop(f"{name} failed")
                raise RedisConnectionError(
                    f"redis at {self.where} refused {name}: {_describe(result)}")  # fmt: skip
            return protocol

        return DeferredList(replies, consumeErrors=True).addCallback(check)

    def _ready(self, protocol: RedisProtocol) -> None:
        self._attempt = self._connecting = None
        if self._closed or protocol.lost:
            protocol.drop("the client is closed")
            self._attempt_failed_because("closed while connecting")
            return
        if self._failures:
            log.info("reconnected to redis at %s after %d failed attempt(s)",
                     self.where, self._failures)  # fmt: skip
        self._failures = 0
        self._protocol = protocol
        protocol.when_lost().addCallback(self._lost, protocol)
        queued, self._queued = self._queued, []
        for data, d in queued:
            protocol.send(data).chainDeferred(d)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _attempt_failed(self, failure: Failure) -> None:
        self._attempt_failed_because(_describe(failure))

    def _attempt_failed_because(self, why: str) -> None:
        self._attempt = self._connecting = None
        self._last_error = why
        queued, self._queued = self._queued, []
        for _data, d in queued:
            d.errback(RedisConnectionError(
                f"cannot connect to redis at {self.where}: {self._last_error}"))  # fmt: skip
        if self._closed:
            return
        self._warn.warning("connect", "cannot connect to redis at %s: %s; retrying",
                           self.where, self._last_error)  # fmt: skip
        self._schedule_retry()

    def _lost(self, _none: None, protocol: RedisProtocol) -> None:
        if self._protocol is not protocol:
            return
        self._protocol = None
        self._last_error = "connection lost"
        if not self._closed:
            log.warning("connection to redis at %s lost; reconnecting", self.where)
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        delay = min(self.max_backoff, self.min_backoff * 2**self._failures)
        self._failures += 1
        self._retry = self.reactor.callLater(delay * random.uniform(0.5, 1.0), self._connect)
