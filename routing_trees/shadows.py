"""Unreachable rules: a rule that can only hold when an earlier rule holds too.

The first rule that holds wins, so rule B after rule A never wins when every
call that satisfies B also satisfies A. The obvious case is an A without
criteria (it always holds). More generally, B is shadowed when each of A's
criteria is implied by B's criteria of the same family:

- ``time``: B's minutes are all inside A's windows;
- ``date_in``: B's dates are all in A's calendars;
- ``caller`` / ``caller_in``: every number or prefix B accepts (through
  either of them) is covered by A's patterns (equal, or under a prefix);
- ``anonymous``: equal, or A wants a number and B matches numbers;
- ``called``, ``mode``: B's values are a subset of A's.

This only ever claims what is certain; it does not find every dead rule.
"""

from __future__ import annotations

from collections.abc import Mapping

from .model import Calendar, CallerList, Criteria, Rule

__all__ = ["shadowing_rule"]


def shadowing_rule(
    rules: tuple[Rule, ...] | list[Rule],
    later: Rule,
    lists: Mapping[str, CallerList],
    calendars: Mapping[str, Calendar],
) -> Rule | None:
    """The first rule before ``later`` that holds whenever ``later`` does, or None."""
    for earlier in rules:
        if earlier.index >= later.index:
            break
        if _implies(later.when, earlier.when, lists, calendars):
            return earlier
    return None


def _implies(
    b: Criteria, a: Criteria, lists: Mapping[str, CallerList], calendars: Mapping[str, Calendar]
) -> bool:
    """True when every call satisfying ``b`` also satisfies ``a``."""
    if a.time is not None and (b.time is None or not b.time.within(a.time)):
        return False
    if a.date_in:
        if not b.date_in:
            return False
        a_dates = set().union(*(calendars[n].dates for n in a.date_in))
        if not all(calendars[n].dates <= a_dates for n in b.date_in):
            return False
    b_callers = _caller_sets(b, lists)
    if a.caller and not any(_covered(s, a.caller) for s in b_callers):
        return False
    if a.caller_in:
        a_patterns = tuple(p for n in a.caller_in for p in lists[n].entries)
        if not any(_covered(s, a_patterns) for s in b_callers):
            return False
    if a.anonymous is True and b.anonymous is not True:
        return False
    if a.anonymous is False and b.anonymous is not False and not b_callers:
        return False
    if a.called and not (b.called and set(b.called) <= set(a.called)):
        return False
    return not a.mode or bool(b.mode and set(b.mode) <= set(a.mode))


def _caller_sets(c: Criteria, lists: Mapping[str, CallerList]) -> list[tuple[str, ...]]:
    """The pattern sets a caller must match for ``c`` to hold (each one suffices)."""
    sets = []
    if c.caller:
        sets.append(c.caller)
    if c.caller_in:
        sets.append(tuple(p for n in c.caller_in for p in lists[n].entries))
    return sets


def _covered(patterns: tuple[str, ...], by: tuple[str, ...]) -> bool:
    """True when every number matching one of ``patterns`` matches one of ``by``."""
    return all(any(_covers(q, p) for q in by) for p in patterns)


def _covers(q: str, p: str) -> bool:
    if q.endswith("*"):
        return p.rstrip("*").startswith(q[:-1])
    return p == q
