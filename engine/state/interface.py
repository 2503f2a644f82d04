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
that :class:`SharedState` gathers: call counters, and for ACM operators'
presence and reservations, queues and counters; later concepts (DRS mode,
pacing tokens, live statistics) join it as protocols of their own, each
implemented by both backends.

Time comes from the caller's clock (``IReactorTime``), never from the
backend: the Redis scripts get "now" as an argument. Tests move a
``task.Clock``; in production the processes sharing a Redis need clocks
that agree (NTP) to well within a lease's time to live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from twisted.internet.defer import Deferred

from routing_trees.model import MAX_PRIORITY as TREE_MAX_PRIORITY

__all__ = [
    "DEFAULT_LEASE_TTL",
    "HELD",
    "MAX_PRIORITY",
    "OPERATOR_STATES",
    "QUEUE_LEASE",
    "AcmCounters",
    "Binding",
    "CallCounters",
    "CallQueues",
    "Clock",
    "OperatorInfo",
    "Operators",
    "Registrations",
    "SharedState",
    "StateError",
    "StateUnavailableError",
    "check_state",
    "expiry_ms",
    "held_ttl",
    "keeps_idle",
    "now_ms",
    "queue_score",
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


#: What an operator is doing. Only :meth:`Operators.reserve` puts one in ``reserved``.
OPERATOR_STATES = frozenset(
    {"logged_out", "available", "reserved", "ringing", "on_call", "wrap_up", "break"})  # fmt: skip

#: The states a call holds an operator in, each a lease (:meth:`Operators.move_operator`).
HELD = frozenset({"reserved", "ringing", "on_call", "wrap_up"})

#: Seconds a queued call stays in its queue without renewal (engine/acm/desk.py renews).
QUEUE_LEASE = 20.0

#: Queue priorities run from 0 to this: the bound keeps the composite score an exact double.
MAX_PRIORITY = TREE_MAX_PRIORITY
_AT_MS_BOUND = 2**42  # milliseconds since the epoch fit until 2109


def check_state(state: str) -> None:
    """ValueError unless an operator may be put in ``state`` directly (not a call's state)."""
    if state not in OPERATOR_STATES or state in HELD:
        raise ValueError(
            f"operator state {state!r} cannot be set: choose one of "
            f"{', '.join(sorted(OPERATOR_STATES - HELD))} (a call reserves and moves the others)")


def held_ttl(new_state: str, ttl: float) -> int:
    """The lease (ms) a move to ``new_state`` takes: 0 when it lets go. ValueError if wrong."""
    if new_state not in OPERATOR_STATES or new_state == "reserved":
        raise ValueError(f"an operator cannot be moved to {new_state!r}: reserve() reserves")
    return ttl_ms(ttl) if new_state in HELD else 0


def keeps_idle(old: str, new: str) -> bool:
    """Whether a move keeps ``since``: a renewal, or an offer that came to nothing."""
    return old == new or (new in ("available", "ringing") and old in ("reserved", "ringing"))


def queue_score(priority: int, at: float) -> int:
    """One sortable number for (higher priority first, then earlier ``at``), exact in a double.

    ``(MAX_PRIORITY - priority) * 2**42 + at_ms`` stays below 2**52, so a Redis
    sorted-set score keeps it exactly and both backends order alike; calls
    with the same score (same priority, same millisecond) go by call id.
    """
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"a queue priority runs from 0 to {MAX_PRIORITY}, not {priority!r}")
    at_ms = int(at * 1000)
    if not 0 <= at_ms < _AT_MS_BOUND:
        raise ValueError(f"a queue time must be seconds since the epoch, not {at!r}")
    return (MAX_PRIORITY - priority) * _AT_MS_BOUND + at_ms


class OperatorInfo(NamedTuple):
    """One operator of a group as :meth:`Operators.operators` reports it."""

    operator: str
    state: str
    #: The operator's competence level in the group asked about (higher is better).
    level: int
    #: When the current state began: for ``available``, since when the operator is idle.
    idle_since: float
    #: Times the operator went on a call (fewest-calls strategy, statistics).
    calls_handled: int


