"""What the engine processes share, as one interface with two backends.

The engine keeps no shared state in its own objects: anything that several
``vms serve`` processes (one machine with SO_REUSEPORT, or several machines)
must agree on goes through a :class:`SharedState`. The in-process backend
(:mod:`engine.state.memory`) is the embedded default; the Redis backend
(:mod:`engine.state.redis_state`) serves several processes. One contract test
suite runs against both, so the call controller cannot tell them apart.

Every operation returns a Twisted ``Deferred`` because the Redis backend
answers asynchronously; the memory backend returns Deferreds that have
already fired. The interface is a set of small protocols, one per concept,
that :class:`SharedState` gathers: later concepts (DRS mode, agent presence
and reservations, pacing tokens, live statistics) join it as protocols of
their own, each implemented by both backends.

Time comes from the caller's clock (``IReactorTime``), never from the
backend: the Redis scripts get "now" as an argument. Tests move a
``task.Clock``; in production the processes sharing a Redis need clocks
that agree (NTP) to well within a lease's time to live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.internet.defer import Deferred

__all__ = [
    "DEFAULT_LEASE_TTL",
    "CallCounters",
    "Clock",
    "SharedState",
    "StateError",
    "StateUnavailableError",
    "expiry_ms",
    "now_ms",
    "ttl_ms",
]

#: Seconds a slot stays held without renewal; a process renews every third of it.
DEFAULT_LEASE_TTL = 120.0


class StateError(Exception):
    """A shared-state operation failed; the caller's policy decides what the call gets."""


class StateUnavailableError(StateError):
    """The backend cannot be reached now (Redis down, connection lost, timed out).

    The operation may or may not have taken effect: an acquire whose answer
    was lost holds its slot until the lease expires, so callers release on
    every failure path (release is idempotent).
    """


class Clock(Protocol):
    """The part of ``twisted.internet.interfaces.IReactorTime`` the state uses."""

    def seconds(self) -> float: ...

    def callLater(  # noqa: N802 - Twisted's name
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any: ...


def now_ms(clock: Clock) -> int:
    """The clock in whole milliseconds: both backends compare leases in this unit."""
    return int(clock.seconds() * 1000)


def ttl_ms(ttl: float) -> int:
    """A lease time to live in whole milliseconds (at least one)."""
    if not ttl > 0:
        raise ValueError(f"a lease time to live must be a positive number of seconds, not {ttl!r}")
    return max(1, int(ttl * 1000))


def expiry_ms(clock: Clock, ttl: int) -> tuple[int, int]:
    """(now, expiry) in milliseconds for a lease taken or renewed now."""
    now = now_ms(clock)
    return now, now + ttl


class CallCounters(Protocol):
    """Concurrent calls per destination, for a ``forward``'s ``max_calls``.

    A key (a destination) has ``limit`` slots; each call leg that rings it
    holds one under a *lease* (the leg's id). A slot is held until released
    or until its lease expires: a lease lives ``lease_ttl`` seconds from its
    last acquire or renew, so slots held by a process that died come back
    on their own instead of keeping the destination in overflow for ever.
    A process renews the leases it holds every ``lease_ttl / 3`` seconds
    (:class:`engine.state.leases.LeaseKeeper` does it).
    """

    #: Seconds a lease lives without renewal.
    lease_ttl: float

    def acquire(self, key: str, limit: int, lease: str) -> Deferred[bool]:
        """Take one of ``limit`` slots of ``key`` for ``lease``, atomically.

        True when the lease holds a slot: newly taken, or already held (the
        call is idempotent and then only renews the lease). False, with
        nothing taken, when ``limit`` other unexpired leases hold the key
        (the call is an overflow) or ``limit`` is not positive.
        """
        ...

    def release(self, key: str, lease: str) -> Deferred[None]:
        """Give the lease's slot back; releasing what is not held does nothing."""
        ...

    def count(self, key: str) -> Deferred[int]:
        """How many unexpired leases hold slots of ``key`` now."""
        ...

    def renew(self, leases: Iterable[tuple[str, str]]) -> Deferred[None]:
        """Push back the expiry of each held ``(key, lease)`` to ``lease_ttl`` from now.

        A lease that expired or was released stays gone: renewing never
        takes a slot, so it cannot push a key past its limit.
        """
        ...


class SharedState(CallCounters, Protocol):
    """Everything the engine processes share; opened by :func:`engine.state.open_state`."""

    def ready(self) -> Deferred[None]:
        """Fires once the backend can serve: at once in memory, once Redis is connected.

        For start-up (log that the state is reachable, or wait for it); the
        operations do not need it, and fail clearly while Redis is away.
        """
        ...

    def close(self) -> Deferred[None]:
        """Let go of the backend (pending Redis commands are answered first)."""
        ...
