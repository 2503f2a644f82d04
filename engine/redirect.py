"""Redirect mode: answer each INVITE with the routing tree's decision, keep no call state.

A forward becomes ``302 Moved Temporarily`` with
``Contact: <sip:DESTINATION@TRUNKHOST:TRUNKPORT>`` (contract.md). A redirect
server cannot follow the dynamic branches itself, so the forward targets
reachable through ``on_busy``, ``on_no_answer``, ``on_unreachable`` and
``on_overflow`` follow as further Contacts with falling q-values (RFC 3261
§8.1.3.4): the upstream tries them in turn. When there are several, every
Contact carries its q (the primary ``q=1.0``), since upstreams differ in the
q they assume for a Contact without one. Destinations behind a site its
health checks mark down are left out (503 when none is left). A ``reject`` is sent as its final
response; actions that need media (announce, menu, queue) cannot be served
here: they are reported rule by rule at start (``engine.servable``) and a
call that reaches one gets ``unservable`` (480 by default).
"""

from __future__ import annotations

import logging
import random

from engine.config import RedirectSettings
from engine.floods import FloodGuard
from engine.router import Router, called_number
from engine.sip.message import Request, Response
from engine.sip.stack import ServerTransaction, SipStack
from engine.sip.transaction import ServerInvite, Transport
from engine.sip.validate import Policy
from engine.sites.health import SiteTable
from routing_trees.facts import NO_MATCH_RESPONSE
from routing_trees.model import Action, Forward, Reject, Split

__all__ = ["RedirectService", "contacts_for"]

log = logging.getLogger(__name__)

_OUTCOMES = ("on_busy", "on_no_answer", "on_unreachable", "on_overflow")


def contacts_for(action: Forward, limit: int, rng: random.Random) -> tuple[list[str], bool]:
    """The primary number, then failover numbers breadth-first, each once.

    Splits met on the way are resolved by weight, as they would be at call
    time; branches that need media are skipped. The flag says whether the
    list is the same for every call (no split was drawn), so it may be cached.
    """
    numbers = [action.number]
    fixed = True
    level: list[Action] = [action]
    while level and len(numbers) < limit:
        following: list[Action] = []
        for node in level:
            if not isinstance(node, Forward):
                continue
            for key in _OUTCOMES:
                child = getattr(node, key)
                while isinstance(child, Split):
                    fixed = False
                    child = child.choose(rng.randrange(100))
                if isinstance(child, Forward):
                    following.append(child)
                    if child.number not in numbers:
                        numbers.append(child.number)
        level = following
    return numbers[:limit], fixed


class RedirectService:
    """The transaction user of redirect mode."""

    policy = Policy(allowed=frozenset({"INVITE", "ACK", "CANCEL", "OPTIONS", "BYE"}))

    def __init__(
        self,
        stack: SipStack | None,
        router: Router,
        trunk: tuple[str, int],
        settings: RedirectSettings,
        rng: random.Random | None = None,
        floods: FloodGuard | None = None,
        sites: SiteTable | None = None,
    ) -> None:
        self.stack = stack
        self.router = router
        self.trunk = f"{trunk[0]}:{trunk[1]}" if ":" not in trunk[0] else \
            f"[{trunk[0]}]:{trunk[1]}"  # fmt: skip
        self.settings = settings
        self.floods = floods
        self.sites = sites
        self.rng = rng or random.Random()
        self.decisions = 0
        # Contact lines per Forward action (by identity) of the current trees.
        self._contacts_of: dict[int, list[str]] = {}
        self._contacts_trees: object = None

    def _response(self, txn: ServerTransaction, status: int, reason: str | None = None) -> Response:
        assert self.stack is not None
        return txn.request.response(status, reason, self.stack.to_tag(txn))

    def request_received(self, txn: ServerTransaction, request: Request) -> None:
        method = request.method
        if method == "INVITE":
            txn.respond(self._decide(txn, request))
        elif method == "OPTIONS":
            response = self._response(txn, 200)
            response.add("allow", self.policy.allow_header)
            response.add("accept", "application/sdp")
            txn.respond(response)
        else:  # BYE: a redirect server holds no dialogs
            txn.respond(self._response(txn, 481))

    def _decide(self, txn: ServerTransaction, request: Request) -> Response:
        assert self.stack is not None
        called = called_number(request)
        if self.floods is not None:
            # Before the tree runs, and for unknown numbers too (engine.floods); a number
            # no tree serves takes no per-number bucket, only its source's.
            tree = self.router.trees.lookup(called) if called is not None else None
            if tree is None:
                refusal = self.floods.admit(None, None, txn.addr[0])
            else:
                refusal = self.floods.admit(called, tree.customer, txn.addr[0])
            if refusal is not None:
                return refusal.response(request, self.stack.to_tag(txn))
        route = self.router.route_to(request, called, self.stack.clock.seconds())
        if route is None:
            return self._response(txn, 404)
        self.decisions += 1
        action = route.decision.action
        if action is None:
            return self._response(txn, NO_MATCH_RESPONSE, "No Rule Matched")
        while isinstance(action, Split):
            action = action.choose(self.rng.randrange(100))
        if isinstance(action, Reject):
            return self._response(txn, action.code)
        if isinstance(action, Forward):
            contacts = self._contacts(action)
            if not contacts:
                return self._response(txn, 503, "Destination Unreachable")
            response = self._response(txn, 302)
            response.headers["contact"] = contacts
            return response
        return self._response(txn, self.settings.unservable, "Not Servable In Redirect Mode")

    def _contacts(self, action: Forward) -> list[str]:
        """The Contact lines for a forward; destinations behind a down site are left out."""
        down = self.sites is not None and self.sites.any_down()
        if self._contacts_trees is not self.router.trees:
            self._contacts_of.clear()
            self._contacts_trees = self.router.trees
        cached = None if down else self._contacts_of.get(id(action))
        if cached is not None:
            return cached[:]
        if self.settings.failover_contacts:
            numbers, fixed = contacts_for(action, self.settings.max_contacts, self.rng)
        else:
            numbers, fixed = [action.number], True
        if down:
            assert self.sites is not None
            numbers = [n for n in numbers if self.sites.down_site_for(n) is None]
            fixed = False
            if not numbers:
                return []
        trunk = self.trunk
        if len(numbers) == 1:
            lines = [f"<sip:{numbers[0]}@{trunk}>"]
        else:
            step = 1.0 / len(numbers)
            lines = [f"<sip:{n}@{trunk}>;q={_qvalue(1 - i * step)}" for i, n in enumerate(numbers)]
        if fixed:
            self._contacts_of[id(action)] = lines
        return lines[:]

    def ack_received(self, request: Request, transport: Transport, source: tuple[str, int]) -> None:
        """A redirect server sends no 2xx to INVITE, so a stray ACK is dropped."""

    def cancel_received(self, txn: ServerInvite) -> None:
        """INVITEs are answered at once, so this only ends one left unanswered."""
        txn.respond(self._response(txn, 487))

    def server_failed(self, txn: ServerTransaction, reason: str) -> None:
        """The upstream never acknowledged our final response; nothing to clean up."""

    def stray_response(
        self, response: Response, transport: Transport, source: tuple[str, int]
    ) -> None:
        """A redirect server sends no requests, so a response is stray by definition."""


def _qvalue(q: float) -> str:
    """RFC 3261 qvalue: ``1.0``, ``0.75``, at most three decimals."""
    text = f"{q:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
