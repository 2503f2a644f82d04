"""The four formulas and what each includes (requirements.md, "Formulas").

One table, consulted wherever a capability is used, so that a customer
without an option gets a refusal that names the customer, its formula and
what is missing, never a silent no-op.
"""

from __future__ import annotations

__all__ = ["FORMULAS", "OPTIONS", "entitlement_problem", "offers"]

STANDARD, OPTIONAL = "standard", "option"

#: component -> formula -> STANDARD / OPTIONAL (absent: not offered)
_TABLE: dict[str, dict[str, str]] = {
    "trm": {"classic": STANDARD, "drs": STANDARD, "continuity": STANDARD},
    "acm": {"classic": OPTIONAL, "drs": OPTIONAL, "continuity": OPTIONAL},
    "campaigns": {"outbound": STANDARD},
    "recording": {"classic": OPTIONAL},
    "statistics": {"classic": OPTIONAL, "outbound": OPTIONAL},
    "mobile": {"continuity": STANDARD},
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
}


def offers(formula: str, component: str) -> str | None:
    """STANDARD, OPTIONAL, or None when the formula does not offer it."""
    return _TABLE[component].get(formula)


def entitlement_problem(
    customer: str, formula: str, options: frozenset[str], component: str
) -> str | None:
    """Why ``customer`` may not use ``component``, or None when it may."""
    kind = offers(formula, component)
    name = _NAMES[component]
    if kind is None:
        return f"customer '{customer}' has the {formula} formula, which does not include {name}"
    if kind == OPTIONAL and component not in options:
        return (
            f"customer '{customer}' ({formula} formula) has not ordered the '{component}' "
            f"option needed for {name}"
        )
    return None
