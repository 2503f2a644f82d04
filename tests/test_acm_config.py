"""``customers.ID.acm``: groups, operators, supervisors, and every problem at its place."""

from __future__ import annotations

from pathlib import Path

import pytest
from configkit import problems_of

from engine.acm.model import Group, Tier
from engine.config import load_config

HEAD = """\
trees: trees/
customers:
  acme:
    formula: classic
    options: [acm]
    numbers: ["+3225551234"]
    acm:
"""

ISSUE = """\
      groups:
        sales: {strategy: level-then-longest-idle, ring_timeout: 15, wrap_up: 10, max_wait: 300,
                auto_break_after: 3, tiers: [{after: 30, min_level: 1}]}
        support: {strategy: round-robin}
      operators:
        anna: {numbers: ["+32470001104"], pin: "1234", groups: {sales: 3}}
        bert: {numbers: ["0470 00 11 05", "+3225550001"], pin: 0042, groups: {sales: 1, support: 2}}
      supervisors: [carla]
"""


def write(tmp_path: Path, acm: str, head: str = HEAD) -> Path:
    path = tmp_path / "vms.yaml"
    path.write_text(head + acm)
    return path


def problems(tmp_path: Path, acm: str, head: str = HEAD) -> list[str]:
    return problems_of(write(tmp_path, acm, head))


def test_the_issue_example_reads_with_defaults_and_a_starting_tier(tmp_path: Path) -> None:
    acm = load_config(write(tmp_path, ISSUE)).customers["acme"].acm
    assert acm is not None
    assert acm.groups["sales"] == Group(
        "sales", "level-then-longest-idle", 15, 10, 300, 3, (Tier(0, 3), Tier(30, 1))
    )
    # Untold keys keep their defaults; no tiers: every level from the start.
    assert acm.groups["support"] == Group("support", "round-robin")
    anna, bert = acm.operators["anna"], acm.operators["bert"]
    assert anna.numbers == ("+32470001104",) and dict(anna.groups) == {"sales": 3}
    assert bert.numbers == ("+32470001105", "+3225550001")
    assert bert.pin == "0042"  # the digits as written, leading zeros kept
    assert dict(bert.groups) == {"sales": 1, "support": 2}
    assert acm.supervisors == ("carla",)
    assert "1234" not in repr(anna)


def test_a_customer_without_acm_has_none(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "", HEAD.replace("    acm:\n", "")))
    assert config.customers["acme"].acm is None


def test_a_tier_from_zero_is_kept_as_written(tmp_path: Path) -> None:
    acm = load_config(write(tmp_path, """\
      groups:
        sales: {tiers: [{after: 0, min_level: 2}, {after: 20, min_level: 1}]}
      operators:
        anna: {numbers: ["+32470001104"], pin: "1234", groups: {sales: 3}}
""")).customers["acme"].acm
    assert acm is not None
    assert acm.groups["sales"].tiers == (Tier(0, 2), Tier(20, 1))


def test_acm_needs_the_option(tmp_path: Path) -> None:
    found = problems(tmp_path, ISSUE, HEAD.replace("    options: [acm]\n", ""))
    assert found == [
        "F:7:7: customer 'acme' (classic formula) has not ordered Agent Contact Management: "
        "add 'acm' to customers.acme.options"
    ]


