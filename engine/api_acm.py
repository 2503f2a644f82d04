"""``/api/v1/customers/ID/acm``: operators, groups and supervisors, and operators' presence.

Changes go through the :class:`~engine.acm.directory.AcmDirectory` (durable,
shared, validated like the file, audited); presence goes through the same
core as ``vms acm`` (:func:`engine.acm.command.act`) on the engine's shared
state, so an operator in a call is left alone here too (409). A PIN is
write-only: it is hashed (scrypt, off the reactor) before it is stored and
never answered.

=======  ===========================================  =================================
GET      acm                                          groups, operators (with presence),
                                                      supervisors
GET      acm/operators/NAME, acm/groups/NAME          one of them
PUT      acm/operators/NAME, acm/groups/NAME          write it whole (an operator's PIN
                                                      may be left out: it is kept)
DELETE   acm/operators/NAME, acm/groups/NAME          an operator is logged out first; a
                                                      group must have no operators left
PUT      acm/supervisors                              a JSON list of names
POST     acm/operators/NAME/login|logout|resume       ``resume``: from a break only
POST     acm/operators/NAME/break                     ``{"reason": "lunch"}``
=======  ===========================================  =================================
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields
from typing import Any

from twisted.internet.threads import deferToThreadPool

from engine.acm.command import BUSY, BusyError, Presence, act, document, presences
from engine.acm.directory import (
    AcmChangeError,
    AcmDirectory,
    ConflictError,
    InvalidChangeError,
    UnknownNameError,
)
from engine.acm.events import EventSink
from engine.acm.model import AcmSettings, Group, Operator
from engine.api_v1 import Handler, Reply, error
from engine.passwords import hash_password, is_hash
from engine.sites.health import iso
from engine.state.interface import SharedState, StateError

__all__ = ["METHODS", "acm_handler"]

#: What ``acm`` answers to, for ``V1.add("acm", METHODS, handler)``.
METHODS = ("GET", "PUT", "DELETE", "POST")
#: POST acm/operators/NAME/ACTION -> the state it puts the operator in.
_ACTIONS = {"login": "available", "logout": "logged_out", "break": "break", "resume": "available"}
_MAX_BODY = 16384
_STATUS: dict[type[AcmChangeError], int] = {InvalidChangeError: 400, UnknownNameError: 404,
                                            ConflictError: 409}  # fmt: skip


def acm_handler(reactor: Any, state: SharedState, directory: AcmDirectory,
                sink: EventSink | None = None) -> Handler:  # fmt: skip
    """The ``acm`` resource; ``reactor`` gives "now" and the thread pool PINs are hashed in.

    Presence changes are told to ``sink`` (the statistics).
    """
    return _AcmApi(reactor, state, directory, sink).handle


class _AcmApi:
    def __init__(self, reactor: Any, state: SharedState, directory: AcmDirectory,
                 sink: EventSink | None) -> None:  # fmt: skip
        self.reactor = reactor
        self.state = state
        self.directory = directory
        self.sink = sink

    async def handle(self, request: Any, customer: str, method: str,
                     rest: tuple[str, ...]) -> Reply:  # fmt: skip
        refused = self.directory.refusal(customer)
        if refused is not None:
            return error(403, refused)
        try:
            return await self._route(request, customer, method, rest)
        except AcmChangeError as exc:
            return error(_STATUS[type(exc)], str(exc))
        except StateError as exc:
            return error(503, f"the shared state failed ({exc}); try again", retry_after=b"1")
        except sqlite3.Error:
            return error(503, "the ACM database is busy or failing; try again", retry_after=b"1")

    async def _route(self, request: Any, customer: str, method: str,
                     rest: tuple[str, ...]) -> Reply:  # fmt: skip
        by = f"api {request.getClientAddress().host}"
        match method, rest:
            case "GET", ():
                return Reply(200, await self._everything(customer))
            case "PUT", ("supervisors",):
                names = _body(request)
                settings = self.directory.put_supervisors(customer, names, by)
                return Reply(200, {"supervisors": list(settings.supervisors)})
            case "GET", ("groups", name):
                return Reply(200, _group(self._acm(customer), self._group(customer, name)))
            case "PUT", ("groups", name):
                body = _object(request, "a group")
                settings = self.directory.put_group(customer, name, body, by)
                return Reply(200, _group(settings, settings.groups[name]))
            case "DELETE", ("groups", name):
                self.directory.delete_group(customer, name, by)
                return Reply(200, {"deleted": name})
            case "GET", ("operators", name):
                return Reply(200, await self._operator(customer, self._op(customer, name)))
            case "PUT", ("operators", name):
                return await self._put_operator(request, customer, name, by)
            case "DELETE", ("operators", name):
                return await self._delete_operator(customer, name, by)
            case "POST", ("operators", name, action) if action in _ACTIONS:
                return await self._presence(request, customer, name, action, by)
        return error(404, f"no such resource: {request.path.decode('latin-1')}")

    # -- reading ------------------------------------------------------------------------

    def _acm(self, customer: str) -> AcmSettings:
        return self.directory.settings(customer) or AcmSettings({}, {})

    def _op(self, customer: str, name: str) -> Operator:
        found = self._acm(customer).operators.get(name)
        if found is None:
            raise UnknownNameError(f"customer '{customer}' has no operator '{name}'")
        return found

    def _group(self, customer: str, name: str) -> Group:
        found = self._acm(customer).groups.get(name)
        if found is None:
            raise UnknownNameError(f"customer '{customer}' has no group '{name}'")
        return found

    async def _presences(self, customer: str, acm: AcmSettings,
                         operators: list[Operator]) -> list[Presence]:  # fmt: skip
        return await presences(self.state, customer, sorted(acm.groups), operators)

    async def _everything(self, customer: str) -> dict[str, Any]:
        acm = self._acm(customer)
        operators = [acm.operators[n] for n in sorted(acm.operators)]
        found = await self._presences(customer, acm, operators)
        return {
            "customer": customer,
            "groups": {n: _group(acm, acm.groups[n]) for n in sorted(acm.groups)},
            "operators": {p.name: _operator(customer, op, p)
                          for op, p in zip(operators, found, strict=True)},
            "supervisors": list(acm.supervisors),
        }

    async def _operator(self, customer: str, op: Operator) -> dict[str, Any]:
        (found,) = await self._presences(customer, self._acm(customer), [op])
        return _operator(customer, op, found)

    # -- changing -----------------------------------------------------------------------

    async def _put_operator(self, request: Any, customer: str, name: str, by: str) -> Reply:
        body = _object(request, "an operator")
        self.directory.put_operator(customer, name, body, by, dry_run=True)
        pin = body.get("pin")
        if isinstance(pin, str | int) and not is_hash(str(pin)):
            pool = self.reactor.getThreadPool()
            body["pin"] = await deferToThreadPool(self.reactor, pool, hash_password, str(pin))
        old = self._acm(customer)
        before = await self._presences(customer, old, [old.operators[name]]) \
            if name in old.operators else []  # fmt: skip
        settings = self.directory.put_operator(customer, name, body, by)
        op = settings.operators[name]
        if before and before[0].state not in BUSY | {"logged_out"}:
            # Present: the engines see the new groups and levels at once (in a call: next time).
            since = before[0].since if before[0].since is not None else self.reactor.seconds()
            await self.state.set_operator(customer, name, before[0].state, op.groups, since)
        return Reply(200, await self._operator(customer, op))

    async def _delete_operator(self, customer: str, name: str, by: str) -> Reply:
        self.directory.delete_operator(customer, name, by, dry_run=True)
        acm = self._acm(customer)
        op = acm.operators[name]
        (now,) = await self._presences(customer, acm, [op])
        if now.state != "logged_out":
            await self._act(customer, acm, op, "logged_out", None)
        self.directory.delete_operator(customer, name, by)
        return Reply(200, {"deleted": name})

    async def _presence(self, request: Any, customer: str, name: str, action: str,
                        by: str) -> Reply:  # fmt: skip
        body = _object(request, "a body", empty_ok=True)
        reason = body.pop("reason", None)
        if action == "break" and (not isinstance(reason, str) or not reason.strip()):
            raise InvalidChangeError('a break needs a reason: {"reason": "lunch"}')
        if action != "break" and reason is not None:
            raise InvalidChangeError(f"reason goes with break only, not with {action}")
        if body:
            raise InvalidChangeError(f"unknown field '{sorted(body)[0]}'")
        acm = self._acm(customer)
        op = self._op(customer, name)
        if action == "resume":
            (now,) = await self._presences(customer, acm, [op])
            if now.state != "break":
                raise ConflictError(f"operator '{name}' of customer '{customer}' is not on "
                                    f"break (it is {now.state}): nothing to resume")  # fmt: skip
        found = await self._act(customer, acm, op, _ACTIONS[action], reason)
        self.directory.audit(customer, by, f"acm-{action}",
                             name + (f": {reason}" if reason else ""))  # fmt: skip
        return Reply(200, _operator(customer, op, found, reason))

    async def _act(self, customer: str, acm: AcmSettings, op: Operator, target: str,
                   reason: str | None) -> Presence:  # fmt: skip
        try:
            (found,) = await act(self.state, self.reactor, customer, acm, [op], target, reason,
                                 self.sink)  # fmt: skip
        except BusyError as exc:
            raise ConflictError(str(exc)) from None
        return found


# -- JSON --------------------------------------------------------------------------------


def _body(request: Any) -> Any:
    raw = request.content.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise InvalidChangeError(f"the body is longer than {_MAX_BODY} bytes")
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidChangeError("the body is not JSON") from None


def _object(request: Any, what: str, empty_ok: bool = False) -> dict[str, Any]:
    body = _body(request)
    if body is None and empty_ok:
        return {}
    if not isinstance(body, dict):
        raise InvalidChangeError(f"the body must be a JSON object: {what}")
    return body


def _group(acm: AcmSettings, group: Group) -> dict[str, Any]:
    doc = {f.name: getattr(group, f.name) for f in fields(Group) if f.name != "tiers"}
    doc["tiers"] = [{"after": t.after, "min_level": t.min_level} for t in group.tiers]
    doc["operators"] = {op.name: op.groups[group.name] for op in acm.operators.values()
                        if group.name in op.groups}  # fmt: skip
    return doc


def _operator(customer: str, op: Operator, found: Presence,
              reason: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The operator and its presence; never the PIN (nor a softphone's HA1)."""
    doc = document(customer, found, reason)
    doc["since"] = None if found.since is None else iso(found.since)
    doc["numbers"] = list(op.numbers)
    if op.softphone is not None:
        doc["softphone"] = {"user": op.softphone.user}
    return doc
