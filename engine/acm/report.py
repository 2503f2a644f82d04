"""ACM statistics of a window of time, computed from events (pure: no IO, no clock).

:func:`compute` turns the events of engine/acm/events.py into the figures of
requirements.md: per queue, per operator, per channel, and the Erlang C
staffing next to what was observed. The store (engine/acm/stats.py), the
command and the API all call it, so the three always agree.

What counts, and when:

- A *contact* (a call or an e-mail) belongs to the window it came in: its
  first ``queued`` (or ``no_agents``, for a contact turned away without
  queueing) in a group at ``since <= at < until``. What happens to it after
  ``until`` is not seen: at ``until`` it is still *waiting*. A queue is a
  group and a channel; offered = answered + abandoned + timeout + no_agents +
  waiting.
- The *wait* of a contact runs from its queueing to its outcome (answer,
  abandon, timeout), or to ``until`` while it waits.
- *Service level* (in %), with T the group's ``service_level`` seconds:
  answered within T / (offered − abandoned within T − waiting for T or less).
  Callers who hang up within T are left out (the usual "short abandon"
  rule: no staffing could have served them in time), as are contacts still
  waiting that may yet make it; everyone else, including timeouts, turned
  away and waiting past T, counts against it. None when nothing is decided.
- *Average speed of answer*: the mean wait of answered contacts.
  *Average handling time*: (talk + wrap-up) / contacts handled, where talk
  runs from ``answered`` to ``ended`` of contacts ended in the window and
  wrap-up is the operators' ``wrap_up`` time tagged with the queue's group.
- Per operator, each by the time of its own event: contacts handled
  (answered), no-answers, talk (answered to ended, or to ``until``); and
  from the ``operator`` state events, clipped to the window, with the state
  in force at ``since`` taken from the last event before it: idle
  (available), ringing (reserved or ringing), wrap-up, break, logged in.
- *Staffing* (calls only): the operators Erlang C needs to answer
  :data:`SERVICE_TARGET` of the calls within T at the window's offered rate
  and handling time, next to the operators observed: the average number of
  the group's operators logged in and not on break (an operator of two
  groups counts in both).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from engine.acm.erlang import agents_needed
from engine.acm.events import AcmEvent
from engine.acm.model import AcmSettings, Group
from engine.sites.health import iso

__all__ = ["CHANNELS", "MAX_WINDOW_DAYS", "SERVICE_TARGET", "OperatorFigures", "QueueFigures",
           "Report", "Staffing", "as_json", "compute", "default_window", "too_long",
           "with_live"]  # fmt: skip

#: The share of calls to answer within the group's ``service_level`` seconds (the 80/20 rule).
SERVICE_TARGET = 0.8
CHANNELS = ("call", "email")
#: The longest window the command and the API report on: its events are all read into
#: memory (a quarter of a busy customer is some hundreds of thousands).
MAX_WINDOW_DAYS = 92
_OUTCOMES = ("answered", "abandoned", "timeout", "no_agents")
#: Operator states (engine/acm/states.py) -> the time bucket they fill.
_BUCKETS = {"available": "idle_time", "reserved": "ringing_time", "ringing": "ringing_time",
            "wrap_up": "wrap_up_time", "break": "break_time"}  # fmt: skip
_NOT_WORKING = frozenset({"logged_out", "break"})


@dataclass(frozen=True)
class QueueFigures:
    """One group's queue on one channel (``group`` empty: the channel's total)."""

    group: str
    channel: str
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    timeout: int = 0
    no_agents: int = 0
    #: Contacts still waiting at the end of the window (now, for a live report).
    waiting: int = 0
    answered_in_target: int = 0
    abandoned_in_target: int = 0
    #: Percent; None when no contact is decided yet.
    service_level: float | None = None
    average_speed_of_answer: float | None = None
    #: The longest wait of any contact of the window, seconds.
    longest_wait: float = 0.0
    #: How long the contact waiting longest has waited so far; None when none waits.
    oldest_waiting: float | None = None
    handled: int = 0
    talk_time: float = 0.0
    wrap_up_time: float = 0.0
    average_handling_time: float | None = None


@dataclass(frozen=True)
class OperatorFigures:
    """One operator's work in the window; times in seconds."""

    operator: str
    handled: int = 0
    no_answers: int = 0
    talk_time: float = 0.0
    wrap_up_time: float = 0.0
    idle_time: float = 0.0
    ringing_time: float = 0.0
    break_time: float = 0.0
    logged_in_time: float = 0.0