def test_every_problem_at_its_place(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
      groups:
        sales: {strategy: longest-idle, ring_timeout: 0, auto_break_after: -1}
        support: {}
        empty: {}
        "bad name": {}
      operators:
        anna: {numbers: ["+32470001104", "12"], pin: "12a4", groups: {sales: 10, suport: 2}}
        bert: {numbers: ["0470001104"], pin: "123456789", groups: {support: 1}}
        carla: {numbers: ["+32470001106"], groups: {support: 1}}
      supervisors: [carla, carla]
      queues: {}
""")
    assert found == [
        "F:9:27: customers.acme.acm.groups.sales.strategy: unknown strategy 'longest-idle' "
        "(did you mean 'level-then-longest-idle'?) (strategies: level-then-longest-idle, "
        "round-robin, fewest-calls, ring-all)",
        "F:9:55: customers.acme.acm.groups.sales.ring_timeout must be at least 1, not 0",
        "F:9:76: customers.acme.acm.groups.sales.auto_break_after must be at least 0, not -1",
        "F:11:9: customers.acme.acm.groups: group 'empty' has no operators (add it to an "
        "operator's groups, or remove it)",
        "F:12:9: group name 'bad name' must be letters, digits, '.', '-' or '_'",
        "F:14:42: customers.acme.acm.operators.anna.numbers: '12' is not a phone number",
        "F:14:54: customers.acme.acm.operators.anna.pin must be 4 to 8 digits (it is keyed on "
        "a phone)",
        "F:14:78: customers.acme.acm.operators.anna.groups.sales must be at most 9, not 10",
        "F:14:82: customers.acme.acm.operators.anna.groups: undefined group 'suport' "
        "(did you mean 'support'?)",
        "F:15:26: customers.acme.acm.operators.bert.numbers: +32470001104 is already a number "
        "of operator 'anna'",
        "F:15:46: customers.acme.acm.operators.bert.pin must be 4 to 8 digits (it is keyed on "
        "a phone)",
        "F:16:16: customers.acme.acm.operators.carla lacks the required key 'pin'",
        "F:17:28: customers.acme.acm.supervisors: 'carla' is listed twice",
        "F:18:7: unknown key 'queues' in customers.acme.acm",
    ]


def test_operator_ids_are_digits_and_unique(tmp_path: Path) -> None:
    acm = """\
      groups: {sales: {}}
      operators:
        anna: {id: "11", numbers: ["+32470001104"], pin: "1234", groups: {sales: 3}}
        bert: {id: 11, numbers: ["+32470001105"], pin: "1234", groups: {sales: 1}}
        carla: {id: "1x", numbers: ["+32470001106"], pin: "1234", groups: {sales: 1}}
"""
    assert problems(tmp_path, acm) == [
        "F:10:9: customers.acme.acm.operators: 'bert' and 'anna' have the same id 11",
        "F:12:21: customers.acme.acm.operators.carla.id must be 1 to 8 digits (it is keyed on "
        "a phone)",
    ]


def test_the_feature_number_is_nobodys_number(tmp_path: Path) -> None:
    acm = """\
      feature_number: "02 555 12 34"
      groups: {sales: {}}
      operators:
        anna: {id: "11", numbers: ["+32470001104"], pin: "1234", groups: {sales: 3}}
"""
    assert problems(tmp_path, acm) == [
        "F:3:3: customer 'acme': acm.feature_number +3225551234 is a number of customer "
        "'acme', whose tree would never get its calls",
    ]
    config = load_config(write(tmp_path, acm.replace("02 555 12 34", "02 555 12 99")))
    assert config.customers["acme"].acm.feature_number == "+3225551299"  # type: ignore[union-attr]


def test_a_group_whose_only_operator_is_wrong_is_not_also_without_operators(
    tmp_path: Path,
) -> None:
    found = problems(tmp_path, """\
      groups: {sales: {}}
      operators:
        anna: {numbers: ["+32470001104"], pin: "1", groups: {sales: 3}}
""")
    assert found == [
        "F:10:48: customers.acme.acm.operators.anna.pin must be 4 to 8 digits (it is keyed on "
        "a phone)"
    ]


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ("[{after: 30, min_level: 2}, {after: 30, min_level: 1}]",
         "F:9:52: customers.acme.acm.groups.sales.tiers: after 30 s must come later than the "
         "tier before it (30 s)"),
        ("[{after: 30, min_level: 1}, {after: 60, min_level: 1}]",
         "F:9:52: customers.acme.acm.groups.sales.tiers: min_level 1 must be lower than the "
         "tier before it (1): a tier widens the queue"),
        ("[{after: 30, min_level: 3}]",
         "F:9:24: customers.acme.acm.groups.sales.tiers: the first tier's min_level (3) must "
         "be lower than the group's best level (3), which callers wait for until 30 s"),
        ("[{after: 0, min_level: 4}]",
         "F:9:24: customers.acme.acm.groups.sales.tiers: no operator of the group reaches "
         "min_level 4 (the best is 3)"),
        ("[{after: 30}]",
         "F:9:25: each entry of customers.acme.acm.groups.sales.tiers lacks the required key "
         "'min_level'"),
        ("{after: 30, min_level: 1}",
         "F:9:24: customers.acme.acm.groups.sales.tiers must be a list, not a mapping"),
    ],
)  # fmt: skip
def test_tiers_must_widen_from_the_best_level(tmp_path: Path, tiers: str, message: str) -> None:
    found = problems(tmp_path, f"""\
      groups:
        sales: {{tiers: {tiers}}}
      operators:
        anna: {{numbers: ["+32470001104"], pin: "1234", groups: {{sales: 3}}}}
        bert: {{numbers: ["+32470001105"], pin: "1234", groups: {{sales: 1}}}}
""")
    assert found == [message]
