"""The four formulas and what each includes (requirements.md, "Formulas").

One table, consulted wherever a capability is used, so that a customer
without an option gets a refusal that names the customer, its formula and
what is missing, never a silent no-op.

The table's rows are requirements.md's, plus two its table leaves out.
DRS and Voice Continuity are sold as formulas: DRS is standard in the DRS
formula, Voice Continuity (like its mobile management) in the Voice
Continuity formula. The table says nothing of DRS for Classic, but
contract.md's own Classic customer has a customer number "keyed in for DRS"
and a DRS password: so Classic offers DRS as an option, ordered by the DRS
password the operator hands over (``customers.ID.drs_password``), the same
rule as ``engine.modes.entitlement``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal, Protocol

__all__ = ["FORMULAS", "OPTIONS", "Component", "Entitled", "entitlement_problem", "may", "offers"]

STANDARD, OPTIONAL = "standard", "option"

#: What a customer may be entitled to: the table's rows (a typo is a type error).
Component = Literal[
    "trm", "acm", "campaigns", "recording", "statistics", "mobile", "drs", "continuity"
]

#: component -> formula -> STANDARD / OPTIONAL (absent: not offered)
_TABLE: dict[str, dict[str, str]] = {
    "trm": {"classic": STANDARD, "drs": STANDARD, "continuity": STANDARD},
    "acm": {"classic": OPTIONAL, "drs": OPTIONAL, "continuity": OPTIONAL},
    "campaigns": {"outbound": STANDARD},
    "recording": {"classic": OPTIONAL},
    "statistics": {"classic": OPTIONAL, "outbound": OPTIONAL},
    "mobile": {"continuity": STANDARD},
    "drs": {"drs": STANDARD, "classic": OPTIONAL},
    "continuity": {"continuity": STANDARD},
}

FORMULAS = ("classic", "drs", "continuity", "outbound")
#: The components a customer orders as options in its configuration.
OPTIONS = ("acm", "recording", "statistics")

_NAMES = {
    "trm": "Traffic Routing Management",
    "acm": "Agent Contact Management",
    "campaigns": "outbound campaigns",
    "recording": "call recording",
    "statistics": "the statistics report",
    "mobile": "mobile management",
    "drs": "DRS",
    "continuity": "Voice Continuity",
}


#: How a customer orders an option, for the refusal (default: add it to its options).
_HOW_TO_ORDER = {"drs": "set customers.{id}.drs_password (made by `vms passwd`)"}


class Entitled(Protocol):
    """What an entitlement check reads of a customer (``engine.config.Customer``)."""

    @property
    def id(self) -> str: ...

    @property
    def formula(self) -> str: ...

    @property
    def options(self) -> Collection[str]: ...

    @property
    def drs_password(self) -> str | None: ...


def offers(formula: str, component: str) -> str | None:
    """STANDARD, OPTIONAL, or None when the formula does not offer it."""
    return _TABLE[component].get(formula)


def entitlement_problem(
    customer: str, formula: str, options: Collection[str], component: str
) -> str | None:
    """Why ``customer`` may not use ``component``, or None when it may."""
    kind = offers(formula, component)
    name = _NAMES[component]
    if kind is None:
        return (
            f"customer '{customer}' has the {formula} formula, which does not include {name} "
            f"({_where(component)})"
        )
    if kind == OPTIONAL and component not in options:
        order = _HOW_TO_ORDER.get(component, "add '{option}' to customers.{id}.options")
        how = order.format(id=customer, option=component)
        return f"customer '{customer}' ({formula} formula) has not ordered {name}: {how}"
    return None


def _where(component: str) -> str:
    """``standard in drs; an option of classic``: where the table has ``component``."""
    parts = []
    for kind, label in ((STANDARD, "standard in"), (OPTIONAL, "an option of")):
        formulas = [f for f in FORMULAS if _TABLE[component].get(f) == kind]
        if formulas:
            parts.append(f"{label} {', '.join(formulas)}")
    return "; ".join(parts)


def may(customer: Entitled, component: Component) -> str | None:
    """Why ``customer`` may not use ``component`` now, or None: the engine's run-time check.

    A DRS password is how a Classic customer orders DRS, so it counts as that option.
    """
    options = set(customer.options)
    if customer.drs_password is not None:
        options.add("drs")
    return entitlement_problem(customer.id, customer.formula, options, component)
