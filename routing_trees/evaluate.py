"""The plain, interpretive evaluator: each rule, each criterion, with the reason.

This is the reference semantics of ``when``. It is slow (a loop over rules
and criteria) and it is not what calls use: ``compile.py`` builds the fast
evaluator, and a property test proves both always agree. ``explain.py``
uses the reasons given here to say why each earlier rule did not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .facts import Decision, Facts
from .localtime import clock_for
from .model import Rule, Tree
from .timewindows import format_minute

__all__ = ["Check", "Local", "caller_matches", "check_rule", "interpret", "local_of"]


@dataclass(frozen=True, slots=True)
class Local:
    """The call's local time in the tree's timezone."""

    minute_of_week: int
    day: date


@dataclass(frozen=True, slots=True)
class Check:
    """One criterion of one rule against one call: did it hold, and why."""

    criterion: str
    holds: bool
    reason: str


def local_of(tree: Tree, at: float) -> Local:
    minute_of_week, ordinal = clock_for(tree.timezone).local(at)
    return Local(minute_of_week, date.fromordinal(ordinal))


def caller_matches(patterns: tuple[str, ...], number: str) -> bool:
    """True when ``number`` equals a pattern or starts with a ``prefix*`` pattern."""
    return any(number.startswith(p[:-1]) if p.endswith("*") else number == p for p in patterns)


def _any_of(names: tuple[str, ...], what: str) -> str:
    quoted = ", ".join(f"'{n}'" for n in names)
    return f"{what} {quoted}" if len(names) == 1 else f"any of {what}s {quoted}"


def check_rule(tree: Tree, rule: Rule, facts: Facts, local: Local) -> list[Check]:
    """Every criterion of ``rule`` checked against the call, in a fixed order."""
    when = rule.when
    checks: list[Check] = []
    caller = facts.caller
    if when.time is not None:
        now = format_minute(local.minute_of_week)
        holds = local.minute_of_week in when.time
        verb = "is" if holds else "is not"
        checks.append(Check("time", holds, f"{now} {verb} in '{when.time.spec}'"))
    if when.date_in:
        holds = any(local.day in tree.calendars[name].dates for name in when.date_in)
        verb = "is" if holds else "is not"
        where = _any_of(when.date_in, "calendar")
        checks.append(Check("date_in", holds, f"{local.day.isoformat()} {verb} in {where}"))
    if when.caller:
        patterns = ", ".join(when.caller)
        if caller is None:
            checks.append(Check("caller", False, f"the caller withheld its number ({patterns})"))
        else:
            holds = caller_matches(when.caller, caller)
            verb = "matches" if holds else "does not match"
            checks.append(Check("caller", holds, f"caller {caller} {verb} {patterns}"))
    if when.caller_in:
        where = _any_of(when.caller_in, "list")
        if caller is None:
            checks.append(Check("caller_in", False, f"the caller withheld its number ({where})"))
        else:
            holds = any(caller_matches(tree.lists[name].entries, caller) for name in when.caller_in)
            verb = "is" if holds else "is not"
            checks.append(Check("caller_in", holds, f"caller {caller} {verb} in {where}"))
    if when.anonymous is not None:
        holds = (caller is None) == when.anonymous
        said = "the caller withheld its number" if caller is None else f"caller is {caller}"
        wanted = "anonymous" if when.anonymous else "with a number"
        checks.append(Check("anonymous", holds, f"{said} (rule wants {wanted})"))
    if when.called:
        holds = facts.called in when.called
        verb = "is" if holds else "is not"
        wanted = " or ".join(when.called)
        checks.append(Check("called", holds, f"called {facts.called} {verb} {wanted}"))
    if when.mode:
        holds = facts.mode in when.mode
        wanted = " or ".join(when.mode)
        text = f"mode is {facts.mode}" if holds else f"mode is {facts.mode}, not {wanted}"
        checks.append(Check("mode", holds, text))
    return checks


def interpret(tree: Tree, facts: Facts) -> Decision:
    """The first rule whose criteria all hold, by plain interpretation."""
    local = local_of(tree, facts.at)
    for rule in tree.rules:
        if all(check.holds for check in check_rule(tree, rule, facts, local)):
            return Decision(rule.name, rule.index, rule.do, tree)
    return Decision(None, -1, None, tree)