@dataclass(frozen=True)
class Staffing:
    """Erlang C's operators for a group's calls, next to the operators it had."""

    group: str
    offered_per_hour: float
    average_handling_time: float | None
    target_seconds: float
    target_share: float
    #: None when no call was handled (no handling time to size for).
    needed: int | None
    observed: float


@dataclass(frozen=True)
class Report:
    """A customer's ACM figures for ``since <= t < until``."""

    customer: str
    since: float
    until: float
    queues: tuple[QueueFigures, ...]
    channels: tuple[QueueFigures, ...]
    operators: tuple[OperatorFigures, ...]
    staffing: tuple[Staffing, ...]
    service_target: float = SERVICE_TARGET


@dataclass
class _Contact:
    queued: float
    threshold: float
    outcome: str = ""
    left: float | None = None  # when it left the queue (its outcome's time)
    answered_by: str = ""
    ended: float | None = None

    def wait(self, until: float) -> float:
        return (until if self.left is None else self.left) - self.queued


@dataclass
class _Times:
    """Seconds per bucket for an operator, and wrap-up per (group, channel)."""

    buckets: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    wrap_up: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))


def compute(
    events: Iterable[AcmEvent],
    customer: str,
    acm: AcmSettings,
    since: float,
    until: float,
    groups: Collection[str] | None = None,
    service_target: float = SERVICE_TARGET,
) -> Report:
    """The figures of ``customer`` for ``since <= t < until``; see the module doc.

    ``events`` may hold anything: other customers' and out-of-window events
    are skipped, except each operator's last state event before ``since``.
    ``groups`` limits queues, staffing and operators to those groups.
    """
    if until <= since:
        raise ValueError(f"the window must end after it starts, not {since} to {until}")
    ordered = sorted((e for e in events if e.customer == customer and e.at < until),
                     key=lambda e: e.at)  # fmt: skip
    if groups is None:  # every group: the configured ones, and any that events still name
        chosen = set(acm.groups) | {
            e.group for e in ordered if e.kind != "operator" and e.at >= since
        }
    else:
        chosen = set(groups)
    contacts = _contacts(ordered, acm, since, chosen)
    times = _operator_times(ordered, since, until)
    operators = _operators(ordered, acm, chosen, times, (since, until), groups is None)
    wrap_up: dict[tuple[str, str], float] = defaultdict(float)
    for t in times.values():
        for key, seconds in t.wrap_up.items():
            wrap_up[key] += seconds
    keys = {(g, "call") for g in chosen} | set(contacts)
    queues = tuple(_queue(g, c, contacts.get((g, c), []), wrap_up[(g, c)], until)
                   for g, c in sorted(keys))  # fmt: skip
    channels = tuple(
        _queue("", channel, [x for (_, c), xs in contacts.items() if c == channel for x in xs],
               sum(s for (g, c), s in wrap_up.items() if c == channel and g in chosen), until)
        for channel in CHANNELS
    )  # fmt: skip
    staffing = tuple(_staffing(q, _group(acm, q.group), acm, times, since, until, service_target)
                     for q in queues if q.channel == "call")  # fmt: skip
    return Report(customer, since, until, queues, channels, operators, staffing, service_target)


def _threshold(acm: AcmSettings, group: str, channel: str) -> float:
    """T of the service level: the e-mail settings' for e-mails, the group's for calls."""
    if channel == "email" and acm.email is not None:
        return acm.email.service_level
    return _group(acm, group).service_level


