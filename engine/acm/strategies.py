"""Which operators a waiting call is offered to, and in what order: pure functions.

The queue asks :func:`select` each time it has a call to offer. It passes the
group, how long the caller has waited and the group's operators as it knows
them (any state: only ``available`` ones are offered). The answer is a list of
*rounds*: each round is offered at once, the next round only when every
operator of the one before has not answered. Sequential strategies give
rounds of one operator; ``ring-all`` gives one round per level, best first.

Eligibility: available, and at or above the group's minimum level for this
wait (:meth:`Group.min_level`: the tiers widen it to lower levels as the
caller waits), or the best level of the operators logged in when that is
lower (a caller does not wait for competence that is not at work). Order,
by strategy (ties always end on the operator's name, so equal inputs give
equal answers on every engine):

- ``level-then-longest-idle``: highest level first, then longest idle;
- ``round-robin``: the operators by name as a ring, starting after
  ``cursor``, the operator this group offered a call to last (the caller
  keeps one cursor per group and sets it to whoever it offers);
- ``fewest-calls``: fewest calls handled first, then longest idle;
- ``ring-all``: every operator of the best level at once, then the next level.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from engine.acm.model import Group

__all__ = ["Candidate", "Round", "select"]


@dataclass(frozen=True)
class Candidate:
    """One operator of a group, as the shared state reports it."""

    name: str
    #: Competence level in this group (higher is better).
    level: int
    #: One of engine/acm/states.py's states.
    state: str
    #: When the operator last became idle (logged in, came back, finished wrap-up).
    idle_since: float
    calls_handled: int


#: Operators offered the call at the same time.
Round = tuple[Candidate, ...]


def select(
    group: Group, waited: float, candidates: Iterable[Candidate], cursor: str | None = None
) -> list[Round]:
    """The rounds of operators to offer a call to who has waited ``waited`` seconds."""
    members = list(candidates)
    floor = group.min_level(waited)
    present = [c.level for c in members if c.state != "logged_out"]
    if present:  # nobody logged in reaches the tier: waiting for them would be in vain
        floor = min(floor, max(present))
    eligible = [c for c in members if c.state == "available" and c.level >= floor]
    strategy = group.strategy
    if strategy == "round-robin":
        ring = sorted(eligible, key=lambda c: c.name)
        start = 0 if cursor is None else bisect.bisect_right([c.name for c in ring], cursor)
        return [(c,) for c in ring[start:] + ring[:start]]
    if strategy == "fewest-calls":
        eligible.sort(key=lambda c: (c.calls_handled, c.idle_since, c.name))
        return [(c,) for c in eligible]
    eligible.sort(key=lambda c: (-c.level, c.idle_since, c.name))
    if strategy == "ring-all":
        return [tuple(level) for _, level in itertools.groupby(eligible, key=lambda c: c.level)]
    if strategy == "level-then-longest-idle":
        return [(c,) for c in eligible]
    raise ValueError(f"unknown strategy {strategy!r}")
