"""Explain one call: which rule matched, why each earlier one did not, what happens.

Built on the interpretive evaluator (``evaluate.py``), which knows the
reason for each criterion; the compiled evaluator only knows the winner.
``text()`` is for people, ``as_json()`` for tools and the portal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .compile import CompiledTree
from .evaluate import Check, check_rule, local_of
from .facts import NO_MATCH_RESPONSE, Facts
from .localtime import clock_for
from .model import Action, Announce, Forward, Menu, Queue, Rule, Split, Tree

__all__ = ["REASONS", "Explanation", "RuleReport", "explain", "render_action"]

REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    410: "Gone",
    480: "Temporarily Unavailable",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


@dataclass(frozen=True, slots=True)
class RuleReport:
    """One rule checked against the call."""

    rule: Rule
    checks: tuple[Check, ...]

    @property
    def holds(self) -> bool:
        return all(c.holds for c in self.checks)

    def reason(self) -> str:
        if not self.checks:
            return "it has no conditions"
        chosen = [c for c in self.checks if c.holds == self.holds]
        return "; ".join(c.reason for c in chosen)


@dataclass(frozen=True, slots=True)
class Explanation:
    """The rules checked up to the winner (all of them when none holds)."""

    tree: Tree
    facts: Facts
    local_time: datetime
    reports: tuple[RuleReport, ...]

    @property
    def winner(self) -> RuleReport | None:
        last = self.reports[-1] if self.reports else None
        return last if last is not None and last.holds else None

    @property
    def action(self) -> Action | None:
        winner = self.winner
        return winner.rule.do if winner is not None else None

    def text(self) -> str:
        facts = self.facts
        when = self.local_time.strftime("%a %Y-%m-%d %H:%M %z")
        lines = [
            f"{self.tree.file} (customer {self.tree.customer}): call from "
            f"{facts.caller or 'an anonymous caller'} to {facts.called} at {when} "
            f"({self.tree.timezone}), mode {facts.mode}"
        ]
        for report in self.reports:
            label = f"rule {report.rule.index + 1} '{report.rule.name}'"
            verb = "matches" if report.holds else "does not hold"
            lines.append(f"{label} {verb}: {report.reason()}")
        action = self.action
        if action is None:
            phrase = REASONS[NO_MATCH_RESPONSE]
            lines.append(f"no rule holds: the call is refused with {NO_MATCH_RESPONSE} {phrase}")
        else:
            lines.extend(render_action(action, "  "))
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        facts = self.facts
        winner = self.winner
        return {
            "tree": self.tree.file,
            "customer": self.tree.customer,
            "timezone": self.tree.timezone,
            "facts": {
                "caller": facts.caller,
                "called": facts.called,
                "at": datetime.fromtimestamp(facts.at, UTC).isoformat().replace("+00:00", "Z"),
                "mode": facts.mode,
            },
            "local_time": self.local_time.isoformat(),
            "route": winner.rule.name if winner else None,
            "rule_index": winner.rule.index + 1 if winner else None,
            "action": winner.rule.do.to_json() if winner else None,
            "no_match_response": None if winner else NO_MATCH_RESPONSE,
            "rules": [
                {
                    "index": r.rule.index + 1,
                    "name": r.rule.name,
                    "line": r.rule.pos.line,
                    "matched": r.holds,
                    "reason": r.reason(),
                    "criteria": [
                        {"criterion": c.criterion, "holds": c.holds, "reason": c.reason}
                        for c in r.checks
                    ],
                }
                for r in self.reports
            ],
        }


def explain(compiled_or_tree: CompiledTree | Tree, facts: Facts) -> Explanation:
    """Check the rules in order against ``facts`` and stop at the first that holds."""
    tree = compiled_or_tree.tree if isinstance(compiled_or_tree, CompiledTree) else compiled_or_tree
    local = local_of(tree, facts.at)
    reports = []
    for rule in tree.rules:
        report = RuleReport(rule, tuple(check_rule(tree, rule, facts, local)))
        reports.append(report)
        if report.holds:
            break
    moment = clock_for(tree.timezone).datetime(facts.at)
    return Explanation(tree, facts, moment, tuple(reports))


def render_action(action: Action, indent: str = "", label: str = "") -> list[str]:
    """The action and its dynamic branches as indented lines."""
    missing = _unhandled(action)
    handled = any(True for _ in action.children())
    head = f"{indent}{label}{_summary(action)}"
    if missing and not handled:
        head += "; unhandled outcomes end the call"
    lines = [head]
    inner = indent + "  "
    for key, child in action.children():
        name = key
        if isinstance(action, Split):
            weight = action.branches[int(key[6:-1])][0]
            name = f"{weight}%"
        elif key.startswith("options."):
            name = f"option {key[8:]}"
        lines.extend(render_action(child, inner, f"{name}: "))
    if missing and handled:
        lines.append(f"{inner}{', '.join(missing)}: not handled (the call ends)")
    return lines


def _summary(action: Action) -> str:
    if isinstance(action, Forward):
        limit = f", at most {action.max_calls} calls" if action.max_calls else ""
        return f"forward {action.number} (ring {action.timeout} s{limit})"
    if isinstance(action, Announce):
        tail = "" if action.then is not None else ", then hang up"
        return f"announce {action.prompt}{tail}"
    if isinstance(action, Queue):
        return f"queue {action.group} (wait at most {action.max_wait} s)"
    if isinstance(action, Menu):
        return (
            f"menu {action.prompt} (one digit, wait {action.timeout} s, {action.retries} retries)"
        )
    if isinstance(action, Split):
        return "split"
    return f"reject {action.code} {REASONS.get(action.code, '')}".rstrip()


def _unhandled(action: Action) -> list[str]:
    keys: tuple[str, ...]
    if isinstance(action, Forward):
        keys = ("on_busy", "on_no_answer", "on_unreachable", "on_overflow")
    elif isinstance(action, Queue):
        keys = ("on_timeout", "on_no_agents")
    elif isinstance(action, Menu):
        keys = ("on_timeout", "on_invalid")
    else:
        return []
    return [key for key in keys if getattr(action, key) is None]
