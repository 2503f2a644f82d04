"""A ``queue`` action: the caller waits with music for a qualified operator.

The engine answers the caller and plays music on hold with periodic
announcements of the position and the expected wait (``media.hold``), while
the engine's queue desk (``engine.acm.desk``) finds operators. An offer is a
B2BUA leg to the operator's registered softphone, or to the operator's
first number through the trunk, ringing for the group's ``ring_timeout``;
``ring-all`` rings several operators at once. The first to answer is
bridged to the caller (the others are cancelled) and the call goes on as
any answered call, recorded when the customer's calls are. Whoever does not
answer (no answer, busy, unreachable) is let go and the call waits again in
its old place. The caller's hang-up counts as abandoned; ``max_wait`` (the
tree's, capped by the group's) runs ``on_timeout``; a group with nobody
logged in runs ``on_no_agents``. Without those actions the engine says
nothing more and ends the call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.acm.model import Group, Operator
from engine.calls.media import MediaUnavailableError
from engine.calls.outbound import OutboundLeg
from engine.calls.registrar import registered_contacts
from media.hold import HoldPlayer
from routing_trees.model import Action, Forward, Queue

if TYPE_CHECKING:
    from engine.acm.desk import QueueDesk
    from engine.calls.call import Call
    from engine.calls.media import CallMedia
    from engine.calls.operator_phone import OperatorPhone
    from media.prompts import Prompt

__all__ = ["QUEUE_PROMPTS", "QUEUE_PROMPT_DIR", "AcmServices", "QueueRun", "announcement"]

log = logging.getLogger("vms.acm")

#: The queue's prompts by key (``media/prompts/queue/KEY.wav``): the music, the words,
#: and the numbers one to twenty as ``n01`` ... ``n20``.
QUEUE_PROMPTS = ("music", "position", "in_queue", "wait", "minutes", "one_minute",
                 "under_minute", "more_than", *(f"n{n:02d}" for n in range(1, 21)))  # fmt: skip
_SPOKEN = 20
#: The shipped queue prompts (English, made with espeak-ng and sox; see DEVELOPERS.md).
QUEUE_PROMPT_DIR = Path(__file__).resolve().parents[2] / "media" / "prompts" / "queue"


def announcement(position: int | None, expected: float | None) -> list[str]:
    """The prompt keys that say the caller's position and expected wait, in order."""
    keys: list[str] = []
    if position is not None:
        keys += ["position", f"n{position:02d}" if position <= _SPOKEN else "more_than",
                 "in_queue"]  # fmt: skip
    if expected is not None:
        if expected < 60:
            keys.append("under_minute")
        else:
            minutes = round(expected / 60)
            if minutes <= 1:
                keys += ["wait", "one_minute"]
            else:
                keys += ["wait", f"n{minutes:02d}" if minutes <= _SPOKEN else "more_than",
                         "minutes"]  # fmt: skip
    return keys


@dataclass(frozen=True)
class AcmServices:
    """What ACM calls need of the engine: the queue desk, the queue prompts decoded by key,
    and the operators' phone service (feature numbers)."""

    desk: QueueDesk
    prompts: Mapping[str, Prompt]
    phone: OperatorPhone | None = None


