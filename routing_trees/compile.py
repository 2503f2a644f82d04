"""Compile a tree into bitmask tables, so evaluating a call costs a few lookups.

Rule ``i`` is bit ``i``. For each kind of criterion the compiler precomputes,
for every value a call can bring, the mask of rules that value satisfies
(rules that do not use the kind always have their bit set):

- time: the local minute of the week indexes a 10,080-entry table of small
  indices into the list of distinct masks (a sweep over window edges);
- date_in: a dict from local date ordinal to mask (default: rules without it);
- caller, caller_in, anonymous: one mask per caller, from a dict of exact
  numbers plus one dict per distinct prefix length, cached per caller; a
  withheld number has its own precomputed mask;
- called and mode: small dicts.

The masks are ANDed and the winner is the lowest set bit. Decisions are
built once per rule, so an evaluation allocates nothing. Local time comes
from the per-minute cache of ``localtime.py``. ``evaluate.interpret`` is the
reference this must always agree with (see the property test).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

from .evaluate import interpret
from .facts import Decision, Facts
from .localtime import clock_for
from .model import Rule, Tree
from .timewindows import MINUTES_PER_WEEK

__all__ = ["CompiledTree", "compile_tree"]

_CALLER_CACHE_LIMIT = 4096
_ALL = -1
"""A mask with every bit set (``x & -1 == x``), for kinds no rule uses."""


class _CallerMatcher:
    """Mask of rules whose number patterns (exact or prefix) match a caller."""

    __slots__ = ("base", "exact", "prefixes")

    def __init__(self, base: int) -> None:
        self.base = base
        self.exact: dict[str, int] = {}
        self.prefixes: list[tuple[int, dict[str, int]]] = []

    def add(self, bit: int, patterns: Iterable[str]) -> None:
        for pattern in patterns:
            if pattern.endswith("*"):
                prefix = pattern[:-1]
                table = next((t for n, t in self.prefixes if n == len(prefix)), None)
                if table is None:
                    table = {}
                    self.prefixes.append((len(prefix), table))
                table[prefix] = table.get(prefix, 0) | bit
            else:
                self.exact[pattern] = self.exact.get(pattern, 0) | bit

    def mask(self, number: str) -> int:
        mask = self.base | self.exact.get(number, 0)
        for length, table in self.prefixes:
            mask |= table.get(number[:length], 0)
        return mask


class CompiledTree:
    """A tree ready for calls: ``evaluate(facts)`` in a few microseconds."""

    __slots__ = (
        "_anonymous",
        "_called",
        "_called_default",
        "_caller_cache",
        "_clock",
        "_date_default",
        "_dates",
        "_decisions",
        "_matchers",
        "_mode_default",
        "_modes",
        "_named_caller",
        "_no_match",
        "_time_index",
        "_time_masks",
        "tree",
    )

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        rules = tree.rules
        full = (1 << len(rules)) - 1
        self._clock = clock_for(tree.timezone)
        self._decisions = tuple(Decision(r.name, r.index, r.do, tree) for r in rules)
        self._no_match = Decision(None, -1, None, tree)
        self._time_masks, self._time_index = _time_table(rules)
        self._dates, self._date_default = self._date_masks(full)
        self._called, self._called_default = _value_masks(rules, "called", full)
        self._modes, self._mode_default = _value_masks(rules, "mode", full)
        self._build_callers(full)
        self._caller_cache: dict[str, int] = {}

    @property
    def file(self) -> str:
        return self.tree.file

    @property
    def customer(self) -> str:
        return self.tree.customer

    @property
    def numbers(self) -> tuple[str, ...]:
        return self.tree.numbers

    def evaluate(self, facts: Facts) -> Decision:
        """The first rule whose criteria hold for ``facts``, with its action tree."""
        minute = int(facts.at // 60)
        clock = self._clock
        local = clock.cache.get(minute)
        if local is None:
            local = clock.fill(minute)
        mask = self._time_masks[self._time_index[local[0]]]
        mask &= self._dates.get(local[1], self._date_default)
        caller = facts.caller
        if caller is None:
            mask &= self._anonymous
        else:
            caller_mask = self._caller_cache.get(caller)
            if caller_mask is None:
                caller_mask = self._caller_mask(caller)
            mask &= caller_mask
        mask &= self._called.get(facts.called, self._called_default)
        mask &= self._modes.get(facts.mode, self._mode_default)
        if not mask:
            return self._no_match
        return self._decisions[(mask & -mask).bit_length() - 1]

    def interpret(self, facts: Facts) -> Decision:
        """The reference evaluation (slow); equal to ``evaluate`` by construction."""
        return interpret(self.tree, facts)

    # -- building ------------------------------------------------------------

    def _date_masks(self, full: int) -> tuple[dict[int, int], int]:
        users = 0
        per_day: dict[int, int] = {}
        for rule in self.tree.rules:
            if not rule.when.date_in:
                continue
            bit = 1 << rule.index
            users |= bit
            for name in rule.when.date_in:
                for day in self.tree.calendars[name].dates:
                    ordinal = day.toordinal()
                    per_day[ordinal] = per_day.get(ordinal, 0) | bit
        default = full & ~users
        return {day: mask | default for day, mask in per_day.items()}, default

    def _build_callers(self, full: int) -> None:
        """Caller constraints go into slots: a rule with both ``caller`` and
        ``caller_in`` needs both, so its second one goes into a second matcher."""
        constraints: list[list[tuple[str, ...]]] = []
        for rule in self.tree.rules:
            own: list[tuple[str, ...]] = []
            if rule.when.caller:
                own.append(rule.when.caller)
            if rule.when.caller_in:
                own.append(
                    tuple(p for name in rule.when.caller_in for p in self.tree.lists[name].entries)
                )
            constraints.append(own)
        slots = max((len(c) for c in constraints), default=0)
        self._matchers = []
        for slot in range(slots):
            unconstrained = sum(1 << i for i, c in enumerate(constraints) if len(c) <= slot)
            matcher = _CallerMatcher(unconstrained)
            for i, own in enumerate(constraints):
                if len(own) > slot:
                    matcher.add(1 << i, own[slot])
            self._matchers.append(matcher)
        self._named_caller = full
        self._anonymous = full
        for rule in self.tree.rules:
            bit = 1 << rule.index
            anonymous = rule.when.anonymous
            if anonymous is True:
                self._named_caller &= ~bit
            if anonymous is False or rule.when.caller or rule.when.caller_in:
                self._anonymous &= ~bit

    def _caller_mask(self, caller: str) -> int:
        mask = self._named_caller
        for matcher in self._matchers:
            mask &= matcher.mask(caller)
        cache = self._caller_cache
        if len(cache) >= _CALLER_CACHE_LIMIT:
            cache.clear()
        cache[caller] = mask
        return mask


def _value_masks(rules: tuple[Rule, ...], kind: str, full: int) -> tuple[dict[str, int], int]:
    """For ``called`` and ``mode``: value to mask, and the mask for other values."""
    users = 0
    per_value: dict[str, int] = {}
    for rule in rules:
        values: tuple[str, ...] = getattr(rule.when, kind)
        if values:
            bit = 1 << rule.index
            users |= bit
            for value in values:
                per_value[value] = per_value.get(value, 0) | bit
    default = full & ~users
    return {value: mask | default for value, mask in per_value.items()}, default


def _time_table(rules: tuple[Rule, ...]) -> tuple[list[int], array[int]]:
    """Distinct masks, and for each minute of the week the index of its mask.

    A sweep over the window edges of all rules: at each edge a rule's bit
    turns on or off, and the minutes up to the next edge share one mask.
    """
    if not any(r.when.time for r in rules):
        return [_ALL], _ZERO_INDEX
    edges: dict[int, int] = {0: 0}
    base = 0
    for rule in rules:
        bit = 1 << rule.index
        if rule.when.time is None:
            base |= bit
            continue
        for start, end in rule.when.time.intervals:
            edges[start] = edges.get(start, 0) ^ bit
            if end < MINUTES_PER_WEEK:
                edges[end] = edges.get(end, 0) ^ bit
    masks: list[int] = []
    position: dict[int, int] = {}
    segments: list[tuple[int, int, int]] = []
    points = sorted(edges)
    current = base
    for i, start in enumerate(points):
        current ^= edges[start]
        end = points[i + 1] if i + 1 < len(points) else MINUTES_PER_WEEK
        slot = position.get(current)
        if slot is None:
            slot = position[current] = len(masks)
            masks.append(current)
        segments.append((start, end, slot))
    index = array("B" if len(masks) <= 256 else "H", [0]) * MINUTES_PER_WEEK
    for start, end, slot in segments:
        index[start:end] = array(index.typecode, [slot]) * (end - start)
    return masks, index


_ZERO_INDEX = array("B", [0]) * MINUTES_PER_WEEK


def compile_tree(tree: Tree) -> CompiledTree:
    """Build the evaluator of one validated tree."""
    return CompiledTree(tree)
