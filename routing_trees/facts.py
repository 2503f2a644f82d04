"""What the engine knows about one call (Facts) and what the tree decided (Decision)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .model import Action, Tree

__all__ = ["NO_MATCH_RESPONSE", "Decision", "Facts"]

NO_MATCH_RESPONSE = 480
"""What the caller gets when the number is served but no rule holds:
480 Temporarily Unavailable (the number exists; nothing takes calls now).
A number that no tree serves is 404 Not Found: ``TreeSet.lookup`` is None."""


class Facts(NamedTuple):
    """The static facts of one call, all normalised by the engine.

    ``caller`` is E.164, or None when the caller withheld its number (no
    CLI); ``called`` is E.164; ``at`` is UNIX time (seconds, UTC);
    ``mode`` is the customer's activation state: normal, drs or continuity.
    A NamedTuple because one is built for every call (a frozen dataclass
    costs several times more to construct).
    """

    caller: str | None
    called: str
    at: float
    mode: str = "normal"


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen rule and its whole action tree, dynamic branches included.

    When no rule holds, ``rule`` and ``action`` are None and ``rule_index``
    is -1: answer :data:`NO_MATCH_RESPONSE`. ``rule_index`` is 0-based.
    """

    rule: str | None
    rule_index: int
    action: Action | None
    tree: Tree

    @property
    def matched(self) -> bool:
        return self.rule is not None
