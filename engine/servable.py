"""What a mode cannot carry out in a tree, reported rule by rule before anything listens.

Redirect mode keeps no call state and plays no media: a rule whose action
needs media (announce, menu, queue) cannot be served and its calls get the
configured final response; inside failover branches such actions, and a
``reject``, are left out of the 302; ``max_calls`` cannot be counted. These are warnings: the
engine starts. B2BUA mode serves every action (a ``queue``'s group is
checked against the customer's ACM groups when the trees load).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from routing_trees.compile import CompiledTree
from routing_trees.model import Announce, Forward, Menu, Pos, Queue, Reject, walk

__all__ = ["Unservable", "unservable"]

_MEDIA = (Announce, Menu, Queue)


@dataclass(frozen=True, slots=True)
class Unservable:
    """One place in a tree that a mode cannot serve, and why; ``fatal`` stops the start."""

    pos: Pos
    rule: str
    path: str
    message: str
    fatal: bool = False

    @property
    def text(self) -> str:
        at = f" ({self.path})" if self.path else ""
        return f"rule '{self.rule}'{at}: {self.message}"

    def __str__(self) -> str:
        return f"{self.pos}: {self.text}"


def unservable(tree: CompiledTree, mode: str, status: int = 480) -> Iterator[Unservable]:
    """Every action of ``tree`` that ``mode`` cannot carry out, rule by rule."""
    for rule in tree.tree.rules:
        for path, action in walk(rule.do):
            kind = type(action).__name__.lower()
            where = action.pos
            if isinstance(action, _MEDIA):
                if mode == "b2bua":
                    continue
                if path:
                    message = f"{kind} needs media; redirect mode leaves it out of the 302"
                    yield Unservable(where, rule.name, path, message)
                else:
                    message = f"{kind} needs media; calls matching this rule get {status}"
                    yield Unservable(where, rule.name, path, message)
            elif mode == "redirect" and isinstance(action, Reject) and path:
                yield Unservable(
                    where,
                    rule.name,
                    path,
                    f"reject {action.code} in a failover branch is not sent in redirect mode "
                    "(the upstream follows the 302's Contacts and ends the call itself)",
                )
            elif mode == "redirect" and isinstance(action, Forward) and action.max_calls:
                yield Unservable(
                    where,
                    rule.name,
                    path,
                    "max_calls is not enforced in redirect mode (no call state)",
                )
