"""``/api/v1/``: a customer's DRS / Voice Continuity mode and its audit log, over HTTP.

Every request carries a customer's API token (engine/api_auth.py) and
reaches only that customer's resources. Answers are JSON; every refusal is
``{"error": "one sentence"}`` with the status that says why. A change goes
through the mode store (durable, shared, audited) and then to the
``on_change`` hook, which the engine uses to refresh its routing and
e-mail the customer; a failing hook is logged and does not undo the change.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from twisted.internet.defer import ensureDeferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from engine.api_auth import TokenAuth
from engine.modes.entitlement import mode_problem
from engine.modes.store import MODES
from engine.ratelog import RateLimitedLog
from engine.sites.health import iso

if TYPE_CHECKING:
    from engine.config import Config
    from engine.modes.store import AuditEntry, ModeChange, ModeState, ModeStore

__all__ = ["ROUTES", "V1", "Handler", "Reply", "error", "parse_iso", "query_of"]

log = logging.getLogger("vms.api")

#: What each resource under /api/v1/customers/ID/ answers to (the OpenAPI document lists the same).
ROUTES: dict[str, tuple[str, ...]] = {"mode": ("GET", "PUT"), "audit": ("GET",)}

#: A resource's handler: (request, customer, method, the path below the resource) -> the reply.
#: It runs after the token check, for the token's own customer only.
Handler = Callable[[Any, str, str, tuple[str, ...]], Awaitable["Reply"]]
_MAX_BODY = 4096
_MAX_AUDIT = 1000
_EXAMPLE = '{"mode": "drs", "until": "2026-12-23T10:00:00Z"}'


@dataclass
class Reply:
    """What a handler answers: a status, a JSON body, extra headers."""

    status: int
    body: Any
    headers: dict[bytes, bytes] = field(default_factory=dict)


def error(status: int, message: str, **headers: bytes) -> Reply:
    """A refusal: ``{"error": message}`` with ``status`` (headers by keyword, ``_`` for ``-``)."""
    return Reply(
        status, {"error": message}, {k.replace("_", "-").encode(): v for k, v in headers.items()}
    )


def _iso(at: float | None) -> str | None:
    return None if at is None else iso(at)


def query_of(request: Any) -> dict[str, str]:
    """The query string's parameters (the last of a repeated name wins)."""
    # Not parse_qs: it reads '+' as a space, and a client may leave the '+' of +01:00 bare.
    raw = request.uri.partition(b"?")[2].decode("latin-1")
    pairs = (p.partition("=") for p in raw.split("&") if p)
    return {name: unquote(value) for name, _, value in pairs}


