"""From an INVITE to a routing Decision: who calls, whom, which tree, which rule.

The called number is the Request-URI's user part (contract.md), the caller
is the network-asserted identity when a peer sends one (P-Asserted-Identity),
else the From user; both are normalised to E.164. A caller who withheld its
number (``Privacy: id``, an anonymous From) or presents no usable number is
anonymous to the trees. The set of trees can be swapped at any moment (a
reload): a decision uses the set that was current when it started.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from engine.sip.headers import parse_address
from engine.sip.message import Request
from routing_trees.compile import CompiledTree
from routing_trees.facts import Decision, Facts
from routing_trees.numbers import to_e164
from routing_trees.treeset import TreeSet

__all__ = ["Route", "Router", "called_number", "caller_number"]


def called_number(request: Request) -> str | None:
    """The E.164 number dialled, from the Request-URI's user part."""
    user = request.request_uri().user
    if not user:
        return None
    if ";" in user:  # tel-style parameters in a user part: +3225551234;npdi
        user = user.partition(";")[0]
    return to_e164(user)


def caller_number(request: Request) -> str | None:
    """The caller's E.164 number, or None when withheld or not a number."""
    privacy = request.get("privacy")
    if privacy is not None and "id" in {p.strip().lower() for p in privacy.split(";")}:
        return None
    asserted = request.get("p-asserted-identity")
    if asserted is not None:
        try:
            number = _number_of(parse_address(asserted.split(",")[0]).uri.user)
        except ValueError:
            number = None
        if number is not None:
            return number
    address = request.from_address()
    if address.uri.host == "anonymous.invalid":
        return None
    return _number_of(address.uri.user)


def _number_of(user: str | None) -> str | None:
    if not user:
        return None
    if ";" in user:
        user = user.partition(";")[0]
    return to_e164(user)


class Route(NamedTuple):
    """A decision with the tree that made it and the facts it was made on."""

    tree: CompiledTree
    facts: Facts
    decision: Decision


class Router:
    """Looks a called number up in the current trees and evaluates the call.

    ``ported(number)`` says whether a number was ported away: it is then not
    served any more (404), from the moment it is marked, without a restart.
    """

    def __init__(self, trees: TreeSet, mode_of: Callable[[str], str],
                 ported: Callable[[str], bool] | None = None) -> None:  # fmt: skip
        self.trees = trees
        self.mode_of = mode_of
        self.ported = ported
        self.on_ported: Callable[[str], None] | None = None  # told of each call refused so

    def route(self, request: Request, now: float) -> Route | None:
        """None when no tree serves the called number (the caller gets 404)."""
        return self.route_to(request, called_number(request), now)

    def route_to(self, request: Request, called: str | None, now: float) -> Route | None:
        """:meth:`route` for the called number a caller has already read from ``request``."""
        if called is None:
            return None
        tree = self.trees.lookup(called)
        if tree is None:
            return None
        if self.ported is not None and self.ported(called):
            if self.on_ported is not None:
                self.on_ported(called)
            return None
        facts = Facts(caller_number(request), called, now, self.mode_of(tree.customer))
        return Route(tree, facts, tree.evaluate(facts))
