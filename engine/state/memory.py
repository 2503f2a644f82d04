"""The in-process backend: the embedded default for a single ``vms serve``.

Plain dictionaries, answered at once with Deferreds that have already
fired. It keeps exactly the semantics of the Redis backend (the contract
tests run against both), leases and expiry included: in one process a
lease only expires if its holder forgot to release and stopped renewing,
and that must heal the same way everywhere. Lease times are whole
milliseconds of the injected clock, as in the Redis scripts, so the two
agree at the boundaries too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, succeed

from engine.state.interface import (
    DEFAULT_LEASE_TTL,
    HELD,
    QUEUE_LEASE,
    Binding,
    Clock,
    OperatorInfo,
    check_state,
    expiry_ms,
    held_ttl,
    keeps_idle,
    now_ms,
    queue_score,
    ttl_ms,
)

__all__ = ["MemoryState"]


@dataclass
class _Operator:
    state: str
    since: float
    groups: dict[str, int]
    handled: int = 0
    #: The reserving call and its lease's expiry (ms) while ``state`` is ``reserved``.
    call: str = ""
    expires: int = 0

    def current(self, now: int) -> str:
        """The state, with a held state whose lease ran out read as ``available``."""
        return "available" if self.state in HELD and self.expires <= now else self.state

    def held_by(self, call: str, now: int) -> bool:
        return self.state in HELD and self.call == call and self.expires > now

    def enter(self, state: str, since: float) -> None:
        if state == "on_call" and self.state != "on_call":
            self.handled += 1
        self.state, self.since, self.call, self.expires = state, since, "", 0


@dataclass
class _Customer:
    operators: dict[str, _Operator] = field(default_factory=dict)
    # group -> operator -> level
    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    # group -> call id -> (composite score, at, lease expiry in ms)
    queues: dict[str, dict[str, tuple[int, float, int]]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)


class MemoryState:
    """A :class:`~engine.state.interface.SharedState` held in this process."""

    def __init__(self, clock: Clock, *, lease_ttl: float = DEFAULT_LEASE_TTL) -> None:
        self.clock = clock
        self._ttl = ttl_ms(lease_ttl)
        self.lease_ttl = lease_ttl
        # key -> lease -> expiry (ms); a lease is live while now < expiry.
        self._slots: dict[str, dict[str, int]] = {}
        self._customers: dict[str, _Customer] = {}
        # aor -> contact -> (expiry in ms, source)
        self._bindings: dict[str, dict[str, tuple[int, tuple[str, int]]]] = {}

    def _customer(self, customer: str) -> _Customer:
        return self._customers.setdefault(customer, _Customer())

    def _read(self, customer: str) -> _Customer:
        """The customer's state for reading: an unknown customer is not stored."""
        return self._customers.get(customer) or _Customer()

    def _live(self, key: str, now: int) -> dict[str, int]:
        """The key's holders with the expired ones dropped (as the acquire script does)."""
        holders = self._slots.get(key)
        if holders is None:
            return {}
        expired = [lease for lease, expiry in holders.items() if expiry <= now]
        for lease in expired:
            del holders[lease]
        if not holders:
            del self._slots[key]
        return holders

    def acquire(self, key: str, limit: int, lease: str) -> Deferred[bool]:
        now, expiry = expiry_ms(self.clock, self._ttl)
        holders = self._live(key, now)
        if lease in holders:
            holders[lease] = expiry
            return succeed(True)
        if len(holders) >= limit:
            return succeed(False)
        self._slots.setdefault(key, holders)[lease] = expiry
        return succeed(True)

    def release(self, key: str, lease: str) -> Deferred[None]:
        holders = self._slots.get(key)
        if holders is not None:
            holders.pop(lease, None)
            if not holders:
                del self._slots[key]
        return succeed(None)

    def count(self, key: str) -> Deferred[int]:
        return succeed(len(self._live(key, now_ms(self.clock))))

    def renew(self, leases: Iterable[tuple[str, str]]) -> Deferred[None]:
        now, expiry = expiry_ms(self.clock, self._ttl)
        for key, lease in leases:
            holders = self._slots.get(key)
            if holders is not None and holders.get(lease, now) > now:
                holders[lease] = expiry
        return succeed(None)

    # -- ACM: operators ------------------------------------------------------

    def set_operator(
        self, customer: str, operator: str, state: str, groups: Mapping[str, int], since: float
    ) -> Deferred[None]:
        check_state(state)
        c = self._customer(customer)
        op = c.operators.get(operator)
        if op is None:
            op = c.operators[operator] = _Operator("logged_out", since, {})
        for group in op.groups:
            c.groups[group].pop(operator, None)
        if op.state == "logged_out" and state != "logged_out":
            op.handled = 0  # a login starts a new shift: fewest-calls counts from here
        op.groups = dict(groups)
        for group, level in op.groups.items():
            c.groups.setdefault(group, {})[operator] = int(level)
        op.enter(state, float(since))
        return succeed(None)

    def operators(self, customer: str, group: str) -> Deferred[list[OperatorInfo]]:
        c, now = self._read(customer), now_ms(self.clock)
        members = c.groups.get(group, {})
        return succeed([
            OperatorInfo(name, op.current(now), level, op.since, op.handled)
            for name, level in sorted(members.items())
            for op in (c.operators[name],)
        ])  # fmt: skip

    def reserve(
        self, customer: str, candidates: Sequence[str], call_id: str, ttl: float
    ) -> Deferred[str | None]:
        now, expires = expiry_ms(self.clock, ttl_ms(ttl))
        c = self._read(customer)
        for name in candidates:
            op = c.operators.get(name)
            if op is not None and op.current(now) == "available":
                op.state, op.call, op.expires = "reserved", call_id, expires
                return succeed(name)
        return succeed(None)

    def move_operator(
        self, customer: str, operator: str, call_id: str, new_state: str, ttl: float = 0.0
    ) -> Deferred[bool]:
        lease = held_ttl(new_state, ttl)
        now = now_ms(self.clock)
        op = self._read(customer).operators.get(operator)
        if op is None or not op.held_by(call_id, now):
            return succeed(False)
        since = op.since if keeps_idle(op.state, new_state) else self.clock.seconds()
        if new_state == "on_call" and op.state != "on_call":
            op.handled += 1
        if lease:
            op.state, op.since, op.expires = new_state, since, now + lease
        else:
            op.state, op.since, op.call, op.expires = new_state, since, "", 0
        return succeed(True)

    # -- ACM: queues ---------------------------------------------------------

    def _queue(self, customer: str, group: str) -> dict[str, tuple[int, float, int]]:
        """The group's queue with the entries whose lease ran out dropped (as Redis does)."""
        queue = self._read(customer).queues.get(group, {})
        now = now_ms(self.clock)
        for call_id in [c for c, (_s, _a, expires) in queue.items() if expires <= now]:
            del queue[call_id]
        return queue

    def enqueue(
        self, customer: str, group: str, call_id: str, priority: int, at: float
    ) -> Deferred[None]:
        score = queue_score(priority, at)
        expires = expiry_ms(self.clock, ttl_ms(QUEUE_LEASE))[1]
        self._customer(customer).queues.setdefault(group, {})[call_id] = (score, float(at),
                                                                          expires)  # fmt: skip
        return succeed(None)

    def renew_queued(self, customer: str, group: str, call_ids: Sequence[str]) -> Deferred[None]:
        queue = self._queue(customer, group)
        expires = expiry_ms(self.clock, ttl_ms(QUEUE_LEASE))[1]
        for call_id in call_ids:
            if call_id in queue:
                score, at, _ = queue[call_id]
                queue[call_id] = (score, at, expires)
        return succeed(None)

    def dequeue(self, customer: str, group: str, call_id: str) -> Deferred[bool]:
        return succeed(self._queue(customer, group).pop(call_id, None) is not None)

    def position(self, customer: str, group: str, call_id: str) -> Deferred[int | None]:
        queue = self._queue(customer, group)
        if call_id not in queue:
            return succeed(None)
        # Redis orders equal scores by member, so ties go by call id here too.
        mine = (queue[call_id][0], call_id)
        return succeed(1 + sum((entry[0], other) < mine for other, entry in queue.items()))

    def waiting(self, customer: str, group: str) -> Deferred[int]:
        return succeed(len(self._queue(customer, group)))

    def oldest(self, customer: str, group: str) -> Deferred[float | None]:
        queue = self._queue(customer, group)
        return succeed(min((at for _score, at, _e in queue.values()), default=None))

    # -- ACM: counters -------------------------------------------------------

    def incr(self, customer: str, key: str, by: int = 1) -> Deferred[int]:
        counters = self._customer(customer).counters
        counters[key] = counters.get(key, 0) + by
        return succeed(counters[key])

    def counters(self, customer: str) -> Deferred[dict[str, int]]:
        return succeed(dict(self._read(customer).counters))

    def ready(self) -> Deferred[None]:
        return succeed(None)

    def close(self) -> Deferred[None]:
        self._slots.clear()
        self._customers.clear()
        return succeed(None)

    # -- registrations -------------------------------------------------------

    def _contacts(self, aor: str, now: int) -> dict[str, tuple[int, tuple[str, int]]]:
        """The aor's bindings with the expired ones dropped."""
        contacts = self._bindings.get(aor, {})
        for contact in [c for c, (expiry, _s) in contacts.items() if expiry <= now]:
            del contacts[contact]
        return contacts

    def bind(
        self, aor: str, contact: str, source: tuple[str, int], expires: float
    ) -> Deferred[None]:
        now, expiry = expiry_ms(self.clock, ttl_ms(expires))
        self._contacts(aor, now)
        self._bindings.setdefault(aor, {})[contact] = (expiry, (source[0], int(source[1])))
        return succeed(None)

    def unbind(self, aor: str, contact: str | None) -> Deferred[None]:
        contacts = self._bindings.get(aor, {})
        if contact is None:
            contacts.clear()
        else:
            contacts.pop(contact, None)
        if not contacts:
            self._bindings.pop(aor, None)
        return succeed(None)

    def bindings(self, aor: str) -> Deferred[list[Binding]]:
        now = now_ms(self.clock)
        return succeed([
            Binding(contact, source, -(-(expiry - now) // 1000))
            for contact, (expiry, source) in sorted(self._contacts(aor, now).items())
        ])  # fmt: skip
