"""``customers.ID.acm``: groups, operators and supervisors, every problem with its place.

engine/config.py hands this module the ``acm`` node of a customer; it reports
through the same Checker, so a wrong group or level is a ``FILE:LINE:COL``
problem and nothing starts. A ``pin`` is 4 to 8 digits or their hash from
``vms passwd`` (what the run-time directory stores, engine/acm/directory.py);
hashing every written PIN here would cost a scrypt per operator at each
start. Tiers are stored complete: when the first written tier starts after
0 s, a tier at 0 s for the group's best level is put before it, so that a
caller first waits for the group's most competent operators and the queue
widens from there (engine/acm/strategies.py).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import replace
from types import MappingProxyType

from engine.acm.mailconfig import read_email
from engine.acm.model import (
    DEFAULT_STRATEGY,
    MAX_LEVEL,
    MIN_LEVEL,
    STRATEGIES,
    AcmSettings,
    Group,
    Operator,
    Softphone,
    Tier,
)
from engine.formulas import entitlement_problem
from engine.passwords import is_hash
from routing_trees.numbers import to_e164
from routing_trees.source import Checker, Node, did_you_mean

__all__ = ["read_acm"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PIN = re.compile(r"[0-9]{4,8}")
_ACM_KEYS = ("groups", "operators", "supervisors", "email", "feature_number")
_GROUP_KEYS = ("strategy", "ring_timeout", "wrap_up", "max_wait", "auto_break_after", "tiers",
               "service_level", "announce_every")  # fmt: skip
_OPERATOR_KEYS = ("numbers", "pin", "groups", "softphone", "id")
_ID = re.compile(r"[0-9]{1,8}")
#: A softphone's digest user name (a SIP URI user part, unique across customers).
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HA1 = {"ha1": ("MD5", 32), "ha1_sha256": ("SHA-256", 64)}
_HEX = re.compile(r"[0-9a-fA-F]+")


def read_acm(
    check: Checker,
    node: Node,
    customer: str,
    formula: str | None,
    options: Collection[str],
    *,
    empty_groups: bool = False,
) -> AcmSettings | None:
    """The customer's ACM settings, or None when any problem was recorded.

    ``empty_groups``: a group without operators is kept instead of refused. The
    run-time directory allows it (a group is made before operators join it and
    emptied before it is deleted); in the file it is a mistake.
    """
    before = len(check.problems)
    what = f"customers.{customer}.acm"
    if formula is not None:
        refused = entitlement_problem(customer, formula, options, "acm")
        if refused is not None:
            check.problem(node, refused)
    fields = check.mapping(node, what, allowed=_ACM_KEYS, required=("groups", "operators"))
    if fields is None:
        return None
    written: dict[str, Node] = {}  # every well-named group, read or not: operators refer to it
    groups: dict[str, tuple[Group, Node]] = {}
    if "groups" in fields:
        for name, (key, value) in (check.mapping(fields["groups"][1], f"{what}.groups") or {}) \
                .items():  # fmt: skip
            if _name(check, key, name, "group name"):
                written[name] = key
                read = _group(check, name, value, f"{what}.groups.{name}")
                if read is not None:
                    groups[name] = read
    operators: dict[str, Operator] = {}
    named: set[str] = set()
    if "operators" in fields:
        operators = _operators(check, fields["operators"][1], f"{what}.operators", written, named)
    supervisors: tuple[str, ...] = ()
    if "supervisors" in fields:
        supervisors = _supervisors(check, fields["supervisors"][1], f"{what}.supervisors")
    email = read_email(check, fields["email"][1], f"{what}.email", written) \
        if "email" in fields else None  # fmt: skip
    feature_number = None
    if "feature_number" in fields:
        value = fields["feature_number"][1]
        text = check.string(value, f"{what}.feature_number")
        feature_number = to_e164(text) if text is not None else None
        if text is not None and feature_number is None:
            check.problem(value, f"{what}.feature_number: '{text}' is not a phone number")
    ids: dict[str, str] = {}
    for op in operators.values():
        if op.id is not None and ids.setdefault(op.id, op.name) != op.name:
            check.problem(fields["operators"][1], f"{what}.operators: '{op.name}' and "
                          f"'{ids[op.id]}' have the same id {op.id}")  # fmt: skip
    for name, mark in written.items():
        if name not in named and not empty_groups:
            check.problem(mark, f"{what}.groups: group '{name}' has no operators (add it to "
                                "an operator's groups, or remove it)")  # fmt: skip
    complete: dict[str, Group] = {}
    for name, (group, tiers) in groups.items():
        levels = [op.groups[name] for op in operators.values() if name in op.groups]
        if levels:
            complete[name] = _start_tier(check, group, max(levels), tiers,
                                         f"{what}.groups.{name}.tiers")  # fmt: skip
        elif empty_groups:
            complete[name] = group
    if len(check.problems) > before:
        return None
    return AcmSettings(MappingProxyType(complete), MappingProxyType(operators), supervisors,
                       email, feature_number)  # fmt: skip


def _name(check: Checker, key: Node, name: str, what: str) -> bool:
    if _NAME.fullmatch(name):
        return True
    check.problem(key, f"{what} '{name}' must be letters, digits, '.', '-' or '_'")
    return False


# -- groups ------------------------------------------------------------------------


def _group(check: Checker, name: str, node: Node, what: str) -> tuple[Group, Node] | None:
    """The group as written, and the node to blame for its tiers."""
    fields = check.mapping(node, what, allowed=_GROUP_KEYS)
    if fields is None:
        return None
    before = len(check.problems)
    strategy = DEFAULT_STRATEGY
    if "strategy" in fields:
        value = fields["strategy"][1]
        text = check.string(value, f"{what}.strategy")
        if text is not None and text not in STRATEGIES:
            check.problem(value, f"{what}.strategy: unknown strategy '{text}'"
                                 f"{did_you_mean(text, STRATEGIES)} (strategies: "
                                 f"{', '.join(STRATEGIES)})")  # fmt: skip
        elif text is not None:
            strategy = text
    seconds: dict[str, float] = {}
    for key, minimum in (("ring_timeout", 1.0), ("wrap_up", 0.0), ("max_wait", 1.0),
                         ("service_level", 1.0), ("announce_every", 5.0)):  # fmt: skip
        if key in fields:
            number = check.number(fields[key][1], f"{what}.{key}", minimum)
            if number is not None:
                seconds[key] = number
    auto_break: int | None = Group.auto_break_after
    if "auto_break_after" in fields:
        auto_break = check.integer(fields["auto_break_after"][1], f"{what}.auto_break_after",
                                   0, 100)  # fmt: skip
    tiers_node = fields["tiers"][1] if "tiers" in fields else node
    tiers = _tiers(check, tiers_node, f"{what}.tiers") if "tiers" in fields else ()
    if len(check.problems) > before or auto_break is None:
        return None
    group = Group(name, strategy, auto_break_after=auto_break, tiers=tiers, **seconds)
    return group, tiers_node


def _tiers(check: Checker, node: Node, what: str) -> tuple[Tier, ...]:
    """``[{after: S, min_level: L}, ...]``: each later and lower than the one before."""
    out: list[Tier] = []
    for item in check.sequence(node, what) or []:
        fields = check.mapping(item, f"each entry of {what}", allowed=("after", "min_level"),
                               required=("after", "min_level"))  # fmt: skip
        if fields is None or len(fields) < 2:
            continue
        after = check.number(fields["after"][1], f"{what} after", 0.0)
        level = check.integer(fields["min_level"][1], f"{what} min_level", MIN_LEVEL, MAX_LEVEL)
        if after is None or level is None:
            continue
        if out and after <= out[-1].after:
            check.problem(item, f"{what}: after {after:g} s must come later than the tier "
                                f"before it ({out[-1].after:g} s)")  # fmt: skip
        elif out and level >= out[-1].min_level:
            check.problem(item, f"{what}: min_level {level} must be lower than the tier before "
                                f"it ({out[-1].min_level}): a tier widens the queue")  # fmt: skip
        out.append(Tier(after, level))
    return tuple(out)


def _start_tier(check: Checker, group: Group, best: int, node: Node, what: str) -> Group:
    """``group`` with tiers that start at 0 s: at its ``best`` level unless one says otherwise."""
    if not group.tiers:
        return group
    first = group.tiers[0]
    if first.after == 0:
        if first.min_level > best:
            check.problem(node, f"{what}: no operator of the group reaches min_level "
                                f"{first.min_level} (the best is {best})")  # fmt: skip
        return group
    if first.min_level >= best:
        check.problem(node, f"{what}: the first tier's min_level ({first.min_level}) must be "
                            f"lower than the group's best level ({best}), which callers wait "
                            f"for until {first.after:g} s")  # fmt: skip
    return replace(group, tiers=(Tier(0.0, best), *group.tiers))


# -- operators ---------------------------------------------------------------------


def _operators(
    check: Checker, node: Node, what: str, groups: Collection[str], named: set[str]
) -> dict[str, Operator]:
    """Each readable operator; ``named`` gathers the groups any operator names, read or not."""
    out: dict[str, Operator] = {}
    owner: dict[str, str] = {}  # number -> operator, across the customer's operators
    for name, (key, value) in (check.mapping(node, what) or {}).items():
        if _name(check, key, name, "operator name"):
            operator = _operator(check, name, value, f"{what}.{name}", groups, owner, named)
            if operator is not None:
                out[name] = operator
    return out


def _operator(
    check: Checker,
    name: str,
    node: Node,
    what: str,
    groups: Collection[str],
    owner: dict[str, str],
    named: set[str],
) -> Operator | None:
    fields = check.mapping(node, what, allowed=_OPERATOR_KEYS, required=("pin", "groups"))
    if fields is None or "pin" not in fields or "groups" not in fields:
        return None
    if "numbers" not in fields and "softphone" not in fields:
        check.problem(node, f"{what}: give the operator numbers to be called on, a softphone "
                            "that registers with the engine, or both")  # fmt: skip
    before = len(check.problems)
    numbers: list[str] = []
    written = check.strings(fields["numbers"][1], f"{what}.numbers") if "numbers" in fields else []
    for item, text in written or []:
        e164 = to_e164(text)  # any number, mobile too: operators work from anywhere
        if e164 is None:
            check.problem(item, f"{what}.numbers: '{text}' is not a phone number")
        elif e164 in owner:
            other = "this operator" if owner[e164] == name else f"operator '{owner[e164]}'"
            check.problem(item, f"{what}.numbers: {e164} is already a number of {other}")
        else:
            owner[e164] = name
            numbers.append(e164)
    pin_node = fields["pin"][1]
    pin = check.string(pin_node, f"{what}.pin")
    if pin is not None and not (_PIN.fullmatch(pin) or is_hash(pin)):
        check.problem(pin_node, f"{what}.pin must be 4 to 8 digits (it is keyed on a phone)")
    levels: dict[str, int] = {}
    for group, (key, value) in (check.mapping(fields["groups"][1], f"{what}.groups") or {}) \
            .items():  # fmt: skip
        named.add(group)
        level = check.integer(value, f"{what}.groups.{group}", MIN_LEVEL, MAX_LEVEL)
        if group not in groups:
            hint = did_you_mean(group, groups) or f" (groups: {', '.join(groups) or 'none'})"
            check.problem(key, f"{what}.groups: undefined group '{group}'{hint}")
        elif level is not None:
            levels[group] = level
    softphone = _softphone(check, fields["softphone"][1], f"{what}.softphone") \
        if "softphone" in fields else None  # fmt: skip
    op_id = check.string(fields["id"][1], f"{what}.id") if "id" in fields else None
    if op_id is not None and not _ID.fullmatch(op_id):
        check.problem(fields["id"][1], f"{what}.id must be 1 to 8 digits (it is keyed on a "
                                       "phone)")  # fmt: skip
    if len(check.problems) > before or pin is None:
        return None
    return Operator(name, tuple(numbers), pin, MappingProxyType(levels), softphone, op_id)


def _softphone(check: Checker, node: Node, what: str) -> Softphone | None:
    """``{user: NAME, ha1: HEX, ha1_sha256: HEX}``: at least one HA1, as `vms passwd --digest`."""
    fields = check.mapping(node, what, allowed=("user", *_HA1), required=("user",))
    if fields is None or "user" not in fields:
        return None
    user = check.string(fields["user"][1], f"{what}.user")
    if user is not None and not _USER.fullmatch(user):
        check.problem(fields["user"][1], f"{what}.user '{user}' must be letters, digits, '.', "
                                         "'-' or '_'")  # fmt: skip
    ha1: dict[str, str] = {}
    for key, (algorithm, length) in _HA1.items():
        if key not in fields:
            continue
        text = check.string(fields[key][1], f"{what}.{key}")
        if text is not None and (len(text) != length or not _HEX.fullmatch(text)):
            check.problem(fields[key][1], f"{what}.{key} must be {length} hexadecimal digits, "
                                          f"as `vms passwd --digest USER CUSTOMER` prints "
                                          "(never the password itself)")  # fmt: skip
        elif text is not None:
            ha1[algorithm] = text.lower()
    if not ha1 and all(key not in fields for key in _HA1):
        check.problem(node, f"{what} needs ha1 or ha1_sha256 (from `vms passwd --digest USER "
                            "CUSTOMER`)")  # fmt: skip
    return Softphone(user, MappingProxyType(ha1)) if user is not None and ha1 else None


def _supervisors(check: Checker, node: Node, what: str) -> tuple[str, ...]:
    out: list[str] = []
    for item, name in check.strings(node, what) or []:
        if name in out:
            check.problem(item, f"{what}: '{name}' is listed twice")
        elif _name(check, item, name, "supervisor name"):
            out.append(name)
    return tuple(out)
