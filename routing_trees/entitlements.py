"""What a customer's formula and options allow its tree to do (``--config`` checks).

The requirements' formula table: Classic, DRS and Voice Continuity include
traffic routing (TRM) and offer Agent Contact Management (ACM, i.e. queues)
as an option; Outbound has no traffic routing at all. A tree may only serve
numbers the customer owns, and may only queue to ACM groups it has.
"""

from __future__ import annotations

from collections.abc import Mapping

from .model import CustomerProfile
from .source import Checker, Node, did_you_mean

__all__ = ["TRM_FORMULAS", "check_customer"]

TRM_FORMULAS = frozenset({"classic", "drs", "continuity"})
"""Formulas with traffic routing; each offers ACM (queues) as an option."""


def check_customer(
    check: Checker,
    customers: Mapping[str, CustomerProfile],
    customer: str,
    node: Node,
    numbers: Mapping[str, Node],
    queues: list[tuple[str, Node, Node]],
) -> CustomerProfile | None:
    """Record what ``customer`` may not do; returns its profile when it exists.

    ``numbers`` maps the tree's numbers to their nodes; ``queues`` holds each
    queue's group with its key and value nodes.
    """
    profile = customers.get(customer)
    if profile is None:
        hint = did_you_mean(customer, customers)
        if not customers:
            hint = ": the configuration defines no customers"
        check.problem(node, f"unknown customer '{customer}'{hint}")
        return None
    who = f"customer '{customer}' (formula {profile.formula})"
    if profile.formula not in TRM_FORMULAS:
        check.problem(node, f"{who} has no traffic routing (TRM): a routing tree cannot serve it")
        return profile
    for number, number_node in numbers.items():
        if number not in profile.numbers:
            check.problem(
                number_node,
                f"{number} is not a number of {who}: add it to the customer's numbers "
                "in the configuration, or remove it here",
            )
    for group, key, value in queues:
        if "acm" not in profile.options:
            check.problem(
                key, f"queue needs Agent Contact Management, but {who} lacks the 'acm' option"
            )
        elif profile.acm_groups is not None and group not in profile.acm_groups:
            hint = did_you_mean(group, profile.acm_groups)
            if not profile.acm_groups:
                hint = f": customer '{customer}' has no ACM groups"
            check.problem(value, f"undefined ACM group '{group}' of customer '{customer}'{hint}")
    return profile