def _group(acm: AcmSettings, name: str) -> Group:
    """The group's settings; defaults for a group no longer configured."""
    return acm.groups.get(name) or Group(name)


def _contacts(
    events: list[AcmEvent], acm: AcmSettings, since: float, chosen: set[str]
) -> dict[tuple[str, str], list[_Contact]]:
    """The window's contacts by (group, channel), each with its outcome."""
    found: dict[tuple[str, str, str], _Contact] = {}
    for e in events:
        if e.at < since or e.kind == "operator" or e.group not in chosen:
            continue
        key = (e.group, e.channel, e.contact)
        contact = found.get(key)
        if contact is None:
            if e.kind not in ("queued", "no_agents"):
                continue  # it came before the window
            contact = found[key] = _Contact(e.at, _threshold(acm, e.group, e.channel))
        if e.kind in _OUTCOMES and not contact.outcome:
            contact.outcome, contact.left, contact.answered_by = e.kind, e.at, e.operator
        elif e.kind == "ended" and contact.outcome == "answered" and contact.ended is None:
            contact.ended = e.at
    out: dict[tuple[str, str], list[_Contact]] = defaultdict(list)
    for (group, channel, _), contact in found.items():
        out[(group, channel)].append(contact)
    return out


def _queue(
    group: str, channel: str, contacts: list[_Contact], wrap_up: float, until: float
) -> QueueFigures:
    counts = dict.fromkeys(_OUTCOMES, 0)
    answer_waits: list[float] = []
    in_target = abandoned_in_target = undecided = handled = 0
    talk = 0.0
    for c in contacts:
        wait = c.wait(until)
        within = wait <= c.threshold
        if c.outcome:
            counts[c.outcome] += 1
        elif within:
            undecided += 1
        if c.outcome == "answered":
            answer_waits.append(wait)
            in_target += within
        elif c.outcome == "abandoned":
            abandoned_in_target += within
        if c.ended is not None and c.left is not None:
            handled += 1
            talk += c.ended - c.left
    waiting = [c.wait(until) for c in contacts if not c.outcome]
    decided = len(contacts) - abandoned_in_target - undecided
    return QueueFigures(
        group, channel, len(contacts), counts["answered"], counts["abandoned"],
        counts["timeout"], counts["no_agents"], len(waiting), in_target, abandoned_in_target,
        100 * in_target / decided if decided else None, _mean(answer_waits),
        max((c.wait(until) for c in contacts), default=0.0), max(waiting, default=None),
        handled, talk, wrap_up, (talk + wrap_up) / handled if handled else None,
    )  # fmt: skip


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _operator_times(events: list[AcmEvent], since: float, until: float) -> dict[str, _Times]:
    """Each operator's state time in the window, from its state events (the one before too)."""
    states: dict[str, list[AcmEvent]] = defaultdict(list)
    for e in events:
        if e.kind == "operator":
            states[e.operator].append(e)
    out: dict[str, _Times] = {}
    for operator, changes in states.items():
        times = out[operator] = _Times()
        for e, after in zip(changes, [*changes[1:], None], strict=True):
            seconds = min(until, until if after is None else after.at) - max(since, e.at)
            if seconds <= 0:
                continue
            state = e.detail.partition("|")[0]
            if state != "logged_out":
                times.buckets["logged_in_time"] += seconds
            if state not in _NOT_WORKING:
                times.buckets["working"] += seconds
            if state in _BUCKETS:
                times.buckets[_BUCKETS[state]] += seconds
            if state == "wrap_up":
                times.wrap_up[(e.group, e.channel)] += seconds
    return out