class Operators(Protocol):
    """ACM presence and reservations: who can take a call, and taking one atomically.

    Everything is per customer. A reservation is a lease: the operator is
    ``reserved`` for ``ttl`` seconds unless released first, so an engine
    that crashed between choosing an operator and offering the call does
    not keep that operator away for ever. An expired reservation reads, and
    is reserved, as ``available`` again, with the idle time it had.
    """

    def set_operator(
        self, customer: str, operator: str, state: str, groups: Mapping[str, int], since: float
    ) -> Deferred[None]:
        """Put the operator in ``state`` from ``since``, member of ``groups`` (group -> level).

        A login (from ``logged_out``) starts ``calls_handled`` from 0 again.
        Unconditional (login, logout, break, a supervisor): it replaces the
        groups and ends any hold of a call. ValueError for an unknown state or
        one of :data:`HELD` (only a call puts an operator there).
        """
        ...

    def operators(self, customer: str, group: str) -> Deferred[list[OperatorInfo]]:
        """The group's operators, by name."""
        ...

    def reserve(
        self, customer: str, candidates: Sequence[str], call_id: str, ttl: float
    ) -> Deferred[str | None]:
        """Reserve the first of ``candidates`` that is available, for ``call_id``; atomic.

        The caller chose the order (its strategy); the first available one
        when the backend decides wins, so two engines racing for the same
        operator never both get it. None when no candidate is available.
        A reservation whose answer was lost expires after ``ttl`` seconds.
        """
        ...

    def move_operator(
        self, customer: str, operator: str, call_id: str, new_state: str, ttl: float = 0.0
    ) -> Deferred[bool]:
        """Move an operator ``call_id`` holds to ``new_state``: compare-and-set, atomic.

        A call holds an operator from :meth:`reserve` on, through ``ringing``,
        ``on_call`` and ``wrap_up`` (the :data:`HELD` states): each such state
        is a lease of ``ttl`` seconds (required for them) that the holder
        renews by moving to the same state again, so an operator held by an
        engine that died reads as ``available`` once the lease runs out. Moving
        to any other state lets go. False, changing nothing, when the operator
        is not held by that call any more: the lease expired, another call has
        it, or ``set_operator`` (a logout, a supervisor) overrode it.

        ``idle_since`` survives a reservation or an offer that came to nothing
        (``reserved``/``ringing`` back to ``available``); ``calls_handled``
        counts each move into ``on_call``.
        """
        ...


class CallQueues(Protocol):
    """Calls waiting in a group's queue: higher priority first, then first come.

    Each entry is a lease of :data:`QUEUE_LEASE` seconds that the engine
    holding the call renews (:meth:`renew_queued`): the calls of an engine
    that died leave the queue by themselves instead of standing for ever
    ahead of everyone else's. Expired entries read as gone everywhere.
    """

    def enqueue(
        self, customer: str, group: str, call_id: str, priority: int, at: float
    ) -> Deferred[None]:
        """Queue the call (again, with the new priority and time, if it is queued)."""
        ...

    def renew_queued(self, customer: str, group: str, call_ids: Sequence[str]) -> Deferred[None]:
        """Push back the leases of these waiting calls; a call not waiting stays out."""
        ...

    def dequeue(self, customer: str, group: str, call_id: str) -> Deferred[bool]:
        """Take the call out; True if it was waiting (one engine wins a race for it)."""
        ...

    def position(self, customer: str, group: str, call_id: str) -> Deferred[int | None]:
        """1 for the call served next; None when the call is not waiting."""
        ...

    def waiting(self, customer: str, group: str) -> Deferred[int]:
        """How many calls wait in the group's queue."""
        ...

    def oldest(self, customer: str, group: str) -> Deferred[float | None]:
        """The ``at`` of the call waiting longest (whatever its priority); None if none waits."""
        ...


class AcmCounters(Protocol):
    """Per-customer counters (offered, answered, abandoned ...) that every engine adds to."""

    def incr(self, customer: str, key: str, by: int = 1) -> Deferred[int]:
        """Add ``by`` to the counter (from 0); its new value."""
        ...

    def counters(self, customer: str) -> Deferred[dict[str, int]]:
        """Every counter of the customer."""
        ...


class Binding(NamedTuple):
    """One registered contact of an address of record (:meth:`Registrations.bindings`)."""

    #: The Contact URI the phone registered.
    contact: str
    #: Where its REGISTER came from (responses went there): where to send, past a NAT.
    source: tuple[str, int]
    #: Whole seconds it stays registered from the read on (at least 1).
    expires: int


class Registrations(Protocol):
    """SIP registrar bindings (softphones), shared so that any engine reaches any phone.

    A binding lives ``expires`` seconds from its last ``bind`` (the injected
    clock's time, in whole milliseconds as for leases); expired bindings read
    as gone.
    """

    def bind(
        self, aor: str, contact: str, source: tuple[str, int], expires: float
    ) -> Deferred[None]:
        """Add or refresh ``contact`` of ``aor`` for ``expires`` seconds from now."""
        ...

    def unbind(self, aor: str, contact: str | None) -> Deferred[None]:
        """Remove one contact of ``aor``, or all of them when ``contact`` is None."""
        ...

    def bindings(self, aor: str) -> Deferred[list[Binding]]:
        """The unexpired bindings of ``aor``, by contact."""
        ...


class SharedState(CallCounters, Operators, CallQueues, AcmCounters, Registrations, Protocol):
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
