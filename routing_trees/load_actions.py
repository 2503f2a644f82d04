"""Read the ``do`` of a rule: one action with its modifiers and nested outcomes.

A ``do`` mapping holds exactly one action key (``forward``, ``announce``,
``queue``, ``menu``, ``split``, ``reject``) and the modifiers of that
action. Problems are recorded, not raised, so a file reports everything in
one pass. The reader also notes every forward and queue so that the tree
loader can check loops and ACM entitlements once all numbers are known.

``menu`` is written either like ``announce`` (``menu: PROMPT`` with
``options``, ``timeout``, ``retries``, ``on_timeout``, ``on_invalid`` beside
it) or as a mapping (``menu: {prompt: PROMPT, options: ...}``): the format
page names the keys but not their place, so both are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .model import (
    DEFAULT_MAX_WAIT,
    DEFAULT_MENU_RETRIES,
    DEFAULT_MENU_TIMEOUT,
    DEFAULT_RING_TIMEOUT,
    MAX_PRIORITY,
    Action,
    Announce,
    Forward,
    Menu,
    Pos,
    Prompt,
    Queue,
    Reject,
    Split,
)
from .numbers import to_e164
from .source import Checker, MappingNode, Node, ScalarNode, did_you_mean

__all__ = ["ACTIONS", "MAX_DEPTH", "MODIFIERS", "ActionReader"]

MAX_DEPTH = 8
"""How deep actions may nest (the rule's own action is level 1)."""

ACTIONS = ("forward", "announce", "queue", "menu", "split", "reject")
MODIFIERS: dict[str, tuple[str, ...]] = {
    "forward": ("timeout", "max_calls", "on_busy", "on_no_answer", "on_unreachable", "on_overflow"),
    "announce": ("then",),
    "queue": ("max_wait", "priority", "on_timeout", "on_no_agents"),
    "menu": ("options", "timeout", "retries", "on_timeout", "on_invalid"),
    "split": (),
    "reject": (),
}
_KNOWN = tuple(dict.fromkeys(ACTIONS + sum(MODIFIERS.values(), ())))
_MENU_KEYS = ("prompt", *MODIFIERS["menu"])
_DTMF = frozenset("0123456789*#")

Fields = dict[str, tuple[ScalarNode, Node]]


class ActionReader:
    """Builds actions from ``do`` nodes, recording problems in a Checker."""

    def __init__(self, check: Checker, prompts: Mapping[str, Prompt]) -> None:
        self.check = check
        self.prompts = prompts
        self.forwards: list[tuple[str, Node]] = []
        """Each forward's E.164 number and its value node (for loop checks)."""
        self.queues: list[tuple[str, Node, Node]] = []
        """Each queue's group, its key node and value node (for ACM checks)."""

    def pos(self, node: Node) -> Pos:
        return Pos(self.check.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def read(self, node: Node, rule: str, path: str = "", depth: int = 1) -> Action | None:
        """The action of ``node``; ``path`` names it in messages (``on_busy.then``)."""
        where = f"the action of rule '{rule}'" if not path else f"{path} in rule '{rule}'"
        if depth > MAX_DEPTH:
            self.check.problem(
                node,
                f"{where} nests {depth} actions deep; the limit is {MAX_DEPTH} (MAX_DEPTH): "
                "flatten this branch",
            )
            return None
        before = len(self.check.problems)
        fields = self.check.mapping(node, where, _KNOWN)
        if fields is None:
            return None
        kinds = [key for key in fields if key in ACTIONS]
        if not kinds:
            if len(self.check.problems) == before:  # else a misspelt key was the action
                self.check.problem(
                    node, f"{where} names no action: give one of {', '.join(ACTIONS)}"
                )
            return None
        if len(kinds) > 1:
            self.check.problem(
                fields[kinds[1]][0],
                f"{where} has two actions, '{kinds[0]}' and '{kinds[1]}': a do holds exactly "
                "one; put the second under an outcome (on_busy, on_no_answer, ..., then)",
            )
            return None
        kind = kinds[0]
        nested_menu = kind == "menu" and isinstance(fields["menu"][1], MappingNode)
        allowed = () if nested_menu else MODIFIERS[kind]
        ok = True
        for key, (key_node, _) in fields.items():
            if key == kind or key in allowed:
                continue
            ok = False
            if nested_menu and key in MODIFIERS["menu"]:
                self.check.problem(
                    key_node, f"'{key}' belongs inside the menu mapping, next to its prompt"
                )
                continue
            owners = " and ".join(a for a in ACTIONS if key in MODIFIERS[a])
            takes = ", ".join(allowed) if allowed else "no other keys"
            self.check.problem(
                key_node,
                f"'{key}' does not apply to {kind} (it belongs to {owners}); {kind} takes {takes}",
            )
        action = _READERS[kind](self, fields, rule, path, depth)
        return action if ok else None

    def _child(
        self, fields: Fields, key: str, rule: str, path: str, depth: int
    ) -> tuple[bool, Action | None]:
        """An optional nested action: (all right, the action or None)."""
        if key not in fields:
            return True, None
        child = self.read(fields[key][1], rule, f"{path}.{key}" if path else key, depth + 1)
        return child is not None, child

    def _children(
        self, fields: Fields, keys: tuple[str, ...], rule: str, path: str, depth: int
    ) -> dict[str, Action | None] | None:
        results = [self._child(fields, key, rule, path, depth) for key in keys]
        if not all(ok for ok, _ in results):
            return None
        return {key: child for key, (_, child) in zip(keys, results, strict=True)}

    def _prompt(self, node: Node, what: str) -> Prompt | None:
        name = self.check.string(node, what)
        if name is None:
            return None
        prompt = self.prompts.get(name)
        if prompt is None:
            hint = did_you_mean(name, self.prompts) or (
                "" if self.prompts else ": the tree defines no prompts"
            )
            self.check.problem(node, f"undefined prompt '{name}'{hint}")
        return prompt

    # -- one reader per action --------------------------------------------------

    def _forward(self, fields: Fields, rule: str, path: str, depth: int) -> Action | None:
        key_node, value = fields["forward"]
        raw = self.check.string(value, "forward")
        number = None if raw is None else to_e164(raw)
        if raw is not None and number is None:
            self.check.problem(
                value,
                f"forward '{raw}' is not a phone number: write it as +3225551234, "
                "003225551234 or 025551234",
            )
        elif number is not None:
            self.forwards.append((number, value))
        timeout = max_calls = None
        if "timeout" in fields:
            timeout = self.check.integer(fields["timeout"][1], "forward timeout", 1, 600)
        if "max_calls" in fields:
            max_calls = self.check.integer(fields["max_calls"][1], "max_calls", 1)
        outcomes = self._children(fields, MODIFIERS["forward"][2:], rule, path, depth)
        bad = ("timeout" in fields and timeout is None) or (
            "max_calls" in fields and max_calls is None
        )
        if number is None or outcomes is None or bad:
            return None
        return Forward(
            number,
            timeout if timeout is not None else DEFAULT_RING_TIMEOUT,
            max_calls,
            on_busy=outcomes["on_busy"],
            on_no_answer=outcomes["on_no_answer"],
            on_unreachable=outcomes["on_unreachable"],
            on_overflow=outcomes["on_overflow"],
            pos=self.pos(key_node),
        )

    def _announce(self, fields: Fields, rule: str, path: str, depth: int) -> Action | None:
        key_node, value = fields["announce"]
        prompt = self._prompt(value, "announce")
        ok, then = self._child(fields, "then", rule, path, depth)
        if prompt is None or not ok:
            return None
        return Announce(prompt.name, str(prompt.path), then, pos=self.pos(key_node))

    def _queue(self, fields: Fields, rule: str, path: str, depth: int) -> Action | None:
        key_node, value = fields["queue"]
        group = self.check.string(value, "queue group")
        if group is not None:
            self.queues.append((group, key_node, value))
        max_wait = None
        if "max_wait" in fields:
            max_wait = self.check.integer(fields["max_wait"][1], "queue max_wait", 1, 3600)
        priority: int | None = 0
        if "priority" in fields:
            priority = self.check.integer(fields["priority"][1], "queue priority", 0, MAX_PRIORITY)
        outcomes = self._children(fields, MODIFIERS["queue"][2:], rule, path, depth)
        if (group is None or outcomes is None or ("max_wait" in fields and max_wait is None)
                or priority is None):  # fmt: skip
            return None
        return Queue(
            group,
            max_wait if max_wait is not None else DEFAULT_MAX_WAIT,
            priority,
            on_timeout=outcomes["on_timeout"],
            on_no_agents=outcomes["on_no_agents"],
            pos=self.pos(key_node),
        )

    def _menu(self, fields: Fields, rule: str, path: str, depth: int) -> Action | None:
        key_node, value = fields["menu"]
        if isinstance(value, MappingNode):
            inner = self.check.mapping(
                value, f"the menu of rule '{rule}'", _MENU_KEYS, required=("prompt", "options")
            )
            if inner is None or "prompt" not in inner:
                return None
            prompt_node = inner["prompt"][1]
            fields = inner
        else:
            prompt_node = value
            if "options" not in fields:
                self.check.problem(key_node, 'menu needs options: {"1": action, ...}')
        prompt = self._prompt(prompt_node, "menu prompt")
        options = self._options(fields, rule, path, depth)
        timeout = retries = None
        if "timeout" in fields:
            timeout = self.check.integer(fields["timeout"][1], "menu timeout", 1, 60)
        if "retries" in fields:
            retries = self.check.integer(fields["retries"][1], "menu retries", 0, 9)
        outcomes = self._children(fields, ("on_timeout", "on_invalid"), rule, path, depth)
        bad = ("timeout" in fields and timeout is None) or ("retries" in fields and retries is None)
        if prompt is None or options is None or outcomes is None or bad:
            return None
        return Menu(
            prompt.name,
            str(prompt.path),
            MappingProxyType(options),
            timeout if timeout is not None else DEFAULT_MENU_TIMEOUT,
            retries if retries is not None else DEFAULT_MENU_RETRIES,
            on_timeout=outcomes["on_timeout"],
            on_invalid=outcomes["on_invalid"],
            pos=self.pos(key_node),
        )

    def _options(
        self, fields: Fields, rule: str, path: str, depth: int
    ) -> dict[str, Action] | None:
        if "options" not in fields:
            return None
        node = fields["options"][1]
        entries = self.check.mapping(node, "menu options")
        if entries is None:
            return None
        if not entries:
            self.check.problem(node, "menu options must not be empty")
            return None
        options: dict[str, Action] = {}
        ok = True
        for digit, (digit_node, value) in entries.items():
            if digit not in _DTMF:
                self.check.problem(
                    digit_node, f"menu option '{digit}' is not one DTMF key: use 0-9, * or #"
                )
                ok = False
                continue
            prefix = f"{path}.options.{digit}" if path else f"options.{digit}"
            child = self.read(value, rule, prefix, depth + 1)
            if child is None:
                ok = False
            else:
                options[digit] = child
        return options if ok else None

    def _split(self, fields: Fields, rule: str, path: str, depth: int) -> Action | None:
        key_node, value = fields["split"]
        items = self.check.sequence(value, "split")
        if items is None:
            return None
        if not items:
            self.check.problem(value, "split needs at least one branch: [{weight: 100, do: ...}]")
            return None
        branches: list[tuple[int, Action]] = []
        ok = True
        for i, item in enumerate(items):
            branch = self.check.mapping(
                item, f"split branch {i + 1}", ("weight", "do"), required=("weight", "do")
            )
            if branch is None or "weight" not in branch or "do" not in branch:
                ok = False
                continue
            weight = self.check.integer(branch["weight"][1], "split weight", 1, 100)
            prefix = f"{path}.split[{i}]" if path else f"split[{i}]"
            child = self.read(branch["do"][1], rule, prefix, depth + 1)
            if weight is None or child is None:
                ok = False
            else:
                branches.append((weight, child))
        if not ok:
            return None
        total = sum(weight for weight, _ in branches)
        if total != 100:
            self.check.problem(
                key_node, f"split weights add up to {total}; they must add up to 100"
            )
            return None
        return Split(tuple(branches), pos=self.pos(key_node))

    def _reject(self, fields: Fields, rule: str, path: str, depth: int) -> Action | None:
        key_node, value = fields["reject"]
        code = self.check.integer(value, "reject code")
        if code is None:
            return None
        if not 400 <= code <= 699:
            self.check.problem(
                value, f"reject needs a SIP final response code from 400 to 699, not {code}"
            )
            return None
        return Reject(code, pos=self.pos(key_node))


_READERS = {
    "forward": ActionReader._forward,
    "announce": ActionReader._announce,
    "queue": ActionReader._queue,
    "menu": ActionReader._menu,
    "split": ActionReader._split,
    "reject": ActionReader._reject,
}
