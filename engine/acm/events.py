"""What happens in ACM, as events: the queue and the e-mail desk emit, statistics keep them.

One flat record for calls and e-mails alike (``channel``), so that every
figure of requirements.md (offered, answered, abandoned, service level,
average speed of answer, talk / wrap-up / idle / break time ...) is a query
over one table, whatever produced the events. Emitters never wait for the
sink: ``record`` must not block or raise (a sink that fails logs and drops).

Kinds, with the fields they carry besides ``at``, ``customer`` and ``channel``:

- ``queued`` (group, contact; detail: the priority): a contact enters a queue;
- ``offered`` (group, contact, operator): an operator is rung / given the e-mail;
- ``no_answer`` (group, contact, operator): the offer was not taken;
- ``answered`` (group, contact, operator): an operator took it;
- ``ended`` (group, contact, operator): the operator finished it (talk ends);
- ``abandoned`` (group, contact): the caller hung up while waiting or ringing;
- ``timeout`` (group, contact): ``max_wait`` passed, the contact left the queue;
- ``no_agents`` (group, contact): nobody of the group was logged in;
- ``operator`` (operator; group: the group of the call, if any; detail: the new
  state of engine/acm/states.py, ``|reason`` appended for a break).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["KINDS", "AcmEvent", "EventSink"]

KINDS = frozenset({"queued", "offered", "no_answer", "answered", "ended", "abandoned",
                   "timeout", "no_agents", "operator"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class AcmEvent:
    """One thing that happened to a contact or an operator of a customer."""

    at: float
    customer: str
    kind: str
    channel: str = "call"  # or "email"
    group: str = ""
    contact: str = ""  # the call id or the e-mail's id
    operator: str = ""
    detail: str = ""


class EventSink(Protocol):
    """Where events go (engine/acm/stats.py stores them)."""

    def record(self, event: AcmEvent) -> None: ...
