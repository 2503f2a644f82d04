"""``vms acm login|logout|break|status``: operator presence in the engines' shared state.

The command writes where the running engines read: the Redis of the
configuration's ``state:`` (an engine's ``state: memory`` lives inside that
process, out of any command's reach, so it is refused). Input is checked
against ``customers.ID.acm`` before anything connects; then one short
reactor run does the work. Bad input, a busy operator or an unreachable
Redis is one sentence on stderr and exit status 1.

An operator who is reserved, ringing or on a call is left alone (the
engine ends that call's state itself); any other state is replaced at
once, as :meth:`~engine.state.interface.Operators.set_operator` does.
:func:`act`, :func:`presences` and :func:`document` are that core, shared
with the HTTP API (engine/api_acm.py), which runs them on the engine's state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from twisted.internet.task import Clock

from engine.acm.events import AcmEvent, EventSink
from engine.acm.model import AcmSettings, Operator
from engine.acm.stats import StatsError, StatsStore
from engine.config import Config
from engine.state.interface import OperatorInfo, SharedState, StateError
from engine.state.url import parse_state_url
from routing_trees.source import did_you_mean

__all__ = ["ACTIONS", "BUSY", "CONNECT_TIMEOUT", "BusyError", "InputError", "Presence", "act",
           "document", "presences", "run"]  # fmt: skip

#: action -> the state it puts the operator in (status changes nothing).
ACTIONS: Mapping[str, str | None] = {
    "login": "available", "logout": "logged_out", "break": "break", "status": None,
}  # fmt: skip
#: Seconds to wait for Redis before giving up.
CONNECT_TIMEOUT = 5.0
#: How a state reads in a sentence.
_WORDS = {"logged_out": "logged out", "on_call": "on a call", "wrap_up": "in wrap-up",
          "break": "on break"}  # fmt: skip
#: States in which a call owns the operator: neither the command nor the API touches them.
BUSY = frozenset({"reserved", "ringing", "on_call"})


class InputError(Exception):
    """Bad input or a refused change; the message is the sentence for the user."""


class BusyError(InputError):
    """The operator is in a call's hands (``BUSY``): the API answers 409, the CLI exits 1."""


@dataclass(frozen=True)
class Presence:
    """One operator as the shared state has it: its state, and per group (level, state)."""

    name: str
    state: str
    since: float | None
    groups: Mapping[str, tuple[int, str]]


def run(config: Config, action: str, customer_id: str, operator_name: str | None,
        reason: str | None, as_json: bool, out: TextIO, err: TextIO) -> int:  # fmt: skip
    """Do ``action`` for the operator (status: for one or every operator); the exit status."""
    prog = f"vms acm {action}"
    try:
        acm, operators = _check(config, action, customer_id, operator_name, reason)
        url = config.state
        changes: list[AcmEvent] = []
        found = _react(url, lambda state, clock: act(
            state, clock, customer_id, acm, operators, ACTIONS[action], reason,
            _Kept(changes)))
        _to_statistics(config, changes, err)
    except InputError as exc:
        print(f"{prog}: {exc}", file=err)
        return 1
    except StateError as exc:
        print(f"{prog}: the shared state at {_where(url)} failed ({exc}); check that Redis "
              "is running and reachable, then try again", file=err)  # fmt: skip
        return 1
    documents = [document(customer_id, p, reason if action == "break" else None)
                 for p in found]  # fmt: skip
    if as_json:
        print(json.dumps(documents if action == "status" else documents[0]), file=out)
    else:
        for p, doc in zip(found, documents, strict=True):
            print(_line(customer_id, p, doc.get("reason")), file=out)
    return 0


def _check(config: Config, action: str, customer_id: str, operator_name: str | None,
           reason: str | None) -> tuple[AcmSettings, list[Operator]]:  # fmt: skip
    """The customer's ACM and the operators concerned; InputError for any bad input."""
    if action not in ACTIONS:
        raise InputError(f"unknown action '{action}'{did_you_mean(action, ACTIONS)}")
    customer = config.customers.get(customer_id)
    if customer is None:
        raise InputError(f"unknown customer '{customer_id}' in {config.file}"
                         + did_you_mean(customer_id, config.customers))  # fmt: skip
    acm = customer.acm
    if acm is None:
        raise InputError(f"customer '{customer_id}' has no ACM (no 'acm:' in customers."
                         f"{customer_id} of {config.file}), so it has no operators")  # fmt: skip
    if action == "break" and (reason is None or not reason.strip()):
        raise InputError("a break needs a reason: add --reason TEXT (e.g. --reason lunch)")
    if action != "break" and reason is not None:
        raise InputError(f"--reason goes with break only, not with {action}")
    if operator_name is None:
        if action != "status":
            raise InputError(f"{action} needs an operator: add --operator NAME (operators of "
                             f"'{customer_id}': {', '.join(sorted(acm.operators))})")  # fmt: skip
        chosen = [acm.operators[name] for name in sorted(acm.operators)]
    elif operator_name not in acm.operators:
        raise InputError(f"unknown operator '{operator_name}' of customer '{customer_id}'"
                         + did_you_mean(operator_name, acm.operators))  # fmt: skip
    else:
        chosen = [acm.operators[operator_name]]
    try:
        where = parse_state_url(config.state)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if where.kind != "redis":
        raise InputError(f"{config.file} has 'state: memory', which lives inside each engine "
                         "process where no command can reach it; set 'state: redis://HOST:PORT/DB' "
                         "for the engines and this command to share operator states")  # fmt: skip
    return acm, chosen