def parse_iso(text: str, what: str) -> float:
    """ISO 8601 with its zone to a POSIX time; ValueError with a sentence naming ``what``."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an ISO 8601 time such as 2026-12-23T10:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{what} needs its time zone, e.g. '{text}Z' for UTC")
    return moment.timestamp()


def _state(state: ModeState) -> dict[str, Any]:
    return {
        "customer": state.customer,
        "mode": state.mode,
        "since": _iso(state.since),
        "until": _iso(state.until),
        "by": state.by,
    }


def _entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": iso(entry.at),
        "customer": entry.customer,
        "caller": entry.caller,
        "action": entry.action,
        "outcome": entry.outcome,
        "via": entry.via,
        "detail": entry.detail,
    }


class V1(Resource):
    """Everything under ``/api/v1/customers/ID/``: ``mode``, ``audit`` and what :meth:`add` adds."""

    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(
        self,
        reactor: Any,
        config: Config | None,
        store: ModeStore | None,
        on_change: Callable[[ModeChange], None] | None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.clock = reactor
        self.config = config
        self.store = store
        self.on_change = on_change
        self._log = RateLimitedLog(log, reactor)
        self.auth = (
            TokenAuth(reactor, {cid: c.api_token for cid, c in config.customers.items()})
            if config is not None
            else None
        )
        self.routes: dict[str, tuple[str, ...]] = dict(ROUTES)
        self.handlers: dict[str, Handler] = dict.fromkeys(ROUTES, self._modes)

    def render(self, request: Any) -> Any:
        """Answers asynchronously: the token check may run scrypt in a thread."""
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def send(reply: Reply) -> None:
            if gone:
                return
            request.setResponseCode(reply.status)
            request.setHeader(b"content-type", b"application/json")
            request.setHeader(b"cache-control", b"no-store")
            for name, value in reply.headers.items():
                request.setHeader(name, value)
            request.write(json.dumps(reply.body).encode())
            request.finish()

        def crashed(failure: Failure) -> Reply:
            log.error(
                "API: %s %s failed", request.method.decode(), request.path.decode("latin-1"),
                exc_info=failure.value,
            )  # fmt: skip
            return error(500, "the engine could not answer this request; see its log")

        answer: Coroutine[Any, Any, Reply] = self._answer(request)
        ensureDeferred(answer).addErrback(crashed).addCallback(send)
        return NOT_DONE_YET

    def add(self, resource: str, methods: tuple[str, ...], handler: Handler) -> None:
        """Serve ``customers/ID/<resource>[/...]`` with ``handler`` (ACM, statistics, e-mail)."""
        self.routes[resource] = methods
        self.handlers[resource] = handler

    async def _answer(self, request: Any) -> Reply:
        path = request.postpath
        resource = path[2].decode("latin-1") if len(path) >= 3 else ""
        if path[:1] != [b"customers"] or resource not in self.routes:
            return error(404, f"no such resource: {request.path.decode('latin-1')}")
        rest = tuple(p.decode("utf-8", "replace") for p in path[3:])
        if rest and resource in ROUTES:
            return error(404, f"no such resource: {request.path.decode('latin-1')}")
        method = request.method.decode("latin-1")
        if method not in self.routes[resource]:
            allowed = ", ".join(self.routes[resource])
            return error(405, f"{resource} answers {allowed}", allow=allowed.encode())
        if self.auth is None or self.config is None:
            return error(503, "this engine runs without customers: no /api/v1")
        auth = await self.auth.check(
            request.getHeader(b"authorization"), request.getClientAddress().host
        )
        if auth.status == 401:
            challenge = b'Bearer realm="vms"'
            if request.getHeader(b"authorization") is not None:
                challenge += b', error="invalid_token"'
            return error(401, auth.message, www_authenticate=challenge)
        if auth.status == 429:
            return error(429, auth.message, retry_after=str(auth.retry_after).encode())
        customer = path[1].decode("utf-8", "replace")
        if auth.customer != customer:
            return error(403, f"this token does not give access to customer '{customer}'")
        return await self.handlers[resource](request, customer, method, rest)

    async def _modes(self, request: Any, customer: str, method: str, _: tuple[str, ...]) -> Reply:
        if self.store is None:
            return error(503, "this engine runs without a mode store: no mode or audit")
        try:
            if request.postpath[2] == b"audit":
                return self._audit(request, customer)
            if method == "GET":
                return Reply(200, _state(self.store.get(customer)))
            return self._put_mode(request, customer)
        except sqlite3.Error as exc:
            self._log.warning("db", "API: the mode database failed: %s", exc)
            return error(503, "the mode database is busy or failing; try again", retry_after=b"1")

    def _audit(self, request: Any, customer: str) -> Reply:
        assert self.store is not None
        query = query_of(request)
        since: float | None = None
        limit = _MAX_AUDIT
        try:
            if "since" in query:
                since = parse_iso(query["since"], "since")
            if "limit" in query:
                text = query["limit"]
                if not text.isdigit() or not 1 <= int(text) <= _MAX_AUDIT:
                    raise ValueError(f"limit must be a whole number from 1 to {_MAX_AUDIT}")
                limit = int(text)
        except ValueError as exc:
            return error(400, str(exc))
        entries = self.store.audit_log(customer=customer, since=since, limit=limit)
        return Reply(200, [_entry(e) for e in entries])

    def _put_mode(self, request: Any, customer: str) -> Reply:
        assert self.store is not None and self.config is not None
        body = request.content.read(_MAX_BODY + 1)
        if len(body) > _MAX_BODY:
            return error(413, f"the body is longer than {_MAX_BODY} bytes")
        try:
            wanted = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            wanted = None
        if not isinstance(wanted, dict) or "mode" not in wanted:
            return error(400, f"the body must be a JSON object such as {_EXAMPLE}")
        unknown = sorted(set(wanted) - {"mode", "until"})
        if unknown:
            return error(400, f"unknown field '{unknown[0]}': only 'mode' and 'until' are known")
        mode, until_text = wanted["mode"], wanted.get("until")
        if mode not in MODES:
            return error(400, f"unknown mode {json.dumps(mode)}: use normal, drs or continuity")
        now = self.clock.seconds()
        until: float | None = None
        if until_text is not None:
            if mode == "normal":
                return error(400, "'until' applies to drs and continuity, not to normal")
            if not isinstance(until_text, str):
                return error(400, "until must be an ISO 8601 time such as 2026-12-23T10:00:00Z")
            try:
                until = parse_iso(until_text, "until")
            except ValueError as exc:
                return error(400, str(exc))
            if until <= now:
                return error(400, f"until ({until_text}) is in the past")
        problem = mode_problem(self.config.customers[customer], mode)
        if problem is not None:
            caller = f"api {request.getClientAddress().host}"
            self.store.audit(customer, caller, f"{mode}-activate", "refused", "api", problem)
            return error(403, problem)
        if mode == "drs":
            longest = now + self.config.drs_max_days * 86400
            if until is None:
                until = longest
            elif until > longest:
                return error(
                    400,
                    f"DRS lasts at most drs.max_days ({self.config.drs_max_days} days): "
                    f"until must be at or before {iso(longest)}",
                )
        try:
            change = self.store.set_mode(customer, mode, until, by="api", via="api")
        except ValueError as exc:  # the store's clock says the end has come meanwhile
            return error(400, str(exc))
        if change is not None and self.on_change is not None:
            try:
                self.on_change(change)
            except Exception:
                log.exception("API: the change of %s to %s was made, but on_change failed",
                              customer, mode)  # fmt: skip
        return Reply(200, _state(self.store.get(customer)))