class QueueRun:
    """One caller waiting in a group's queue, and the offers made for it."""

    def __init__(self, call: Call, media: CallMedia, queue: Queue, path: str, desk: QueueDesk,
                 group: Group, operators: Mapping[str, Operator],
                 prompts: Mapping[str, Prompt]) -> None:  # fmt: skip
        self.call = call
        self.media = media
        self.queue = queue
        self.path = path
        self.desk = desk
        self.group = group
        self.operators = operators
        self.prompts = prompts
        self.call_id = call.call_id
        self.customer = call.customer
        self.priority = queue.priority
        self.joined = call.ctx.now()
        self.offering: dict[str, OutboundLeg | None] = {}  # None: its phone is being looked up
        self.missed: set[str] = set()
        self.position: int | None = None
        self.expected_wait: float | None = None
        self.hold: HoldPlayer | None = None
        self.timer: Any = None
        self.over = False

    # -- waiting -----------------------------------------------------------------------

    def start(self) -> None:
        codec = self.media.codec
        music = self.prompts["music"].frames(codec)
        self.hold = HoldPlayer(self.media.caller.stream, self.call.ctx.stack.clock, music,
                               self.group.announce_every, self._announcement,
                               first=2.0)  # fmt: skip
        self.hold.start()
        wait = min(float(self.queue.max_wait), self.group.max_wait)
        self.timer = self.call.ctx.stack.clock.callLater(wait, self._timed_out)
        self.desk.join(self)

    def _announcement(self) -> Sequence[bytes] | None:
        keys = announcement(self.position, self.expected_wait)
        if not keys:
            return None
        codec = self.media.codec
        return [frame for key in keys for frame in self.prompts[key].frames(codec)]

    def _timed_out(self) -> None:
        self.timer = None
        self._leave("timeout", self.queue.on_timeout, "on_timeout")

    def no_agents(self) -> None:
        if not self.offering:
            self._leave("no_agents", self.queue.on_no_agents, "on_no_agents")

    def _leave(self, why: str, action: Action | None, key: str) -> None:
        if self.over:
            return
        self.stop(why)
        # What follows rings on its own time, not on what the caller spent in the queue.
        self.call.ring_deadline = self.call.ctx.now() + self.call.ctx.settings.max_ring_time
        if action is not None:
            self.call.execute(action, f"{self.path}.{key}" if self.path else key)
        else:
            self.call.hang_up(f"queue {self.group.name}: {why.replace('_', ' ')}")

    # -- offers ------------------------------------------------------------------------

    def offer(self, names: list[str]) -> None:
        """Ring the operators the desk reserved for this call, all at once.

        An operator with a softphone is rung where it registered (the first
        binding), else on the first number through the trunk.
        """
        try:
            body = self.media.offer_callee()
        except MediaUnavailableError as exc:
            log.error("call %s: no media port to offer it: %s", self.call_id, exc)
            for name in names:  # tried again at the next tick, not in a loop now
                self.desk.operator_free(self.customer, name, self.call_id, self.group,
                                        "available", kick=False)  # fmt: skip
            self.desk.requeue(self, kick=False)
            return
        self.offering.update(dict.fromkeys(names))  # all of them before any can fail
        for name in names:
            operator = self.operators.get(name)
            if operator is None or operator.softphone is None:
                self._reach([], name, operator, body)
                continue
            d = registered_contacts(self.desk.state, self.customer, name)
            d.addErrback(self._unreadable)
            d.addCallback(self._reach, name, operator, body)

    def _unreadable(self, failure: Any) -> list[tuple[str, tuple[str, int]]]:
        log.error("call %s: the softphone bindings cannot be read: %s", self.call_id,
                  failure.getErrorMessage())  # fmt: skip
        return []

    def _reach(self, contacts: list[tuple[str, tuple[str, int]]], name: str,
               operator: Operator | None, body: bytes) -> None:  # fmt: skip
        if name not in self.offering:
            return  # the queue was left meanwhile: stop() let the operator go
        if not contacts and (operator is None or not operator.numbers):
            log.warning("call %s: operator %s has no registered softphone and no number",
                        self.call_id, name)  # fmt: skip
            del self.offering[name]
            self.desk.no_answer(self.customer, name, self.call_id, self.group)
            self._none_left()
            return
        target = contacts[0] if contacts else None
        destination = target[0] if target else operator.numbers[0]  # type: ignore[union-attr]
        forward = Forward(destination, timeout=max(1, round(self.group.ring_timeout)))
        path = f"{self.path}.offer" if self.path else "offer"
        self.offering[name] = self.call.dial_operator(forward, path, self.group.ring_timeout,
                                                      body, target)  # fmt: skip
        self.desk.ringing(self.customer, name, self.call_id, self.group)

    def _none_left(self) -> None:
        """No offer rings any more: the caller waits again in its place."""
        if not self.offering and not self.over:
            self.media.drop_callee()
            self.desk.requeue(self)

    def owns(self, leg: OutboundLeg) -> str | None:
        """The operator ``leg`` rings, if it is one of this queue's offers."""
        for name, offered in self.offering.items():
            if offered is leg:
                return name
        return None

    def answered(self, leg: OutboundLeg) -> bool:
        """An operator answered: True when this one gets the caller (the first)."""
        name = self.owns(leg)
        if name is None or self.over:
            return False
        del self.offering[name]
        self.stop(None)
        self.desk.answered(self.customer, name, self.call_id, self.group)
        return True

    def offer_ended(self, leg: OutboundLeg) -> None:
        """An offer ended without an answer (not answered in time, busy, unreachable)."""
        name = self.owns(leg)
        if name is None:
            return
        del self.offering[name]
        self.missed.add(name)
        self.desk.no_answer(self.customer, name, self.call_id, self.group)
        self._none_left()

    # -- the end -------------------------------------------------------------------------

    def stop(self, why: str | None) -> None:
        """Leave the queue: answered (None), or ``abandoned``, ``timeout``, ``no_agents``."""
        if self.over:
            return
        self.over = True
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if self.hold is not None:
            self.hold.stop()
            self.hold = None
        for name, leg in list(self.offering.items()):
            if leg is not None:
                leg.hang_up()  # a ringing leg is cancelled
            self.desk.operator_free(self.customer, name, self.call_id, self.group, "available")
        self.offering.clear()
        self.desk.leave(self, why)
        if self.call.queue is self:
            self.call.queue = None
