"""The queue desk of one engine: which waiting call is offered to which operator, and when.

Calls wait in the shared state's queues (``engine.state``), so every engine
sees one order per group: higher priority first, then first come. Each
engine keeps the calls *it* parks (:class:`Waiting`, one per call: the
call's side of the queue lives in ``engine.calls.queue``) and, for each group
with calls of its own, runs a *dispatch*: read the group's operators, choose
by the group's strategy (``engine.acm.strategies.select``), and reserve
atomically in the shared state. An engine offers a call only while the
call's position is within the number of operators free for it, so a call
that waits longer on another engine is not overtaken; the reservation (a
lease) makes a double offer impossible whatever the engines do at once.

A dispatch runs when something changes here (a call joins, an offer fails,
an operator comes free) and every ``TICK`` seconds for what changes
elsewhere (an operator logs in through another engine, a call ahead leaves).

After the call, the desk keeps the operator's side: ``on_call`` renewed while
the call lasts (a lease: if this engine dies the operator comes back by
itself), ``wrap_up`` for the group's seconds, then ``available``. Unanswered
offers in a row are counted per operator in the shared state (every engine's
offers count): past the group's ``auto_break_after`` the operator goes on
break ("no answer"). Queued calls are leases too (``QUEUE_LEASE``), renewed
here every few seconds, so a dead engine's callers leave the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred, ensureDeferred

from engine.acm.events import AcmEvent, EventSink
from engine.acm.model import AcmSettings, Group
from engine.acm.states import AUTO_BREAK_REASON
from engine.acm.strategies import Candidate, select
from engine.state.interface import (
    DEFAULT_LEASE_TTL,
    QUEUE_LEASE,
    Clock,
    OperatorInfo,
    SharedState,
)

__all__ = ["TICK", "QueueDesk", "Waiting"]

log = logging.getLogger("vms.acm")

#: Seconds between dispatches of a group with waiting calls here, whatever happened.
TICK = 1.0
#: Seconds between reads of the waiting calls' positions while no operator is free.
POSITIONS_EVERY = 5.0
#: Seconds a reservation or a ringing offer may outlive its ring timeout before it expires.
_GRACE = 10.0
#: The shared counter of an operator's unanswered offers in a row (``misses:NAME``).
_MISSES = "misses:"
#: Average handling time assumed before a group has handled a call (expected-wait prompts).
DEFAULT_HANDLING = 120.0


class Waiting(Protocol):
    """A call parked in a queue here (``engine.calls.queue.QueueRun``)."""

    call_id: str
    customer: str
    group: Group
    priority: int
    #: When it joined the queue (the clock's seconds).
    joined: float
    #: Operators being offered the call now (empty: free to be offered).
    offering: dict[str, Any]
    #: Operators who let this call go: offered again only when nobody else is free.
    missed: set[str]
    #: 1 for the next call served; what the announcements say.
    position: int | None
    expected_wait: float | None

    def offer(self, operators: list[str]) -> None:
        """Ring these operators (reserved for this call) now."""
        ...

    def no_agents(self) -> None:
        """Nobody of the group is logged in: leave the queue by ``on_no_agents``."""
        ...


@dataclass
class _Group:
    """The calls of one customer's group parked here, and the dispatch's bookkeeping."""

    waiting: list[Waiting] = field(default_factory=list)
    running: bool = False
    again: bool = False
    #: When the waiting calls' positions were last read (for the announcements).
    positions_at: float = float("-inf")


class QueueDesk:
    """The ACM queues of this engine, over the shared state."""

    def __init__(
        self,
        clock: Clock,
        state: SharedState,
        settings_of: Callable[[str], AcmSettings | None],
        sink: EventSink | None = None,
    ) -> None:
        self.clock = clock
        self.state = state
        self.settings_of = settings_of
        self.sink = sink
        self._groups: dict[tuple[str, str], _Group] = {}
        #: (customer, operator) -> (call id, group) while the operator talks or wraps up here.
        self._held: dict[tuple[str, str], tuple[str, Group]] = {}
        self._wrap_timers: dict[tuple[str, str], Any] = {}
        self._timer: Any = None
        self._renewed = 0.0
        self._queue_renewed = 0.0
        #: (customer, group) -> moving average of handling time (talk + wrap-up), for the
        #: expected wait: kept while the group's local queue empties and fills again.
        self._handling: dict[tuple[str, str], float] = {}
        self.running = False

    def start(self) -> None:
        self.running = True
        self._timer = self.clock.callLater(TICK, self._tick)

    def stop(self) -> None:
        self.running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        for timer in self._wrap_timers.values():
            if timer.active():
                timer.cancel()
        self._wrap_timers.clear()

    # -- events out ----------------------------------------------------------------------

    def emit(self, customer: str, kind: str, group: str = "", contact: str = "",
             operator: str = "", detail: str = "") -> None:  # fmt: skip
        if self.sink is not None:
            self.sink.record(AcmEvent(self.clock.seconds(), customer, kind, "call", group, contact,
                                      operator, detail))  # fmt: skip

    def _failed(self, failure: Any, what: str) -> None:
        log.error("ACM: %s failed: %s", what, failure.getErrorMessage())

    # -- calls joining and leaving -------------------------------------------------------

    def join(self, run: Waiting) -> None:
        """Park ``run``'s call in its group's queue (shared) and offer it as soon as possible."""
        key = (run.customer, run.group.name)
        self._groups.setdefault(key, _Group()).waiting.append(run)
        self.emit(run.customer, "queued", run.group.name, run.call_id, detail=str(run.priority))
        d = self.state.enqueue(run.customer, run.group.name, run.call_id, run.priority, run.joined)
        d.addCallback(lambda _: self.kick(run.customer, run.group.name))
        d.addErrback(self._failed, f"queueing call {run.call_id}")

    def leave(self, run: Waiting, why: str | None) -> None:
        """The call leaves the queue: answered (``why`` None), abandoned, timeout, no_agents."""
        key = (run.customer, run.group.name)
        group = self._groups.get(key)
        if group is not None and run in group.waiting:
            group.waiting.remove(run)
            if not group.waiting:
                del self._groups[key]
        if why is None:  # answered: it left the shared queue when it was offered
            return
        self.emit(run.customer, why, run.group.name, run.call_id)
        d = self.state.dequeue(run.customer, run.group.name, run.call_id)
        d.addCallback(lambda _: self.kick(run.customer, run.group.name))
        d.addErrback(self._failed, f"dequeueing call {run.call_id}")

    def kick(self, customer: str, group: str) -> None:
        """Dispatch the group now (or again once the running dispatch is over)."""
        entry = self._groups.get((customer, group))
        if entry is None or not self.running:
            return
        if entry.running:
            entry.again = True
            return
        entry.running = True
        d = ensureDeferred(self._dispatch(customer, group, entry))
        d.addErrback(self._failed, f"dispatching {customer}/{group}")
        d.addBoth(lambda _: self._dispatched(customer, group, entry))

    def _dispatched(self, customer: str, group: str, entry: _Group) -> None:
        entry.running = False
        if entry.again:
            entry.again = False
            self.kick(customer, group)

    def _tick(self) -> None:
        self._timer = self.clock.callLater(TICK, self._tick)
        now = self.clock.seconds()
        renew_queue = now - self._queue_renewed >= QUEUE_LEASE / 4
        if renew_queue:
            self._queue_renewed = now
        for (customer, group), entry in list(self._groups.items()):
            if renew_queue:  # our callers keep their places; a dead engine's leave theirs
                d = self.state.renew_queued(customer, group, [r.call_id for r in entry.waiting])
                d.addErrback(self._failed, f"renewing the queue {customer}/{group}")
            self.kick(customer, group)
        if now - self._renewed >= DEFAULT_LEASE_TTL / 3:
            self._renewed = now
            self._renew()

    # -- choosing and reserving ----------------------------------------------------------

    async def _dispatch(self, customer: str, name: str, entry: _Group) -> None:
        infos = await self.state.operators(customer, name)
        settings = self.settings_of(customer)
        group = settings.groups.get(name) if settings is not None else None
        if group is None:
            return
        now = self.clock.seconds()
        staffed = sum(i.state != "logged_out" for i in infos)
        nobody_free = staffed and not any(i.state == "available" for i in infos)
        known = all(r.position is not None or r.offering for r in entry.waiting)
        if nobody_free and known and now - entry.positions_at < POSITIONS_EVERY:
            return  # one read of the operators is all this tick costs
        entry.positions_at = now
        taken: set[str] = set()
        cursor = await self._cursor(customer, name, group, infos)
        order = sorted(entry.waiting, key=lambda r: (-r.priority, r.joined, r.call_id))
        for run in order:
            if run not in entry.waiting or run.offering:
                continue  # left, or offered, while we awaited
            position = await self.state.position(customer, name, run.call_id)
            if position is None and run in entry.waiting and not run.offering:
                self.requeue(run)  # lost (Redis was away, its lease ran out): back in its place
                continue
            run.position = position
            run.expected_wait = self._expected((customer, name), position, staffed)
            if not staffed:
                run.no_agents()
                continue
            free = [_candidate(i) for i in infos if i.operator not in taken]
            rounds = select(group, now - run.joined, free, cursor)
            others = [r for r in ([c for c in r if c.name not in run.missed] for r in rounds) if r]
            rounds = [tuple(r) for r in others] or rounds
            # Calls being offered have left the shared queue: a position within the free
            # operators means nobody waiting longer (here or on another engine) is passed over.
            if position is None or position > sum(len(r) for r in rounds):
                continue
            if group.strategy == "ring-all" and position > 1:
                continue  # it would ring everyone free: the call ahead of it goes first
            chosen = await self._reserve(customer, group, run, rounds)
            if chosen and run in entry.waiting and not run.offering:
                taken.update(chosen)
                cursor = chosen[-1]
                await self._turned(customer, name, group, infos, cursor)
                await self.state.dequeue(customer, name, run.call_id)
            if chosen and run in entry.waiting and not run.offering:
                run.offer(chosen)
            else:  # nobody, or the call left while we reserved
                for operator in chosen:
                    self.operator_free(customer, operator, run.call_id, group, "available")

    async def _cursor(self, customer: str, name: str, group: Group,
                      infos: list[OperatorInfo]) -> str | None:  # fmt: skip
        """Round robin: the member offered a call last, by every engine (a shared counter)."""
        if group.strategy != "round-robin" or not infos:
            return None
        turn = await self.state.incr(customer, f"round-robin:{name}", 0)
        return infos[(turn - 1) % len(infos)].operator if turn else None

    async def _turned(self, customer: str, name: str, group: Group,
                      infos: list[OperatorInfo], chosen: str) -> None:  # fmt: skip
        if group.strategy != "round-robin":
            return
        names = [i.operator for i in infos]
        turn = await self.state.incr(customer, f"round-robin:{name}", 0)
        # Not atomic with the read: two engines turning at once both land on a member.
        await self.state.incr(customer, f"round-robin:{name}", names.index(chosen) + 1 - turn)

    def requeue(self, run: Waiting, kick: bool = True) -> None:
        """Every operator offered the call let it go: it waits again, in its old place.

        ``kick=False`` leaves the next try to the next tick (the engine lacked something).
        """
        d = self.state.enqueue(run.customer, run.group.name, run.call_id, run.priority, run.joined)
        if kick:
            d.addCallback(lambda _: self.kick(run.customer, run.group.name))
        d.addErrback(self._failed, f"queueing call {run.call_id} again")

    async def _reserve(
        self, customer: str, group: Group, run: Waiting, rounds: list[tuple[Candidate, ...]]
    ) -> list[str]:
        ttl = group.ring_timeout + _GRACE
        if group.strategy != "ring-all":  # one at a time: the first of them still free wins
            names = [c.name for r in rounds for c in r]
            got = await self.state.reserve(customer, names, run.call_id, ttl)
            return [got] if got is not None else []
        for level in rounds:  # ring-all: everyone of the best level still free
            chosen = []
            for candidate in level:
                if await self.state.reserve(customer, [candidate.name], run.call_id, ttl):
                    chosen.append(candidate.name)
            if chosen:
                return chosen
        return []

    def _expected(self, key: tuple[str, str], position: int | None,
                  staffed: int) -> float | None:  # fmt: skip
        if position is None or not staffed:
            return None
        return position * self._handling.get(key, DEFAULT_HANDLING) / staffed

    # -- the operator's side of an offer -------------------------------------------------

    def ringing(self, customer: str, operator: str, call_id: str, group: Group) -> None:
        self.emit(customer, "offered", group.name, call_id, operator)
        self._move(customer, operator, call_id, group, "ringing", group.ring_timeout + _GRACE)

    def answered(self, customer: str, operator: str, call_id: str, group: Group) -> None:
        key = (customer, operator)
        self._reset_misses(customer, operator)
        self._held[key] = (call_id, group)
        self.emit(customer, "answered", group.name, call_id, operator)
        self._move(customer, operator, call_id, group, "on_call", DEFAULT_LEASE_TTL)

    def no_answer(self, customer: str, operator: str, call_id: str, group: Group) -> None:
        """The operator did not take the offer (no answer, busy, unreachable)."""
        self.emit(customer, "no_answer", group.name, call_id, operator)
        # Counted in the shared state: offers from every engine make the same row.
        d = self.state.incr(customer, _MISSES + operator)

        def counted(misses: int) -> None:
            if group.auto_break_after and misses >= group.auto_break_after:
                log.info("ACM: %s/%s goes on break after %d unanswered offers", customer,
                         operator, misses)  # fmt: skip
                self._reset_misses(customer, operator)
                self.operator_free(customer, operator, call_id, group, "break",
                                   AUTO_BREAK_REASON)  # fmt: skip
            else:
                self.operator_free(customer, operator, call_id, group, "available")

        def uncounted(failure: Any) -> None:
            self._failed(failure, f"counting the misses of {customer}/{operator}")
            self.operator_free(customer, operator, call_id, group, "available")

        d.addCallbacks(counted, uncounted)

    def _reset_misses(self, customer: str, operator: str) -> None:
        key = _MISSES + operator
        d = self.state.incr(customer, key, 0)
        d.addCallback(lambda misses: misses and self.state.incr(customer, key, -misses))
        d.addErrback(self._failed, f"resetting the misses of {customer}/{operator}")

    def hung_up(self, customer: str, operator: str, call_id: str, talked: float) -> None:
        """The operator's call is over: wrap-up, then available again."""
        key = (customer, operator)
        held = self._held.get(key)
        if held is None or held[0] != call_id:
            return  # another call holds the operator now (a logout and login meanwhile)
        del self._held[key]
        group = held[1]
        self.emit(customer, "ended", group.name, call_id, operator)
        average = (customer, group.name)  # a moving average: recent calls count most
        handling = self._handling.get(average, DEFAULT_HANDLING)
        self._handling[average] = handling + 0.2 * (talked + group.wrap_up - handling)
        if group.wrap_up <= 0:
            self.operator_free(customer, operator, call_id, group, "available")
            return
        self._move(customer, operator, call_id, group, "wrap_up", group.wrap_up + _GRACE)
        self._wrap_timers[key] = self.clock.callLater(
            group.wrap_up, self._wrapped, customer, operator, call_id, group
        )

    def _wrapped(self, customer: str, operator: str, call_id: str, group: Group) -> None:
        self._wrap_timers.pop((customer, operator), None)
        self.operator_free(customer, operator, call_id, group, "available")

    def operator_free(self, customer: str, operator: str, call_id: str, group: Group,
                      state: str, reason: str = "", kick: bool = True) -> None:  # fmt: skip
        """The call lets go of the operator, who goes to ``state`` (available, break)."""
        d = self._move(customer, operator, call_id, group, state, 0.0, reason)
        if kick:
            d.addCallback(lambda _: self.kick(customer, group.name))

    def _move(self, customer: str, operator: str, call_id: str, group: Group, state: str,
              ttl: float, reason: str = "") -> Deferred[Any]:  # fmt: skip
        d = self.state.move_operator(customer, operator, call_id, state, ttl)

        def moved(done: bool) -> None:
            if done:
                self.emit(customer, "operator", group.name, call_id, operator,
                          f"{state}|{reason}" if reason else state)  # fmt: skip
            else:
                log.info("ACM: %s/%s was no longer held by call %s (logged out, or the "
                         "lease ran out): not moved to %s", customer, operator, call_id,
                         state)  # fmt: skip

        d.addCallback(moved)
        d.addErrback(self._failed, f"moving {customer}/{operator} to {state}")
        return d

    def _renew(self) -> None:
        """Push back the leases of the operators on a call here (wrap-up ends by itself)."""
        for (customer, operator), (call_id, _group) in list(self._held.items()):
            d = self.state.move_operator(customer, operator, call_id, "on_call", DEFAULT_LEASE_TTL)
            d.addCallback(self._renewed_hold, customer, operator, call_id)
            d.addErrback(self._failed, f"renewing {customer}/{operator}")

    def _renewed_hold(self, held: bool, customer: str, operator: str, call_id: str) -> None:
        if not held:  # logged out meanwhile, or the lease ran out (Redis away too long)
            log.warning("ACM: %s/%s is no longer held by call %s, which goes on: the operator "
                        "may be offered another call", customer, operator, call_id)  # fmt: skip
            self._held.pop((customer, operator), None)

    @property
    def parked(self) -> int:
        """Calls waiting in this engine's queues."""
        return sum(len(g.waiting) for g in self._groups.values())


def _candidate(info: OperatorInfo) -> Candidate:
    return Candidate(info.operator, info.level, info.state, info.idle_since, info.calls_handled)