async def act(state: SharedState, clock: Any, customer: str, acm: AcmSettings,
              operators: list[Operator], target: str | None, reason: str | None,
              sink: EventSink | None = None) -> list[Presence]:  # fmt: skip
    """Read the operators, change them if asked (refusing a busy one), read them back.

    A change is told to ``sink`` (the statistics: idle, break and logged-in time).
    """
    groups = sorted(acm.groups)
    before = await presences(state, customer, groups, operators)
    if target is None:
        return before
    (op,), (now,) = operators, before
    if now.state in BUSY:
        verb = {"available": "logged in", "logged_out": "logged out",
                "break": "put on break"}[target]  # fmt: skip
        raise BusyError(f"operator '{op.name}' of customer '{customer}' is "
                        f"{_WORDS.get(now.state, now.state)}, so it cannot be {verb} now; "
                        "try again once the call is over")  # fmt: skip
    # The same state again keeps its start (an operator's idle time is not reset).
    since = now.since if now.state == target and now.since is not None else clock.seconds()
    await state.set_operator(customer, op.name, target, op.groups, since)
    if sink is not None and now.state != target:
        detail = f"{target}|{reason}" if target == "break" and reason else target
        sink.record(AcmEvent(clock.seconds(), customer, "operator", operator=op.name,
                             detail=detail))  # fmt: skip
    return await presences(state, customer, groups, operators)


async def presences(state: SharedState, customer: str, groups: list[str],
                    operators: list[Operator]) -> list[Presence]:  # fmt: skip
    """Each operator's presence in the configured groups (absent: logged out)."""
    found: dict[str, dict[str, OperatorInfo]] = {}
    for group in groups:
        for info in await state.operators(customer, group):
            found.setdefault(info.operator, {})[group] = info
    out: list[Presence] = []
    for op in operators:
        infos = found.get(op.name, {})
        first = next(iter(infos.values()), None)
        per_group = {g: (infos[g].level, infos[g].state) if g in infos else (level, "logged_out")
                     for g, level in sorted(op.groups.items())}  # fmt: skip
        out.append(Presence(op.name, first.state if first else "logged_out",
                            first.idle_since if first else None, per_group))  # fmt: skip
    return out


class _Kept:
    """An event sink that keeps the events for the statistics store (written after)."""

    def __init__(self, events: list[AcmEvent]) -> None:
        self.events = events

    def record(self, event: AcmEvent) -> None:
        self.events.append(event)


def _to_statistics(config: Config, events: list[AcmEvent], err: TextIO) -> None:
    """The presence change into this data_dir's statistics (an engine's own, on this machine)."""
    if not events:
        return
    store = StatsStore.in_data_dir(config.data_dir, Clock())
    try:
        store.open()
    except StatsError as exc:
        print(f"warning: the change is made, but not counted in the statistics: {exc}", file=err)
        return
    for event in events:
        store.record(event)
    store.close()


def _react(url: str, body: Callable[[SharedState, Any], Coroutine[Any, Any, list[Presence]]],
           ) -> list[Presence]:  # fmt: skip
    """Run ``body`` on the state at ``url``, on a reactor of its own (so it can run twice)."""
    from twisted.internet import defer  # noqa: PLC0415 - Twisted only for this command
    from twisted.internet.selectreactor import SelectReactor  # noqa: PLC0415

    from engine.state.factory import open_state  # noqa: PLC0415

    raise_error: list[BaseException] = []
    result: list[list[Presence]] = []
    reactor: Any = SelectReactor()
    state = open_state(url, reactor)

    async def main() -> None:
        try:
            ready = state.ready()
            timer = reactor.callLater(CONNECT_TIMEOUT, ready.cancel)
            try:
                await ready
            except defer.CancelledError:
                raise InputError(f"Redis at {_where(url)} did not answer within "
                                 f"{CONNECT_TIMEOUT:g} s; check that it is running and "
                                 "reachable") from None  # fmt: skip
            if timer.active():
                timer.cancel()
            result.append(await body(state, reactor))
        except BaseException as exc:  # handed to the caller below
            raise_error.append(exc)
        finally:
            await state.close()
            reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(main()))
    reactor.run(installSignalHandlers=False)
    if raise_error:
        raise raise_error[0]
    return result[0]


def _where(url: str) -> str:
    """The Redis as it may be shown: host, port and database, never a password."""
    where = parse_state_url(url)
    return f"{where.host}:{where.port}/{where.db}"


def document(customer: str, p: Presence, reason: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "customer": customer,
        "operator": p.name,
        "state": p.state,
        "groups": {g: {"level": level, "state": state} for g, (level, state) in p.groups.items()},
    }
    if reason is not None:
        doc["reason"] = reason
    return doc


def _line(customer: str, p: Presence, reason: object) -> str:
    groups = ", ".join(f"{g} (level {level}): {_WORDS.get(state, state)}"
                       for g, (level, state) in p.groups.items())  # fmt: skip
    why = f" ({reason})" if reason is not None else ""
    return (f"customer '{customer}': operator '{p.name}' is {_WORDS.get(p.state, p.state)}{why}; "
            f"{groups or 'in no group'}")