def _operators(
    events: list[AcmEvent],
    acm: AcmSettings,
    chosen: set[str],
    times: dict[str, _Times],
    window: tuple[float, float],
    every: bool,
) -> tuple[OperatorFigures, ...]:
    """Per operator of the chosen groups (``every``: also operators no longer configured)."""
    since, until = window
    names = {n for n, op in acm.operators.items() if chosen & set(op.groups)}
    if every:
        names |= {e.operator for e in events if e.operator}
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    talk: dict[str, float] = defaultdict(float)
    answered: dict[tuple[str, str, str], tuple[str, float]] = {}
    for e in events:
        if e.at < since or e.kind == "operator" or not (e.operator or e.kind == "ended"):
            continue
        key = (e.group, e.channel, e.contact)
        if e.kind == "answered":
            counts[e.operator]["handled"] += 1
            answered[key] = (e.operator, e.at)
        elif e.kind == "no_answer":
            counts[e.operator]["no_answers"] += 1
        elif e.kind == "ended" and key in answered:
            operator, at = answered.pop(key)
            talk[operator] += e.at - at
    for operator, at in answered.values():  # still talking at the end of the window
        talk[operator] += until - at
    out = []
    for name in sorted(names):
        buckets = times[name].buckets if name in times else {}
        out.append(OperatorFigures(
            name, counts[name]["handled"], counts[name]["no_answers"], talk[name],
            *(buckets.get(b, 0.0) for b in ("wrap_up_time", "idle_time", "ringing_time",
                                            "break_time", "logged_in_time")),
        ))  # fmt: skip
    return tuple(out)


def _staffing(
    queue: QueueFigures,
    group: Group,
    acm: AcmSettings,
    times: dict[str, _Times],
    since: float,
    until: float,
    target: float,
) -> Staffing:
    hours = (until - since) / 3600
    rate = queue.offered / hours
    aht = queue.average_handling_time
    if queue.offered == 0:
        needed: int | None = 0
    elif aht is None or aht <= 0:
        needed = None
    else:
        needed = agents_needed(rate, aht, target, group.service_level)
    working = sum(times[name].buckets.get("working", 0.0) for name, op in acm.operators.items()
                  if group.name in op.groups and name in times)  # fmt: skip
    return Staffing(group.name, rate, aht, group.service_level, target, needed,
                    working / (until - since))  # fmt: skip


def default_window(now: float) -> tuple[float, float]:
    """Today so far: from 00:00 UTC of ``now``'s day to ``now``."""
    return now - now % 86400, now


def too_long(since: float, until: float) -> str | None:
    """The sentence refusing a window longer than :data:`MAX_WINDOW_DAYS`; None if it fits."""
    if until - since <= MAX_WINDOW_DAYS * 86400:
        return None
    return (f"the window from {iso(since)} to {iso(until)} is {(until - since) / 86400:.1f} "
            f"days; statistics cover at most {MAX_WINDOW_DAYS} days at a time, so ask for "
            "shorter windows")  # fmt: skip


def with_live(report: Report, live: Mapping[str, tuple[int, float | None]]) -> Report:
    """``report`` with the calls waiting now from the shared state, the events' guess replaced.

    ``live``: group -> (calls waiting, how long the oldest has waited, None if none).
    The channel's total follows; the service level keeps the events' view.
    """
    queues = tuple(replace(q, waiting=live[q.group][0], oldest_waiting=live[q.group][1])
                   if q.channel == "call" and q.group in live else q
                   for q in report.queues)  # fmt: skip
    calls = [q for q in queues if q.channel == "call"]
    waits = [q.oldest_waiting for q in calls if q.oldest_waiting is not None]
    channels = tuple(replace(c, waiting=sum(q.waiting for q in calls), oldest_waiting=max(
        waits, default=None)) if c.channel == "call" else c for c in report.channels)  # fmt: skip
    return replace(report, queues=queues, channels=channels)


def as_json(report: Report) -> dict[str, Any]:
    """The report as JSON values: ISO 8601 times, seconds to the millisecond."""
    body = {name: _rounded(value) for name, value in asdict(report).items()}
    body["since"], body["until"] = iso(report.since), iso(report.until)
    return body


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
