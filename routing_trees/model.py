"""The routing tree as immutable data: actions, rules, trees and customer profiles.

Everything here is a frozen dataclass built once by ``load.py`` and then
shared by every call, so nothing can change under a call in progress. Every
action and rule keeps its source position, so the engine can still say
``FILE:LINE:COL:`` when it finds, at run time, something it cannot do.

Default values that the YAML may leave out live here, next to the fields:
a forward rings for :data:`DEFAULT_RING_TIMEOUT` seconds with no limit on
concurrent calls; a queue waits :data:`DEFAULT_MAX_WAIT` seconds; a menu
waits :data:`DEFAULT_MENU_TIMEOUT` seconds for a digit and asks again
:data:`DEFAULT_MENU_RETRIES` times. ``to_json`` leaves defaults out, so it
gives back the shape a user would write.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeAlias

from .timewindows import TimeWindows

__all__ = [
    "DEFAULT_MAX_WAIT",
    "DEFAULT_MENU_RETRIES",
    "DEFAULT_MENU_TIMEOUT",
    "DEFAULT_RING_TIMEOUT",
    "FORMULAS",
    "MAX_PRIORITY",
    "MODES",
    "NOWHERE",
    "OPTIONS",
    "Action",
    "Announce",
    "Calendar",
    "CallerList",
    "Criteria",
    "CustomerProfile",
    "Forward",
    "Menu",
    "Pos",
    "Prompt",
    "Queue",
    "Reject",
    "Rule",
    "Split",
    "Tree",
    "resolve",
    "walk",
]

DEFAULT_RING_TIMEOUT = 30
DEFAULT_MAX_WAIT = 300
#: The highest ``priority`` of a queued call (the shared state orders by it exactly).
MAX_PRIORITY = 1023
DEFAULT_MENU_TIMEOUT = 5
DEFAULT_MENU_RETRIES = 2

MODES = ("normal", "drs", "continuity")
FORMULAS = ("classic", "drs", "continuity", "outbound")
OPTIONS = ("acm", "recording", "statistics")

JSON: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Pos:
    """Where something was written: file, 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NOWHERE = Pos("<memory>", 0, 0)
"""The position of objects built in code rather than read from a file."""


# -- actions ---------------------------------------------------------------
# ``pos`` never takes part in equality: two actions that do the same thing
# are equal wherever they were written.


@dataclass(frozen=True, slots=True)
class Forward:
    """Ring a fixed or mobile number; the ``on_*`` outcomes are actions too."""

    number: str
    timeout: int = DEFAULT_RING_TIMEOUT
    max_calls: int | None = None
    on_busy: Action | None = None
    on_no_answer: Action | None = None
    on_unreachable: Action | None = None
    on_overflow: Action | None = None
    pos: Pos = field(default=NOWHERE, compare=False)

    def children(self) -> Iterator[tuple[str, Action]]:
        for key in ("on_busy", "on_no_answer", "on_unreachable", "on_overflow"):
            child = getattr(self, key)
            if child is not None:
                yield key, child

    def to_json(self) -> JSON:
        out: JSON = {"forward": self.number}
        if self.timeout != DEFAULT_RING_TIMEOUT:
            out["timeout"] = self.timeout
        if self.max_calls is not None:
            out["max_calls"] = self.max_calls
        return _with_children(out, self)


@dataclass(frozen=True, slots=True)
class Announce:
    """Answer and play a prompt; then hang up, or go on with ``then``."""

    prompt: str
    prompt_path: str
    """The prompt file, resolved against the tree file's directory."""
    then: Action | None = None
    pos: Pos = field(default=NOWHERE, compare=False)

    def children(self) -> Iterator[tuple[str, Action]]:
        if self.then is not None:
            yield "then", self.then

    def to_json(self) -> JSON:
        return _with_children({"announce": self.prompt}, self)


@dataclass(frozen=True, slots=True)
class Queue:
    """Hand the call to an ACM group of qualified operators."""

    group: str
    max_wait: int = DEFAULT_MAX_WAIT
    #: Higher is served first (a rule for a list of callers jumps them ahead); 0 to MAX_PRIORITY.
    priority: int = 0
    on_timeout: Action | None = None
    on_no_agents: Action | None = None
    pos: Pos = field(default=NOWHERE, compare=False)

    def children(self) -> Iterator[tuple[str, Action]]:
        for key in ("on_timeout", "on_no_agents"):
            child = getattr(self, key)
            if child is not None:
                yield key, child

    def to_json(self) -> JSON:
        out: JSON = {"queue": self.group}
        if self.max_wait != DEFAULT_MAX_WAIT:
            out["max_wait"] = self.max_wait
        if self.priority:
            out["priority"] = self.priority
        return _with_children(out, self)


@dataclass(frozen=True, slots=True)
class Menu:
    """Answer, play a prompt, collect one DTMF digit and follow its option.

    ``timeout`` is how long to wait for a digit; after ``retries`` more tries
    without a digit, ``on_timeout`` runs (or the call ends); a digit with no
    option runs ``on_invalid`` (or counts as a try).
    """

    prompt: str
    prompt_path: str
    options: Mapping[str, Action] = field(hash=False)
    timeout: int = DEFAULT_MENU_TIMEOUT
    retries: int = DEFAULT_MENU_RETRIES
    on_timeout: Action | None = None
    on_invalid: Action | None = None
    pos: Pos = field(default=NOWHERE, compare=False)

    def children(self) -> Iterator[tuple[str, Action]]:
        for digit, child in self.options.items():
            yield f"options.{digit}", child
        for key in ("on_timeout", "on_invalid"):
            child = getattr(self, key)
            if child is not None:
                yield key, child

    def to_json(self) -> JSON:
        out: JSON = {
            "menu": self.prompt,
            "options": {digit: child.to_json() for digit, child in self.options.items()},
        }
        if self.timeout != DEFAULT_MENU_TIMEOUT:
            out["timeout"] = self.timeout
        if self.retries != DEFAULT_MENU_RETRIES:
            out["retries"] = self.retries
        for key in ("on_timeout", "on_invalid"):
            child = getattr(self, key)
            if child is not None:
                out[key] = child.to_json()
        return out


