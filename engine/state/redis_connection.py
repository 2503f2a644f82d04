"""One connection to Redis: commands out, replies matched to them in order.

Redis answers the commands of a connection in the order it read them, so
commands are written as they come, without waiting for earlier answers
(pipelining), and each reply goes to the oldest unanswered command: a FIFO
of Deferreds. When that order can no longer be trusted (bytes that are not
RESP2, a reply to no command, no reply within ``command_timeout``) the
connection is closed, and when it closes for any reason every unanswered
command fails with a :class:`RedisConnectionError` that says where and why.
Reconnecting is the client's business (:mod:`engine.state.redis`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from engine.state.interface import Clock, StateError, StateUnavailableError
from engine.state.resp import ErrorReply, Reply, RespParser, RespProtocolError

__all__ = ["RedisCommandError", "RedisConnectionError", "RedisProtocol"]


class RedisConnectionError(StateUnavailableError):
    """No connection to Redis, or it was lost before the command was answered."""


class RedisCommandError(StateError):
    """Redis answered the command with an error reply."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.message)
        self.code = reply.code


class RedisProtocol(Protocol):
    """One connection: writes commands, matches replies to a FIFO of Deferreds."""

    def __init__(self, clock: Clock, where: str, command_timeout: float) -> None:
        self.clock = clock
        self.where = where
        self.command_timeout = command_timeout
        self.lost = False
        self._parser = RespParser()
        self._pending: deque[tuple[Deferred[Reply], float]] = deque()
        self._watchdog: Any = None
        self._why: str | None = None
        self._lost_waiters: list[Deferred[None]] = []

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        # Commands are small and latency-bound: Nagle would hold them back.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)

    def send(self, data: bytes) -> Deferred[Reply]:
        """Write one encoded command; the Deferred fires with its reply."""
        if self.lost:
            return fail(RedisConnectionError(f"connection to redis at {self.where} is closed"))
        d: Deferred[Reply] = Deferred()
        self._pending.append((d, self.clock.seconds()))
        transport: Any = self.transport  # zope interfaces are opaque to mypy
        transport.write(data)
        if self._watchdog is None:
            self._watchdog = self.clock.callLater(self.command_timeout, self._check)
        return d

    def when_lost(self) -> Deferred[None]:
        """Fires once the connection is gone."""
        if self.lost:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._lost_waiters.append(d)
        return d

    def drop(self, why: str) -> None:
        """Close the connection at once; pending commands fail with ``why``."""
        if self._why is None:
            self._why = why
        if self.transport is not None and not self.lost:
            self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        try:
            replies = self._parser.feed(data)
        except RespProtocolError as exc:
            self.drop(f"it sent bytes that are not RESP2 ({exc})")
            return
        for reply in replies:
            if not self._pending:
                self.drop("it sent a reply to no command")
                return
            d, _sent = self._pending.popleft()
            if d.called:  # cancelled by its caller: the reply still takes its turn
                continue
            if isinstance(reply, ErrorReply):
                d.errback(RedisCommandError(reply))
            else:
                d.callback(reply)

    def _check(self) -> None:
        """The watchdog: the oldest pending command must be answered in time."""
        self._watchdog = None
        if not self._pending or self.lost:
            return
        waited = self.clock.seconds() - self._pending[0][1]
        if waited >= self.command_timeout:
            self.drop(f"no reply within {self.command_timeout:g} s")
            return
        self._watchdog = self.clock.callLater(self.command_timeout - waited, self._check)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self.lost = True
        if self._watchdog is not None:
            if self._watchdog.active():
                self._watchdog.cancel()
            self._watchdog = None
        why = self._why or reason.getErrorMessage()
        pending, self._pending = self._pending, deque()
        # The client hears first, so that a command sent from an errback below
        # is told the client is reconnecting rather than written to a dead socket.
        waiters, self._lost_waiters = self._lost_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        for d, _sent in pending:
            if not d.called:
                d.errback(RedisConnectionError(
                    f"connection to redis at {self.where} lost with {len(pending)} command(s) "
                    f"unanswered: {why}"))  # fmt: skip
