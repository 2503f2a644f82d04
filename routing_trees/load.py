"""Load a tree file: YAML with marks in, a validated ``Tree`` or every problem out.

Everything routing-trees.md asks to catch is reported here in one pass,
sorted by position, as ``FILE:LINE:COL: message``: unknown keys with a
did-you-mean, bad or non-geographic numbers, undefined lists, calendars and
prompts, prompt files in the wrong format, unreachable rules, forwards that
loop back into the customer's own numbers, nesting deeper than MAX_DEPTH,
split weights that do not add up, and, given the customers of the
configuration, what the customer does not own or is not entitled to.

Documented extensions: ``calendars`` entries may be ranges
``YYYY-MM-DD..YYYY-MM-DD`` (at most 366 days); ``caller_in``, ``date_in``,
``called`` and ``mode`` take one value or a list (any one suffices);
``numbers`` and ``caller`` take one value or a list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from media.formats import prompt_format_problem

from .entitlements import check_customer
from .load_actions import MAX_DEPTH, ActionReader
from .model import (
    MODES,
    Calendar,
    CallerList,
    Criteria,
    CustomerProfile,
    Pos,
    Prompt,
    Rule,
    Tree,
)
from .numbers import NumberKind, number_kind, prefix_to_e164, to_e164
from .shadows import shadowing_rule
from .source import Checker, Node, Problem, SourceError, did_you_mean, load_yaml
from .timewindows import TimeWindowError, parse_windows

__all__ = ["DEFAULT_TIMEZONE", "MAX_DEPTH", "TreeCheck", "check_tree", "inspect_tree", "load_tree"]

DEFAULT_TIMEZONE = "Europe/Brussels"
TOP_KEYS = ("version", "customer", "numbers", "timezone", "lists", "calendars", "prompts", "routes")
RULE_KEYS = ("name", "when", "do")
CRITERIA = ("time", "date_in", "caller", "caller_in", "anonymous", "called", "mode")
_MAX_RANGE_DAYS = 366
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER_FORMS = "write it as +3225551234, 003225551234 or 025551234"


def load_tree(path: Path | str, customers: Mapping[str, CustomerProfile] | None = None) -> Tree:
    """The validated tree of one file, or SourceError with every problem in it."""
    tree, problems = check_tree(path, customers)
    if tree is None:
        raise SourceError(problems)
    return tree


def check_tree(
    path: Path | str, customers: Mapping[str, CustomerProfile] | None = None
) -> tuple[Tree | None, list[Problem]]:
    """``(tree, [])`` for a valid file, else ``(None, problems sorted by position)``."""
    checked = inspect_tree(path, customers)
    return checked.tree, checked.problems


@dataclass(frozen=True, slots=True)
class TreeCheck:
    """One file's outcome, with the numbers it claims even when it is invalid,
    so that numbers served twice are found across files in the same pass."""

    tree: Tree | None
    problems: list[Problem]
    numbers: Mapping[str, Pos]


def inspect_tree(
    path: Path | str, customers: Mapping[str, CustomerProfile] | None = None
) -> TreeCheck:
    """Check one file; see :class:`TreeCheck`."""
    try:
        root = load_yaml(path)
    except SourceError as exc:
        return TreeCheck(None, exc.problems, {})
    loader = _TreeLoader(Path(path), customers)
    tree, problems = loader.run(root)
    return TreeCheck(tree, problems, {n: loader.pos(node) for n, node in loader.numbers.items()})


class _TreeLoader:
    def __init__(self, path: Path, customers: Mapping[str, CustomerProfile] | None) -> None:
        self.path = path
        self.customers = customers
        self.check = Checker(str(path))
        self.numbers: dict[str, Node] = {}
        self.lists: dict[str, CallerList] = {}
        self.calendars: dict[str, Calendar] = {}
        self.prompts: dict[str, Prompt] = {}
        self.actions = ActionReader(self.check, self.prompts)

    def pos(self, node: Node) -> Pos:
        return Pos(self.check.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def run(self, root: Node) -> tuple[Tree | None, list[Problem]]:
        check = self.check
        top = check.mapping(
            root, "the tree", TOP_KEYS, required=("version", "customer", "numbers", "routes")
        )
        if top is None:
            return None, check.problems
        if "version" in top:
            version = check.integer(top["version"][1], "version")
            if version is not None and version != 1:
                check.problem(top["version"][1], f"version must be 1, not {version}")
        customer = check.string(top["customer"][1], "customer") if "customer" in top else None
        if "numbers" in top:
            self._numbers(top["numbers"][1])
        timezone = DEFAULT_TIMEZONE
        if "timezone" in top:
            timezone = self._timezone(top["timezone"][1]) or DEFAULT_TIMEZONE
        if "lists" in top:
            self._lists(top["lists"][1])
        if "calendars" in top:
            self._calendars(top["calendars"][1])
        if "prompts" in top:
            self._prompts(top["prompts"][1])
        rules = self._routes(top["routes"][1]) if "routes" in top else []
        self._unreachable(rules)
        profile = None
        if self.customers is not None and customer is not None:
            profile = check_customer(
                check,
                self.customers,
                customer,
                top["customer"][1],
                self.numbers,
                self.actions.queues,
            )
        self._loops(profile)
        if check.problems or customer is None:
            problems = sorted(set(check.problems), key=lambda p: (p.line, p.column, p.message))
            return None, problems
        tree = Tree(
            file=check.file,
            customer=customer,
            numbers=tuple(self.numbers),
            timezone=timezone,
            lists=MappingProxyType(self.lists),
            calendars=MappingProxyType(self.calendars),
            prompts=MappingProxyType(self.prompts),
            rules=tuple(rules),
            number_pos=MappingProxyType({n: self.pos(node) for n, node in self.numbers.items()}),
        )
        return tree, []

    # -- top-level sections ----------------------------------------------------

    def _numbers(self, node: Node) -> None:
        items = self.check.strings(node, "numbers")
        if items is None:
            return
        if not items:
            self.check.problem(node, "numbers must list at least one number")
        for item, raw in items:
            e164 = self._phone(item, raw)
            if e164 is None:
                continue
            kind = number_kind(e164)
            if kind is not NumberKind.GEOGRAPHIC:
                self.check.problem(
                    item, f"{e164} is {kind.description}; a tree serves geographic numbers only"
                )
            elif e164 in self.numbers:
                first = self.numbers[e164].start_mark.line + 1
                self.check.problem(item, f"number {e164} is listed twice (first on line {first})")
            else:
                self.numbers[e164] = item

    def _phone(self, node: Node, raw: str) -> str | None:
        e164 = to_e164(raw)
        if e164 is None:
            hint = ""
            if raw.isdigit() and to_e164("+" + raw):
                hint = f" (did you mean '+{raw}'?)"
            self.check.problem(node, f"'{raw}' is not a phone number{hint}: {_NUMBER_FORMS}")
        return e164

    def _timezone(self, node: Node) -> str | None:
        name = self.check.string(node, "timezone")
        if name is None:
            return None
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            hint = did_you_mean(name, _zones())
            self.check.problem(
                node, f"unknown timezone '{name}'{hint}: use an IANA name such as Europe/Brussels"
            )
            return None
        return name

    def _lists(self, node: Node) -> None:
        entries = self.check.mapping(node, "lists")
        for name, (key, value) in (entries or {}).items():
            items = self.check.strings(value, f"list '{name}'")
            if items is None:
                continue
            patterns = []
            for item, raw in items:
                pattern = self._pattern(item, raw, f"list '{name}'")
                if pattern is not None:
                    patterns.append(pattern)
            # Registered even with a bad entry, so rules naming it are not "undefined".
            self.lists[name] = CallerList(name, tuple(dict.fromkeys(patterns)), self.pos(key))

    def _pattern(self, node: Node, raw: str, where: str) -> str | None:
        """An E.164 number, or an E.164 prefix followed by ``*``."""
        if raw.rstrip().endswith("*"):
            prefix = prefix_to_e164(raw)
            if prefix is None:
                self.check.problem(
                    node, f"'{raw}' in {where} is not a number prefix: write e.g. +3226* or 026*"
                )
                return None
            return prefix + "*"
        e164 = to_e164(raw)
        if e164 is None:
            self.check.problem(
                node,
                f"'{raw}' in {where} is not a phone number or a prefix ending in *: "
                + _NUMBER_FORMS,
            )
        return e164

    def _calendars(self, node: Node) -> None:
        entries = self.check.mapping(node, "calendars")
        for name, (key, value) in (entries or {}).items():
            items = self.check.strings(value, f"calendar '{name}'")
            if items is None:
                continue
            days: set[date] = set()
            for item, raw in items:
                days.update(self._dates(item, raw, name) or ())
            self.calendars[name] = Calendar(name, frozenset(days), self.pos(key))

    def _dates(self, node: Node, raw: str, calendar: str) -> list[date] | None:
        first_text, _, last_text = raw.strip().partition("..")
        first = _iso_date(first_text.strip())
        last = _iso_date(last_text.strip()) if last_text else first
        if first is None or last is None:
            self.check.problem(
                node,
                f"'{raw}' in calendar '{calendar}' is not a date: "
                "write YYYY-MM-DD, or YYYY-MM-DD..YYYY-MM-DD for a range",
            )
            return None
        span = (last - first).days + 1
        if span < 1:
            self.check.problem(node, f"the range '{raw}' ends before it starts")
            return None
        if span > _MAX_RANGE_DAYS:
            self.check.problem(
                node,
                f"the range '{raw}' spans {span} days; a range spans at most {_MAX_RANGE_DAYS}",
            )
            return None
        return [first + timedelta(days=i) for i in range(span)]

    def _prompts(self, node: Node) -> None:
        entries = self.check.mapping(node, "prompts")
        for name, (key, value) in (entries or {}).items():
            written = self.check.string(value, f"prompt '{name}'")
            if written is None:
                continue
            file = self.path.parent / written
            problem = prompt_format_problem(file, written)
            if problem is not None:
                if not file.exists():
                    problem += " (prompt paths are relative to the tree file)"
                self.check.problem(value, f"prompt '{name}': {problem}")
            self.prompts[name] = Prompt(name, written, file, self.pos(key))

    # -- routes ----------------------------------------------------------------

    def _routes(self, node: Node) -> list[Rule]:
        items = self.check.sequence(node, "routes")
        if items is None:
            return []
        if not items:
            self.check.problem(node, "routes must list at least one rule")
        rules: list[Rule] = []
        names: dict[str, Node] = {}
        for index, item in enumerate(items):
            rule = self._rule(index, item, names)
            if rule is not None:
                rules.append(rule)
        return rules

    def _rule(self, index: int, node: Node, names: dict[str, Node]) -> Rule | None:
        label = f"rule-{index + 1}"
        fields = self.check.mapping(node, f"rule {index + 1}", RULE_KEYS, required=("do",))
        if fields is None:
            return None
        name: str | None = label
        if "name" in fields:
            name = self.check.string(fields["name"][1], "rule name")
        name_node = fields["name"][1] if "name" in fields else node
        if name is not None:
            if name in names:
                first = names[name].start_mark.line + 1
                self.check.problem(name_node, f"rule name '{name}' is already used on line {first}")
            else:
                names[name] = name_node
            label = name
        when = Criteria()
        read: Criteria | None = when
        if "when" in fields:
            read = self._criteria(fields["when"][1], label)
            when = read if read is not None else when
        action = self.actions.read(fields["do"][1], label) if "do" in fields else None
        if name is None or action is None or ("when" in fields and read is None):
            return None
        return Rule(name, index, when, action, self.pos(node))

    def _criteria(self, node: Node, rule: str) -> Criteria | None:
        check = self.check
        fields = check.mapping(node, f"the when of rule '{rule}'", CRITERIA)
        if fields is None:
            return None
        before = len(check.problems)
        values: dict[str, object] = {}
        for kind, (_, value) in fields.items():
            values[kind] = getattr(self, f"_crit_{kind}")(value)
        if len(check.problems) > before or any(v is None for v in values.values()):
            return None
        if values.get("anonymous") is True and ("caller" in values or "caller_in" in values):
            check.problem(
                fields["anonymous"][0],
                f"rule '{rule}' can never hold: anonymous: true means no number, "
                "so caller and caller_in cannot match",
            )
            return None
        return Criteria(**values)  # type: ignore[arg-type]

    def _crit_time(self, node: Node) -> object:
        text = self.check.string(node, "time")
        if text is None:
            return None
        try:
            return parse_windows(text)
        except TimeWindowError as exc:
            self.check.problem_inside(node, exc.offset, f"time: {exc.message}")
            return None

    def _names(self, node: Node, what: str, known: Mapping[str, object], plural: str) -> object:
        items = self.check.strings(node, what)
        if items is None:
            return None
        for item, name in items:
            if name not in known:
                hint = did_you_mean(name, known)
                if not known:
                    hint = f": the tree defines no {plural}"
                self.check.problem(item, f"undefined {what} '{name}'{hint}")
        return tuple(dict.fromkeys(name for _, name in items))

    def _crit_date_in(self, node: Node) -> object:
        return self._names(node, "calendar", self.calendars, "calendars")

    def _crit_caller_in(self, node: Node) -> object:
        return self._names(node, "list", self.lists, "lists")

    def _crit_caller(self, node: Node) -> object:
        items = self.check.strings(node, "caller")
        if items is None:
            return None
        patterns = [self._pattern(item, raw, "caller") for item, raw in items]
        return tuple(dict.fromkeys(p for p in patterns if p is not None))

    def _crit_anonymous(self, node: Node) -> object:
        return self.check.boolean(node, "anonymous")

    def _crit_called(self, node: Node) -> object:
        items = self.check.strings(node, "called")
        if items is None:
            return None
        found = []
        for item, raw in items:
            e164 = self._phone(item, raw)
            if e164 is not None and e164 not in self.numbers:
                ours = ", ".join(self.numbers) or "none"
                self.check.problem(
                    item, f"called {e164} is not one of this tree's numbers ({ours})"
                )
            found.append(e164)
        return tuple(dict.fromkeys(n for n in found if n is not None))

    def _crit_mode(self, node: Node) -> object:
        items = self.check.strings(node, "mode")
        if items is None:
            return None
        for item, mode in items:
            if mode not in MODES:
                hint = did_you_mean(mode, MODES)
                self.check.problem(
                    item, f"unknown mode '{mode}'{hint}: use normal, drs or continuity"
                )
        return tuple(dict.fromkeys(mode for _, mode in items))

    # -- checks across the file --------------------------------------------------

    def _unreachable(self, rules: list[Rule]) -> None:
        for rule in rules:
            earlier = shadowing_rule(rules, rule, self.lists, self.calendars)
            if earlier is None:
                continue
            why = "always holds" if earlier.when.always else "holds whenever it does"
            self.check.problems.append(
                Problem(
                    rule.pos.file,
                    rule.pos.line,
                    rule.pos.column,
                    f"rule '{rule.name}' can never match: rule '{earlier.name}' "
                    f"(line {earlier.pos.line}) comes first and {why}",
                )
            )

    def _loops(self, profile: CustomerProfile | None) -> None:
        for number, node in self.actions.forwards:
            if number in self.numbers:
                self.check.problem(
                    node, f"forward to {number} loops back into this tree (one of its numbers)"
                )
            elif profile is not None and number in profile.numbers:
                self.check.problem(
                    node,
                    f"forward to {number} loops back into customer '{profile.id}' "
                    "(one of its VMS numbers)",
                )


def _iso_date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())