@dataclass(frozen=True, slots=True)
class Split:
    """A weighted choice; the weights are whole percentages adding up to 100."""

    branches: tuple[tuple[int, Action], ...]
    pos: Pos = field(default=NOWHERE, compare=False)

    def children(self) -> Iterator[tuple[str, Action]]:
        for i, (_, child) in enumerate(self.branches):
            yield f"split[{i}]", child

    def choose(self, roll: int) -> Action:
        """The branch for ``roll`` in 0..99 (the caller draws it, e.g. ``randrange(100)``)."""
        for weight, child in self.branches:
            if roll < weight:
                return child
            roll -= weight
        return self.branches[-1][1]

    def to_json(self) -> JSON:
        return {"split": [{"weight": w, "do": child.to_json()} for w, child in self.branches]}


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the call with a SIP final response code (400..699)."""

    code: int
    pos: Pos = field(default=NOWHERE, compare=False)

    def children(self) -> Iterator[tuple[str, Action]]:
        return iter(())

    def to_json(self) -> JSON:
        return {"reject": self.code}


Action: TypeAlias = Forward | Announce | Queue | Menu | Split | Reject


def _with_children(out: JSON, action: Forward | Announce | Queue) -> JSON:
    for key, child in action.children():
        out[key] = child.to_json()
    return out


def walk(action: Action, path: str = "") -> Iterator[tuple[str, Action]]:
    """Yield ``(path, action)`` for an action and every action nested in it.

    The root's path is ``""``; nested paths join the keys that lead there
    with dots: ``on_no_answer.on_timeout``, ``on_overflow.split[1]`` (0-based
    branch), ``options.2``. Call records carry this "action path".
    """
    yield path, action
    for key, child in action.children():
        yield from walk(child, f"{path}.{key}" if path else key)


_SEGMENT = re.compile(r"options\.[0-9*#]|split\[\d+\]|[a-z_]+")


def resolve(action: Action, path: str) -> Action | None:
    """The action at ``path`` (as :func:`walk` names it) under ``action``, or None."""
    if not path:
        return action
    current: Action = action
    rest = path
    while rest:
        match = _SEGMENT.match(rest)
        if match is None:
            return None
        key = match.group(0)
        found = next((child for name, child in current.children() if name == key), None)
        if found is None:
            return None
        current = found
        rest = rest[match.end() :]
        if rest.startswith("."):
            rest = rest[1:]
        elif rest:
            return None
    return current


# -- the tree ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Criteria:
    """A rule's ``when``: every criterion given must hold (empty = always).

    Names of lists and calendars are kept as written; ``Tree`` resolves them.
    Where a criterion takes several values (``caller``, ``caller_in``,
    ``date_in``, ``called``, ``mode``), any one of them is enough.
    """

    time: TimeWindows | None = None
    date_in: tuple[str, ...] = ()
    caller: tuple[str, ...] = ()
    """E.164 numbers, or E.164 prefixes ending in ``*``."""
    caller_in: tuple[str, ...] = ()
    anonymous: bool | None = None
    called: tuple[str, ...] = ()
    mode: tuple[str, ...] = ()

    @property
    def always(self) -> bool:
        return self == _ALWAYS

    def kinds(self) -> list[str]:
        """The names of the criteria this rule uses, in the order above."""
        return [
            name
            for name in ("time", "date_in", "caller", "caller_in", "anonymous", "called", "mode")
            if getattr(self, name) not in (None, ())
        ]


_ALWAYS = Criteria()


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of ``routes``: a name, its criteria and its action tree."""

    name: str
    index: int
    """0-based position in ``routes`` (messages say ``rule index+1``)."""
    when: Criteria
    do: Action
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class CallerList:
    """A named caller list: E.164 numbers and ``+prefix*`` patterns."""

    name: str
    entries: tuple[str, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Calendar:
    """A named set of local dates (holidays, closures)."""

    name: str
    dates: frozenset[date]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A named prompt: the path as written and the file it resolves to."""

    name: str
    written: str
    path: Path
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True, eq=False)
class Tree:
    """One validated tree file. Compared by identity: each load is its own tree."""

    file: str
    customer: str
    numbers: tuple[str, ...]
    timezone: str
    lists: Mapping[str, CallerList]
    calendars: Mapping[str, Calendar]
    prompts: Mapping[str, Prompt]
    rules: tuple[Rule, ...]
    number_pos: Mapping[str, Pos] = field(default_factory=dict)
    """Where each of ``numbers`` was written (for cross-file messages)."""


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """What the configuration says about a customer, as far as trees care.

    ``acm_groups`` is None when the groups are not known (then queue groups
    are not checked).
    """

    id: str
    formula: str
    options: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()
    acm_groups: frozenset[str] | None = None
